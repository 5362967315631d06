# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""envoyd's daemon: watch the core assignment in Consul, and apply each change to Envoy.

Three parts, as in consul-template: a watcher thread (blocking queries, _consul/watch.py) that only
reports changes, the main loop that hands the latest value to the applier (applier.py), and the Envoy
supervisor (supervisor.py). The data path never depends on Consul or on good data: on any error
the last good config keeps serving. Started by cli.py.
"""

import json
import logging
import os
import queue
import signal
import sys
import threading
import time

from ansible_collections.voltha.envoy.plugins.module_utils._consul.blocking import BlockingReader, ConsulHTTPError
from ansible_collections.voltha.envoy.plugins.module_utils._consul.watch import KeyWatcher, NoKnownLeader, kv_fetcher
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.binary import find_envoy
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import RenderError
from envoyd.ads_server import AdsServer
from envoyd.applier import ConfigApplier
from envoyd.hosts import host_views
from envoyd.metrics import DaemonMetrics
from envoyd.settings import SettingsError
from envoyd.status import StatusServer
from envoyd.supervisor import (
    EnvoyStartError,
    EnvoySupervisor,
    raise_open_files_limit,
)
from envoyd.xds import XdsError
from envoyd.xds import available as xds_available
from envoyd.xds import socket_path as xds_socket_path

LOG = logging.getLogger("envoyd")


class Daemon:
    def __init__(self, settings):
        self.settings = settings
        self.metrics = DaemonMetrics()
        # SimpleQueue: its put() is reentrant, so the signal handlers below may call it even when the
        # signal lands while the main thread is inside get() (a Queue's lock would deadlock there).
        self.events = queue.SimpleQueue()
        self.stop_event = threading.Event()
        self.envoy_bin = find_envoy(settings.envoy_bin)
        os.makedirs(settings.config_dir, exist_ok=True)
        self.supervisor = None
        open_files = None
        if not settings.once and not settings.dry_run:
            before, open_files = raise_open_files_limit()
            if before != open_files:
                LOG.info("open-files limit raised from %d to %d (the hard limit) for Envoy", before, open_files)
            self.supervisor = EnvoySupervisor(
                self.envoy_bin, os.path.abspath(settings.config_dir), base_id=settings.base_id,
                drain_time=settings.drain_time_s, parent_shutdown_time=settings.parent_shutdown_time_s,
                drain_strategy=settings.drain_strategy,
                log_path=settings.envoy_log, log_level=settings.envoy_log_level,
                concurrency=settings.envoy_concurrency, on_event=self._envoy_event,
                on_exit=lambda: self.events.put(("envoy-exit",)),
                # A resource file Envoy cannot fully parse is rejected rather than half applied.
                extra_args=("--reject-unknown-dynamic-fields",))
        self.ads = None
        if settings.reload == "xds" and self.supervisor is not None:
            missing = xds_available()
            if missing:
                raise SettingsError(missing)
            try:
                path = xds_socket_path(settings.config_dir)
            except XdsError as err:
                raise SettingsError(str(err)) from err
            if os.path.exists(path):
                os.unlink(path)  # left by an envoyd that ended without cleaning up
            self.ads = AdsServer(path, on_event=self._envoy_event)
        self.applier = ConfigApplier(settings, self.envoy_bin, self.metrics, self.supervisor, open_files, self.ads)
        self.metrics.watch_envoy_hosts(self.envoy_hosts)
        self.state = None  # the last logged state, so each change of state is logged once
        self.last_stages = None  # seconds by stage of the last apply that wrote files
        self.reader = None
        self.consul_seconds = 0.0
        self.last_value = None
        self.apply_lock = threading.RLock()  # one apply at a time: the watcher's thread or the main loop
        self.status = None

    # ------------------------------------------------------------ logging

    def _set_state(self, state, message, level=logging.WARNING):
        if state != self.state:
            self.state = state
            LOG.log(level, message)

    def _envoy_event(self, name, **fields):
        detail = " ".join("%s=%s" % item for item in sorted(fields.items()))
        if name == "restarted":
            self.metrics.envoy_restarts.inc()
        warning = name in ("died", "restart-failed", "drain-failed", "not-drained", "cold-restart")
        LOG.log(logging.WARNING if warning else logging.INFO, "envoy %s %s", name, detail)

    def healthy(self):
        ok = self.supervisor is not None and self.supervisor.serving() and self.applier.applied_sha is not None
        self.metrics.healthy.set(1 if ok else 0)
        return ok

    def health_text(self):
        """/healthz's body while healthy: "ok", and what Envoy refused when it refused the last update
        (it still serves the last good config, so envoyd stays healthy)."""
        update = self.applier.envoy_update or {}
        if update.get("state") == "rejected":
            return "ok; Envoy rejected the last update (%s), serving the last good config\n" % update.get("reason")
        if update.get("state") == "died":
            return "ok; Envoy died after the last update (%s)\n" % update.get("reason")
        return "ok\n"

    def envoy_admin(self, path):
        """The body of a GET on the serving Envoy's admin API."""
        if self.supervisor is None:
            raise OSError("no Envoy runs")
        return self.supervisor.admin(path)

    def envoy_hosts(self):
        """What the serving Envoy thinks of each core (HostViews), from its admin API."""
        return host_views(json.loads(self.envoy_admin("/clusters?format=json")))

    def status_report(self, brief=False):
        """What /status shows: what is applied, which Envoy processes serve it, and what Envoy
        thinks of each core; brief: the cores counted, not listed, and nothing asked of Envoy."""
        applier, supervisor = self.applier, self.supervisor
        envoys = [{"epoch": g.epoch, "pid": g.pid, "alive": g.alive(), "live": bool(g.live_at)}
                  for g in list(supervisor.generations)] if supervisor else []
        if brief:
            return {"healthy": self.healthy(), "state": self.state, "applied_sha256": applier.applied_sha,
                    "core_count": len(applier.applied_cores), "envoy_update": applier.envoy_update,
                    "last_apply_stages": self.last_stages, "envoy": envoys}
        try:
            hosts = [dict(view._asdict()) for view in self.envoy_hosts()]
            hosts_error = None
        except Exception as err:  # Envoy starting or going away: say so, the rest still reports
            hosts, hosts_error = [], "%s: %s" % (type(err).__name__, err)
        return {
            "envoy_hosts": hosts,
            "envoy_hosts_error": hosts_error,
            "healthy": self.healthy(),
            "reload": self.settings.reload,
            "assignment_key": self.settings.assignment_key,
            "applied_sha256": applier.applied_sha,
            "cores": [dict(core._asdict()) for core in applier.applied_cores],
            "state": self.state,
            "envoy_update": applier.envoy_update,
            "last_apply_stages": self.last_stages,
            "envoy": envoys,
        }

    # ------------------------------------------------------------ Consul

    def consul_fetch(self):
        self.reader = BlockingReader(self.settings.consul)
        return kv_fetcher(self.reader, self.settings.assignment_key)

    def _on_change(self, value, index):
        now = time.monotonic()
        # From Consul's answer arriving to here: its body read, JSON and base64 decoded.
        received = min(now, getattr(self.reader, "answered_at", None) or now)
        self.consul_seconds = now - received
        self.metrics.stages.labels(stage="consul").observe(self.consul_seconds)
        if self.settings.wait_min > 0:
            self.events.put(("kv", value, index, received))  # the main loop waits out the quiescence window
            return
        # No window: apply right here on the watcher's thread, one thread hand-off less on the data path.
        with self.apply_lock:
            if not self.stop_event.is_set():
                self.last_value = value
                self._handle_kv(("kv", value, index, received))

    def _on_consul_error(self, error, delay):
        self.metrics.consul_errors.inc()
        leaderless = isinstance(error, NoKnownLeader)
        if leaderless:
            what = "has no known leader"
        elif isinstance(error, ConsulHTTPError):
            what = "refused the request" if 400 <= error.status < 500 else "failed the request"
        else:
            what = "unreachable"
        self._set_state("consul-no-leader" if leaderless else "consul-error",
                        "consul %s %s (%s: %s); trying again, Envoy keeps the last good config"
                        % (self.settings.consul.address, what, type(error).__name__, error))
        LOG.debug("consul error, next try in %.2fs", delay)

    def _on_consul_leader_change(self, error):
        LOG.info("consul %s: %s", self.settings.consul.address, error)

    def _on_consul_recover(self, failures):
        LOG.info("consul %s answers again after %d failed requests", self.settings.consul.address, failures)
        self.state = "consul-ok"

    # ------------------------------------------------------------ one shot

    def run_once(self):
        """--once and --dry-run: one read, one render; exit status says whether it worked."""
        fetch = self.consul_fetch()
        try:
            value = fetch(0, None).value
        except Exception as err:  # report any failure to read, with its type
            LOG.error("cannot read %s from consul %s: %s: %s", self.settings.assignment_key,
                      self.settings.consul.address, type(err).__name__, err)
            return 1
        result = self.applier.apply(value, dry_run=self.settings.dry_run)
        if self.settings.dry_run and result.applied:
            sys.stdout.write(result.detail)
            return 0
        if not result.applied:
            LOG.error("not applied (%s): %s", result.reason, result.detail)
            return 1
        LOG.info("wrote %s: %s", self.settings.config_dir, result.detail)
        return 0

    # ------------------------------------------------------------ daemon

    def _install_signals(self):
        signal.signal(signal.SIGTERM, lambda *_: self.events.put(("term",)))
        signal.signal(signal.SIGINT, lambda *_: self.events.put(("term",)))
        signal.signal(signal.SIGHUP, lambda *_: self.events.put(("hup",)))
        signal.signal(signal.SIGUSR1, lambda *_: self.events.put(("usr1",)))

    def _next_kv(self, first):
        """Apply the quiescence window: the latest value after MIN of quiet, or after MAX in all."""
        latest = first
        if self.settings.wait_min <= 0:
            return latest, None
        started = time.monotonic()
        while True:
            remaining = min(self.settings.wait_min, self.settings.wait_max - (time.monotonic() - started))
            if remaining <= 0:
                return latest, None
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                return latest, None
            if event[0] != "kv":
                return latest, event
            latest = event

    def _handle_kv(self, event):
        _kind, value, index, received = event
        try:
            result = self.applier.apply(value)
        except Exception:  # an unforeseen failure must not end the watch: Envoy keeps the last good config
            LOG.exception("not applied at consul index %s: unexpected error; Envoy keeps the last good config", index)
            self.metrics.rejects.labels(reason="internal").inc()
            return
        if result.applied or result.reason == "envoy-rejected":
            # received_at: when Consul's answer arrived (seconds since the epoch), for who wants to know
            # how long Consul took to deliver a write.
            self.last_stages = dict(result.stages, consul=self.consul_seconds, index=index,
                                    received_at=round(time.time() - (time.monotonic() - received), 6))
        if result.applied:
            self.metrics.latency.observe(time.monotonic() - received)
            self.state = "applied"
            LOG.info("applied consul index %s: %s", index, result.detail)
        elif result.reason == "unchanged":
            LOG.debug("consul index %s renders the config already applied", index)
        else:
            self._set_state("reject:" + (result.detail or ""), "not applied (%s) at consul index %s: %s; Envoy keeps "
                            "the last good config" % (result.reason, index, result.detail))

    def _supervise(self):
        """Let the supervisor look at Envoy (start it again after a death), and roll back a config
        after which Envoy keeps failing. Returns the seconds until it must look again (None: when told)."""
        with self.apply_lock:  # a rollback changes the files an apply writes
            check_in = self.supervisor.check()
            rolled_back = self.applier.judge_failures()
            if rolled_back is None:
                return check_in
            LOG.error("not applied (envoy-died): %s", rolled_back)
            self.state = "envoy-died"
            self.supervisor.restart_now()
            return self.supervisor.check()

    def _reload(self):
        """SIGHUP: read the template again, render the last value and hand over to a new Envoy."""
        LOG.info("SIGHUP: rendering again and restarting Envoy")
        try:
            applier = ConfigApplier(self.settings, self.envoy_bin, self.metrics, self.supervisor,
                                    self.applier.open_files, self.ads)
        except (SettingsError, RenderError) as err:
            LOG.error("SIGHUP: keeping the running config: %s", err)
            return
        result = applier.apply(self.last_value)  # a fresh applier has applied nothing: it starts Envoy
        if result.applied:
            self.applier = applier
            LOG.info("SIGHUP: applied %s", result.detail)
            return
        LOG.error("SIGHUP: keeping the running config (%s): %s", result.reason, result.detail)
        if self.supervisor.config_path:
            try:
                self.supervisor.start(self.supervisor.config_path)
            except EnvoyStartError as err:
                LOG.error("SIGHUP: the new Envoy did not start, the old one keeps serving: %s", err)

    def run(self):
        if self.settings.once or self.settings.dry_run:
            return self.run_once()
        self._install_signals()
        if self.ads is not None:
            self.ads.start()
            LOG.info("serving Envoy's config over ADS on unix:%s", self.ads.socket_path)
        if self.settings.status_addr:
            self.status = StatusServer(self.settings.status_addr, self)
            self.status.start()
            LOG.info("status on http://%s/healthz and /metrics", self.status.address)
        watcher = KeyWatcher(self.consul_fetch(), self._on_change, self._on_consul_error, self._on_consul_recover,
                             wait=self.settings.consul_wait_s, min_interval=self.settings.min_interval_s,
                             backoff_max=self.settings.consul_retry_max_s, stop_event=self.stop_event,
                             on_leader_change=self._on_consul_leader_change)
        thread = threading.Thread(target=watcher.run, name="consul-watch", daemon=True)
        thread.start()
        LOG.info("watching %s on consul %s (reload: %s)", self.settings.assignment_key,
                 self.settings.consul.address, self.settings.reload)
        pending = None
        check_in = None  # seconds until the supervisor must look again; None: only when told
        try:
            while True:
                if pending is None:
                    try:
                        pending = self.events.get(timeout=check_in)
                    except queue.Empty:
                        check_in = self._supervise()
                        continue
                event, pending = pending, None
                if event[0] == "kv":
                    event, pending = self._next_kv(event)
                    with self.apply_lock:
                        self.last_value = event[1]
                        self._handle_kv(event)
                elif event[0] == "hup":
                    with self.apply_lock:
                        self._reload()
                elif event[0] == "usr1":
                    self.supervisor.reopen_logs()
                elif event[0] == "term":
                    LOG.info("stopping: draining Envoy for %ss", self.settings.drain_time_s)
                    return 0
                check_in = self._supervise()
        finally:
            self.stop_event.set()
            with self.apply_lock:  # let an apply under way on the watcher's thread finish first
                self.supervisor.stop()
            if self.ads is not None:
                self.ads.stop()
            if self.status:
                self.status.stop()
