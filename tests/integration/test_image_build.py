"""voltha.envoy.image_build and the images role's products, through real ansible-playbook on the real Docker Engine."""

from __future__ import annotations

import uuid

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._docker.inputs import LABEL_INPUTS
from tests.support.ansible_runner import run_playbook

SCRATCH_DOCKERFILE = "FROM scratch\nCOPY payload /payload\n"


@pytest.fixture(scope="module")
def engine(docker_client):
    return docker_client


@pytest.fixture
def repository(engine):
    """A throwaway repository name; every image in it is removed afterwards."""
    name = f"voltha-envoy-test/build-{uuid.uuid4().hex[:8]}"
    yield name
    for image in engine.images.list(name=name):
        for tag in image.tags:
            engine.images.remove(tag, force=True)


def build(tmp_path, repository, dockerfile=SCRATCH_DOCKERFILE, check=False, **extra):
    args = {"name": repository, "dockerfile": dockerfile,
            "sources": [{"src": str(tmp_path / "payload"), "dest": "payload"}], **extra}
    run = run_playbook(tmp_path / "play", [{"name": "build", "voltha.envoy.image_build": args}], check=check)
    assert "build" in run.tasks, run.stdout[-3000:] + run.stderr[-3000:]
    return run["build"]


def test_builds_once_and_again_only_when_an_input_changes(tmp_path, engine, repository):
    (tmp_path / "payload").write_text("one")
    first = build(tmp_path, repository)
    assert first["changed"] and first["built"] and first["tags_added"] == ["latest"], first
    image = engine.images.get(first["image"])
    assert image.labels[LABEL_INPUTS] == first["inputs_digest"]
    assert first["image"] == f"{repository}:{first['inputs_digest'][:12]}"
    assert engine.images.get(f"{repository}:latest").id == image.id

    second = build(tmp_path, repository)
    assert not second["changed"] and not second["built"] and second["image_id"] == image.id

    (tmp_path / "payload").write_text("two")
    checked = build(tmp_path, repository, check=True)
    assert checked["changed"] and checked["built"] and checked["image_id"] is None
    assert len(engine.images.list(name=repository)) == 1, "check mode built something"

    third = build(tmp_path, repository)
    assert third["built"] and third["inputs_digest"] != first["inputs_digest"]
    assert engine.images.get(f"{repository}:latest").id == third["image_id"]


def test_build_arguments_and_labels_are_inputs(tmp_path, engine, repository):
    (tmp_path / "payload").write_text("x")
    plain = build(tmp_path, repository)
    labelled = build(tmp_path, repository, labels={"org.example.team": "olt"})
    assert labelled["built"] and labelled["inputs_digest"] != plain["inputs_digest"]
    assert engine.images.get(labelled["image"]).labels["org.example.team"] == "olt"
    argued = build(tmp_path, repository, dockerfile=SCRATCH_DOCKERFILE + "ARG FLAVOUR\nLABEL flavour=${FLAVOUR}\n",
                   buildargs={"FLAVOUR": "lab"})
    assert engine.images.get(argued["image"]).labels["flavour"] == "lab", "the build argument did not reach the build"


def test_a_missing_base_image_is_named_and_nothing_is_pulled(tmp_path, repository):
    (tmp_path / "payload").write_text("x")
    result = build(tmp_path, repository, dockerfile="ARG BASE=voltha-envoy-test/absent:1\nFROM ${BASE}\n")
    assert result["failed"] and "voltha-envoy-test/absent:1" in result["msg"] and "nothing is pulled" in result["msg"]


def test_a_failing_build_reports_the_step(tmp_path, repository):
    (tmp_path / "payload").write_text("x")
    result = build(tmp_path, repository, dockerfile="FROM scratch\nCOPY missing-file /x\n")
    assert result["failed"] and "the build failed" in result["msg"] and "missing-file" in result["msg"]


def test_a_missing_source_is_named(tmp_path, repository):
    result = build(tmp_path, repository)  # no payload file written
    assert result["failed"] and "sources[0].src" in result["msg"]
