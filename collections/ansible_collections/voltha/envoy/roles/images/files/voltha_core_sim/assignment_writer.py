"""The leader's job: the assignment key gives every core store to a core whose health check passes.

``assignment_from_health`` turns Consul's ``/v1/health/service/<name>?passing`` answer into each
healthy core's home store (its prefix), with the same validation as envoyd (``assignment.parse_core``
and unique ids); an instance that would make the assignment invalid is left out and reported, so one
bad registration cannot keep the others out. ``assign_stores`` adds the stores that hold devices but
whose own core is gone, as VOLTHA 1.x's leader did: each stays with the core that has it, or goes to
the healthy core with the fewest stores. ``AssignmentWriter`` stores it with check-and-set.
"""

from __future__ import annotations

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import (
    AssignmentError,
    assignment_to_dict,
    parse_core,
)
from ansible_collections.voltha.envoy.plugins.module_utils._assignment.store import AssignmentStore


def instance_entry(entry: dict) -> tuple[str, dict]:
    """(prefix, {id, host, port}) of one health entry; the prefix and id come from the service's Meta."""
    service = entry.get("Service") or {}
    meta = service.get("Meta") or {}
    core_id = meta.get("core_id") or service.get("ID")
    prefix = meta.get("prefix") or core_id
    host = service.get("Address") or (entry.get("Node") or {}).get("Address")
    return prefix, {"id": core_id, "host": host, "port": service.get("Port")}


def assignment_from_health(entries) -> tuple[dict, list[str]]:
    """(stored form {prefix: {id, host, port}}, reasons for the instances left out).

    Two healthy instances of one core: the one whose process started last wins (its Meta
    ``started``; then the newest registration). A rolling update starts the new one first, so
    traffic moves to it before the old one stops; and when a node comes back after the swarm
    started its core elsewhere, its old instance (registered again by its agent, so the newer
    registration) does not take the traffic back just before the swarm stops it."""
    cores: dict[str, dict] = {}
    ids: dict[str, str] = {}
    skipped: list[str] = []

    def newest_first(entry):
        service = entry.get("Service") or {}
        try:
            started = float((service.get("Meta") or {}).get("started") or 0)
        except ValueError:
            started = 0.0
        return -started, -int(service.get("CreateIndex") or 0), str(service.get("ID"))

    for entry in sorted(entries or (), key=newest_first):
        prefix, core = instance_entry(entry)
        try:
            parse_core(prefix, core)
        except AssignmentError as err:
            skipped.append(str(err))
            continue
        if prefix in cores:
            skipped.append(f"core {prefix!r}: prefix also used by core {cores[prefix]['id']!r}, "
                           f"left out {core['id']!r}")
            continue
        if core["id"] in ids:
            skipped.append(f"core {prefix!r}: id {core['id']!r} also used by prefix {ids[core['id']]!r}")
            continue
        cores[prefix] = core
        ids[core["id"]] = prefix
    return cores, skipped


def frozen(cores: dict) -> tuple:
    """A comparable, hashable form of the stored assignment (for change detection)."""
    return tuple(sorted((prefix, c["id"], c["host"], c["port"]) for prefix, c in cores.items()))


def _core_key(core: dict) -> tuple:
    return core["id"], core["host"], core.get("port")


def assign_stores(homes: dict, stores, current: dict | None = None) -> dict:
    """The stored assignment: every healthy core with its home store (``homes``, prefix -> core),
    and every other store in ``stores`` (prefixes that hold devices) given to a healthy core: the one
    ``current`` (the stored assignment) names while it is healthy, else the one with the fewest
    stores (then the lowest core id). With no healthy core there is nothing to give."""
    wanted = {prefix: dict(core) for prefix, core in homes.items()}
    if not wanted:
        return {}
    healthy = {_core_key(core): core for core in homes.values()}
    load = {key: 0 for key in healthy}
    for core in wanted.values():
        load[_core_key(core)] += 1
    current = current or {}
    orphans = sorted(set(stores) - set(wanted))
    for prefix in orphans:
        kept = current.get(prefix)
        if kept is not None and _core_key(kept) in healthy:
            key = _core_key(kept)
        else:
            key = min(load, key=lambda k: (load[k], k[0], k[1], k[2] or 0))
        wanted[prefix] = dict(healthy[key])
        load[key] += 1
    return wanted


class AssignmentWriter:
    """Writes the wanted assignment when this core is the leader.

    ``store`` is an AssignmentStore over a kv whose writes only the lock holder can make
    (election.LeaderKV); ``is_leader`` is a callable. ``write`` returns the store's Outcome, or None
    when nothing was attempted (not the leader, or no healthy core: an empty assignment is invalid,
    so the last one stays).
    """

    def __init__(self, store: AssignmentStore, is_leader):
        self.store = store
        self.is_leader = is_leader

    def write(self, cores: dict, stores=()):
        """Store the healthy cores' home stores (``cores``) and give them the other ``stores``."""
        if not self.is_leader() or not cores:
            return None

        def compute(snapshot):
            current = assignment_to_dict(snapshot.cores or ())
            # The same validation as envoyd; raises AssignmentError.
            return self.store.parse(assign_stores(cores, stores, current))
        return self.store.update(compute)
