"""Consul's faults on the real parts: envoyd with its Envoy and simulated cores, under load from
eight clients, while Consul restarts with its store lost or kept, hangs longer than a blocking
query's wait, or loses its Raft leader; then a new assignment is written.

Each round asserts that Envoy serves the new assignment long before the blocking query's wait
would have run out (the watch never blocks on an index the new store has not reached), that no call
failed, and that the cores, on their own keys in the same Consul, are whole again: registered, a
living leader, and an assignment that names exactly them. make bench times the same rounds
(BENCHMARKS.md, "Consul faults").
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.consul_faults import CallLoad, assignment_of, run_rounds
from tests.support.processes import wait_for
from tests.support.sim_cores import assigned, leader_instance

pytestmark = pytest.mark.slow

KEY = "test/faults/assignment"
ROUNDS = 10
WAIT = "60s"  # envoyd's default blocking wait: a watch stuck on an old index would take a minute
BOUND = 5.0  # seconds: far below the wait, far above what a working re-read takes


@pytest.fixture
def load_on():
    loads: list[CallLoad] = []

    def start(address: str) -> CallLoad:
        loads.append(CallLoad(address, clients=8, rate=50.0).start())
        return loads[-1]

    try:
        yield start
    finally:
        for load in loads:
            load.stop()


def cores_whole(agent, keys, cores, timeout=15.0):
    """A checker for run_rounds: seconds from ``since`` until the cores' assignment names exactly the
    living cores and the lock is held by one of their sessions."""
    want = {c.core_id: ("127.0.0.1", c.port) for c in cores}

    def whole() -> bool:
        try:
            client = agent.client()
            instance = leader_instance(client, keys["lock"])
            return assigned(client.kv, keys["assignment"]) == want and instance is not None \
                and any(instance.startswith(f"{c.core_id}@127.0.0.1:{c.port}~") for c in cores)
        except Exception:  # Consul still coming back
            return False

    def check(since: float) -> float:
        wait_for(whole, timeout, f"the cores' assignment == {sorted(want)} with a living leader", interval=0.02)
        return time.monotonic() - since
    return check


def assert_rounds(result, cores_bound=10.0):
    summary = (f"{result.fault}: resync {[round(t, 3) for t in result.times()]} s, failed calls {result.failed}, "
               f"cores whole after {[round(t, 2) for t in result.cores_resync]} s")
    print("\n" + summary)
    assert result.lost == 0, summary
    assert result.worst < BOUND, summary
    assert result.failed == 0, summary
    assert all(t < cores_bound for t in result.cores_resync), summary


def envoyd_on(start_envoyd, agent_address, servers, agent, *extra):
    agent.client().kv.put(KEY, assignment_of(servers[0]))
    return start_envoyd(agent_address, extra=("--assignment-key", KEY, "--consul-wait", WAIT, *extra))


@pytest.mark.parametrize("mode", ["dev", "server"], ids=["store-lost", "store-kept"])
def test_consul_restarted(mode, start_consul, cores, start_envoyd, start_cores, load_on, keys):
    """A dev agent restarts empty (its index starts again near 1); a server keeps its data dir."""
    agent = start_consul(mode=mode)
    envoyd = envoyd_on(start_envoyd, agent.address, cores, agent)
    sim = start_cores(agent.address, "core-a", "core-b", "core-c")
    cores_whole(agent, keys, sim)(time.monotonic())
    load = load_on(envoyd.nbi)

    def restart():
        agent.stop()
        agent.launch()

    result = run_rounds(f"consul {mode} agent restarted", ROUNDS, restart, load, lambda: [agent.url], KEY, cores,
                        cores_check=cores_whole(agent, keys, sim))
    assert_rounds(result)


def test_consul_hung_longer_than_the_wait(start_consul, cores, start_envoyd, start_cores, load_on, keys):
    """SIGSTOP for longer than the blocking wait (sockets open, no answer), then SIGCONT."""
    agent = start_consul(mode="server")
    envoyd = envoyd_on(start_envoyd, agent.address, cores, agent, "--consul-wait", "2s")
    sim = start_cores(agent.address, "core-a", "core-b")
    load = load_on(envoyd.nbi)

    def hang():
        agent.freeze()
        time.sleep(3.5)
        agent.thaw()

    result = run_rounds("consul agent hung 3.5s (wait 2s)", 3, hang, load, lambda: [agent.url], KEY, cores,
                        cores_check=cores_whole(agent, keys, sim))
    assert_rounds(result)


@pytest.mark.parametrize("consistency", ["default", "stale"])
def test_cluster_loses_its_leader(consistency, start_consul, cores, start_envoyd, start_cores, load_on, keys,
                                  tmp_path):
    """Three servers and a client agent (the one envoyd and the cores talk to); the leader is killed
    each round and comes back before the next."""
    from tests.support.consul_agent import ConsulAgent

    servers = [ConsulAgent(tmp_path / f"server-{n}", mode="server", bootstrap_expect=3) for n in range(3)]
    joined = [s.serf_address for s in servers]
    for server in servers:
        server.config["retry_join"] = joined
        start_consul(wait=False, agent=server)
    wait_for(lambda: all(s.has_leader() for s in servers), 60, "three servers with a leader")
    client_agent = start_consul(mode="client", join=tuple(joined))
    envoyd = envoyd_on(start_envoyd, client_agent.address, cores, client_agent, "--consul-consistency", consistency)
    sim = start_cores(client_agent.address, "core-a", "core-b")
    load = load_on(envoyd.nbi)
    killed: list = []

    def kill_leader():
        if killed:
            killed.pop().launch()
            wait_for(lambda: all(s.has_leader() for s in servers), 60, "the killed server back in the cluster")
        address = servers[0].leader()
        victim = next(s for s in servers if s.raft_address == address)
        victim.kill()
        killed.append(victim)

    result = run_rounds(f"cluster lost its leader ({consistency})", 3, kill_leader, load,
                        lambda: [client_agent.url], KEY, cores, cores_check=cores_whole(client_agent, keys, sim))
    assert_rounds(result)


def test_cores_replaced_at_new_and_reused_addresses_while_consul_was_away(start_consul, start_envoyd, start_cores,
                                                                       load_on, keys, tmp_path: Path):
    """Consul keeps its data (and the old registrations and sessions) while every core is replaced:
    two of the new cores get old cores' addresses. The old registrations' checks ask for instances
    nobody serves, so they fail, their sessions end, and the new cores elect a leader and write an
    assignment that names exactly them."""
    agent = start_consul(mode="server")
    old = start_cores(agent.address, "core-a", "core-b", "core-c")
    cores_whole(agent, keys, old)(time.monotonic())
    envoyd = start_envoyd(agent.address, extra=("--assignment-key", keys["assignment"]))
    load = load_on(envoyd.nbi)
    for _round in range(3):
        agent.stop()
        for core in old:
            core.process.signal(9)  # SIGKILL: no deregistration, no session destroyed
            core.stop()
        # core-a takes core-b's address, core-c core-a's; core-b gets a new one.
        new = start_cores(agent.address, ("core-a", old[1].port), "core-b", ("core-c", old[0].port))
        before = load.failed()  # calls failed while no core ran are the cores' deaths, not Consul's
        agent.launch()
        wait_for(agent.has_leader, 30, "consul back with its data")
        took = cores_whole(agent, keys, new, timeout=10.0)(time.monotonic())
        wait_for(lambda: set(load_cores(envoyd)) == {"core-a", "core-b", "core-c"}, 10,
                 "envoyd routing to the new cores")
        # The old registrations came back with Consul's data; the leader prunes them within seconds.
        wait_for(lambda want={f"{c.core_id}@{c.port}" for c in new}: registered(agent, keys) == want, 15,
                 "only the new cores registered")
        failed = load.failures[before:]
        print(f"\ncores replaced while consul was away: whole {took:.2f}s after consul answered; "
              f"{len(failed)} calls failed once the new cores served: {failed[:3]}")
        assert not failed
        old = new


def registered(agent, keys) -> set[str]:
    """CORE@PORT of every instance in Consul's catalog."""
    return {f"{s['ServiceMeta']['core_id']}@{s['ServicePort']}"
            for s in agent.client().catalog.service(keys["service"])[1]}


def load_cores(envoyd) -> list[str]:
    return [core["id"] for core in envoyd.status()["cores"]]
