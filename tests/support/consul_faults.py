"""Consul's faults, timed on the real parts: envoyd (with its Envoy) and simulated cores under load
while Consul restarts, loses or keeps its store, hangs, or loses its Raft leader; then a write.

One round: the fault; Consul answering again, which is the moment a write of a new assignment is
accepted (tried every 10 ms from the moment the fault ends); then the time until a call through
Envoy is answered by the core the new assignment names. Calls run throughout, from several
clients, and every failed one is counted. The integration tests assert on the rounds; make bench
reports them.
"""

from __future__ import annotations

import statistics
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import empty_pb2
from voltha_protos import device_pb2, voltha_pb2_grpc

from voltha_core_sim.nbi_client import core_of

from .assignments import assignment_of
from .consul_agent import ConsulAgent
from .envoyd_runner import Envoyd
from .netns import BridgedHosts
from .processes import wait_for
from .sim_cores import Core, assigned, leader_instance

KEY = "test/faults/assignment"
WAIT = "60s"  # envoyd's default blocking wait: a watch stuck on an old index would take a minute


class CallLoad:
    """``clients`` threads, each with its own channel, calling CreateDevice and GetVoltha in turn
    through ``address`` at ``rate`` calls per second each. Knows when a core first answered after
    ``expect(core)`` and every call that failed."""

    def __init__(self, address: str, clients: int = 8, rate: float = 50.0, timeout: float = 5.0,
                 keep_calls: bool = False):
        self.address, self.clients, self.rate, self.timeout = address, clients, rate, timeout
        self.keep_calls = keep_calls
        self.calls: list[tuple] = []  # with keep_calls: (start, end, "read" or "create", core or None, error)
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
                create = (calls + number) % 2 == 0
                try:
                    if create:
                        _, call = stub.CreateDevice.with_call(device_pb2.Device(type="simulated_olt"),
                                                              timeout=self.timeout)
                    else:
                        _, call = stub.GetVoltha.with_call(empty_pb2.Empty(), timeout=self.timeout)
                    core = core_of(call)
                    now = time.monotonic()
                    with self.lock:
                        self.ok += 1
                        if core == self._wanted and self._seen_at is None:
                            self._seen_at = now
                            self._seen.set()
                        if self.keep_calls:
                            self.calls.append((started, now, "create" if create else "read", core, None))
                except grpc.RpcError as err:
                    now = time.monotonic()
                    text = f"{err.code().name}: {err.details()}"[:200]
                    with self.lock:
                        self.failures.append((now, text))
                        if self.keep_calls:
                            self.calls.append((started, now, "create" if create else "read", None, text))
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

    def failures_since(self, count: int) -> list[tuple[float, str]]:
        """The failures after the first ``count``: (time.monotonic(), "CODE: details")."""
        with self.lock:
            return self.failures[count:]


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
    errors: tuple = ()  # (seconds from the round's reference moment, "CODE: details") of each failed call


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

    def errors(self) -> list[str]:
        """Each failed call as "round N +S s CODE: details", for a failure message."""
        return [f"round {n} {t:+.3f}s {text}" for n, r in enumerate(self.rounds) for t, text in r.errors]

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
        errors = tuple((t - accepted, text) for t, text in load.failures_since(before))
        result.rounds.append(Round(None if seen is None else max(0.0, seen - accepted), len(errors), errors))
    return result


class Rig:
    """Everything one fault scenario runs, stopped in reverse order by close() whatever happened:
    Consul agents, envoyd, in-process cores (the targets of the written assignments), simulated core
    processes on keys of their own, and the load."""

    def __init__(self, workdir: Path, reload: str = "dynamic"):
        self.workdir, self.reload = workdir, reload  # reload: how envoyd's changes reach Envoy
        workdir.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        self.keys = {"service": f"vcore-{tag}", "assignment": f"test/{tag}/assignment", "lock": f"test/{tag}/leader"}
        self._things: list = []

    def _keep(self, thing):
        self._things.append(thing)
        return thing

    def consul(self, name: str, wait: bool = True, **kwargs) -> ConsulAgent:
        agent = self._keep(ConsulAgent(self.workdir / name, **kwargs))
        return agent.start() if wait else agent.launch()

    def cluster(self, servers: int = 3) -> tuple[list[ConsulAgent], ConsulAgent]:
        """Three servers (Raft) and one client agent joined to them."""
        agents = self._servers(servers, [None] * servers)
        return agents, self.consul("client", mode="client", join=tuple(agent.serf_address for agent in agents))

    def hosted_cluster(self, servers: int = 3) -> list[ConsulAgent]:
        """Three servers, each on a host of its own (netns.BridgedHosts), reached from here."""
        return self._servers(servers, self._keep(BridgedHosts(servers)).up().hosts)

    def _servers(self, count: int, hosts: list) -> list[ConsulAgent]:
        agents = [self._keep(ConsulAgent(self.workdir / f"server-{n}", mode="server", bootstrap_expect=count,
                                         host=host)) for n, host in enumerate(hosts)]
        joined = [agent.serf_address for agent in agents]
        for agent in agents:
            agent.config["retry_join"] = joined
            agent.launch()
        wait_for(lambda: agreed_leader(agents) is not None, 60, f"{count} servers agreeing on a leader")
        return agents

    def servers(self, count: int = 2) -> list:
        from voltha_core_sim.server import CoreServer

        return [self._keep(CoreServer(f"core-{n}")).start() for n in range(count)]

    def envoyd(self, agent: ConsulAgent, *extra: str, key: str = KEY) -> Envoyd:
        daemon = self._keep(Envoyd(self.workdir / f"envoyd-{len(self._things)}", agent.address, self.reload,
                                   extra=("--assignment-key", key, "--consul-wait", WAIT, *extra)))
        return daemon.start()

    def cores(self, agent: ConsulAgent, *specs) -> list[Core]:
        """Simulated core processes; specs are core ids, or (core id, port) to reuse a port."""
        cores = []
        for spec in specs:
            core_id, port = (spec, None) if isinstance(spec, str) else spec
            workdir = self.workdir / f"core-{len(self._things)}"
            workdir.mkdir()
            cores.append(self._keep(Core(workdir, core_id, agent.address, self.keys, port=port)).start())
        return cores

    def load(self, envoyd: Envoyd) -> CallLoad:
        return self._keep(CallLoad(envoyd.nbi, clients=8, rate=50.0)).start()

    def close(self) -> None:
        for thing in reversed(self._things):
            try:
                thing.stop()
            except Exception:  # stop the rest whatever one of them does
                pass
        self._things.clear()

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def cores_whole(agent: ConsulAgent, keys: dict, cores: list[Core], timeout: float = 15.0):
    """A check for run_rounds: seconds from ``since`` until the cores' assignment names exactly the
    living cores and the lock is held by a session of one of them (found by its instance id)."""
    want = {c.core_id: ("127.0.0.1", c.port) for c in cores}

    def whole() -> bool:
        try:
            client = agent.client()
            instance = leader_instance(client, keys["lock"])
            return assigned(client.kv, keys["assignment"]) == want and instance is not None \
                and any(instance.startswith(f"{c.core_id}@127.0.0.1:{c.port}~") for c in cores)
        except Exception:  # Consul still coming back
            return False

    def seen() -> str:
        try:
            client = agent.client()
            health = [(e["Service"]["ID"], [(c["CheckID"], c["Status"]) for c in e["Checks"]])
                      for e in client.health.service(keys["service"])[1]]
            checks = {k: v["Status"] for k, v in client.agent.checks().items()}
            return f"assignment {assigned(client.kv, keys['assignment'])}, lock held by " \
                   f"{leader_instance(client, keys['lock'])}; catalog health {health}; agent checks {checks}"
        except Exception as err:  # what Consul said instead
            return f"{type(err).__name__}: {err}"

    def check(since: float) -> float:
        try:
            wait_for(whole, timeout, f"the cores' assignment == {sorted(want)} with a living leader", interval=0.02)
        except TimeoutError as err:
            logs = "\n".join(f"--- {c.core_id}:\n" + "\n".join(c.log().splitlines()[-15:]) for c in cores)
            raise TimeoutError(f"{err}; Consul shows {seen()}\n{logs}") from None
        return time.monotonic() - since
    return check


def settled(rig: Rig, agent: ConsulAgent, *envoyd_extra: str, cores=("core-a", "core-b")):
    """In-process cores (the written assignments' targets), envoyd on KEY, simulated cores on their own
    keys, all whole before the load starts (the fault hits a settled cluster): (servers, sim, load)."""
    servers = rig.servers()
    agent.client().kv.put(KEY, assignment_of(servers[0]))
    envoyd = rig.envoyd(agent, *envoyd_extra)
    sim = rig.cores(agent, *cores)
    cores_whole(agent, rig.keys, sim)(time.monotonic())
    return servers, sim, rig.load(envoyd)


def restarted(rig: Rig, mode: str, rounds: int) -> FaultResult:
    """A dev agent restarts empty (its index starts again near 1); a server keeps its data dir."""
    agent = rig.consul("consul", mode=mode)
    servers, sim, load = settled(rig, agent, cores=("core-a", "core-b", "core-c"))

    def restart():
        agent.stop()
        agent.launch()

    what = "dev agent restarted (store lost)" if mode == "dev" else "server restarted (store kept)"
    return run_rounds(what, rounds, restart, load, lambda: [agent.url], KEY, servers,
                      cores_check=cores_whole(agent, rig.keys, sim))


def hung(rig: Rig, rounds: int, wait: str = "2s", seconds: float = 3.5) -> FaultResult:
    """SIGSTOP for longer than the blocking wait (sockets open, no answer), then SIGCONT."""
    agent = rig.consul("consul", mode="server")
    servers, sim, load = settled(rig, agent, "--consul-wait", wait)

    def hang():
        agent.freeze()
        time.sleep(seconds)
        agent.thaw()

    return run_rounds(f"agent hung {seconds:g} s (SIGSTOP; wait {wait})", rounds, hang, load, lambda: [agent.url],
                      KEY, servers, cores_check=cores_whole(agent, rig.keys, sim))


def agreed_leader(agents: list[ConsulAgent]) -> ConsulAgent | None:
    """The agent every one of ``agents`` names as the Raft leader, or None (no leader, or no agreement)."""
    said = {agent.leader() for agent in agents}
    return next((agent for agent in agents if {agent.raft_address} == said), None)


def leader_lost(rig: Rig, consistency: str, rounds: int) -> FaultResult:
    """Three servers and the client agent envoyd and the cores talk to; each round the Raft leader
    is killed (SIGKILL), and it comes back before the next round."""
    agents, client_agent = rig.cluster()
    servers, sim, load = settled(rig, client_agent, "--consul-consistency", consistency)
    killed: list[ConsulAgent] = []

    def kill_leader():
        if killed:
            killed.pop().launch()
            wait_for(lambda: all(agent.has_leader() for agent in agents), 60, "the killed server back")
        address = agents[0].leader()
        victim = next(agent for agent in agents if agent.raft_address == address)
        victim.kill()
        killed.append(victim)

    return run_rounds(f"3-server cluster lost its leader ({consistency} reads)", rounds, kill_leader, load,
                      lambda: [client_agent.url], KEY, servers, cores_check=cores_whole(client_agent, rig.keys, sim))


def leader_cut(rig: Rig) -> FaultResult:
    """Three servers on hosts of their own; envoyd asks a follower, which forwards its blocking read
    to the leader. The leader's host is cut off the network (no reset: it just goes silent), another
    server is elected, and the new assignment is written to it while envoyd's read is still parked on
    the lost leader."""
    agents = rig.hosted_cluster()
    wait_for(lambda: agreed_leader(agents) is not None, 30, "three servers agreeing on a leader")
    victim = agreed_leader(agents)
    watched = next(agent for agent in agents if agent is not victim)
    servers = rig.servers()
    watched.client().kv.put(KEY, assignment_of(servers[0]))
    load = rig.load(rig.envoyd(watched))
    load.expect(servers[0].core_id)
    if load.first_answer(30) is None:
        raise TimeoutError("envoyd's Envoy never served the first assignment")
    if agreed_leader(agents) is not victim:  # an election meanwhile: the read envoyd's agent forwards goes elsewhere
        raise RuntimeError(f"Consul's leader moved from {victim.raft_address} before the cut")
    return run_rounds("the leader's host cut off (3 servers on hosts of their own)", 1, victim.host.cut, load,
                      lambda: [agent.url for agent in agents if agent is not victim], KEY, servers)


def registered(agent: ConsulAgent, keys: dict) -> set[str]:
    """CORE@PORT of every instance in Consul's catalog."""
    return {f"{s['ServiceMeta']['core_id']}@{s['ServicePort']}"
            for s in agent.client().catalog.service(keys["service"])[1]}


def cores_replaced(rig: Rig, rounds: int) -> FaultResult:
    """Consul keeps its data (the old registrations and sessions with it) while every core is
    replaced, two of them at old cores' addresses. envoyd follows the cores' own key here. Each
    round: seconds from Consul answering until the cores are whole (cores_resync) and until envoyd
    routes to exactly the new cores (resync), and the calls that failed once the new cores served
    (calls fail while no core at all runs: those are the cores' deaths, not Consul's)."""
    agent = rig.consul("consul", mode="server")
    old = rig.cores(agent, "core-a", "core-b", "core-c")
    cores_whole(agent, rig.keys, old)(time.monotonic())
    envoyd = rig.envoyd(agent, key=rig.keys["assignment"])
    load = rig.load(envoyd)
    result = FaultResult("every core replaced while Consul restarted with its data")
    for _round in range(rounds):
        agent.stop()
        for core in old:
            core.process.signal(9)  # SIGKILL: no deregistration, no session destroyed
            core.stop()
        # core-a takes core-b's address, core-c core-a's; core-b gets a new one.
        new = rig.cores(agent, ("core-a", old[1].port), "core-b", ("core-c", old[0].port))
        before = load.failed()
        agent.launch()
        wait_for(agent.has_leader, 30, "consul back with its data")
        answered = time.monotonic()
        result.cores_resync.append(cores_whole(agent, rig.keys, new, timeout=10.0)(answered))
        want = {(c.core_id, c.port) for c in new}
        wait_for(lambda want=want: {(c["id"], c["port"]) for c in envoyd.status()["cores"]} == want, 10,
                 "envoyd routing to the new cores")
        routed = time.monotonic() - answered
        # The old registrations came back with Consul's data; the leader prunes them within seconds.
        wait_for(lambda want={f"{c.core_id}@{c.port}" for c in new}: registered(agent, rig.keys) == want, 15,
                 "only the new cores registered")
        errors = tuple((t - answered, text) for t, text in load.failures_since(before))
        result.rounds.append(Round(routed, len(errors), errors))
        old = new
    return result
