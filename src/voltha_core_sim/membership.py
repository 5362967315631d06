"""A core's life in Consul, as VOLTHA's cores lived it: registered, electing, and (as leader) assigning.

Five daemon threads, each with its own py-consul client, none able to stop the gRPC server:

- registration: keeps the service registered (a restarted dev agent forgets it) every ``resync``;
- election: ``LeaderElection.poll`` under a ``KeyWatcher`` (blocking queries on the lock key);
- health: a ``KeyWatcher`` on ``/v1/health/service/<name>?passing``, the cores that may serve;
- assignment: a ``KeyWatcher`` on the assignment key, so the leader puts back what others changed;
- writer: when anything above changes (and every ``reconcile_every`` seconds), the leader writes
  the healthy cores to the assignment key with check-and-set, guarded by its lock.

Errors back off exponentially (up to ``backoff_max``) and are logged once per change of state.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import DEFAULT_KEY
from ansible_collections.voltha.envoy.plugins.module_utils._assignment.store import AssignmentStore, pretty
from ansible_collections.voltha.envoy.plugins.module_utils._consul.connection import ConsulSettings
from ansible_collections.voltha.envoy.plugins.module_utils._consul.watch import KeyWatcher, consul_kv_fetcher

from .assignment_writer import AssignmentWriter, assignment_from_health, frozen
from .election import DEFAULT_LOCK_KEY, FOLLOWER, LeaderElection, NotLeader
from .registration import DEFAULT_SERVICE_NAME, ServiceRegistration, service_definition
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
    resync: float = 1.0  # seconds between checks that the service is still registered
    reconcile_every: float = 10.0  # the leader compares the key with the healthy cores at least this often
    backoff_max: float = 2.0
    lock_delay: int = 0


def _short(error: Exception, limit: int = 300) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[:limit] + "..."


class CoreMembership:
    def __init__(self, config: MembershipConfig, settings: ConsulSettings, logger: logging.Logger | None = None):
        self.config = config
        self.settings = settings
        self.log = logger or logging.getLogger("voltha_core_sim.consul")
        self.states = StateLog(self.log)
        self.stop_event = threading.Event()
        self.dirty = threading.Event()
        self.healthy: dict | None = None  # stored form of the passing cores; None before the first answer
        definition = service_definition(config.core_id, config.host, config.port, config.prefix or config.core_id,
                                        config.service_name, config.check_interval,
                                        deregister_after=config.deregister_after,
                                        instance_id=f"{config.core_id}@{config.host}:{config.port}")
        self.registration = ServiceRegistration(settings.client(), definition)
        self.election = LeaderElection(settings.client(), config.core_id, config.lock_key,
                                       checks=("serfHealth", self.registration.check_id),
                                       lock_delay=config.lock_delay)
        writer_client = settings.client()
        self.store = AssignmentStore(self.election.guarded_kv(writer_client), config.assignment_key)
        self.writer = AssignmentWriter(self.store, lambda: self.election.is_leader and not self.stop_event.is_set())
        self._health_client = settings.client()
        self._assignment_client = settings.client()
        self.threads: list[threading.Thread] = []

    # The loops.

    def _watcher(self, topic: str, fetch, on_change) -> KeyWatcher:
        topic = f"consul requests ({topic})"

        def on_error(error, delay):
            # After a failure the next request does not block: a restarted agent's index starts low, and
            # a query at our old, higher index would wait out the whole ``wait`` before showing it.
            watcher.index = 0
            self.states.report(topic, "error:" + type(error).__name__,
                               f"{_short(error)}; retrying with backoff (next in {delay:.2f}s)", logging.WARNING)

        def on_recover(failures):
            self.states.report(topic, "ok", f"Consul answers again after {failures} failed request(s)")
            self.dirty.set()

        watcher = KeyWatcher(fetch, on_change, on_error, on_recover, wait=self.config.wait,
                             backoff_max=self.config.backoff_max, stop_event=self.stop_event)
        return watcher

    def _election_fetch(self, index, wait):
        new_index, role = self.election.poll(index, wait)
        if self.states.report("election", role, f"{role} (lock {self.config.lock_key}, "
                              f"session {self.election.session_id})"):
            self.dirty.set()
        return new_index, role

    def _health_fetch(self, index, wait):
        client = self._health_client
        new_index, entries = client.health.service(self.config.service_name, index=index or None, wait=wait,
                                                   passing=True)
        cores, skipped = assignment_from_health(entries)
        if skipped:
            self.states.report("health", "skipped:" + "|".join(skipped),
                               "instances left out of the assignment: " + "; ".join(skipped), logging.WARNING)
        self.healthy = cores
        return new_index, frozen(cores)

    def _on_health_change(self, value, index):
        self.log.info("healthy cores: %s", ", ".join(f"{c[1]}@{c[2]}:{c[3]}" for c in value) or "none")
        self.dirty.set()

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
        while not self.stop_event.is_set():
            self.dirty.wait(self.config.reconcile_every)
            self.dirty.clear()
            if self.stop_event.is_set():
                return
            if self.healthy is None:
                continue
            try:
                outcome = self.writer.write(self.healthy)
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
            "assignment": watch("assignment", consul_kv_fetcher(self._assignment_client, self.config.assignment_key),
                                lambda value, index: self.dirty.set()).run,
            "writer": self._write_loop,
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
