"""A config that passes validation but after which Envoy dies is rolled back: a real Consul, envoyd,
Envoy and simulated cores.

Envoy is made to die the way large assignments made it die: envoyd runs under an open-files limit,
and an assignment needs more sockets for its health checks than Envoy may open, so Envoy crashes
each time it starts with it. Those cores take connections and never answer, so each check holds its
socket until it times out (a refused connection would free it at once). envoyd must put the last good
files back after the second failure, count and report it, refuse the same config if it comes again,
and apply the next good one.
"""

from __future__ import annotations

import json
import re
import socket

import pytest

from tests.support.grpc_client import cores_answering
from tests.support.processes import wait_for

pytestmark = pytest.mark.slow
KEY = "test/rollback/assignment"
DIED = 'envoyd_rejects_total{reason="envoy-died"}'
OPEN_FILES = 256
UNANSWERED = 600  # silent cores: each costs Envoy a health-check socket for as long as the check waits


@pytest.fixture
def silent():
    """Listening sockets on loopback that never accept: connections open, and nothing answers."""
    sockets = []
    try:
        for i in range(UNANSWERED):
            sockets.append(socket.create_server((f"127.3.{i // 250}.{1 + i % 250}", 0), backlog=16))
        yield [s.getsockname() for s in sockets]
    finally:
        for s in sockets:
            s.close()


def assignment(cores, silent=()) -> str:
    value = {f"p{n}": {"id": core.core_id, "host": "127.0.0.1", "port": core.port} for n, core in enumerate(cores)}
    for i, (host, port) in enumerate(silent):
        value[f"q{i}"] = {"id": f"silent-{i}", "host": host, "port": port}
    return json.dumps(value)


@pytest.mark.parametrize("reload", ["dynamic", "xds", "hot-restart"])
def test_a_config_after_which_envoy_dies_is_rolled_back(consul_agent, cores, silent, start_envoyd, reload):
    kv = consul_agent.client().kv
    kv.put(KEY, assignment(cores[:2]))
    envoyd = start_envoyd(consul_agent.address, reload=reload, open_files=OPEN_FILES,
                          extra=("--assignment-key", KEY))
    two = {c.core_id for c in cores[:2]}
    assert cores_answering(envoyd.nbi) == two
    good_sha = envoyd.status()["applied_sha256"]

    kv.put(KEY, assignment(cores[:2], silent))  # valid, but Envoy runs out of sockets and crashes
    envoyd.wait_metric(DIED, 1, timeout=60)
    wait_for(envoyd.healthy, 30, "Envoy serving the last good config again")
    status = envoyd.status()
    update = status["envoy_update"]
    assert update["state"] == "died"
    assert re.match(r"Envoy (was killed by SIG[A-Z]+|exited with status \d+|\(epoch \d+\) )", update["reason"]), update
    assert status["applied_sha256"] == good_sha
    assert {c["id"] for c in status["cores"]} == two
    assert cores_answering(envoyd.nbi) == two
    assert envoyd.metric("envoyd_assignment_cores") == 2
    assert "Envoy died after the last update" in envoyd._get("/healthz")[1].decode()
    log = envoyd.log()
    assert log.count(f"more than its limit of {OPEN_FILES}") == 1, log
    assert log.count("not applied (envoy-died)") == 1, log

    # The next good update applies as usual; the config that killed Envoy is refused if it comes
    # back, without Envoy being tried with it again.
    kv.put(KEY, assignment(cores))
    wait_for(lambda: cores_answering(envoyd.nbi) == {c.core_id for c in cores}, 15, "calls reaching three cores")
    # Envoy serves the new cluster once it is warm; the apply ends when envoyd has seen that.
    wait_for(lambda: "died" not in envoyd._get("/healthz")[1].decode(), 5, "the report of the death cleared")
    pids = envoyd.envoy_pids()
    kv.put(KEY, assignment(cores[:2], silent))
    envoyd.wait_metric(DIED, 2)
    assert "made Envoy die" in envoyd.log()
    assert envoyd.envoy_pids() == pids
    assert cores_answering(envoyd.nbi) == {c.core_id for c in cores}
