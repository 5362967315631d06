"""The core simulator towards Consul: registration, leader election and the assignment it writes.

Every core is a real process (python -m voltha_core_sim) against a real Consul dev agent, and is
stopped by its PID at teardown, pass or fail.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import parse_assignment
from tests.support.grpc_client import NbiClient
from tests.support.processes import wait_for
from tests.support.sim_cores import Core, assigned, leader

pytestmark = pytest.mark.slow


def expected(*cores: Core) -> dict:
    return {c.core_id: ("127.0.0.1", c.port) for c in cores}


def wait_assignment(kv, key, cores, timeout=15.0) -> float:
    """Seconds until the assignment holds exactly these cores."""
    started = time.monotonic()
    want = expected(*cores)
    try:
        wait_for(lambda: assigned(kv, key) == want, timeout, f"assignment == {sorted(want)}", interval=0.02)
    except TimeoutError as err:
        raise AssertionError(f"{err}; it holds {assigned(kv, key)}") from None
    return time.monotonic() - started


def registered(client, service) -> set[str]:
    """The core ids registered (each run of a core has its own service id, CORE@HOST:PORT~RUN)."""
    _, services = client.catalog.service(service)
    assert all(s["ServiceID"].startswith(f"{s['ServiceMeta']['core_id']}@{s['ServiceAddress']}:{s['ServicePort']}~")
               for s in services), services
    return {s["ServiceMeta"]["core_id"] for s in services}


def running_three(consul_agent, start_cores, keys):
    client = consul_agent.client()
    started = time.monotonic()
    cores = start_cores(consul_agent.address, "core-0", "core-1", "core-2")
    took = wait_assignment(client.kv, keys["assignment"], cores)
    print(f"\nthree cores started and assigned in {time.monotonic() - started:.2f}s "
          f"({took:.2f}s after the last one answered gRPC)")
    wait_for(lambda: leader(client.kv, keys["lock"]) is not None, 10, "a leader")
    return client, cores


def test_three_cores_elect_one_leader_and_assign_all(consul_agent, start_cores, keys):
    client, cores = running_three(consul_agent, start_cores, keys)
    assert registered(client, keys["service"]) == {"core-0", "core-1", "core-2"}
    _, item = client.kv.get(keys["assignment"])
    stored = json.loads(item["Value"])
    assert stored == {f"vcore-{i}": {"id": f"core-{i}", "host": "127.0.0.1", "port": cores[i].port} for i in range(3)}
    assert len(parse_assignment(item["Value"])) == 3
    # Exactly one leader: the lock holder, and the only core whose log says so.
    time.sleep(1.0)
    chief = leader(client.kv, keys["lock"])
    leaders = [c.core_id for c in cores if "election: leader" in c.log()]
    assert leaders == [chief], leaders
    # Only the leader wrote the key.
    writers = [c.core_id for c in cores if f"wrote {keys['assignment']}" in c.log()]
    assert writers == [chief]


def test_killed_follower_drops_out(consul_agent, start_cores, keys):
    client, cores = running_three(consul_agent, start_cores, keys)
    chief = leader(client.kv, keys["lock"])
    victim = next(c for c in cores if c.core_id != chief)
    victim.process.signal(signal.SIGKILL)
    took = wait_assignment(client.kv, keys["assignment"], [c for c in cores if c is not victim])
    print(f"\nSIGKILL of follower {victim.core_id}: out of the assignment after {took:.2f}s")
    assert took < 5
    assert leader(client.kv, keys["lock"]) == chief


def test_killed_leader_is_replaced(consul_agent, start_cores, keys):
    client, cores = running_three(consul_agent, start_cores, keys)
    chief = leader(client.kv, keys["lock"])
    victim = next(c for c in cores if c.core_id == chief)
    victim.process.signal(signal.SIGKILL)
    started = time.monotonic()
    wait_for(lambda: leader(client.kv, keys["lock"]) not in (None, chief), 10, "a new leader", interval=0.02)
    elected = time.monotonic() - started
    took = elected + wait_assignment(client.kv, keys["assignment"], [c for c in cores if c is not victim])
    new = leader(client.kv, keys["lock"])
    print(f"\nSIGKILL of leader {chief}: {new} leads after {elected:.2f}s, "
          f"assignment without {chief} after {took:.2f}s")
    assert took < 6
    assert new in {c.core_id for c in cores if c is not victim}


def test_sigterm_deregisters_and_drops_out(consul_agent, start_cores, keys):
    client, cores = running_three(consul_agent, start_cores, keys)
    chief = leader(client.kv, keys["lock"])
    for victim in (next(c for c in cores if c.core_id != chief), next(c for c in cores if c.core_id == chief)):
        started = time.monotonic()
        assert victim.stop() == 0
        assert not victim.process.alive()
        cores = [c for c in cores if c is not victim]
        assert victim.core_id not in registered(client, keys["service"])  # gone before it exited
        took = time.monotonic() - started
        took += wait_assignment(client.kv, keys["assignment"], cores)
        print(f"\nSIGTERM of {victim.core_id} ({'leader' if victim.core_id == chief else 'follower'}): "
              f"out of the assignment after {took:.2f}s")
        assert "deregistered service id" in victim.log()
    assert leader(client.kv, keys["lock"]) == cores[0].core_id


def test_cores_come_back_after_consul_restarts(start_consul, start_cores, keys):
    agent = start_consul()
    client, cores = running_three(agent, start_cores, keys)
    port = agent.http_port
    agent.stop()
    time.sleep(1.0)  # the cores see Consul down: they keep serving gRPC and retry
    for core in cores:
        client_ = NbiClient(f"127.0.0.1:{core.port}")
        try:
            assert client_.get_voltha() == core.core_id
        finally:
            client_.close()
    started = time.monotonic()
    agent = start_consul(http_port=port)  # a dev agent starts empty
    client = agent.client()
    took = wait_assignment(client.kv, keys["assignment"], cores, timeout=20)
    print(f"\nConsul restarted: assignment written again {took:.2f}s after the agent was up "
          f"({time.monotonic() - started:.2f}s after the restart began)")
    assert registered(client, keys["service"]) == {"core-0", "core-1", "core-2"}
    assert leader(client.kv, keys["lock"]) is not None
    assert all(c.process.alive() for c in cores)


def test_a_draining_core_reports_not_serving_and_waits_until_calls_stop():
    """What a stopping core does before gRPC's stop (which would fail calls still arriving): its
    health service says NOT_SERVING, and wait_quiet returns only once no call, health checks aside,
    has arrived for the quiet time, or False when calls go on past the timeout."""
    import threading

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from voltha_core_sim.server import CoreServer

    server = CoreServer("core-q").start()
    client = NbiClient(server.address)
    channel = grpc.insecure_channel(server.address)
    health = health_pb2_grpc.HealthStub(channel)
    try:
        serving = health_pb2.HealthCheckResponse.SERVING
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status == serving
        server.drain()
        for name in ("", "voltha.VolthaService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=2).status
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING, name
        assert client.get_voltha(timeout=2) == "core-q"  # still serving what arrives

        calls_end = time.monotonic() + 1.0

        def calls():
            while time.monotonic() < calls_end:
                client.get_voltha(timeout=2)
                health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                time.sleep(0.05)

        caller = threading.Thread(target=calls)
        caller.start()
        assert server.wait_quiet(0.3, timeout=0.5) is False  # calls still arriving
        assert server.wait_quiet(0.3, timeout=5.0) is True
        quiet_at = time.monotonic()
        caller.join()
        assert quiet_at >= calls_end + 0.25  # health checks alone did not count as calls
        # Only health checks now: quiet at once.
        health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        started = time.monotonic()
        assert server.wait_quiet(0.3, timeout=1.0) is True
        assert time.monotonic() - started < 0.1
    finally:
        client.close()
        channel.close()
        server.stop(0)


def test_the_load_names_its_failed_calls_with_their_time():
    """nbi_load against a port nothing listens on: every call fails, and the result names the first
    50 with their UTC start time, method and error, in time order."""
    from datetime import UTC, datetime, timedelta

    from tests.support.processes import free_port
    from voltha_core_sim.nbi_load import FAILURES_KEPT, run

    before = datetime.now(UTC)
    result = run(f"127.0.0.1:{free_port()}", rate=200, duration=0.5)
    assert result["failed"] == result["sent"] > FAILURES_KEPT
    failures = result["failures"]
    assert len(failures) == FAILURES_KEPT
    starts = [datetime.fromisoformat(f["at"]) for f in failures]
    assert starts == sorted(starts) and before - timedelta(seconds=1) <= starts[0] <= datetime.now(UTC)
    assert {f["method"] for f in failures} == {"CreateDevice", "GetVoltha"}
    assert all(f["error"].startswith("UNAVAILABLE: ") and f["seconds"] >= 0 for f in failures)


def test_health_checks_are_answered_while_device_calls_wait_on_a_hung_consul(start_consul, start_cores, keys):
    """A core whose device calls wait on Consul (its leader lost, its agent hung) still answers
    Envoy's health checks within their timeout (0.15 s in the shipped template): were they queued
    behind the waiting calls, every core would fail its checks at once and Envoy would have no
    healthy core to send to."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    agent = start_consul()
    [core] = start_cores(agent.address, "core-0")
    client = NbiClient(f"127.0.0.1:{core.port}")
    channel = grpc.insecure_channel(f"127.0.0.1:{core.port}")
    health = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    pool = ThreadPoolExecutor(48)
    try:
        client.create_device()  # Consul answers: the device reaches it
        agent.freeze()
        try:
            creates = [pool.submit(client.create_device, 10.0) for _ in range(48)]
            time.sleep(0.1)  # the creates are in the core, waiting on Consul
            answers = []
            for _ in range(5):
                started = time.monotonic()
                status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
                answers.append((status, round(time.monotonic() - started, 3)))
                time.sleep(0.05)
        finally:
            agent.thaw()
        assert [status for status, _ in answers] == [serving] * 5
        print(f"\nhealth checks while 48 device calls wait on a hung Consul: {answers}")
        assert max(seconds for _, seconds in answers) < 0.15, answers
        assert [future.result() for future in creates] == ["core-0"] * 48  # each answered by the core
        assert len(client.list_devices()[0].items) == 49
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        channel.close()
        client.close()
