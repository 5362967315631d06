"""Consul's faults on the real parts: envoyd with its Envoy and simulated cores, under load from
eight clients, while Consul restarts with its store lost or kept, hangs longer than a blocking
query's wait, loses its Raft leader (killed, or its host cut off the network), or comes back with its
data after every core was replaced.

Each round asserts that Envoy serves the new assignment long before the blocking query's wait (60 s)
would have run out, that no call failed, and that the cores, on their own keys in the same Consul,
are whole again: a living leader and an assignment that names exactly them. make bench times the
same scenarios (BENCHMARKS.md, "Consul faults").
"""

from __future__ import annotations

import pytest

from tests.support import consul_faults
from tests.support.consul_faults import Rig

pytestmark = pytest.mark.slow

BOUND = 5.0  # seconds: far below the 60 s wait, far above what a working re-read takes


@pytest.fixture(params=["dynamic", "xds"])
def rig(tmp_path, request):
    with Rig(tmp_path, reload=request.param) as running:
        yield running


def assert_rounds(result, cores_bound=10.0):
    summary = (f"{result.fault}: resync {[round(t, 3) for t in result.times()]} s, failed calls {result.failed}, "
               f"cores whole after {[round(t, 2) for t in result.cores_resync]} s")
    if result.failed:
        summary += "; failed calls (seconds from Consul answering):\n" + "\n".join(result.errors()[:20])
    print("\n" + summary)
    assert result.lost == 0, summary
    assert result.worst < BOUND, summary
    assert result.failed == 0, summary
    assert all(t < cores_bound for t in result.cores_resync), summary


@pytest.mark.parametrize("mode", ["dev", "server"], ids=["store-lost", "store-kept"])
def test_consul_restarted(rig, mode):
    assert_rounds(consul_faults.restarted(rig, mode, rounds=10))


def test_consul_hung_longer_than_the_wait(rig):
    assert_rounds(consul_faults.hung(rig, rounds=3))


@pytest.mark.parametrize("consistency", ["default", "stale"])
def test_cluster_loses_its_leader(rig, consistency):
    assert_rounds(consul_faults.leader_lost(rig, consistency, rounds=3))


def test_the_leaders_host_cut_off_the_network(rig):
    """No reset reaches anyone: the follower envoyd asks holds its forwarded blocking read on the lost
    leader for about 40 s. envoyd sees the leader change and reads again from the new one."""
    assert_rounds(consul_faults.leader_cut(rig))


def test_cores_replaced_at_new_and_reused_addresses_while_consul_was_away(rig):
    """The old registrations' checks ask for instances nobody serves, so they fail, their sessions
    end, the leader prunes them, and the new cores elect a leader and write an assignment that names
    exactly them, within 10 s; no call fails once the new cores serve."""
    assert_rounds(consul_faults.cores_replaced(rig, rounds=3))
