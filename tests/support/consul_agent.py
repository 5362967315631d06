"""A real Consul dev agent on free loopback ports."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from .paths import consul_binary
from .processes import ManagedProcess, free_port


class ConsulAgent:
    def __init__(self, workdir: Path, http_port: int | None = None, extra_config: dict | None = None):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.http_port = http_port or free_port()
        self.config_file = workdir / "consul.json"
        self.config_file.write_text(json.dumps({
            "ports": {"http": self.http_port, "serf_lan": free_port(), "serf_wan": free_port(),
                      "server": free_port(), "dns": -1, "grpc": -1},
            "disable_update_check": True,
            "log_level": "warn",
            **(extra_config or {}),
        }))
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def has_leader(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v1/status/leader", timeout=1) as resp:
                return json.load(resp) not in ("", None)
        except OSError:
            return False

    def start(self, timeout: float = 30.0) -> ConsulAgent:
        argv = [consul_binary(), "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
                "-node", f"test-{self.http_port}", "-config-file", str(self.config_file)]
        self.process = ManagedProcess("consul", argv, self.workdir / "consul.log")
        self.process.wait_ready(self.has_leader, timeout)
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()
            self.process = None

    def client(self):
        import consul  # py-consul
        return consul.Consul(host="127.0.0.1", port=self.http_port)
