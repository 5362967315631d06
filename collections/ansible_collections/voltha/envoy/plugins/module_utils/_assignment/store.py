# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Read and change the core assignment in Consul with check-and-set, so no concurrent write is lost.

Pure Python: no Ansible import, no py-consul import. ``kv`` is anything with py-consul's
``kv.get(key) -> (index, item)``, ``kv.put(key, value, cas=n) -> bool`` and
``kv.delete(key, cas=n) -> bool``, so the module, the lookup, envoyd or a test fake can use it.

Every change is a loop: read the key and its ModifyIndex (0 when the key is missing, which makes the
write "create only if still absent"), compute the wanted assignment from what was read, and write it
with ``cas=ModifyIndex``. When Consul refuses the write because someone else wrote in between, read
again and compute again, up to ``retries`` times.

Used by the core_assignment module and lookup, the envoy_config module and the core simulator's
leader.
"""

import json
import re
from collections import namedtuple

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import (
    DEFAULT_CORE_PORT,
    DEFAULT_KEY,
    AssignmentError,
    assignment_to_dict,
    dump_assignment,
    parse_assignment,
    parse_core,
)
from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError

DEFAULT_RETRIES = 3
CORE_FIELDS = ("id", "host", "port")
_DIGITS = re.compile(r"[0-9]+\Z")


class AssignmentStoreError(VolthaEnvoyError):
    """The change cannot be made; the message says why and what to do."""


class AssignmentConflictError(AssignmentStoreError):
    """Another writer kept changing the key: every check-and-set attempt lost."""

    def __init__(self, message, key=None, conflicts=0):
        super().__init__(message)
        self.key = key
        self.conflicts = conflicts


class StoredAssignmentInvalid(AssignmentStoreError):
    """The value stored in Consul is not a valid assignment (``error`` is the AssignmentError)."""

    def __init__(self, message, key=None, error=None):
        super().__init__(message)
        self.key = key
        self.error = error


# What one read of the key saw.
#   index         Consul's index of the read (X-Consul-Index)
#   exists        whether the key exists
#   modify_index  the key's ModifyIndex; 0 when it does not exist (cas=0 means "create only if absent")
#   raw           the stored value as text (None when missing)
#   cores         the parsed assignment (tuple of Core), or None when missing or invalid
#   error         the AssignmentError of an invalid stored value, else None
Snapshot = namedtuple("Snapshot", ["key", "index", "exists", "modify_index", "raw", "cores", "error"])

# What a change did (or, in check mode, would do).
#   before, after  Snapshot before / tuple of Core (or None when the key is deleted) after
#   index          the key's ModifyIndex after the write (or as read, when nothing was written);
#                  Consul's index when the key does not exist
#   conflicts      how many check-and-set attempts lost to another writer (and were retried)
Outcome = namedtuple("Outcome", ["key", "changed", "before", "after", "index", "conflicts", "written"])


def _decode(value):
    if value is None:
        return ""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("utf-8", "replace")
    return value


def normalize_cores(cores, what="cores"):
    """Cores given as a list of ``{prefix, id, host, port?}`` or a dict ``{prefix: {id, host, port?}}``.

    Returns the stored form, a dict prefix -> entry (not validated beyond its shape: parse_core and
    parse_assignment do that). Unknown fields are refused: they would be dropped silently otherwise.
    Ports given as digit strings (as Ansible templates may produce) become integers.
    """
    if isinstance(cores, dict):
        items = []
        for prefix in cores:
            items.append((prefix, cores[prefix]))
    elif isinstance(cores, (list, tuple)):
        items = []
        for position, entry in enumerate(cores):
            if not isinstance(entry, dict):
                raise AssignmentError("%s[%d]: must be a dict with prefix, id, host and optionally port, got %s"
                                      % (what, position, json.dumps(entry, default=str)), value=entry)
            if "prefix" not in entry:
                raise AssignmentError("%s[%d]: field 'prefix' is missing" % (what, position), field="prefix")
            entry = dict(entry)
            items.append((entry.pop("prefix"), entry))
    else:
        raise AssignmentError("%s must be a list of cores or a dict keyed by prefix, got %s"
                              % (what, type(cores).__name__), value=cores)
    result = {}
    for prefix, entry in items:
        if not isinstance(prefix, str) or not prefix.strip():
            raise AssignmentError("%s: a core's prefix must be a non-empty string, got %s"
                                  % (what, json.dumps(prefix, default=str)), field="prefix", value=prefix)
        if prefix in result:
            raise AssignmentError("%s: core %s is given more than once" % (what, json.dumps(prefix)),
                                  prefix=prefix, field="prefix", value=prefix)
        if isinstance(entry, dict):
            unknown = sorted(str(name) for name in entry if name not in CORE_FIELDS)
            if unknown:
                raise AssignmentError("core %s: unknown field(s) %s; a core has only id, host and port"
                                      % (json.dumps(prefix), ", ".join(repr(name) for name in unknown)),
                                      prefix=prefix, field=unknown[0])
            entry = dict(entry)
            port = entry.get("port")
            if isinstance(port, str) and _DIGITS.match(port.strip()):
                entry["port"] = int(port.strip())
            elif port is None:
                entry.pop("port", None)
        result[prefix] = entry
    return result


def normalize_prefixes(prefixes, what="remove"):
    """A list of prefixes to remove, checked to be non-empty strings."""
    if isinstance(prefixes, str) or not isinstance(prefixes, (list, tuple)):
        raise AssignmentError("%s must be a list of prefixes, got %s" % (what, json.dumps(prefixes, default=str)))
    result = []
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix.strip():
            raise AssignmentError("%s: a prefix must be a non-empty string, got %s"
                                  % (what, json.dumps(prefix, default=str)), field="prefix", value=prefix)
        if prefix not in result:
            result.append(prefix)
    return result


def cores_to_list(cores):
    """A tuple of Core as a list of dicts with prefix, id, host and port, sorted by prefix."""
    return [dict(prefix=c.prefix, id=c.id, host=c.host, port=c.port) for c in sorted(cores or ())]


def pretty(cores):
    """The assignment as indented JSON for a diff; empty text when there is none."""
    if cores is None:
        return ""
    return json.dumps(assignment_to_dict(cores), sort_keys=True, indent=2) + "\n"


def check_key(key):
    """A Consul KV key must be non-empty text without a leading slash."""
    if not isinstance(key, str) or not key.strip():
        raise AssignmentStoreError("key must be a non-empty Consul KV path, got %s" % json.dumps(key, default=str))
    if key.startswith("/"):
        raise AssignmentStoreError("key %s must not start with '/': Consul KV paths are relative, e.g. %s"
                                   % (json.dumps(key), DEFAULT_KEY))
    return key


class AssignmentStore:
    """The assignment under one Consul key."""

    def __init__(self, kv, key=DEFAULT_KEY, default_port=DEFAULT_CORE_PORT, allowed_networks=None):
        check_key(key)
        self.kv = kv
        self.key = key
        self.default_port = default_port
        self.allowed_networks = allowed_networks  # model.parse_networks' result; None allows any address

    def read(self):
        """One Snapshot of the key; an invalid stored value is reported in ``error``, not raised."""
        index, item = self.kv.get(self.key)
        index = int(index or 0)
        if item is None:
            return Snapshot(self.key, index, False, 0, None, None, None)
        raw = _decode(item.get("Value"))
        modify_index = int(item.get("ModifyIndex") or 0)
        try:
            cores = parse_assignment(raw, self.default_port, self.allowed_networks)
        except AssignmentError as err:
            return Snapshot(self.key, index, True, modify_index, raw, None, err)
        return Snapshot(self.key, index, True, modify_index, raw, cores, None)

    def read_valid(self, allow_missing=True):
        """A Snapshot whose value is valid (or missing, when allowed); raises StoredAssignmentInvalid."""
        snap = self.read()
        if snap.error is not None:
            raise self.invalid(snap)
        if not snap.exists and not allow_missing:
            raise AssignmentStoreError("key %s does not exist in Consul" % self.key)
        return snap

    def invalid(self, snap, doing=None):
        message = "the value stored at Consul key %s is not a valid assignment: %s" % (self.key, snap.error)
        if doing:
            message = "cannot %s: %s" % (doing, message)
        return StoredAssignmentInvalid(message, key=self.key, error=snap.error)

    # Computations: Snapshot -> tuple of Core (the wanted assignment) or None (delete the key).

    def parse(self, entries):
        """The wanted assignment from the stored form (dict prefix -> entry); raises AssignmentError."""
        return parse_assignment(entries, self.default_port, self.allowed_networks)

    def merge(self, snap, add=None, remove=None):
        """The assignment read with cores added or updated by prefix and prefixes removed.

        Returns None when the key does not exist and nothing is added (there is nothing to remove
        from); raises StoredAssignmentInvalid when the stored value cannot be merged into, and
        AssignmentStoreError when the result would have no cores.
        """
        if snap.error is not None:
            raise self.invalid(snap, "add or remove cores")
        entries = assignment_to_dict(snap.cores) if snap.cores else {}
        entries.update(add or {})
        for prefix in remove or ():
            entries.pop(prefix, None)
        if not entries:
            if not snap.exists:
                return None
            raise AssignmentStoreError(
                "removing %s would leave the assignment at %s with no cores; an empty assignment is invalid, "
                "use state=absent to delete the key" % (", ".join(json.dumps(p) for p in remove or ()), self.key))
        return self.parse(entries)

    # The check-and-set loop.

    def update(self, compute, retries=DEFAULT_RETRIES, check_mode=False):
        """Read, compute the wanted assignment, write it with check-and-set; retry on conflicts.

        ``compute(snapshot)`` returns a tuple of Core to store, or None to delete the key; it may
        raise (AssignmentError, AssignmentStoreError) to refuse. A stored value equal to the wanted one
        once parsed is left alone, even when its text is formatted differently. In check mode nothing
        is written.
        """
        conflicts = 0
        while True:
            snap = self.read()
            wanted = compute(snap)
            written = False
            if wanted is None:
                if not snap.exists:
                    return Outcome(self.key, False, snap, None, snap.index, conflicts, False)
                if check_mode:
                    return Outcome(self.key, True, snap, None, snap.index, conflicts, False)
                written = bool(self.kv.delete(self.key, cas=snap.modify_index))
            else:
                wanted = tuple(sorted(wanted))
                if snap.cores is not None and tuple(snap.cores) == wanted:
                    return Outcome(self.key, False, snap, wanted, snap.modify_index, conflicts, False)
                if check_mode:
                    return Outcome(self.key, True, snap, wanted, snap.modify_index or snap.index, conflicts, False)
                written = bool(self.kv.put(self.key, dump_assignment(wanted), cas=snap.modify_index))
            if written:
                return Outcome(self.key, True, snap, wanted, self._index_after_write(), conflicts, True)
            conflicts += 1
            if conflicts > retries:
                raise AssignmentConflictError(
                    "gave up writing Consul key %s after %d attempts: another writer keeps changing it between "
                    "our read and our check-and-set write (retries=%d)" % (self.key, conflicts, retries),
                    key=self.key, conflicts=conflicts)

    def _index_after_write(self):
        index, item = self.kv.get(self.key)
        if item is None:
            return int(index or 0)
        return int(item.get("ModifyIndex") or index or 0)

    def set(self, entries, retries=DEFAULT_RETRIES, check_mode=False):
        """Store exactly these cores (stored form, dict prefix -> entry); an invalid stored value is replaced."""
        wanted = self.parse(entries)  # validated before any read: a bad core never costs a round trip
        return self.update(lambda snap: wanted, retries, check_mode)

    def check_change(self, add=None, remove=None):
        """Refuse a bad added core, or a prefix both added and removed, without reading Consul."""
        add = add or {}
        both = sorted(set(add) & set(remove or ()))
        if both:
            raise AssignmentStoreError("core(s) %s are both added and removed; give each prefix once"
                                       % ", ".join(json.dumps(p) for p in both))
        for prefix in sorted(add):
            parse_core(prefix, add[prefix], self.default_port)

    def change(self, add=None, remove=None, retries=DEFAULT_RETRIES, check_mode=False):
        """Add or update cores by prefix (stored form) and remove prefixes."""
        self.check_change(add, remove)  # a bad core fails before any read
        return self.update(lambda snap: self.merge(snap, add, remove), retries, check_mode)

    def delete(self, retries=DEFAULT_RETRIES, check_mode=False):
        """Delete the key (whatever it holds)."""
        return self.update(lambda snap: None, retries, check_mode)
