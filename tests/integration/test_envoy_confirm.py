"""Every dynamic update confirmed by Envoy itself, and one it refuses undone: a real Consul, envoyd,
Envoy and simulated cores.

The refusal is one validation cannot see: the config is valid, but the listener moves to a port
another process holds, so Envoy's LDS update fails to bind. envoyd must notice within the apply, log
Envoy's reason, count it, put the last good files back, and say so on /status and /healthz, while
calls keep going to the cores of the last good config.
"""

from __future__ import annotations

import json
import socket

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.template import VOLTHA_TEMPLATE
from tests.support.grpc_client import cores_answering
from tests.support.processes import wait_for

pytestmark = pytest.mark.slow
KEY = "test/confirm/assignment"
REJECTED = 'envoyd_rejects_total{reason="envoy-rejected"}'


def assignment(cores) -> str:
    return json.dumps({f"p{n}": {"id": core.core_id, "host": "127.0.0.1", "port": core.port}
                       for n, core in enumerate(cores)})


@pytest.fixture
def held_port():
    """A port another process holds (listening), as a port taken on a real host would be."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


MODES = pytest.mark.parametrize("reload", ["dynamic", "xds"])
# What Envoy confirms: the versions of its resource files, or of the ADS snapshot's types.
CONFIRMED = {"dynamic": {"cds", "lds", "eds voltha-grpc"}, "xds": {"cds", "eds", "lds"}}


@MODES
def test_every_update_is_confirmed_by_envoy(consul_agent, cores, start_envoyd, reload):
    consul_agent.client().kv.put(KEY, assignment(cores[:2]))
    envoyd = start_envoyd(consul_agent.address, reload=reload, extra=("--assignment-key", KEY))
    wait_for(lambda: (envoyd.status().get("envoy_update") or {}).get("state") == "confirmed", 10, "a confirmation")
    consul_agent.client().kv.put(KEY, assignment(cores))
    wait_for(lambda: cores_answering(envoyd.nbi) == {c.core_id for c in cores}, 10, "calls reaching three cores")
    # Envoy serves the new cluster once it is warm; the apply ends when envoyd has seen that.
    wait_for(lambda: envoyd.status(brief=True)["core_count"] == 3, 5, "the apply of three cores done")
    status = envoyd.status()
    assert status["envoy_update"]["state"] == "confirmed"
    # What Envoy serves is what envoyd wrote: the version_info of the files is Envoy's version_text.
    versions = status["envoy_update"]["versions"]
    assert set(versions) == CONFIRMED[reload] and all(versions.values())
    brief = envoyd.status(brief=True)  # the cheap report, for who asks often
    assert brief["core_count"] == 3 and "envoy_hosts" not in brief and brief["envoy_update"]["state"] == "confirmed"
    stages = status["last_apply_stages"]
    assert {"consul", "parse", "render", "validate", "write", "confirm"} <= set(stages)
    assert envoyd.metric('envoyd_apply_stage_seconds_count{stage="confirm"}') >= 2


@MODES
def test_an_update_envoy_refuses_is_undone(consul_agent, cores, start_envoyd, tmp_path, held_port, reload):
    # The shipped template, but with three cores or more the listener moves to another port.
    template = tmp_path / "moving.json.j2"
    template.write_text(VOLTHA_TEMPLATE.replace(
        '"port_value": {{ listen_port }}', '"port_value": {{ moved_port if cores | length > 2 else listen_port }}'))
    consul_agent.client().kv.put(KEY, assignment(cores[:2]))
    envoyd = start_envoyd(consul_agent.address, reload=reload, extra=(
        "--assignment-key", KEY, "--template", str(template), "--var", f"moved_port={held_port}"))
    two = {c.core_id for c in cores[:2]}
    assert cores_answering(envoyd.nbi) == two
    good = envoyd.status()["envoy_update"]["versions"]

    consul_agent.client().kv.put(KEY, assignment(cores))  # valid, but Envoy cannot bind the moved listener
    envoyd.wait_metric(REJECTED, 1)
    status = envoyd.status()
    update = status["envoy_update"]
    assert update["state"] == "rejected" and update["rejected"] == "lds"
    assert "Address already in use" in update["reason"] and str(held_port) in update["reason"]
    # The last good files are back and Envoy serves them: clusters and listener of the two cores.
    assert update["serving"] == good
    assert {c["id"] for c in status["cores"]} == two
    assert cores_answering(envoyd.nbi) == two
    assert "rejected the last update" in envoyd._get("/healthz")[1].decode()
    assert envoyd.healthy()
    assert envoyd.metric("envoyd_envoy_rejected") == 1
    log = envoyd.log()
    assert "envoy-rejected" in log and "Address already in use" in log
    assert log.count("Envoy rejected lds") == 1  # logged once, not per retry

    # The next good update is confirmed again, and the refusal no longer stands.
    consul_agent.client().kv.put(KEY, assignment([cores[0], cores[2]]))
    wait_for(lambda: envoyd.status()["envoy_update"]["state"] == "confirmed", 10, "a confirmation")
    assert cores_answering(envoyd.nbi) == {cores[0].core_id, cores[2].core_id}
    assert envoyd.metric("envoyd_envoy_rejected") == 0
    assert "rejected" not in envoyd._get("/healthz")[1].decode()
