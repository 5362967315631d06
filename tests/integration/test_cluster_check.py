"""python -m voltha_core_sim.cluster_check (the stack role's last wait) against a real Consul, a
real envoyd with Envoy and real gRPC cores: whole, a stale entry, a running core left out."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.assignments import assignment_of
from tests.support.paths import source_env
from tests.support.processes import wait_for

KEY = "test/cluster-check/assignment"


def check(consul_agent, envoyd, *cores):
    argv = [sys.executable, "-m", "voltha_core_sim.cluster_check", envoyd.nbi, "--cores", ",".join(cores),
            "--consul", consul_agent.address, "--assignment-key", KEY]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=source_env())


def routed(envoyd, servers):
    want = {(s.core_id, s.port) for s in servers}
    wait_for(lambda: {(c["id"], c["port"]) for c in envoyd.status()["cores"]} == want, 10, f"routing to {want}")


def test_the_check_compares_running_cores_assignment_and_answers(consul_agent, cores, start_envoyd):
    kv = consul_agent.client().kv
    kv.put(KEY, assignment_of(*cores))
    envoyd = start_envoyd(consul_agent.address, extra=("--assignment-key", KEY))
    try:
        whole = check(consul_agent, envoyd, "core-0", "core-1", "core-2")
        assert whole.returncode == 0, whole.stderr
        assert json.loads(whole.stdout)["assigned"] == ["core-0", "core-1", "core-2"]

        # A core runs that the assignment leaves out: named, and no call reaches it.
        kv.put(KEY, assignment_of(cores[0], cores[1]))
        routed(envoyd, cores[:2])
        missing = check(consul_agent, envoyd, "core-0", "core-1", "core-2")
        assert missing.returncode == 1
        assert "the assignment lacks running cores: ['core-2']" in missing.stderr
        assert "no CreateDevice reached ['core-2']" in missing.stderr

        # A stale entry: the assignment names a core that does not run any more.
        stale = check(consul_agent, envoyd, "core-0")
        assert stale.returncode == 1
        assert "the assignment names cores that do not run: ['core-1']" in stale.stderr
        assert "cores that should not run answered: ['core-1']" in stale.stderr
    finally:
        kv.delete(KEY)
