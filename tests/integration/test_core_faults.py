"""Dead, hung and unreachable cores under load through Envoy (tests/support/core_faults.py): Envoy
notices by itself within a few hundred milliseconds, no read fails, CreateDevice fails only for
calls that were on that core, and the core takes traffic again by itself when it comes back."""

from __future__ import annotations

import grpc
import pytest

from tests.support.assignments import assignment_of
from tests.support.consul_faults import KEY, Rig
from tests.support.core_faults import FAULTS, run_fault
from tests.support.processes import wait_for
from voltha_core_sim.nbi_client import NbiClient

pytestmark = pytest.mark.slow


@pytest.fixture(params=["dynamic", "xds"])
def rig(tmp_path, request):
    with Rig(tmp_path, reload=request.param) as running:
        yield running


@pytest.mark.parametrize("fault", FAULTS)
def test_a_core_fault_costs_no_read(rig, fault):
    result = run_fault(rig, fault)
    summary = repr(result)
    print("\n" + summary)
    assert result.failed_reads == 0, summary
    assert result.failed_creates <= max(result.creates_in_flight, result.victim_in_flight), summary
    assert result.detection is not None and result.detection < 1.0, summary  # the benchmark reports it against 300 ms
    assert result.back is not None and result.back < 5.0, summary
    assert result.metrics_flagged >= 1, summary  # envoyd_envoy_hosts counts the core Envoy took out


def test_cores_that_all_fail_their_checks_still_get_calls(rig):
    """Every core misses its health checks (Envoy asks for a service none of them serves, as when a host
    is too busy to answer checks in time) while each answers calls: with the shipped panic threshold
    Envoy sends calls to all of them; with 0 it answers "no healthy upstream" for every call."""
    servers = rig.servers(3)
    agent = rig.consul("consul")
    agent.client().kv.put(KEY, assignment_of(*servers))
    unchecked = ("--var", "health_check_service=voltha.NotServedAnywhere")
    shipped = rig.envoyd(agent, *unchecked, key=KEY)
    strict = rig.envoyd(agent, *unchecked, "--var", "healthy_panic_threshold=0", key=KEY)

    def all_failing(envoyd) -> bool:
        states = [host["state"] for host in envoyd.status()["envoy_hosts"] if host["cluster"] == "voltha-grpc"]
        return len(states) == 3 and set(states) == {"failing_checks"}

    for envoyd in (shipped, strict):
        wait_for(lambda envoyd=envoyd: all_failing(envoyd), 15, "every core failing its checks")
    answered = [NbiClient(shipped.nbi).get_voltha(timeout=2) for _ in range(30)]
    assert sorted(set(answered)) == sorted(s.core_id for s in servers), answered
    refused = []
    for _ in range(10):
        with pytest.raises(grpc.RpcError) as call:
            NbiClient(strict.nbi).get_voltha(timeout=2)
        refused.append((call.value.code(), call.value.details()))
    assert set(refused) == {(grpc.StatusCode.UNAVAILABLE, "no healthy upstream")}, refused
