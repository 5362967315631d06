"""Calls into the VOLTHA NBI through Envoy, reporting which core answered (the simulator's client)."""

from voltha_core_sim.nbi_client import NbiClient

__all__ = ["NbiClient"]
