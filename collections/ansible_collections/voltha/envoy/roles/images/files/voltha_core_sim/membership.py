"""A core's life in Consul, as VOLTHA's cores lived it: registered, electing, and (as leader) assigning.

Six daemon threads, each with its own connection to Consul, none able to stop the gRPC server:

- registration: keeps the service registered (a restarted dev agent forgets it) every ``resync``;
- election: ``LeaderElection.poll`` under a ``KeyWatcher`` (blocking queries on the lock key);
- health: a ``KeyWatcher`` on ``/v1/health/service/<name>``: the cores whose checks pass may serve,
  and the leader prunes the instances whose checks have failed for ``prune_after`` seconds (a core
  that died without deregistering, a registration Consul kept from before a restart), and every core
  removes the catalog entries of its own node that its agent no longer holds;
- orphans: every ``orphans_every`` seconds, each other node that holds a registration in the catalog
  is asked (its agent, at the node's address and our agent's port) which registrations it still
  has; the ones it no longer has are removed from the catalog;
- assignment: a ``KeyWatcher`` on the assignment key, so the leader puts back what others changed,
  and every core knows which core serves each store (``on_assignment``);
- writer: when anything above changes (and every ``reconcile_every`` seconds), the leader writes
  the assignment with check-and-set, guarded by its lock: each healthy core with its home store, and
  the stores that hold devices but whose core is gone given to the healthy cores.

The watchers read through ``BlockingReader``: after an error, a new connection or an index that
went back (Consul restarted, its store lost or kept) they read the current state at once instead of
blocking on an index the new store has not reached. Errors back off exponentially (up to
``backoff_max``) and are logged once per change of state.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from dataclasses import dataclass

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import (
    DEFAULT_KEY,
    AssignmentError,
    parse_assignment,
)
from ansible_collections.voltha.envoy.plugins.module_utils._assignment.store import AssignmentStore, pretty
from ansible_collections.voltha.envoy.plugins.module_utils._consul.blocking import BlockingReader, LeaderChanged
from ansible_collections.voltha.envoy.plugins.module_utils._consul.connection import ConsulSettings
from ansible_collections.voltha.envoy.plugins.module_utils._consul.watch import KeyWatcher, kv_fetcher

from .assignment_writer import AssignmentWriter, assignment_from_health, frozen
from .core_store import data_root, list_stores
from .election import DEFAULT_LOCK_KEY, FOLLOWER, LeaderElection, NotLeader
from .registration import DEFAULT_SERVICE_NAME, ServiceRegistration, instance_id, new_run, service_definition
from .state_log import StateLog


@dataclass
class MembershipConfig:
    core_id: str
    host: str  # the address other parties (Consul's check, Envoy) reach the core at
    port: int
    prefix: str | None = None  # the core's key in the assignment; the core id when None
    service_name: str = DEFAULT_SERVICE_NAME
    assignment_key: str = DEFAULT_KEY
    lock_key: str = DEFAULT_LOCK_KEY
    check_interval: str = "1s"
    deregister_after: str = "1m"
    wait: str = "10s"  # blocking query wait
    resync: float = 0.5  # seconds between checks that the service is still registered
    reconcile_every: float = 10.0  # the leader compares the key with the healthy cores at least this often
    prune_after: float = 5.0  # the leader deregisters instances whose checks have failed this long
    orphans_every: float = 5.0  # seconds between asks of the other nodes' agents what they still hold
    backoff_max: float = 0.5
    lock_delay: int = 0
    run: str = ""  # this run's token in the instance id; new for every process when empty
    store_root: str | None = None  # where the core stores live; the assignment key's directory when None


def is_passing(entry: dict) -> bool:
    """Whether every check of a /v1/health/service entry passes (what Consul's ?passing keeps)."""
    return all(check.get("Status") == "passing" for check in entry.get("Checks") or ())


def catalog_deregister(client, node: str, service_id: str) -> None:
    """PUT /v1/catalog/deregister with the client's ACL token in the header (py-consul's
    catalog.deregister also puts it in the body as WriteRequest, which Consul 1.8 refuses)."""
    from consul.callback import CB

    client.http.put(CB.boolean(), "/v1/catalog/deregister", headers=client.prepare_headers(),
                    data=json.dumps({"Node": node, "ServiceID": service_id}))


def _short(error: Exception, limit: int = 300) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[:limit] + "..."


class CoreMembership:
    def __init__(self, config: MembershipConfig, settings: ConsulSettings, logger: logging.Logger | None = None,
                 on_assignment=None):
        self.config = config
        self.on_assignment = on_assignment  # called with {prefix: (core id, host, port)} on every change
        self.store_root = data_root(config.assignment_key) if config.store_root is None else config.store_root
        self.settings = settings
        self.log = logger or logging.getLogger("voltha_core_sim.consul")
        self.states = StateLog(self.log)
        self.stop_event = threading.Event()
        self.dirty = threading.Event()
        self.healthy: dict | None = None  # stored form of the passing cores; None before the first answer
        self.failing: dict[str, tuple[float, dict]] = {}  # service id -> (first seen failing, health entry)
        self.instance = instance_id(config.core_id, config.host, config.port, config.run or new_run())
        definition = service_definition(config.core_id, config.host, config.port, config.prefix or config.core_id,
                                        config.service_name, config.check_interval,
                                        deregister_after=config.deregister_after, instance=self.instance,
                                        started=time.time())
        self.registration = ServiceRegistration(settings.client(), definition)
        self.election = LeaderElection(settings.client(), config.core_id, config.lock_key,
                                       checks=("serfHealth", self.registration.check_id),
                                       lock_delay=config.lock_delay, reader=BlockingReader(settings))
        writer_client = settings.client()
        self.store = AssignmentStore(self.election.guarded_kv(writer_client), config.assignment_key)
        self.writer = AssignmentWriter(self.store, lambda: self.election.is_leader and not self.stop_event.is_set())
        self._health_reader = BlockingReader(settings)
        self._assignment_reader = BlockingReader(settings)
        self._prune_client = settings.client()
        self._stores_client = settings.client()
        self._node_name: str | None = None
        self._entries: list = []  # the last health answer, for the orphans loop
        self.threads: list[threading.Thread] = []

    # The loops.

    def _watcher(self, topic: str, fetch, on_change) -> KeyWatcher:
        topic = f"consul requests ({topic})"

        def on_error(error, delay):
            self.states.report(topic, "error:" + type(error).__name__,
                               f"{_short(error)}; retrying with backoff (next in {delay:.2f}s)", logging.WARNING)

        def on_recover(failures):
            self.states.report(topic, "ok", f"Consul answers again after {failures} failed request(s)")
            self.dirty.set()

        def on_leader_change(error):
            self.log.info("%s: %s", topic, error)

        return KeyWatcher(fetch, on_change, on_error, on_recover, wait=self.config.wait,
                          backoff_max=self.config.backoff_max, stop_event=self.stop_event,
                          on_leader_change=on_leader_change)

    def _election_fetch(self, index, wait):
        reading = self.election.poll(index, wait)
        role = reading.value
        if self.states.report("election", role, f"{role} (lock {self.config.lock_key}, "
                              f"session {self.election.session_id})"):
            self.dirty.set()
        return reading

    def _health_fetch(self, index, wait):
        try:
            reading = self._health_reader.get(f"/v1/health/service/{self.config.service_name}", (), index, wait)
        except LeaderChanged:
            raise  # the same committed state, from the new leader: what passed still passes
        except Exception:
            # What passed before Consul failed (restarted, lost its store) may not pass now: the leader
            # writes nothing until a fresh answer says which cores pass.
            self.healthy = None
            raise
        entries = reading.value or []
        self._entries = entries
        entries = self._without_orphans(entries)
        passing = [entry for entry in entries if is_passing(entry)]
        self._note_failing([entry for entry in entries if not is_passing(entry)])
        cores, skipped = assignment_from_health(passing)
        if skipped:
            self.states.report("health", "skipped:" + "|".join(skipped),
                               "instances left out of the assignment: " + "; ".join(skipped), logging.WARNING)
        self.healthy = cores
        return reading._replace(value=frozen(cores))

    def _without_orphans(self, entries: list) -> list:
        """The entries, less those our own agent's node holds in the catalog but the agent itself no
        longer has, which this core deregisters from the catalog.

        Such an entry is left over from the agent's last life (it went down before syncing a
        deregistration, then came back with its data). Its check keeps the status it last had, often
        passing, and runs nowhere, so nobody prunes it; a session tied to it (a leader lock) never
        ends. Consul's own anti-entropy would remove it, but Consul 1.8 deregisters with the default
        token, which ACLs refuse."""
        try:
            node = self._agent_node()
            ours = [entry for entry in entries if (entry.get("Node") or {}).get("Node") == node
                    and (entry.get("Service") or {}).get("ID") != self.instance]
            if not ours:
                return entries
            held = set(self._prune_client.agent.services())
            orphans = [entry for entry in ours if entry["Service"]["ID"] not in held]
            self._remove_unheld(node, [entry["Service"]["ID"] for entry in orphans], held)
        except Exception as error:  # Consul answers again later: the next health answer tries again
            self.states.report("orphans", "error:" + type(error).__name__,
                               f"could not look for leftover registrations: {_short(error)}", logging.WARNING)
            return entries
        self.states.report("orphans", "ok", "leftover registrations: none")
        gone = {id(entry) for entry in orphans}
        return [entry for entry in entries if id(entry) not in gone]

    def _remote_orphans(self) -> None:
        """Remove from the catalog the registrations that other nodes' agents no longer hold.

        The same leftover as above on a node where no core runs any more (its core moved to another
        node while the node was lost, and its agent came back with its data): no core on that node
        removes it, and while it passes, its session may hold the leader lock, so no core leads. A
        node whose agent cannot be asked (gone, unreachable, or its HTTP API not served on its
        address) is left alone: its entries fail with its node check."""
        own = self._agent_node()
        by_node: dict[str, tuple[str, list[str]]] = {}
        for entry in self._entries:
            node = entry.get("Node") or {}
            service_id = (entry.get("Service") or {}).get("ID")
            if node.get("Node") and node.get("Node") != own and node.get("Address") and service_id:
                by_node.setdefault(node["Node"], (node["Address"], []))[1].append(service_id)
        for node, (address, service_ids) in sorted(by_node.items()):
            settings = copy.copy(self.settings)
            settings.host, settings.timeout = address, 1.0
            try:
                held = set(settings.client().agent.services())
            except Exception as error:
                self.states.report(f"orphans {node}", "unasked:" + type(error).__name__,
                                   f"could not ask node {node}'s agent ({address}) which registrations it holds: "
                                   f"{_short(error)}")
                continue
            self.states.report(f"orphans {node}", "ok", f"node {node}'s agent answers")
            self._remove_unheld(node, service_ids, held)

    def _remove_unheld(self, node: str, service_ids: list[str], held: set[str]) -> None:
        """Remove from ``node``'s catalog the registrations its agent does not hold (``held``)."""
        for service_id in service_ids:
            if service_id not in held:
                catalog_deregister(self._prune_client, node, service_id)
                self.log.warning("removed %s from node %s's catalog: its agent no longer has it (a leftover "
                                 "from before the agent restarted)", service_id, node)

    def _orphans_loop(self):
        while not self.stop_event.wait(self.config.orphans_every):
            try:
                self._remote_orphans()
            except Exception as error:  # Consul answers again later: the next round tries again
                self.states.report("orphans", "error:" + type(error).__name__,
                                   f"could not look for leftover registrations: {_short(error)}", logging.WARNING)

    def _agent_node(self) -> str:
        """Our agent's node name, from /v1/agent/self with our ACL token (py-consul's agent.self()
        sends none, which ACLs refuse)."""
        if self._node_name is None:
            from consul.callback import CB

            client = self._prune_client
            answer = client.http.get(CB.json(), "/v1/agent/self", headers=client.prepare_headers())
            self._node_name = answer["Config"]["NodeName"]
        return self._node_name

    def _note_failing(self, entries):
        """Remember since when each failing instance (not ours) has failed; the leader prunes them."""
        now = time.monotonic()
        failing = {}
        for entry in entries:
            service_id = (entry.get("Service") or {}).get("ID")
            if service_id and service_id != self.instance:
                failing[service_id] = (self.failing.get(service_id, (now, None))[0], entry)
        self.failing = failing
        if failing:
            self.dirty.set()  # the writer's loop keeps time for the pruning

    def _prune(self) -> float | None:
        """As the leader, deregister instances failing for prune_after; seconds until the next is due."""
        if not self.election.is_leader or not self.failing:
            return None
        now, due = time.monotonic(), None
        for service_id, (since, entry) in list(self.failing.items()):
            left = since + self.config.prune_after - now
            if left > 0:
                due = left if due is None else min(due, left)
                continue
            try:
                where = self._deregister(entry)
            except Exception as error:  # a Consul error: try again at the next round
                self.states.report("prune", "error:" + type(error).__name__,
                                   f"could not deregister {service_id}: {_short(error)}", logging.WARNING)
                due = 1.0 if due is None else min(due, 1.0)
                continue
            self.failing.pop(service_id, None)
            self.log.info("pruned %s, failing for %.1fs (%s)", service_id, now - since, where)
        return due

    def _deregister(self, entry) -> str:
        """Deregister one instance where it lives: from our agent if it registered there, else from the catalog."""
        client = self._prune_client
        node = (entry.get("Node") or {}).get("Node")
        service_id = entry["Service"]["ID"]
        if node == self._agent_node():
            client.agent.service.deregister(service_id)
            return "agent " + node
        catalog_deregister(client, node, service_id)
        return "catalog, node " + str(node)

    def _on_health_change(self, value, index):
        self.log.info("healthy cores: %s", ", ".join(f"{c[1]}@{c[2]}:{c[3]}" for c in value) or "none")
        self.dirty.set()

    def _on_assignment_change(self, value, index):
        self.assignment_seen(value)
        self.dirty.set()

    def assignment_seen(self, value) -> None:
        """Tell ``on_assignment`` which core serves each store; an invalid or missing value changes nothing."""
        if self.on_assignment is None or value is None:
            return
        try:
            cores = parse_assignment(value)
        except AssignmentError as error:
            self.states.report("assignment", "invalid", f"the assignment is not valid, kept the last: {error}",
                               logging.WARNING)
            return
        self.states.report("assignment", "ok", "the assignment is valid")
        self.on_assignment({core.prefix: (core.id, core.host, core.port) for core in cores})

    def _keep_registered(self):
        failures = 0
        while not self.stop_event.is_set():
            try:
                if self.registration.ensure():
                    self.log.info("registered service %s id %s at %s:%s with a gRPC check every %s",
                                  self.config.service_name, self.registration.service_id, self.config.host,
                                  self.config.port,
                                  self.config.check_interval)
                self.states.report("registration", "ok", "registered")
                failures = 0
                delay = self.config.resync
            except Exception as error:
                failures += 1
                delay = min(self.config.backoff_max, 0.25 * 2 ** min(failures - 1, 10))
                self.states.report("registration", "error:" + type(error).__name__,
                                   f"{_short(error)}; retrying with backoff", logging.WARNING)
            self.stop_event.wait(delay)

    def _write_loop(self):
        failures = 0
        prune_due = None
        while not self.stop_event.is_set():
            self.dirty.wait(min(self.config.reconcile_every, prune_due) if prune_due else self.config.reconcile_every)
            self.dirty.clear()
            if self.stop_event.is_set():
                return
            prune_due = self._prune()
            if self.healthy is None:
                continue
            try:
                stores = list_stores(self._stores_client.kv, self.store_root) if self.election.is_leader else ()
                outcome = self.writer.write(self.healthy, stores)
                failures = 0
                if outcome is not None:
                    self.states.report("writer", "ok", "the assignment follows the healthy cores")
                    if outcome.written:
                        self.log.info("wrote %s: %s", self.config.assignment_key,
                                      " ".join(pretty(outcome.after).split()))
            except NotLeader as error:
                self.states.report("writer", "not-leader", f"stopped writing: {error}")
            except Exception as error:
                failures += 1
                self.states.report("writer", "error:" + type(error).__name__,
                                   f"{_short(error)}; retrying with backoff", logging.WARNING)
                self.stop_event.wait(min(self.config.backoff_max, 0.25 * 2 ** min(failures - 1, 10)))
                self.dirty.set()

    def _guarded(self, name: str, target):
        """Run a loop; should it ever raise, log it and start it again: the core must keep serving."""
        def run():
            while not self.stop_event.is_set():
                try:
                    target()
                except Exception:
                    self.log.exception("%s loop failed; restarting it in 1s", name)
                    self.stop_event.wait(1.0)
        return threading.Thread(target=run, name=f"consul-{name}", daemon=True)

    # Start and stop.

    def start(self) -> CoreMembership:
        watch = self._watcher
        loops = {
            "registration": self._keep_registered,
            "election": watch("election", self._election_fetch, lambda value, index: None).run,
            "health": watch("health", self._health_fetch, self._on_health_change).run,
            "assignment": watch("assignment", kv_fetcher(self._assignment_reader, self.config.assignment_key),
                                self._on_assignment_change).run,
            "writer": self._write_loop,
            "orphans": self._orphans_loop,
        }
        self.threads = [self._guarded(name, loop) for name, loop in loops.items()]
        for thread in self.threads:
            thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Stop writing, deregister (which invalidates our session) and destroy the session."""
        self.stop_event.set()
        self.dirty.set()
        session_id = self.election.session_id
        self.election.role = FOLLOWER
        settings = copy.copy(self.settings)
        settings.timeout = timeout  # a Consul that does not answer must not hold up the exit
        client = settings.client()
        started = time.monotonic()
        try:
            self.registration.client = client
            self.registration.deregister()
            self.log.info("deregistered service id %s", self.registration.service_id)
        except Exception as error:
            self.log.warning("could not deregister service id %s: %s", self.registration.service_id, _short(error))
        if session_id:
            try:
                client.session.destroy(session_id)
            except Exception as error:
                self.log.warning("could not destroy session %s: %s", session_id, _short(error))
        self.log.info("left Consul in %.2fs", time.monotonic() - started)

    def wait_unassigned(self, timeout: float, poll: float = 0.05) -> bool:
        """After stop(): wait until the assignment no longer routes to this instance (the leader saw the
        deregistration and rewrote it), so calls already on their way still find the core serving.
        False when that took longer than timeout or Consul did not answer."""
        settings = copy.copy(self.settings)
        settings.timeout = min(timeout, 3.0) or 1.0
        store = AssignmentStore(settings.client().kv, self.config.assignment_key)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                snap = store.read()
                if snap.raw is not None:
                    self.assignment_seen(snap.raw)
                if not any(core.host == self.config.host and core.port == self.config.port
                           for core in snap.cores or ()):
                    self.log.info("the assignment no longer routes to %s:%s", self.config.host, self.config.port)
                    return True
            except Exception as error:
                self.log.warning("could not read the assignment: %s", _short(error))
                return False
            time.sleep(poll)
        self.log.warning("the assignment still routes to %s:%s after %.1fs", self.config.host, self.config.port,
                         timeout)
        return False
