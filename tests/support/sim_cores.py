"""Simulated cores as real processes (python -m voltha_core_sim) registered in a real Consul, and
what the tests read back: the assignment they wrote and the leader holding the lock."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import parse_assignment

from .grpc_client import NbiClient
from .paths import source_env
from .processes import ManagedProcess, free_port


class Core:
    """One simulated core process registered in Consul."""

    def __init__(self, workdir: Path, core_id: str, consul_address: str, keys: dict, port: int | None = None,
                 env: dict | None = None):
        self.env = dict(source_env(), **(env or {}))  # e.g. CONSUL_HTTP_TOKEN_FILE, CONSUL_CACERT
        self.core_id = core_id
        self.port = port or free_port()
        self.log_path = workdir / f"{core_id}.log"
        self.argv = [sys.executable, "-m", "voltha_core_sim", "--core-id", core_id, "--host", "127.0.0.1",
                     "--port", str(self.port), "--consul-addr", consul_address, "--prefix", f"v{core_id}",
                     "--service-name", keys["service"], "--assignment-key", keys["assignment"],
                     "--lock-key", keys["lock"], "--check-interval", "1s", "--consul-wait", "5s"]
        self.process: ManagedProcess | None = None

    def start(self) -> Core:
        self.process = ManagedProcess(self.core_id, self.argv, self.log_path, env=self.env)
        client = NbiClient(f"127.0.0.1:{self.port}")
        try:
            self.process.wait_ready(lambda: self._answers(client), 20)
        finally:
            client.close()
        return self

    def _answers(self, client: NbiClient) -> bool:
        try:
            return client.get_voltha(timeout=0.5) == self.core_id
        except Exception:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.process:
            code = self.process.stop(timeout=10)
            return code
        return None


def assigned(kv, key) -> dict:
    """{core id: (host, port)} of the stored assignment, parsed as envoyd parses it; {} when missing."""
    _, item = kv.get(key)
    if item is None:
        return {}
    return {c.id: (c.host, c.port) for c in parse_assignment(item["Value"])}


def leader(kv, lock_key) -> str | None:
    _, item = kv.get(lock_key)
    if not item or not item.get("Session"):
        return None
    return json.loads(item["Value"])["core_id"]


def leader_instance(client, lock_key) -> str | None:
    """The instance id (CORE@HOST:PORT~RUN) whose session holds the lock, from the session's own
    checks; None when the lock is free or its session is gone."""
    _, item = client.kv.get(lock_key)
    if not item or not item.get("Session"):
        return None
    _, info = client.session.info(item["Session"])
    if not info:
        return None
    for check in list(info.get("Checks") or []) + list(info.get("ServiceChecks") or []):
        name = check if isinstance(check, str) else check.get("ID", "")
        if name.startswith("service:"):
            return name[len("service:"):]
    return None
