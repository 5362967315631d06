"""The design this project grew from, run beside envoyd: on every new index of the key, a bootstrap
with the cores in a static cluster and a new Envoy taking over from the last by a hot restart.

The floor's watcher (a blocking query that acts on every new index, as the seed's did) with the seed's
way into Envoy: envoyd's own Envoy supervisor does the hot restarts (base id, epochs, drain), so what
differs from envoyd's hot-restart mode is only when and with what a restart happens.
"""

from __future__ import annotations

import json
from pathlib import Path

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.binary import find_envoy
from envoyd.supervisor import EnvoySupervisor
from tests.bench.floor import FloorWatcher, bootstrap


class SeedWatcher(FloorWatcher):
    """A hot restart of Envoy on every new index; stop() ends every Envoy it started."""

    def __init__(self, workdir: Path, consul_address: str, key: str):
        super().__init__(workdir, consul_address, key)
        self.supervisor = EnvoySupervisor(find_envoy(), str(workdir), drain_time=1.0, parent_shutdown_time=2.0,
                                          log_level="error", log_path=str(workdir / "envoy.log"))
        self.restarts = 0

    def write(self, cores: dict) -> None:
        self.version += 1
        path = self.workdir / f"envoy-{self.version}.json"
        path.write_text(json.dumps(bootstrap(self.listen_port, self.admin_port, cores=cores)))
        started = self.supervisor.pids()
        self.supervisor.start(str(path))
        self.restarts += bool(started)
        for old in self.workdir.glob("envoy-*.json"):
            if old != path and old.stat().st_mtime < path.stat().st_mtime - 30:
                old.unlink()

    def start(self) -> SeedWatcher:
        import threading

        self.write({})
        self.thread = threading.Thread(target=self._watch, name="seed-watch", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread:
            self.thread.join(5)
        self.supervisor.stop(drain_time=0)
