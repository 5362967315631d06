"""A real Envoy on loopback, from a v3 bootstrap, with its admin port learned from Envoy itself."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import yaml

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.binary import find_envoy

from .processes import ManagedProcess


class EnvoyProxy:
    def __init__(self, workdir: Path, bootstrap: dict | str):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_file = workdir / "envoy.yaml"
        text = bootstrap if isinstance(bootstrap, str) else yaml.safe_dump(bootstrap, sort_keys=False)
        self.config_file.write_text(text)
        self.admin_address_file = workdir / "admin-address"
        self.process: ManagedProcess | None = None

    @property
    def admin_url(self) -> str:
        return "http://" + self.admin_address_file.read_text().strip()

    def admin(self, path: str, method: str = "GET") -> bytes:
        req = urllib.request.Request(self.admin_url + path, method=method)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.read()

    def _ready(self) -> bool:
        if not self.admin_address_file.exists() or not self.admin_address_file.read_text().strip():
            return False
        try:
            return self.admin("/ready").strip() == b"LIVE"
        except OSError:
            return False

    def listener_port(self, name: str) -> int:
        """The port Envoy bound for a listener (useful with port_value 0)."""
        for listener in json.loads(self.admin("/listeners?format=json"))["listener_statuses"]:
            if listener["name"] == name:
                return listener["local_address"]["socket_address"]["port_value"]
        raise KeyError(f"Envoy has no listener {name!r}")

    def start(self, timeout: float = 30.0, extra_args: tuple[str, ...] = ()) -> EnvoyProxy:
        # No hot restart here, so no shared memory that Envoy would leave in /dev/shm when it exits.
        argv = [find_envoy(), "-c", str(self.config_file), "--disable-hot-restart",
                "--admin-address-path", str(self.admin_address_file), "--log-level", "warning", *extra_args]
        self.process = ManagedProcess("envoy", argv, self.workdir / "envoy.log")
        self.process.wait_ready(self._ready, timeout)
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()
            self.process = None
