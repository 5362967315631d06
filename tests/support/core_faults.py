"""Dead, hung and unreachable cores, timed on the real parts: three simulated cores (processes, one of
them in a network namespace of its own), envoyd with its Envoy routing to them, eight clients
calling GetVoltha (a read) and CreateDevice in turn through Envoy; then one core is SIGKILLed,
frozen (SIGSTOP) or cut off the network (its link down), and later comes back at the same address.

The assignment stays as it is: what is measured is Envoy noticing by itself (keepalive, active
health checks, outlier detection) and the retries of reads. The integration tests assert on it;
make bench reports it, beside the same faults with the template's watch options off.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .consul_faults import CallLoad, Rig
from .netns import LinkedNamespace
from .paths import source_env
from .processes import ManagedProcess, free_port, wait_for
from .stats import percentile

KEY = "test/core-faults/assignment"
FAULTS = ("killed", "frozen", "cut off")
# The template's means of noticing a core, all turned off: the template before them.
WATCH_OFF = ("keepalive_interval=", "health_check_interval=", "outlier_consecutive_failures=0", "read_methods=",
             "retry_budget_percent=0", "lb_update_merge_window=")


class CoreProcess:
    """python -m voltha_core_sim without Consul, optionally inside a LinkedNamespace."""

    def __init__(self, workdir: Path, core_id: str, namespace: LinkedNamespace | None = None):
        self.workdir, self.core_id, self.namespace = workdir, core_id, namespace
        self.host = namespace.address if namespace else "127.0.0.1"
        self.port = free_port() if namespace is None else 50556
        self.process: ManagedProcess | None = None

    def start(self) -> CoreProcess:
        import grpc

        argv = [sys.executable, "-m", "voltha_core_sim", "--core-id", self.core_id, "--host", self.host,
                "--port", str(self.port)]
        if self.namespace:
            argv = self.namespace.wrap(argv)
        self.process = ManagedProcess(self.core_id, argv, self.workdir / f"{self.core_id}.log", env=source_env())

        def answers() -> bool:
            from grpc_health.v1 import health_pb2, health_pb2_grpc

            channel = grpc.insecure_channel(f"{self.host}:{self.port}")
            try:
                stub = health_pb2_grpc.HealthStub(channel)
                return stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5).status == 1
            except grpc.RpcError:
                return False
            finally:
                channel.close()

        self.process.wait_ready(answers, 30)
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()
            self.process = None


@dataclass
class CoreFault:
    fault: str
    watch: bool  # the template's watch options on
    calls: int
    failed_reads: int
    failed_creates: int
    creates_in_flight: int  # creates that had started before the victim was gone and had not ended at the fault
    victim_in_flight: int  # Envoy's rq_active for the victim, highest seen between the fault and detection
    detection: float | None  # seconds until Envoy flagged the victim (None: it never did)
    read_p99: float  # seconds, reads started in the fault window
    back: float | None  # seconds from the fault undone until the victim answered a call again
    errors: dict
    metrics_flagged: float  # envoyd_envoy_hosts samples other than healthy, near the end of the fault


class Sampler:
    """Polls envoyd's /status for what Envoy thinks of the victim, every few milliseconds."""

    def __init__(self, envoyd, victim: str):
        self.envoyd, self.victim = envoyd, victim
        self.samples: list[tuple[float, set[str], int]] = []  # (time, states, rq_active summed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                hosts = [h for h in self.envoyd.status()["envoy_hosts"] if h["hostname"] == self.victim]
                self.samples.append((time.monotonic(), {h["state"] for h in hosts},
                                     sum(h["rq_active"] for h in hosts)))
            except (OSError, ValueError, KeyError):
                pass
            self._stop.wait(0.005)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def flagged_at(self, since: float) -> float | None:
        for at, states, _active in self.samples:
            if at >= since and states and states != {"healthy"}:
                return at
        return None

    def most_in_flight(self, since: float, until: float | None) -> int:
        return max([active for at, _states, active in self.samples
                    if at >= since - 0.05 and (until is None or at <= until)] or [0])


def run_fault(rig: Rig, fault: str, watch: bool = True, hold: float = 3.0) -> CoreFault:
    """One fault on core-2 (the one in its own namespace), held ``hold`` seconds, then undone."""
    namespace = rig._keep(LinkedNamespace()).up()
    cores = [rig._keep(CoreProcess(rig.workdir, f"core-{n}", namespace if n == 2 else None)).start()
             for n in range(3)]
    victim = cores[2]
    agent = rig.consul("consul")
    agent.client().kv.put(KEY, json.dumps({c.core_id: {"id": c.core_id, "host": c.host, "port": c.port}
                                           for c in cores}))
    extra = [] if watch else [arg for var in WATCH_OFF for arg in ("--var", var)]
    envoyd = rig.envoyd(agent, *extra, key=KEY)
    load = rig._keep(CallLoad(envoyd.nbi, clients=8, rate=50.0, keep_calls=True)).start()
    load.expect(victim.core_id)
    if load.first_answer(10) is None:
        raise AssertionError("the victim never answered through Envoy before the fault")
    sampler = rig._keep(Sampler(envoyd, victim.core_id)).start()
    time.sleep(1.0)
    started = gone = time.monotonic()
    if fault == "killed":
        victim.process.signal(signal.SIGKILL)
        # The kernel ends the process a moment after the signal (later on a loaded machine): a create
        # Envoy sent it in between is in flight on a core that is gone, which no retry may repeat.
        wait_for(lambda: not victim.process.alive(), 5, "the killed core to be gone", interval=0.001)
        gone = time.monotonic()
    elif fault == "frozen":
        victim.process.signal(signal.SIGSTOP)
    else:
        namespace.cut()
    time.sleep(hold)
    detected = sampler.flagged_at(started)
    flagged = sum(value for name, value in envoyd.metrics().items()
                  if name.startswith("envoyd_envoy_hosts{") and 'state="healthy"' not in name)
    if fault == "killed":
        victim.stop()
        victim.start()  # the same address
    elif fault == "frozen":
        victim.process.signal(signal.SIGCONT)
    else:
        namespace.join()
    undone = time.monotonic()  # the core serves again (a killed one started anew at its address)
    load.expect(victim.core_id)
    seen = load.first_answer(15)
    time.sleep(0.5)
    load.stop()
    sampler.stop()
    calls = list(load.calls)
    reads = [c for c in calls if c[2] == "read"]
    errors: dict[str, int] = {}
    for call in calls:
        if call[4]:
            errors[call[4]] = errors.get(call[4], 0) + 1
    return CoreFault(
        fault=fault, watch=watch, calls=len(calls),
        failed_reads=sum(1 for c in reads if c[4]),
        failed_creates=sum(1 for c in calls if c[2] == "create" and c[4]),
        creates_in_flight=sum(1 for c in calls if c[2] == "create" and c[0] <= gone and started < c[1]),
        victim_in_flight=sampler.most_in_flight(started, detected),
        detection=None if detected is None else detected - started,
        read_p99=percentile([c[1] - c[0] for c in reads if started <= c[0] <= started + hold], 99),
        back=None if seen is None else seen - undone,
        errors=errors, metrics_flagged=flagged)

