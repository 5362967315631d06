"""What makes an image's inputs digest: only what goes into the image, nothing else."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._docker.inputs import (
    ContextError,
    build_inputs,
    context_entries,
    context_tar,
    debootstrap_inputs,
    digest_of,
    referenced_images,
)


def tree(tmp_path):
    (tmp_path / "src" / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "a.py").write_text("a = 1\n")
    (tmp_path / "src" / "pkg" / "a.pyc").write_bytes(b"\0")
    (tmp_path / "src" / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "run.sh", 0o755)
    return [{"src": str(tmp_path / "src"), "dest": "lib"}, {"src": str(tmp_path / "run.sh")}]


def digest(entries, dockerfile="FROM scratch\n", **kwargs):
    return digest_of(build_inputs(dockerfile, entries, kwargs.get("args", {}), kwargs.get("labels", {}),
                                  kwargs.get("images", {})))


def test_context_has_the_listed_files_without_byte_code(tmp_path):
    entries = context_entries(tree(tmp_path))
    assert [dest for dest, _dummy in entries] == ["lib/pkg/a.py", "run.sh"]


def test_digest_follows_content_and_execute_bit_only(tmp_path):
    sources = tree(tmp_path)
    before = digest(context_entries(sources))
    os.utime(tmp_path / "src" / "pkg" / "a.py", (1, 1))
    (tmp_path / "src" / "pkg" / "b.pyc").write_bytes(b"\1")
    assert digest(context_entries(sources)) == before
    os.chmod(tmp_path / "run.sh", 0o644)
    assert digest(context_entries(sources)) != before
    os.chmod(tmp_path / "run.sh", 0o755)
    (tmp_path / "src" / "pkg" / "a.py").write_text("a = 2\n")
    assert digest(context_entries(sources)) != before


@pytest.mark.parametrize("change", [{"args": {"X": "1"}}, {"labels": {"a": "b"}}, {"images": {"base": "sha256:1"}},
                                    {"dockerfile": "FROM scratch\nENV A=1\n"}])
def test_every_other_input_counts(tmp_path, change):
    entries = context_entries(tree(tmp_path))
    assert digest(entries, **change) != digest(entries)


def test_missing_source_and_escaping_dest_are_named(tmp_path):
    with pytest.raises(ContextError, match=r"sources\[0\]\.src"):
        context_entries([{"src": str(tmp_path / "nope")}])
    (tmp_path / "f").write_text("x")
    with pytest.raises(ContextError, match=r"sources\[1\]\.dest '\.\./up'"):
        context_entries([{"src": str(tmp_path / "f")}, {"src": str(tmp_path / "f"), "dest": "../up"}])
    with pytest.raises(ContextError, match="Dockerfile"):
        context_entries([{"src": str(tmp_path / "f"), "dest": "Dockerfile"}])


def test_referenced_images_substitute_arguments_and_skip_stages():
    dockerfile = """\
ARG BASE_IMAGE=debian:default
ARG PROBE_IMAGE
FROM ${PROBE_IMAGE} AS probe
FROM $BASE_IMAGE AS venv
RUN true
FROM ${BASE_IMAGE}
COPY --from=venv /opt /opt
COPY --from=probe /health-probe /usr/local/bin/
COPY --from=other/image:1 /x /x
FROM scratch
"""
    images = referenced_images(dockerfile, {"PROBE_IMAGE": "p/probe:latest"})
    assert images == ["p/probe:latest", "debian:default", "debian:default", "other/image:1"]


def test_debootstrap_inputs_ignore_package_order():
    one = debootstrap_inputs("bookworm", "minbase", ["b", "a"], ["main"], [])
    two = debootstrap_inputs("bookworm", "minbase", ["a", "b", "a"], ["main"], [])
    assert digest_of(one) == digest_of(two)
    assert digest_of(debootstrap_inputs("bookworm", "minbase", ["a"], ["main"], [])) != digest_of(one)


def test_context_tar_is_reproducible(tmp_path):
    entries = context_entries(tree(tmp_path))
    first = context_tar("FROM scratch\n", entries, io.BytesIO()).getvalue()
    os.utime(tmp_path / "run.sh", (5, 5))
    assert context_tar("FROM scratch\n", entries, io.BytesIO()).getvalue() == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert tar.getnames() == ["Dockerfile", "lib/pkg/a.py", "run.sh"]
        assert tar.getmember("run.sh").mode == 0o755
