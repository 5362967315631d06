"""Calls into the VOLTHA NBI through Envoy, reporting which core answered (the simulator's client)."""

from voltha_core_sim.nbi_client import NbiClient

__all__ = ["NbiClient", "cores_answering"]


def cores_answering(nbi: str, calls: int = 12) -> set[str]:
    """The cores that answer ``calls`` CreateDevice calls through ``nbi`` (host:port), on a connection of their own."""
    client = NbiClient(nbi)
    try:
        return {client.create_device(timeout=3) for _ in range(calls)}
    finally:
        client.close()
