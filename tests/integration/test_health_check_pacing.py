"""Envoy's health checks paced by the count of cores, on a real Envoy: a change of pace rebuilds the
core cluster, and no call fails while the new one warms."""

from __future__ import annotations

import json
import threading
import urllib.request

import grpc
import pytest

from tests.support.grpc_client import NbiClient
from tests.support.processes import wait_for

KEY = "service/voltha/data/core/assignment"


def assignment(*servers) -> str:
    return json.dumps({f"prefix-{s.core_id}": {"id": s.core_id, "host": "127.0.0.1", "port": s.port}
                       for s in servers})


def active_core_cluster(envoyd) -> dict:
    """The core cluster Envoy serves with (not one that warms), from its admin API."""
    files = sorted(envoyd.config_dir.glob("envoy-admin-address.*"), key=lambda p: int(p.suffix[1:]))
    url = f"http://{files[-1].read_text().strip()}/config_dump?resource=dynamic_active_clusters"
    with urllib.request.urlopen(url, timeout=5) as answer:
        configs = json.load(answer)["configs"]
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
        if reload == "xds":  # a cluster sent anew has endpoints of its own
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
