"""Envoy's health checks paced by the count of cores, on a real Envoy: a change of pace rebuilds the
core cluster, and no call fails while the new one warms."""

from __future__ import annotations

import json
import threading
import urllib.request

import grpc
import pytest

from tests.support.assignments import assignment_of as assignment
from tests.support.grpc_client import NbiClient
from tests.support.processes import wait_for

KEY = "service/voltha/data/core/assignment"


def envoy_admin(envoyd, path: str) -> bytes:
    """A GET on the admin API of the newest Envoy envoyd runs."""
    files = sorted(envoyd.config_dir.glob("envoy-admin-address.*"), key=lambda p: int(p.suffix[1:]))
    with urllib.request.urlopen(f"http://{files[-1].read_text().strip()}{path}", timeout=5) as answer:
        return answer.read()


def envoy_counter(envoyd, name: str) -> int:
    [line] = envoy_admin(envoyd, f"/stats?filter=^{name}$").decode().splitlines()
    return int(line.split(": ")[1])


def active_core_cluster(envoyd) -> dict:
    """The core cluster Envoy serves with (not one that warms), from its admin API."""
    configs = json.loads(envoy_admin(envoyd, "/config_dump?resource=dynamic_active_clusters"))["configs"]
    [cluster] = [c["cluster"] for c in configs if c["cluster"]["name"] == "voltha-grpc"]
    return cluster


class SteadyCalls:
    """CreateDevice and GetVoltha in turn through the NBI, one after the other, from a thread."""

    def __init__(self, nbi: str):
        self.client = NbiClient(nbi)
        self.stop_event = threading.Event()
        self.answered: dict[str, int] = {}
        self.failed: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            for call in (self.client.create_device, self.client.get_voltha):
                try:
                    core = call(timeout=5)
                except grpc.RpcError as err:
                    self.failed.append(f"{err.code().name}: {err.details()}")
                else:
                    self.answered[core] = self.answered.get(core, 0) + 1

    def __enter__(self) -> SteadyCalls:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.thread.join(10)
        self.client.close()


@pytest.mark.parametrize("reload", ["dynamic", "xds"])
def test_a_change_of_pace_rebuilds_the_cluster_without_a_failed_call(consul_agent, cores, start_envoyd, reload):
    kv = consul_agent.client().kv
    kv.put(KEY, assignment(cores[0], cores[1]))
    # 10 checks a second at most: two cores every 0.2 s; three every 0.5 s, first checks within 0.1 s.
    envoyd = start_envoyd(consul_agent.address, reload, ("--var", "health_check_max_rate=10"))
    applies = f'envoyd_applies_total{{mode="{reload}"}}'
    [check] = active_core_cluster(envoyd)["health_checks"]
    assert (check["interval"], check.get("initial_jitter")) == ("0.200s", None)
    with SteadyCalls(envoyd.nbi) as calls:
        wait_for(lambda: len(calls.answered) == 2, 10, "calls answered by both cores")
        kv.put(KEY, assignment(*cores))
        envoyd.wait_metric(applies, 2)
        # Confirmed only once Envoy serves with the new cluster: no cluster is left warming.
        assert envoyd.status()["envoy_update"]["state"] == "confirmed"
        cluster = active_core_cluster(envoyd)
        [check] = cluster["health_checks"]
        assert (check["interval"], check["no_traffic_interval"], check["initial_jitter"]) == ("0.500s", "0.500s",
                                                                                               "0.100s")
        # A cluster sent anew has endpoints of its own.
        assert cluster["eds_cluster_config"]["service_name"] == "voltha-grpc/1"
        wait_for(lambda: len(calls.answered) == 3, 10, "calls answered by the third core")
        kv.put(KEY, assignment(cores[0], cores[2]))
        envoyd.wait_metric(applies, 3)
        assert active_core_cluster(envoyd)["health_checks"][0]["interval"] == "0.200s"
        before = dict(calls.answered)
        wait_for(lambda: calls.answered["core-0"] > before["core-0"] and calls.answered["core-2"] > before["core-2"],
                 10, "calls answered by core-0 and core-2")
    assert calls.failed == []
    assert envoyd.status()["envoy_update"]["state"] == "confirmed"


@pytest.mark.parametrize("reload", ["dynamic", "xds"])
def test_a_change_of_cores_rebuilds_no_cluster(consul_agent, cores, start_envoyd, reload):
    """Cores come and go as endpoints of the one cluster; endpoints that share no core with the last ones
    come with a cluster of their own, which warms while the old one serves. No call fails."""
    kv = consul_agent.client().kv
    kv.put(KEY, assignment(cores[0], cores[1]))
    envoyd = start_envoyd(consul_agent.address, reload)
    applies = f'envoyd_applies_total{{mode="{reload}"}}'
    rebuilt = ("cluster_manager.cluster_added", "cluster_manager.cluster_modified")
    before = [envoy_counter(envoyd, name) for name in rebuilt]
    with SteadyCalls(envoyd.nbi) as calls:
        wait_for(lambda: len(calls.answered) == 2, 10, "calls answered by both cores")
        for step, servers in enumerate([(cores[1], cores[2]), (cores[1],), (cores[0], cores[1])]):
            kv.put(KEY, assignment(*servers))
            envoyd.wait_metric(applies, step + 2)
            assert envoyd.status()["envoy_update"]["state"] == "confirmed"
            seen = dict(calls.answered)
            wait_for(lambda servers=servers, seen=seen: all(
                calls.answered.get(s.core_id, 0) > seen.get(s.core_id, 0) for s in servers),
                10, f"calls answered by {[s.core_id for s in servers]}")
        assert [envoy_counter(envoyd, name) for name in rebuilt] == before
        assert "service_name" not in active_core_cluster(envoyd)["eds_cluster_config"]
        # No core in common with the last ones: a cluster of its own, warmed while the old one serves.
        kv.put(KEY, assignment(cores[2]))
        envoyd.wait_metric(applies, 5)
        assert active_core_cluster(envoyd)["eds_cluster_config"]["service_name"] == "voltha-grpc/1"
        seen = calls.answered.get("core-2", 0)
        wait_for(lambda: calls.answered.get("core-2", 0) > seen, 10, "calls answered by core-2 alone")
    assert calls.failed == []
    assert envoy_counter(envoyd, "cluster_manager.cluster_modified") == before[1] + 1
    if reload == "dynamic":  # the old endpoints file stays while the kept cluster file names it
        assert sorted(p.name for p in (envoyd.config_dir / "xds" / "eds").glob("*.json")) == [
            "voltha-grpc@0.json", "voltha-grpc@1.json"]
