# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Run Envoy and hand it over to a new process without dropping connections (hot restart).

Learned from Envoy's hot-restarter.py and improved where a daemon needs it:
- every generation is started with the same base id and the next restart epoch, so the new Envoy
  takes the listening sockets from the old one, which drains and is shut down by the new one;
- a restart waits until the previous new generation answers (never a third one while the second is
  still starting), and generations older than the new one's parent are ended once it is live;
- an Envoy that dies is started again with exponential backoff instead of taking the daemon down;
- stop() drains the listeners, then ends every generation and reaps it.

Used by envoyd's daemon and applier.
"""

import os
import resource
import signal
import subprocess
import threading
import time

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError

try:
    from http.client import HTTPConnection
except ImportError:  # Python 2 is not supported; the import must not fail where the collection loads
    HTTPConnection = None


class EnvoyStartError(VolthaEnvoyError, RuntimeError):
    pass


def describe_exit(code):
    """An exit status as a reader wants it: "was killed by SIGSEGV", "exited with status 1"."""
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return "was killed by %s" % signal.Signals(-code).name
        except ValueError:
            return "was killed by signal %d" % -code
    return "exited with status %d" % code


def raise_open_files_limit():
    """Raise this process's open-files limit to its hard limit, which the Envoys it starts inherit.

    Envoy needs a socket per core for its health checks and more for calls; a limit it runs out of
    makes it crash. Returns (soft limit before, limit now); the limit stays as it was when it cannot be raised.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or soft == resource.RLIM_INFINITY:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # a hard limit above the kernel's nr_open
        return soft, soft
    return soft, hard


def sockets_needed(cores, workers):
    """Open files Envoy may need for an assignment: a health-check connection to each core, a
    connection from each worker to each core it calls, and a margin for listeners, admin and logs."""
    return cores * (1 + workers) + 64


class EnvoyGeneration:
    """One Envoy process: one restart epoch."""

    def __init__(self, epoch, popen, admin_address_path, started):
        self.epoch = epoch
        self.popen = popen
        self.admin_address_path = admin_address_path
        self.started = started
        self.live_at = None

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def admin_address(self):
        """'host:port' of this Envoy's admin, once Envoy has written it."""
        try:
            with open(self.admin_address_path) as handle:
                return handle.read().strip() or None
        except OSError:
            return None

    def admin(self, path, method="GET", timeout=2.0):
        address = self.admin_address()
        if address is None:
            raise OSError("envoy epoch %d has not written its admin address yet" % self.epoch)
        host, port = address.rsplit(":", 1)
        conn = HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status >= 400:
            raise OSError("envoy admin %s %s answered %d" % (method, path, resp.status))
        return body

    def is_live(self):
        try:
            return self.admin("/ready", timeout=1.0).strip() == b"LIVE"
        except Exception:  # not up yet, or an admin socket that is going away
            return False


class EnvoySupervisor:
    """Keeps one live Envoy serving the current bootstrap.

    ``on_event(name, **fields)`` is told about starts, hot restarts, deaths and restarts after a death.
    """

    def __init__(self, envoy_bin, run_dir, base_id=None, drain_time=5.0, parent_shutdown_time=10.0,
                 drain_strategy="immediate",
                 ready_timeout=60.0, log_path=None, log_level="info", concurrency=None, extra_args=(),
                 on_event=None, on_exit=None, backoff_base=0.5, backoff_max=30.0):
        self.envoy_bin = envoy_bin
        self.run_dir = run_dir
        self.base_id = base_id
        self.drain_time = drain_time
        self.parent_shutdown_time = parent_shutdown_time
        self.drain_strategy = drain_strategy
        self.ready_timeout = ready_timeout
        self.log_path = log_path
        self.log_level = log_level
        self.concurrency = concurrency
        self.extra_args = tuple(extra_args)
        self.on_event = on_event or (lambda name, **fields: None)
        self.on_exit = on_exit or (lambda: None)  # called from a waiter thread when any Envoy exits
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.generations = []  # oldest first; the last one is the current Envoy
        self.config_path = None
        self.next_epoch = 0
        self.deaths = 0  # failures in a row, for the backoff
        self.failures = 0  # failures ever: deaths of the current Envoy and restarts that did not come up
        self.last_failure = None  # what the last failure was, as a reader wants it
        self._failed_start = None
        self.cold_next = False  # a hot restart failed: the next start ends the old Envoy first
        self.next_restart_at = 0.0
        self.lock = threading.RLock()
        self.stopping = False

    # ------------------------------------------------------------ state

    @property
    def current(self):
        return self.generations[-1] if self.generations else None

    def serving(self):
        current = self.current
        return bool(current and current.alive() and current.live_at)

    def admin(self, path):
        """The body of a GET on the current Envoy's admin API; OSError when none runs."""
        current = self.current
        if current is None:
            raise OSError("no Envoy runs")
        return current.admin(path, timeout=2.0)

    def pids(self):
        return [g.pid for g in self.generations if g.alive()]

    def _base_id_path(self):
        return os.path.join(self.run_dir, "envoy-base-id")

    def _dynamic_base_id(self):
        with open(self._base_id_path()) as handle:
            return int(handle.read().strip())

    def _remove_shared_memory(self):
        """Envoy leaves its hot-restart shared memory behind, even after a clean exit."""
        try:
            base_id = self.base_id if self.base_id is not None else self._dynamic_base_id()
        except (OSError, ValueError):
            return
        try:
            os.unlink("/dev/shm/envoy_shared_memory_%d" % (base_id * 10))
        except OSError:
            pass

    # ------------------------------------------------------------ starting

    def _argv(self, epoch, config_path, admin_address_path):
        argv = [self.envoy_bin, "-c", config_path, "--restart-epoch", str(epoch),
                "--admin-address-path", admin_address_path, "--log-level", self.log_level,
                "--drain-time-s", str(int(max(0, self.drain_time))), "--drain-strategy", self.drain_strategy,
                "--parent-shutdown-time-s", str(int(max(1, self.parent_shutdown_time)))]
        if self.base_id is not None:
            argv += ["--base-id", str(self.base_id)]
        elif epoch == 0:
            argv += ["--use-dynamic-base-id", "--base-id-path", self._base_id_path()]
        else:
            argv += ["--base-id", str(self._dynamic_base_id())]
        if epoch > 0:
            # A parent that died meanwhile must not make the new Envoy wait for it and abort.
            argv.append("--skip-hot-restart-on-no-parent")
        if self.concurrency:
            argv += ["--concurrency", str(self.concurrency)]
        if self.log_path:
            argv += ["--log-path", self.log_path]
        return argv + list(self.extra_args)

    def _spawn(self, config_path):
        alive = [g for g in self.generations if g.alive()]
        if alive and self.cold_next:
            # An Envoy that failed while it started had already shut its parent's admin API down, and
            # left the shared hot-restart state "initializing": Envoy refuses every later hot restart
            # ("previous envoy process is still initializing"). Only a fresh epoch 0 starts again.
            self.on_event("cold-restart", ending=",".join(str(g.pid) for g in alive))
            for generation in alive:
                self._end(generation, signal.SIGTERM)
            alive = []
        epoch = self.next_epoch if alive else 0
        self.cold_next = False
        if epoch == 0:
            self._remove_shared_memory()  # of an Envoy that died: the new one may take another base id
        admin_address_path = os.path.join(self.run_dir, "envoy-admin-address.%d" % epoch)
        if os.path.exists(admin_address_path):
            os.unlink(admin_address_path)
        popen = subprocess.Popen(self._argv(epoch, config_path, admin_address_path), stdin=subprocess.DEVNULL,
                                 start_new_session=True, close_fds=True)
        generation = EnvoyGeneration(epoch, popen, admin_address_path, time.monotonic())
        self.generations.append(generation)
        self.next_epoch = epoch + 1
        # A thread waits on the process, so a death is noticed at once without polling.
        waiter = threading.Thread(target=self._wait_exit, args=(popen,), name="envoy-%d-wait" % epoch)
        waiter.daemon = True
        waiter.start()
        return generation

    def _wait_exit(self, popen):
        popen.wait()
        self.on_exit()

    def _wait_live(self, generation):
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not generation.alive():
                raise EnvoyStartError("Envoy (epoch %d) %s before it was ready"
                                      % (generation.epoch, describe_exit(generation.popen.returncode)))
            if generation.is_live():
                generation.live_at = time.monotonic()
                return
            time.sleep(0.01)
        self._end(generation, signal.SIGKILL)
        raise EnvoyStartError("Envoy (epoch %d) was not ready within %ss" % (generation.epoch, self.ready_timeout))

    def start(self, config_path):
        """Start Envoy, or hand over to a new generation with this bootstrap, and wait until it is live."""
        with self.lock:
            self.config_path = config_path
            previous = self.current
            generation = self._spawn(config_path)
            try:
                self._wait_live(generation)
            except EnvoyStartError:
                self.generations.remove(generation)
                self.cold_next = generation.epoch > 0
                raise
            # Only the new generation and its parent (which the new one drains and ends) may remain.
            for old in self.generations[:-2]:
                self._end(old, signal.SIGTERM)
            self._reap()
            kind = "hot-restart" if previous is not None and previous.alive() else "start"
            self.on_event(kind, epoch=generation.epoch, pid=generation.pid,
                          seconds=round(generation.live_at - generation.started, 3))
            return generation

    # ------------------------------------------------------------ watching

    def _reap(self):
        self.generations = [g for g in self.generations if g.alive() or g is self.current]

    def check(self):
        """Reap old generations and start Envoy again if the current one died (after a backoff).

        Call it when on_exit fires; returns the seconds until it must be called again (a restart
        is waiting out its backoff), or None when nothing is pending.
        """
        with self.lock:
            if self.stopping or self.config_path is None:
                return None
            current = self.current
            self._reap()
            if current is None or current.alive():
                return None
            now = time.monotonic()
            if self.next_restart_at == 0.0:
                if current.live_at and now - current.live_at > 30:
                    self.deaths = 0  # it stayed up a while: the backoff starts over
                self.deaths += 1
                self.failures += 1
                self.last_failure = self._failed_start or "Envoy %s" % describe_exit(current.popen.returncode)
                self._failed_start = None
                delay = min(self.backoff_max, self.backoff_base * 2 ** (self.deaths - 1))
                self.next_restart_at = now + delay
                self.on_event("died", epoch=current.epoch, pid=current.pid, code=current.popen.returncode,
                              restart_in=round(delay, 3))
            if now < self.next_restart_at:
                return self.next_restart_at - now
            self.next_restart_at = 0.0
            self.generations.remove(current)
            try:
                generation = self.start(self.config_path)
            except (EnvoyStartError, OSError) as err:
                self.generations.append(current)  # so the next check backs off further
                self._failed_start = str(err)
                self.on_event("restart-failed", error=str(err))
                return self.check()
            self.on_event("restarted", epoch=generation.epoch, pid=generation.pid)
            return None

    def restart_now(self):
        """After the config changed under a dead Envoy: start it at the next check(), the backoff anew."""
        with self.lock:
            if self.next_restart_at:
                self.next_restart_at = time.monotonic()
            self.deaths = 0

    # ------------------------------------------------------------ stopping

    def _end(self, generation, signum, timeout=10.0):
        if generation.alive():
            try:
                os.kill(generation.pid, signum)
            except ProcessLookupError:
                pass
        try:
            generation.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(generation.pid, signal.SIGKILL)
            generation.popen.wait(timeout)

    def reopen_logs(self):
        for generation in self.generations:
            if generation.alive():
                os.kill(generation.pid, signal.SIGUSR1)

    def stop(self, drain_time=None):
        """Drain the current Envoy's listeners, then end every generation and reap it."""
        with self.lock:
            self.stopping = True
            drain = self.drain_time if drain_time is None else drain_time
            current = self.current
            if drain > 0 and current is not None and current.alive() and current.live_at:
                try:
                    current.admin("/drain_listeners?graceful", method="POST")
                except Exception as err:  # nothing to drain through: end it anyway, and say why
                    self.on_event("drain-failed", epoch=current.epoch, pid=current.pid, error=repr(err))
                else:
                    time.sleep(drain)
            elif drain > 0:
                self.on_event("not-drained", live=bool(current and current.live_at),
                              alive=bool(current and current.alive()))
            for generation in reversed(self.generations):
                self._end(generation, signal.SIGTERM)
            self.generations = []
            self._remove_shared_memory()
