"""Consul's faults, timed on the real parts: envoyd (with its Envoy) and simulated cores under load
while Consul restarts, loses or keeps its store, hangs, or loses its Raft leader; then a write.

One round: the fault; Consul answering again, which is the moment a write of a new assignment is
accepted (tried every 10 ms from the moment the fault ends); then the time until a call through
Envoy is answered by the core the new assignment names. Calls run throughout, from several
clients, and every failed one is counted. The integration tests assert on the rounds; make bench
reports them.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import grpc
from google.protobuf import empty_pb2
from voltha_protos import device_pb2, voltha_pb2_grpc


def assignment_of(*servers) -> str:
    return json.dumps({f"prefix-{s.core_id}": {"id": s.core_id, "host": "127.0.0.1", "port": s.port}
                       for s in servers})


class CallLoad:
    """``clients`` threads, each with its own channel, calling CreateDevice and GetVoltha in turn
    through ``address`` at ``rate`` calls per second each. Knows when a core first answered after
    ``expect(core)`` and every call that failed."""

    def __init__(self, address: str, clients: int = 8, rate: float = 50.0, timeout: float = 5.0):
        self.address, self.clients, self.rate, self.timeout = address, clients, rate, timeout
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: list[tuple[float, str]] = []
        self._wanted: str | None = None
        self._seen = threading.Event()
        self._seen_at: float | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _client(self, number: int) -> None:
        channel = grpc.insecure_channel(self.address)
        stub = voltha_pb2_grpc.VolthaServiceStub(channel)
        calls = 0
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    if (calls + number) % 2 == 0:
                        core = stub.CreateDevice(device_pb2.Device(type="load"), timeout=self.timeout).id
                        core = core.split(":")[0]
                    else:
                        core = stub.GetVoltha(empty_pb2.Empty(), timeout=self.timeout).version
                    now = time.monotonic()
                    with self.lock:
                        self.ok += 1
                        if core == self._wanted and self._seen_at is None:
                            self._seen_at = now
                            self._seen.set()
                except grpc.RpcError as err:
                    with self.lock:
                        self.failures.append((time.monotonic(), f"{err.code().name}: {err.details()}"[:200]))
                calls += 1
                self._stop.wait(max(0.0, started + 1.0 / self.rate - time.monotonic()))
        finally:
            channel.close()

    def start(self) -> CallLoad:
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def expect(self, core_id: str) -> None:
        with self.lock:
            self._wanted, self._seen_at = core_id, None
            self._seen.clear()

    def first_answer(self, timeout: float) -> float | None:
        """When the expected core first answered (time.monotonic()), or None within timeout."""
        self._seen.wait(timeout)
        with self.lock:
            return self._seen_at

    def failed(self) -> int:
        with self.lock:
            return len(self.failures)


def put_until_accepted(urls: list[str], key: str, value: str, timeout: float = 120.0) -> float:
    """PUT the key to the first agent that takes it, every 10 ms; the time it was accepted."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for url in urls:
            request = urllib.request.Request(f"{url}/v1/kv/{key}", data=value.encode(), method="PUT")
            try:
                with urllib.request.urlopen(request, timeout=1) as resp:
                    if resp.read().strip() == b"true":
                        return time.monotonic()
            except (OSError, urllib.error.HTTPError) as err:
                last = err
        time.sleep(0.01)
    raise TimeoutError(f"no Consul agent took a write within {timeout}s (last: {last})")


@dataclass
class Round:
    resync: float | None  # seconds from the accepted write to the first call the new core answered
    failed: int  # calls failed during the round (fault included)


@dataclass
class FaultResult:
    fault: str
    rounds: list[Round] = field(default_factory=list)
    cores_resync: list[float] = field(default_factory=list)  # seconds until the cores' own assignment was whole

    def times(self) -> list[float]:
        return [r.resync for r in self.rounds if r.resync is not None]

    @property
    def median(self) -> float:
        return statistics.median(self.times()) if self.times() else float("nan")

    @property
    def worst(self) -> float:
        return max(self.times()) if self.times() else float("nan")

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.rounds)

    @property
    def lost(self) -> int:
        """Rounds in which the new assignment never reached Envoy."""
        return sum(1 for r in self.rounds if r.resync is None)


def run_rounds(name: str, rounds: int, fault, load: CallLoad, write_urls, key: str, servers, timeout: float = 90.0,
               cores_check=None) -> FaultResult:
    """``fault()`` does the fault and returns when it is over (the agent started again, thawed, or a
    new leader may be elected); ``write_urls()`` the agents to write to; each round names the next
    of ``servers`` in the assignment. ``cores_check(since)``, when given, returns the seconds until the
    simulated cores' own assignment and leader were whole again."""
    result = FaultResult(name)
    for number in range(rounds):
        target = servers[(number + 1) % len(servers)]
        before = load.failed()
        fault()
        load.expect(target.core_id)
        accepted = put_until_accepted(write_urls(), key, assignment_of(target))
        seen = load.first_answer(timeout)
        if cores_check is not None:
            result.cores_resync.append(cores_check(accepted))
        result.rounds.append(Round(None if seen is None else max(0.0, seen - accepted), load.failed() - before))
    return result
