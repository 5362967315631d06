"""A node of the three-host lab lost under load, and its return, measured from outside.

    python -m tests.support.node_loss [--victim auto|consul-leader|NODE] [--entry node1] [--how cut|kill] [--hold 20]
                                      [--rate 200] [--timeout 180]

Under a steady load (nbi_load: CreateDevice and GetVoltha in turn) through the entry node's NBI, the
victim node is lost: ``cut`` takes its link down (nothing it sends arrives, nothing reaches it),
``kill`` ends its dockerd with SIGKILL (its containers keep running, its swarm agent and its DNS are
gone). After ``hold`` seconds it comes back: its link up again, or its dockerd started again
(scripts/cluster.py). Measured on the way, by polling the entry node's swarm and Consul:

- every call that failed, with its start and end since the fault, its method and its status;
- when the assignment stopped naming a core that ran on the victim, when every envoyd on a surviving
  node had applied that (its /status), when the swarm marked it down;
- after the return: when the swarm has it Ready again, when Consul's servers are three healthy voters
  under one leader again, and when the assignment names three cores again; then when the swarm has
  stayed whole (a leader, every node Ready) for 15 s, and how long it answered without a leader (a
  manager back with a higher Raft term can unseat the leader);
- at the end, the entry's Envoy's counters of the cores' checks, ejections and panics (entry_envoy).

The result is printed as JSON (with --output, also written there). The hosts are CLUSTER_DIR's
(scripts/cluster.py), the stack is named voltha; the operator's token reads Consul.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import docker

from tests.support.paths import REPO, STATE
from voltha_core_sim.nbi_load import run as run_load

CLUSTER_SCRIPT = REPO / "scripts" / "cluster.py"
ASSIGNMENT_KEY = "service/voltha/data/core/assignment"
# Run inside an envoyd container: its /status (what it has applied), on the port the stack gives it.
ENVOYD_STATUS = ("import urllib.request; "
                 "print(urllib.request.urlopen('http://127.0.0.1:8080/status', timeout=2).read().decode())")
# Run inside an envoyd container: its Envoy's counters of the cores' cluster that say why calls found
# no core (health checks failed or timed out, outlier ejections, panic), from Envoy's admin API.
ENVOY_COUNTERS = ("import urllib.parse, urllib.request; which = urllib.parse.quote('^cluster[.]voltha-grpc[.]"
                  "(health_check[.]|outlier_detection[.]ejections_enforced_total|lb_healthy_panic"
                  "|upstream_cx_none_healthy|upstream_cx_connect_fail)'); print(urllib.request.urlopen("
                  "'http://127.0.0.1:8001/stats?format=json&filter=' + which, timeout=2).read().decode())")


class Lab:
    def __init__(self, cluster_dir: Path, stack: str = "voltha"):
        self.dir = cluster_dir
        self.stack = stack
        self.nodes = {n["name"]: n for n in json.loads((cluster_dir / "nodes.json").read_text())}
        secrets = cluster_dir / "config" / "secrets"
        self.token = (secrets / "operator.token").read_text().strip()
        self.management_token = (secrets / "management.token").read_text().strip()  # Raft's view: operator:read

    def engine(self, name: str) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.nodes[name]["docker_host"], timeout=5)

    def consul(self, node: str, path: str, token: str | None = None):
        request = urllib.request.Request(f"http://{self.nodes[node]['address']}:8500{path}",
                                         headers={"X-Consul-Token": token or self.token})
        with urllib.request.urlopen(request, timeout=2) as answer:
            return json.loads(answer.read())

    def assigned(self, node: str) -> dict[str, str]:
        """The assignment's cores as {core id: address}, read through ``node``'s Consul."""
        item = self.consul(node, f"/v1/kv/{ASSIGNMENT_KEY}")[0]
        return {c["id"]: c["host"] for c in json.loads(base64.b64decode(item["Value"])).values()}

    def consul_leader_node(self) -> str:
        """The node whose Consul server leads Raft (its server is named consul-NODE)."""
        health = self.consul(next(iter(self.nodes)), "/v1/operator/autopilot/health", self.management_token)
        return next(s["Name"] for s in health["Servers"] if s["Leader"]).removeprefix("consul-")

    def consul_whole(self) -> bool:
        """Every node's Consul names one leader, and autopilot counts three healthy voters (a server back
        at a new address first rejoins as a non-voter; until it votes, losing one more server stops Raft)."""
        if len({self.consul(n, "/v1/status/leader") for n in self.nodes}) != 1:
            return False
        health = self.consul(next(iter(self.nodes)), "/v1/operator/autopilot/health", self.management_token)
        return health["Healthy"] and sum(1 for s in health["Servers"] if s["Voter"] and s["Healthy"]) == 3

    def node_states(self, engine: docker.DockerClient) -> dict[str, str]:
        return {n.attrs["Description"]["Hostname"]: n.attrs["Status"]["State"] for n in engine.nodes.list()}

    def tasks_on(self, engine: docker.DockerClient, service: str, node: str) -> list[dict]:
        ids = {n.attrs["ID"]: n.attrs["Description"]["Hostname"] for n in engine.nodes.list()}
        tasks = engine.services.get(f"{self.stack}_{service}").tasks({"desired-state": "running"})
        return [t for t in tasks if ids.get(t["NodeID"]) == node]

    def cores_on(self, engine: docker.DockerClient, node: str) -> set[str]:
        return {f"vcore-{t['Slot']}" for t in self.tasks_on(engine, "vcore", node)}

    def busiest(self, engine: docker.DockerClient, entry: str) -> str:
        """The node other than ``entry`` that runs the most cores and envoyd tasks."""
        count = {name: sum(len(self.tasks_on(engine, service, name)) for service in ("vcore", "envoyd"))
                 for name in self.nodes if name != entry}
        return max(sorted(count), key=lambda name: count[name])

    def envoyd_hosts(self, node: str) -> set[str] | None:
        """The core addresses the envoyd task on ``node`` has applied (its /status), None if none runs there."""
        service = f"com.docker.swarm.service.name={self.stack}_envoyd"
        for container in self.engine(node).containers.list(filters={"label": service}):
            code, output = container.exec_run(["/opt/envoyd/bin/python", "-c", ENVOYD_STATUS])
            if code == 0:
                return {core["host"] for core in json.loads(output)["cores"]}
        return None

    def envoy_counters(self, node: str) -> dict[str, int] | None:
        """The entry Envoy's counters of ENVOY_COUNTERS by short name, None when no envoyd answers there."""
        service = f"com.docker.swarm.service.name={self.stack}_envoyd"
        for container in self.engine(node).containers.list(filters={"label": service}):
            code, output = container.exec_run(["/opt/envoyd/bin/python", "-c", ENVOY_COUNTERS])
            if code == 0:
                return {stat["name"].removeprefix("cluster.voltha-grpc."): stat["value"]
                        for stat in json.loads(output)["stats"] if "value" in stat}
        return None

    @contextlib.contextmanager
    def load_through(self, node: str, rate: float, duration: float, name: str, keep_calls: bool = False):
        """nbi_load through ``node``'s NBI on a thread of its own, stopped (its stop file) on leaving the
        block; yields its result, filled in by then."""
        stop_file = self.dir / f"{name}.stop"
        stop_file.unlink(missing_ok=True)
        result: dict = {}
        loader = threading.Thread(target=lambda: result.update(run_load(
            f"{self.nodes[node]['address']}:50555", rate, duration, str(stop_file), keep_calls=keep_calls)),
            daemon=True)
        loader.start()
        try:
            yield result
        finally:
            stop_file.touch()
            loader.join(60)
            stop_file.unlink(missing_ok=True)

    def cluster(self, *args: str) -> None:
        subprocess.run([sys.executable, str(CLUSTER_SCRIPT), *args], check=True, capture_output=True, timeout=300,
                       env=dict(os.environ, CLUSTER_DIR=str(self.dir)))

    def dockerd_pid(self, node: str) -> int:
        return int((self.dir / node / "dockerd.pid").read_text())


def poll_until(condition, timeout: float, interval: float = 0.1):
    """condition()'s first true value, or None after timeout; an exception counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception:
            pass
        time.sleep(interval)
    return None


def swarm_steady(lab: Lab, engine: docker.DockerClient, steady: float, timeout: float) -> tuple[float | None, float]:
    """Wait until the swarm has a leader and every node Ready for ``steady`` seconds in a row: (seconds
    until that run began, or None after timeout; seconds the swarm answered without a leader)."""
    started = time.monotonic()
    run_began = None
    leaderless = 0.0
    while time.monotonic() - started < timeout:
        try:
            ok = all(state == "ready" for state in lab.node_states(engine).values())
        except docker.errors.APIError as error:
            ok = False
            if "does not have a leader" in str(error):
                leaderless += 0.5
        except Exception:
            ok = False
        now = time.monotonic()
        if not ok:
            run_began = None
        elif run_began is None:
            run_began = now
        elif now - run_began >= steady:
            return round(run_began - started, 2), leaderless
        time.sleep(0.5)
    return None, leaderless


def run(lab: Lab, victim: str, entry: str, how: str = "cut", hold: float = 20.0, rate: float = 200.0,
        timeout: float = 180.0) -> dict:
    # A manager that came back may still unseat the swarm's leader (its Raft term went up while it was
    # away): start from a steady swarm.
    swarm_steady(lab, lab.engine(entry), 10.0, timeout)
    if victim == "consul-leader":
        victim = lab.consul_leader_node()
        if victim == entry:
            entry = next(name for name in lab.nodes if name != victim)
    engine = lab.engine(entry)
    if victim == "auto":
        victim = lab.busiest(engine, entry)
    lost_cores = lab.cores_on(engine, victim)
    before = lab.assigned(entry)
    lost_hosts = {before[core] for core in lost_cores if core in before}  # a new task of the slot has another
    result: dict = {"victim": victim, "entry": entry, "how": how, "hold": hold, "rate": rate,
                    "victim_cores": sorted(lost_cores), "victim_envoyd": len(lab.tasks_on(engine, "envoyd", victim)),
                    "victim_consul_leader": lab.consul_leader_node() == victim}
    survivors = [name for name in lab.nodes if name != victim]
    fault_at = None
    with lab.load_through(entry, rate, timeout + hold + 120, "node-loss", keep_calls=True) as load:
        time.sleep(3)  # the load settles first
        fault_at = time.monotonic()
        if how == "cut":
            lab.cluster("cut", victim)
        else:
            os.kill(lab.dockerd_pid(victim), signal.SIGKILL)
        marks: dict[str, float] = {}

        def seen(name: str, value) -> None:
            if value and name not in marks:
                marks[name] = round(time.monotonic() - fault_at, 2)

        def envoyd_applied() -> bool:
            """What the envoyd tasks on the surviving nodes route to no longer names the lost cores."""
            applied = [lab.envoyd_hosts(node) for node in survivors]
            known = [hosts for hosts in applied if hosts is not None]
            return bool(known) and not any(hosts & lost_hosts for hosts in known)

        # Asking envoyd takes a docker exec: on a thread of its own, so the other marks keep their pace.
        envoyd_watch = threading.Thread(target=lambda: seen("envoyd_without_victim", lost_hosts and poll_until(
            envoyd_applied, hold - (time.monotonic() - fault_at), 0.05)), daemon=True)
        envoyd_watch.start()
        while time.monotonic() - fault_at < hold:
            try:
                seen("assignment_without_victim", not set(lab.assigned(entry).values()) & lost_hosts)
            except Exception:
                pass
            try:
                seen("swarm_down", lab.node_states(engine).get(victim) == "down")
            except Exception:
                pass
            time.sleep(0.1)
        envoyd_watch.join(10)
        result.update(marks)
        back_at = time.monotonic()
        if how == "cut":
            lab.cluster("join", victim)
        else:
            lab.cluster("up")  # starts the dockerd that is not running
        result["returned_at"] = round(back_at - fault_at, 2)

        checks = {
            "back_swarm_ready": lambda: lab.node_states(engine).get(victim) == "ready",
            "back_consul_voters": lambda: lab.consul_whole(),
            "back_assignment_cores": lambda: len(lab.assigned(entry)) == 3,
        }
        pending = dict(checks)
        while pending and time.monotonic() - back_at < timeout:
            for name, check in list(pending.items()):
                if poll_until(check, 0.01):
                    result[name] = round(time.monotonic() - back_at, 2)
                    del pending[name]
            time.sleep(0.2)
        result.update({name: None for name in pending})
        steady_after, leaderless = swarm_steady(lab, engine, 15.0, timeout)
        result["back_swarm_steady"] = None if steady_after is None else round(time.monotonic() - back_at - 15.0, 2)
        result["swarm_leaderless"] = leaderless
        time.sleep(3)
    with contextlib.suppress(Exception):  # what the entry's Envoy saw of the cores, for a reader of a failure
        result["entry_envoy"] = lab.envoy_counters(entry)
    calls = load.get("calls", [])
    failed = [c for c in calls if c[3]]
    origin = fault_at if fault_at is not None else 0.0
    result.update({
        "sent": load.get("sent"), "failed": len(failed), "errors": load.get("errors", {}),
        "failed_creates": sum(1 for c in failed if c[4] == "CreateDevice"),
        "failed_reads": sum(1 for c in failed if c[4] == "GetVoltha"),
        "failed_reads_after_1s": sum(1 for c in failed if c[4] == "GetVoltha" and c[0] - origin >= 1.0),
        "last_failure_end": round(max(c[0] + c[1] for c in failed) - origin, 2) if failed else None,
        "failures": [{"start": round(c[0] - origin, 3), "seconds": round(c[1], 3), "method": c[4], "status": c[5]}
                     for c in failed[:50]],
        # Each status: how many, and from the first call's start to the last one's end (since the fault).
        "failure_spans": {status: {"count": len(spans), "from": round(min(s for s, _ in spans), 2),
                                   "until": round(max(e for _, e in spans), 2)}
                          for status, spans in _spans(failed, origin).items()},
    })
    return result


def _spans(failed: list[tuple], origin: float) -> dict[str, list[tuple[float, float]]]:
    spans: dict[str, list[tuple[float, float]]] = {}
    for call in failed:
        spans.setdefault(call[5], []).append((call[0] - origin, call[0] + call[1] - origin))
    return spans


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--victim", default="auto",
                        help="the node lost: NODE, consul-leader (the node of Consul's Raft leader; the entry is "
                             "another) or auto (default: the one but the entry that runs the most cores and envoyd)")
    parser.add_argument("--entry", default="node1", help="the node whose NBI the load goes through")
    parser.add_argument("--how", choices=["cut", "kill"], default="cut")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds the node stays lost")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds each wait after the return may take")
    parser.add_argument("--output", help="also write the JSON result here")
    args = parser.parse_args(argv)
    lab = Lab(Path(os.environ.get("CLUSTER_DIR", STATE / "cluster")).resolve())
    result = run(lab, args.victim, args.entry, args.how, args.hold, args.rate, args.timeout)
    text = json.dumps(result)
    if args.output:
        Path(args.output).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
