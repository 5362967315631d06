"""voltha.envoy.service_replace on the real Docker Engine: a plain container (replaced, health-gated,
restored when the new one is unhealthy), and the service checks that need no running swarm stack.
The stack path under load is molecule/replace's."""

from __future__ import annotations

import uuid

import pytest

from tests.support.ansible_runner import run_playbook

VCORE = "voltha-envoy/vcore:latest"


@pytest.fixture(scope="module")
def engine(lab_images):
    return lab_images


@pytest.fixture
def variants(engine, tmp_path):
    """Two images of the core: one healthy (a label apart), one whose health check never passes."""
    name = f"voltha-envoy-test/vcore-{uuid.uuid4().hex[:8]}"
    good, _ = engine.images.build(fileobj=_dockerfile(f"FROM {VCORE}\nLABEL variant=good\n"), tag=f"{name}:good",
                                  rm=True)
    bad, _ = engine.images.build(fileobj=_dockerfile(
        f"FROM {VCORE}\nHEALTHCHECK --interval=1s --timeout=1s --retries=2 "
        'CMD ["/usr/local/bin/health-probe", "tcp", "127.0.0.1:1"]\n'), tag=f"{name}:bad", rm=True)
    yield f"{name}:good", f"{name}:bad"
    for tag in (f"{name}:good", f"{name}:bad"):
        engine.images.remove(tag, force=True)


def _dockerfile(text):
    import io

    return io.BytesIO(text.encode())


@pytest.fixture
def core_container(engine):
    name = f"voltha-envoy-test-core-{uuid.uuid4().hex[:8]}"
    container = engine.containers.run(VCORE, ["--core-id", "c1", "--host", "127.0.0.1"], name=name, detach=True,
                                       network_mode="none", labels={"purpose": "voltha-envoy-test"})
    yield name
    for c in engine.containers.list(all=True, filters={"label": "purpose=voltha-envoy-test"}):
        c.remove(force=True)
    del container


def replace(tmp_path, check=False, diff=False, env=None, **args):
    run = run_playbook(tmp_path / "play", [{"name": "replace", "voltha.envoy.service_replace": args}], check=check,
                       diff=diff, env=env)
    assert "replace" in run.tasks, run.stdout[-3000:] + run.stderr[-3000:]
    return run["replace"]


def test_a_plain_container_is_replaced_health_gated(tmp_path, engine, core_container, variants):
    good, _ = variants
    checked = replace(tmp_path, check=True, diff=True, container=core_container, image=good, rollout_timeout=60)
    assert checked["changed"] and checked["diff"]["after"] == f"image: {good}\n"
    assert engine.containers.get(core_container).attrs["Config"]["Image"] == VCORE, "check mode replaced it"

    result = replace(tmp_path, container=core_container, image=good, rollout_timeout=60)
    assert result["changed"] and result["tasks_replaced"] == 1 and not result["rolled_back"], result
    new = engine.containers.get(core_container)
    assert new.image.id == result["new_image_id"]
    assert new.attrs["State"]["Health"]["Status"] == "healthy"
    assert new.attrs["Config"]["Cmd"] == ["--core-id", "c1", "--host", "127.0.0.1"]
    assert [c.name for c in engine.containers.list(all=True, filters={"label": "purpose=voltha-envoy-test"})] \
        == [core_container], "the old container was left behind"

    again = replace(tmp_path, container=core_container, image=good, rollout_timeout=60)
    assert not again["changed"]


def test_an_unhealthy_container_is_rolled_back(tmp_path, engine, core_container, variants):
    _, bad = variants
    old_id = engine.containers.get(core_container).id
    result = replace(tmp_path, container=core_container, image=bad, rollout_timeout=20)
    assert result["failed"] and result["rolled_back"], result
    assert "did not become healthy" in result["msg"] and "started again" in result["msg"]
    restored = engine.containers.get(core_container)
    assert restored.id == old_id and restored.status == "running"


def test_unknown_targets_and_images_are_named(tmp_path, engine, core_container):
    assert "no such container" in replace(tmp_path, container="voltha-envoy-test-absent", image=VCORE)["msg"]
    missing = replace(tmp_path, container=core_container, image="voltha-envoy-test/absent:1")
    assert "voltha-envoy-test/absent:1" in missing["msg"] and "not in the Docker Engine" in missing["msg"]


def test_services_need_a_swarm_manager(tmp_path, own_engine):
    own, client = own_engine
    probe = "voltha-envoy/health-probe:latest"
    env = {"DOCKER_HOST": own.endpoint}
    outside = replace(tmp_path, env=env, service="voltha-envoy-test-absent", image=probe)
    assert outside["failed"] and "not a swarm manager" in outside["msg"], outside
    client.swarm.init(advertise_addr="127.0.0.1")
    inside = replace(tmp_path, env=env, service="voltha-envoy-test-absent", image=probe)
    assert inside["failed"] and "no such swarm service" in inside["msg"], inside
