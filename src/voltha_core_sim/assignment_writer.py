"""The leader's job: the assignment key holds the cores whose health checks pass.

``assignment_from_health`` turns Consul's ``/v1/health/service/<name>?passing`` answer into the
stored form of the assignment, with the same validation as envoyd (``assignment.parse_core`` and
unique ids); an instance that would make the assignment invalid is left out and reported, so one
bad registration cannot keep the others out. ``AssignmentWriter`` stores it with check-and-set.
"""

from __future__ import annotations

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import AssignmentError, parse_core
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

    Two healthy instances of one core (a rolling update starts the new one first): the newest
    registration wins, so traffic moves to the new instance before the old one stops."""
    cores: dict[str, dict] = {}
    ids: dict[str, str] = {}
    skipped: list[str] = []

    def newest_first(entry):
        service = entry.get("Service") or {}
        return -int(service.get("CreateIndex") or 0), str(service.get("ID"))

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

    def write(self, cores: dict):
        if not self.is_leader() or not cores:
            return None
        wanted = self.store.parse(cores)  # the same validation as envoyd; raises AssignmentError
        return self.store.update(lambda snapshot: wanted)
