#!/usr/bin/env python3
"""The Docker Engines of the lab and of the tests.

- `system`: the machine's own engine, which `make lab` deploys to: used when it answers, else (as root
  on Debian) started with its pidfile and log in STATE_DIR/docker.
- `up` / `down`: the tests' private engine. `make test` runs its Docker-facing stages on a dockerd of
  its own, in a network namespace of its own, with its data root in STATE_DIR/test-engine: a fresh
  clone means a fresh engine, and the machine's own engine (its swarm, stacks, networks, volumes) is
  never touched. `down` stops it by its PID and removes the namespace; its data (images, swarm) stays
  for the next run.

Standard library only: setup and the test runner use it before and outside the venv.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("STATE_DIR", REPO / ".state")).resolve()
START_TIMEOUT = 90.0
STOP_TIMEOUT = 60.0  # dockerd gives each container 15 s to stop before it kills it


class EngineError(Exception):
    """The engine could not be had; the message says what to do."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def engine_version(endpoint: str, timeout: float = 3.0) -> str | None:
    """The Engine's version if a daemon answers at endpoint (unix:// or tcp://), else None."""
    url = urlparse(endpoint)
    try:
        if url.scheme == "unix":
            conn = _UnixHTTPConnection(url.path, timeout)
        elif url.scheme in ("tcp", "http"):
            conn = http.client.HTTPConnection(url.hostname, url.port or 2375, timeout=timeout)
        else:
            return None
        conn.request("GET", "/version")
        resp = conn.getresponse()
        body = resp.read().decode()
        conn.close()
    except OSError:
        return None
    match = re.search(r'"Version":"([^"]+)"', body)
    return match.group(1) if resp.status == 200 and match else None


def _log_tail(logfile: Path, lines: int = 15) -> str:
    try:
        return "\n    ".join(logfile.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _start_dockerd(argv: list[str], endpoint: str, logfile: Path) -> tuple[subprocess.Popen, str]:
    """Start dockerd (argv), wait until it answers at endpoint; on failure stop it and say why."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        version = engine_version(endpoint)
        if version:
            return proc, version
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    if proc.poll() is None:
        proc.terminate()
        proc.wait(STOP_TIMEOUT)
    raise EngineError(f"dockerd did not answer within {START_TIMEOUT:.0f} s. Its log ends with:\n    "
                      f"{_log_tail(logfile)}")


def _pid_alive(pid: int) -> bool:
    try:  # a child of ours that exited is a zombie until reaped, and kill(0) would still find it
        return os.waitpid(pid, os.WNOHANG)[0] != pid
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _stop_pid(pid: int, timeout: float = STOP_TIMEOUT) -> str:
    """SIGTERM the process, SIGKILL it after timeout; say which it took."""
    if not _pid_alive(pid):
        return "was not running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return "stopped"
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return f"killed after {timeout:.0f} s"


# ---------------------------------------------------------------- the machine's own engine

def system_endpoint() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def ensure_system_engine() -> str:
    """The engine `make lab` uses: the one that answers, else (root, Debian) a dockerd started here."""
    endpoint = system_endpoint()
    version = engine_version(endpoint)
    if version:
        return f"Docker Engine {version} answers at {endpoint}"
    if "DOCKER_HOST" in os.environ:
        raise EngineError(f"DOCKER_HOST={endpoint} does not answer. Start that daemon or unset DOCKER_HOST.")
    if os.geteuid() != 0 or not shutil.which("dockerd"):
        raise EngineError("No Docker Engine answers at /var/run/docker.sock. Start Docker Engine (Debian: apt-get "
                          "install docker.io), or set DOCKER_HOST; make lab starts one itself only as root.")
    state = STATE / "docker"
    pidfile, logfile = state / "dockerd.pid", state / "dockerd.log"
    proc, version = _start_dockerd(["dockerd", "--storage-driver=overlay2", f"--pidfile={pidfile}"], endpoint,
                                   logfile)
    return f"started dockerd {version} (pid {proc.pid}, log {logfile}; stop it with kill $(cat {pidfile}))"


# ---------------------------------------------------------------- the tests' private engine

class TestEngine:
    """A dockerd in a network namespace of its own, its data root in STATE_DIR/test-engine.

    Its name (namespace, containerd namespace, run directory) is derived from the state directory, so
    two clones have two engines that never meet.
    """

    __test__ = False  # a name pytest would otherwise collect

    def __init__(self, state: Path = STATE):
        self.state = state / "test-engine"
        self.name = "voltha-envoy-" + hashlib.sha256(str(state).encode()).hexdigest()[:8]
        self.netns = Path("/run/netns") / self.name
        # Sockets live under /run: a unix socket's path must stay short, which a state dir may not be.
        self.run_dir = Path("/run") / self.name
        self.socket = self.run_dir / "docker.sock"
        self.pidfile = self.state / "dockerd.pid"
        self.logfile = self.state / "dockerd.log"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run in the engine's network namespace (its loopback is where published ports are)."""
        return ["nsenter", f"--net={self.netns}", "--", *argv]

    def _ours(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return f"--data-root={self.state / 'data'}".encode() in cmdline

    def up(self) -> str:
        if os.geteuid() != 0:
            raise EngineError("make test runs its Docker stages on a Docker Engine of its own in a network namespace, "
                              "which needs root. Run it as root, or set VOLTHA_TEST_DOCKER_HOST to an engine the "
                              "tests may use (they form a swarm and deploy stacks on it).")
        missing = [tool for tool in ("dockerd", "nsenter", "ip") if not shutil.which(tool)]
        if missing:
            raise EngineError(f"{', '.join(missing)} not found: run `make setup` (it installs docker.io on Debian).")
        found = ""
        pid = _read_pid(self.pidfile)
        if pid and _pid_alive(pid) and self._ours(pid):
            if engine_version(self.endpoint) and self.netns.exists():
                return f"{self.name}: running already (pid {pid})"
            found = f"; an earlier run's dockerd (pid {pid}) {_stop_pid(pid)}"
        self._remove_netns()
        for cmd in (["ip", "netns", "add", self.name], ["ip", "-n", self.name, "link", "set", "lo", "up"]):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                self._remove_netns()
                raise EngineError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()}")
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        argv = self.wrap(["dockerd", f"--data-root={self.state / 'data'}", f"--exec-root={self.run_dir / 'exec'}",
                          f"--host={self.endpoint}", f"--pidfile={self.pidfile}", "--storage-driver=overlay2",
                          # Its own containerd namespaces, should it share a system containerd.
                          f"--containerd-namespace={self.name}", f"--containerd-plugins-namespace={self.name}-plugins"])
        try:
            proc, version = _start_dockerd(argv, self.endpoint, self.logfile)
        except EngineError:
            self._remove_netns()
            raise
        return (f"{self.name}: started dockerd {version} (pid {proc.pid}) in network namespace {self.name}, "
                f"data in {self.state / 'data'}{found}")

    def down(self) -> str:
        pid = _read_pid(self.pidfile)
        said = "no dockerd was running"
        if pid and self._ours(pid):
            said = f"dockerd (pid {pid}) {_stop_pid(pid)}"
            # dockerd mounts its data root on itself and its exec root's netns, and leaves both mounted.
            unmount_under(self.state / "data", self.run_dir)
        self._remove_netns()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        return f"{self.name}: {said}, network namespace removed; images and swarm kept in {self.state / 'data'}"

    def _remove_netns(self) -> None:
        if self.netns.exists():
            subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)


def unmount_under(*directories: Path) -> list[str]:
    """Unmount (lazily, deepest first) every mount at or under ``directories``: what a stopped dockerd left."""
    roots = [str(directory).rstrip("/") for directory in directories]
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    mine = [m for m in mounts if any(m == root or m.startswith(root + "/") for root in roots)]
    said = []
    for point in sorted(set(mine), key=len, reverse=True):
        if not subprocess.run(["umount", "-l", point], capture_output=True, timeout=30).returncode:
            said.append(f"unmounted {point}")
    return said


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["system", "up", "down", "endpoint"],
                        help="system: the engine make lab uses; up/down: the tests' private engine; "
                             "endpoint: print the private engine's DOCKER_HOST")
    args = parser.parse_args()
    try:
        if args.action == "system":
            print(f"docker: {ensure_system_engine()}")
        elif args.action == "up":
            print(f"test engine: {TestEngine().up()}")
        elif args.action == "down":
            print(f"test engine: {TestEngine().down()}")
        else:
            print(TestEngine().endpoint)
    except EngineError as err:
        print(f"docker: FAILED: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
