# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""envoyd: watch the core assignment in Consul, render, validate and apply Envoy's config.

Three parts, as in consul-template: a watcher thread (blocking queries) that only reports changes,
the main loop that renders, validates and applies the latest value, and the Envoy supervisor. The
data path never depends on Consul or on good data: on any error the last good config keeps serving.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time

try:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
except ImportError:
    BaseHTTPRequestHandler = object
    ThreadingHTTPServer = None

from ansible_collections.voltha.envoy.plugins.module_utils.assignment import AssignmentError
from ansible_collections.voltha.envoy.plugins.module_utils.config_writer import (
    dynamic_files,
    render_assignment,
    static_path,
    write_files,
)
from ansible_collections.voltha.envoy.plugins.module_utils.consul_connection import split_address
from ansible_collections.voltha.envoy.plugins.module_utils.consul_watch import KeyWatcher, consul_kv_fetcher
from ansible_collections.voltha.envoy.plugins.module_utils.envoy_binary import find_envoy
from ansible_collections.voltha.envoy.plugins.module_utils.envoy_config import (
    ConfigRejected,
    EnvoyValidator,
    sha256_text,
    write_atomic,
)
from ansible_collections.voltha.envoy.plugins.module_utils.envoy_process import EnvoyStartError, EnvoySupervisor
from ansible_collections.voltha.envoy.plugins.module_utils.envoyd_settings import SettingsError, load_settings
from ansible_collections.voltha.envoy.plugins.module_utils.metrics import Registry
from ansible_collections.voltha.envoy.plugins.module_utils.render import Renderer, RenderError

LOG = logging.getLogger("envoyd")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DaemonMetrics:
    def __init__(self):
        self.registry = Registry()
        r = self.registry
        self.renders = r.counter("envoyd_renders_total", "Configs rendered from an assignment.")
        self.applies = r.counter("envoyd_applies_total", "Configs applied to Envoy.", ("mode",))
        self.unchanged = r.counter("envoyd_unchanged_total", "Changes that rendered the config already applied.")
        self.rejects = r.counter("envoyd_rejects_total", "Assignments or configs not applied.", ("reason",))
        self.validations = r.counter("envoyd_validations_total", "Config validations.", ("by",))
        self.consul_errors = r.counter("envoyd_consul_errors_total", "Failed Consul requests.")
        self.envoy_restarts = r.counter("envoyd_envoy_restarts_total", "Envoy starts after a death.")
        self.last_apply = r.gauge("envoyd_last_apply_timestamp_seconds", "Unix time of the last apply.")
        self.cores = r.gauge("envoyd_assignment_cores", "Cores in the applied assignment.")
        self.healthy = r.gauge("envoyd_up", "1 while Envoy serves a validated config.")
        self.latency = r.histogram("envoyd_change_to_applied_seconds",
                                   "From a Consul change reaching envoyd to the config applied.", LATENCY_BUCKETS)


class ApplyResult:
    def __init__(self, applied, reason=None, detail=None):
        self.applied, self.reason, self.detail = applied, reason, detail


class ConfigApplier:
    """Parse, render, validate and apply one assignment value; remembers the last good config."""

    def __init__(self, settings, envoy_bin, metrics, supervisor=None):
        self.settings = settings
        self.metrics = metrics
        self.supervisor = supervisor
        self.config_dir = os.path.abspath(settings.config_dir)
        template_text = None
        if settings.template:
            try:
                with open(settings.template, encoding="utf-8") as handle:
                    template_text = handle.read()
            except OSError as err:
                raise SettingsError("cannot read the template %s: %s" % (settings.template, err.strerror))
        self.renderer = Renderer(template_text, settings.variables, template_name=settings.template or "voltha")
        self.validator = EnvoyValidator(envoy_bin, self.config_dir,
                                        use_shape_cache=settings.validation == "shape-cache")
        self.applied_sha = None  # sha256 of the rendered text applied last (kept instead of megabytes of text)
        self.applied_bootstrap = None
        self.applied_cores = ()

    def render(self, value):
        """Value from Consul -> (cores, Rendered); raises AssignmentError or RenderError."""
        cores, rendered = render_assignment(self.renderer, value, self.settings.assignment_key)
        self.metrics.renders.inc()
        return cores, rendered

    def apply(self, value, dry_run=False):
        try:
            cores, (text, config, fmt) = self.render(value)
        except AssignmentError as err:
            self.metrics.rejects.inc(reason="assignment")
            return ApplyResult(False, "assignment", str(err))
        except RenderError as err:
            self.metrics.rejects.inc(reason="render")
            return ApplyResult(False, "render", str(err))
        if dry_run:
            return ApplyResult(True, "dry-run", text)
        sha = sha256_text(text)
        if sha == self.applied_sha:
            self.metrics.unchanged.inc()
            return ApplyResult(False, "unchanged")
        try:
            how = self.validator.validate(text, config, fmt)
        except ConfigRejected as err:
            self.metrics.rejects.inc(reason="envoy")
            return ApplyResult(False, "envoy", str(err))
        self.metrics.validations.inc(by=how)
        try:
            self.write_and_reload(text, config, fmt)
        except (EnvoyStartError, OSError) as err:
            self.metrics.rejects.inc(reason="apply")
            return ApplyResult(False, "apply", str(err))
        self.applied_sha, self.applied_cores = sha, cores
        self.metrics.applies.inc(mode=self.settings.reload)
        self.metrics.cores.set(len(cores))
        self.metrics.last_apply.set(time.time())
        return ApplyResult(True, detail="%d cores, validated by %s, sha256 %s" % (len(cores), how, sha[:12]))

    def write_and_reload(self, text, config, fmt):
        """Write the validated config; reload Envoy the way the settings say (no Envoy with --once)."""
        static = static_path(self.config_dir, fmt)
        write_atomic(static, text)
        if self.settings.reload == "hot-restart":
            if self.supervisor is not None:
                self.supervisor.start(static)
            return
        files = dynamic_files(self.config_dir, text, config)  # cds, lds, then the bootstrap
        write_files(files)
        bootstrap_path, bootstrap_text = files[-1]
        if self.supervisor is not None and (bootstrap_text != self.applied_bootstrap or not self.supervisor.pids()):
            self.supervisor.start(bootstrap_path)
        self.applied_bootstrap = bootstrap_text


class StatusServer:
    """/healthz and /metrics on a small HTTP server thread."""

    def __init__(self, address, daemon):
        host, port = split_address(address, default_port=8080)[1:]
        outer = daemon

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server API)
                if self.path == "/healthz":
                    ok = outer.healthy()
                    self._send(200 if ok else 503, "ok\n" if ok else "not serving a validated config\n")
                elif self.path == "/status":
                    self._send(200, json.dumps(outer.status_report(), indent=2) + "\n", "application/json")
                elif self.path == "/metrics":
                    outer.healthy()  # envoyd_up is worked out when it is asked for
                    self._send(200, outer.metrics.registry.exposition(), "text/plain; version=0.0.4")
                else:
                    self._send(404, "not found\n")

            def _send(self, code, body, content_type="text/plain"):
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        # No periodic wake-ups while idle: stop() wakes the loop with a connection of its own.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 3600},
                                       name="status", daemon=True)

    @property
    def address(self):
        host, port = self.server.server_address[:2]
        return "%s:%d" % (host, port)

    def start(self):
        self.thread.start()

    def stop(self):
        stopper = threading.Thread(target=self.server.shutdown)
        stopper.start()
        while stopper.is_alive():
            try:
                socket.create_connection(self.server.server_address[:2], timeout=1).close()
            except OSError:
                pass
            stopper.join(0.05)
        self.server.server_close()


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
        if not settings.once and not settings.dry_run:
            self.supervisor = EnvoySupervisor(
                self.envoy_bin, os.path.abspath(settings.config_dir), base_id=settings.base_id,
                drain_time=settings.drain_time_s, parent_shutdown_time=settings.parent_shutdown_time_s,
                drain_strategy=settings.drain_strategy,
                log_path=settings.envoy_log, log_level=settings.envoy_log_level,
                concurrency=settings.envoy_concurrency, on_event=self._envoy_event,
                on_exit=lambda: self.events.put(("envoy-exit",)),
                # A resource file Envoy cannot fully parse is rejected rather than half applied.
                extra_args=("--reject-unknown-dynamic-fields",))
        self.applier = ConfigApplier(settings, self.envoy_bin, self.metrics, self.supervisor)
        self.state = None  # the last logged state, so each change of state is logged once
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
        LOG.log(logging.WARNING if name in ("died", "restart-failed") else logging.INFO, "envoy %s %s", name, detail)

    def healthy(self):
        ok = self.supervisor is not None and self.supervisor.serving() and self.applier.applied_sha is not None
        self.metrics.healthy.set(1 if ok else 0)
        return ok

    def status_report(self):
        """What /status shows: what is applied and which Envoy processes serve it."""
        applier, supervisor = self.applier, self.supervisor
        return {
            "healthy": self.healthy(),
            "reload": self.settings.reload,
            "assignment_key": self.settings.assignment_key,
            "applied_sha256": applier.applied_sha,
            "cores": [dict(core._asdict()) for core in applier.applied_cores],
            "state": self.state,
            "envoy": [{"epoch": g.epoch, "pid": g.pid, "alive": g.alive(), "live": bool(g.live_at)}
                      for g in list(supervisor.generations)] if supervisor else [],
        }

    # ------------------------------------------------------------ Consul

    def consul_fetch(self):
        client = self.settings.consul.client()
        return consul_kv_fetcher(client, self.settings.assignment_key)

    def _on_change(self, value, index):
        received = time.monotonic()
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
        self._set_state("consul-error", "consul %s unreachable (%s: %s); retrying with backoff, Envoy keeps the "
                        "last good config" % (self.settings.consul.address, type(error).__name__, error))
        LOG.debug("consul error, next try in %.2fs", delay)

    def _on_consul_recover(self, failures):
        LOG.info("consul %s answers again after %d failed requests", self.settings.consul.address, failures)
        self.state = "consul-ok"

    # ------------------------------------------------------------ one shot

    def run_once(self):
        """--once and --dry-run: one read, one render; exit status says whether it worked."""
        fetch = self.consul_fetch()
        try:
            _index, value = fetch(0, None)
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
            self.metrics.rejects.inc(reason="internal")
            return
        if result.applied:
            self.metrics.latency.observe(time.monotonic() - received)
            self.state = "applied"
            LOG.info("applied consul index %s: %s", index, result.detail)
        elif result.reason == "unchanged":
            LOG.debug("consul index %s renders the config already applied", index)
        else:
            self._set_state("reject:" + (result.detail or ""), "not applied (%s) at consul index %s: %s; Envoy keeps "
                            "the last good config" % (result.reason, index, result.detail))

    def _reload(self):
        """SIGHUP: read the template again, render the last value and hand over to a new Envoy."""
        LOG.info("SIGHUP: rendering again and restarting Envoy")
        try:
            applier = ConfigApplier(self.settings, self.envoy_bin, self.metrics, self.supervisor)
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
        if self.settings.status_addr:
            self.status = StatusServer(self.settings.status_addr, self)
            self.status.start()
            LOG.info("status on http://%s/healthz and /metrics", self.status.address)
        watcher = KeyWatcher(self.consul_fetch(), self._on_change, self._on_consul_error, self._on_consul_recover,
                             wait=self.settings.consul_wait, min_interval=self.settings.min_interval_s,
                             stop_event=self.stop_event)
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
                        check_in = self.supervisor.check()
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
                check_in = self.supervisor.check()
        finally:
            self.stop_event.set()
            with self.apply_lock:  # let an apply under way on the watcher's thread finish first
                self.supervisor.stop()
            if self.status:
                self.status.stop()


def check_settings(settings):
    """--check-settings: everything that can be checked without Consul (for installers and CI)."""
    try:
        envoy_bin = find_envoy(settings.envoy_bin)
        ConfigApplier(settings, envoy_bin, DaemonMetrics())
    except Exception as err:  # report any problem as one line, whatever its type
        sys.stderr.write("envoyd: %s\n" % err)
        return 2
    sys.stdout.write("envoyd: settings ok (envoy %s, consul %s, key %s)\n"
                     % (envoy_bin, settings.consul.address, settings.assignment_key))
    return 0


def main(argv=None):
    try:
        settings = load_settings(argv)
    except SettingsError as err:
        sys.stderr.write("envoyd: %s\n" % err)
        return 2
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s envoyd %(levelname)s %(message)s")
    LOG.debug("settings: consul %r", settings.consul)
    if settings.check_settings:
        return check_settings(settings)
    try:
        daemon = Daemon(settings)
    except (SettingsError, RenderError) as err:
        LOG.error("%s", err)
        return 2
    except Exception as err:  # a missing Envoy binary and the like: say what, not a traceback
        LOG.error("cannot start: %s: %s", type(err).__name__, err)
        return 2
    return daemon.run()
