"""envoyd as users run it: a real process with its own Envoy, talking to a real Consul."""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .paths import source_env
from .processes import ManagedProcess, free_port, wait_for


def envoyd_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "envoyd", *args]


envoyd_env = source_env


class Envoyd:
    def __init__(self, workdir: Path, consul_address: str, reload: str = "dynamic", extra: tuple[str, ...] = (),
                 open_files: int | None = None):
        self.workdir = workdir
        self.open_files = open_files
        workdir.mkdir(parents=True, exist_ok=True)
        self.listen_port = free_port()
        self.status_port = free_port()
        self.config_dir = workdir / "config"
        self.argv = envoyd_argv(
            "--consul-addr", consul_address, "--config-dir", str(self.config_dir), "--reload", reload,
            "--status-addr", f"127.0.0.1:{self.status_port}", "--var", "listen_address=127.0.0.1",
            "--var", f"listen_port={self.listen_port}", "--var", "admin_port=0",
            "--var", f"access_log_path={workdir / 'access.log'}", "--drain-time", "1s",
            "--parent-shutdown-time", "2s", "--consul-wait", "5s", *extra)
        self.process: ManagedProcess | None = None

    @property
    def nbi(self) -> str:
        return f"127.0.0.1:{self.listen_port}"

    def _get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}{path}", timeout=2) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def healthy(self) -> bool:
        try:
            return self._get("/healthz")[0] == 200
        except OSError:
            return False

    def status(self, brief: bool = False) -> dict:
        return json.loads(self._get("/status?brief=1" if brief else "/status")[1])

    def metrics(self) -> dict[str, float]:
        """Samples by name with labels, e.g. 'envoyd_rejects_total{reason="envoy"}'."""
        text = self._get("/metrics")[1].decode()
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^([^#\s][^ ]*) (\S+)$", text, re.M)}

    def metric(self, name: str) -> float:
        return self.metrics().get(name, 0.0)

    def envoy_pids(self) -> list[int]:
        return [g["pid"] for g in self.status(brief=True)["envoy"] if g["alive"]]

    def start(self, wait_healthy: bool = True, timeout: float = 30.0) -> Envoyd:
        self.process = ManagedProcess("envoyd", self.argv, self.workdir / "envoyd.log", env=envoyd_env(),
                                      open_files=self.open_files)
        if wait_healthy:
            self.process.wait_ready(self.healthy, timeout)
        else:
            self.process.wait_ready(lambda: self._status_up(), timeout)
        return self

    def _status_up(self) -> bool:
        try:
            self._get("/metrics")
            return True
        except OSError:
            return False

    def wait_metric(self, name: str, at_least: float, timeout: float = 15.0) -> None:
        wait_for(lambda: self.metric(name) >= at_least, timeout, f"{name} >= {at_least}")

    def log(self) -> str:
        return (self.workdir / "envoyd.log").read_text(errors="replace")

    def stop(self) -> int | None:
        if self.process:
            code = self.process.stop(timeout=20)
            self.process = None
            return code
        return None
