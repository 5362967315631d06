"""The assignment value the tests write to Consul: one entry per simulated core, keyed by its prefix."""

from __future__ import annotations

import json


def assignment_of(*servers) -> str:
    """The stored form of an assignment of ``servers`` (each with core_id and port) on loopback."""
    return json.dumps({f"prefix-{s.core_id}": {"id": s.core_id, "host": "127.0.0.1", "port": s.port}
                       for s in servers})
