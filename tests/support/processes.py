"""Start a real daemon, wait until it is ready, stop it by its PID whatever happens."""

from __future__ import annotations

import os
import random
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

# Ports are handed out below the kernel's ephemeral range (32768-60999 by default), where no outgoing
# connection takes one as its source port, and never twice in one process: the kernel's own pick (bind to
# port 0, close) gave one port to two agents of one Consul cluster, whose second then could not listen.
_PORTS = range(15000, 32000)
_ports_given: set[int] = set()


def _bindable(port: int) -> bool:
    """Nothing holds ``port`` on 127.0.0.1, over TCP or UDP (Consul's serf listens on both)."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1, TCP and UDP, that nothing holds now and this process has not handed out before."""
    start = random.randrange(len(_PORTS))
    for step in range(len(_PORTS)):
        port = _PORTS[(start + step) % len(_PORTS)]
        if port not in _ports_given and _bindable(port):
            _ports_given.add(port)
            return port
    raise RuntimeError(f"no free port left in {_PORTS.start}-{_PORTS.stop - 1} on 127.0.0.1")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class ManagedProcess:
    """A child process in its own session, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict | None = None,
                 open_files: int | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")
        # open_files: the process's open-files limit, soft and hard (its children inherit it).
        limit = None if open_files is None else (lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                                              (open_files, open_files)))
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env, preexec_fn=limit)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, predicate: Callable[[], bool], timeout: float) -> None:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            return predicate()
        try:
            wait_for(ready, timeout, f"{self.name} to become ready")
        except TimeoutError as err:
            raise TimeoutError(f"{err}\n{self.log_tail()}") from None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after timeout; always reaps the child and closes the log."""
        try:
            if self.alive():
                os.kill(self.pid, signal.SIGCONT)  # a process a test froze could not act on SIGTERM
                os.kill(self.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.kill(self.pid, signal.SIGKILL)
                    self.proc.wait(timeout)
            return self.proc.returncode
        finally:
            self._log.close()
