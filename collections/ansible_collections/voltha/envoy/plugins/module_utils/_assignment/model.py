# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The core assignment: which VOLTHA cores serve, as stored in Consul.

The stored form is a JSON object keyed by a prefix (a core store, as in VOLTHA 1.x), one entry per
store: ``{"<prefix>": {"id": "<core id>", "host": "<ip or dns name>", "port": 50556}}``; ``port`` is
optional. A core may serve several stores (it took over those of a core that died): its entries then
name the same host and port.
Parsing is strict and every error names the prefix, the field and the value, so a bad write in
Consul can be found and fixed. Cores are kept sorted by prefix: equal data renders equal bytes.

Used by the core_assignment module and lookup, the envoy_config module and envoyd (through
_envoy/render.py's build), and the core simulator.
"""

import ipaddress
import json
import re
from collections import namedtuple

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError

DEFAULT_KEY = "service/voltha/data/core/assignment"
DEFAULT_CORE_PORT = 50556
MAX_HOST_LENGTH = 253
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")  # used with match(): anchored at both ends


class AssignmentError(VolthaEnvoyError, ValueError):
    """The assignment cannot be used; the message names what is wrong and where."""

    def __init__(self, message, prefix=None, field=None, value=None):
        super().__init__(message)
        self.prefix = prefix
        self.field = field
        self.value = value


Core = namedtuple("Core", ["prefix", "id", "host", "port"])
_MISSING = object()


def _show(value, limit=80):
    """A value as it should appear in an error message: JSON, cut when long."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= limit else "%s... (%d characters)" % (text[:limit], len(text))


# The kinds of hosts seen last: a change names mostly the hosts of the one before, and 10,000
# ipaddress parses cost tens of milliseconds. A plain dict of strings, emptied when full: the
# garbage collector never looks into it, as it would into an lru_cache's 65,536 linked nodes.
_HOST_KINDS = {}
HOST_KINDS_KEPT = 32768
_UNKNOWN = object()


def host_kind(host):
    """'ipv4', 'ipv6' or 'dns' for a valid host; None when it is neither an IP address nor a DNS name.

    IPv6 scope ids (``fe80::1%eth0``) are refused: Envoy's socket addresses do not take them, and
    Python's parser accepts any text after the ``%``.
    """
    kind = _HOST_KINDS.get(host, _UNKNOWN)
    if kind is _UNKNOWN:
        if len(_HOST_KINDS) >= HOST_KINDS_KEPT:
            _HOST_KINDS.clear()
        kind = _HOST_KINDS[host] = _kind_of(host)
    return kind


def _kind_of(host):
    if "%" in host:
        return None
    try:
        return "ipv%d" % ipaddress.ip_address(host).version
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > MAX_HOST_LENGTH:
        return None
    labels = name.split(".")
    if all(_DNS_LABEL.match(label) for label in labels) and not labels[-1].isdigit():
        return "dns"
    return None


def _is_unicode_text(text):
    if text.isascii():  # most ids: no encoding needed to know
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _field_error(prefix, field, value, why):
    return AssignmentError("core %s: field %r %s, got %s" % (_show(prefix), field, why, _show(value)),
                           prefix=prefix, field=field, value=value)


def parse_networks(value):
    """Allowed networks from a list or a comma-separated text of CIDRs -> tuple of ip_network; None or
    empty -> None (every address allowed). Raises AssignmentError naming the bad entry."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    networks = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise AssignmentError("allowed networks: %s is not a network (a CIDR such as 10.0.0.0/8)" % _show(text),
                                  field="allowed_networks", value=text) from None
    return tuple(networks) or None


def _networks_text(networks):
    return ", ".join(str(n) for n in networks)


def check_allowed(prefix, host, networks):
    """Raise AssignmentError unless ``host`` is an IP address inside one of ``networks``."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise _field_error(prefix, "host", host, "must be an IP address in the allowed networks (%s): a DNS name "
                           "cannot be checked" % _networks_text(networks)) from None
    if not any(address.version == n.version and address in n for n in networks):
        raise _field_error(prefix, "host", host, "is outside the allowed networks (%s)" % _networks_text(networks))


def parse_core(prefix, entry, default_port=DEFAULT_CORE_PORT, allowed_networks=None, kinds=None):
    """Validate one entry of the assignment and return it as a Core; with ``allowed_networks`` (from
    parse_networks) its host must be an address inside one of them. ``kinds`` (a dict) gets the
    host's kind, so that what comes after the parse need not work it out again."""
    if not isinstance(entry, dict):
        raise AssignmentError("core %s: must be a JSON object with 'id' and 'host', got %s"
                              % (_show(prefix), _show(entry)), prefix=prefix, value=entry)
    # Written for speed as well: it runs for each of 10,000 cores on every change.
    core_id, host, port = entry.get("id", _MISSING), entry.get("host", _MISSING), entry.get("port", default_port)
    for field, value in (("id", core_id), ("host", host)):
        if value is _MISSING:
            raise AssignmentError("core %s: field %r is missing" % (_show(prefix), field), prefix=prefix, field=field)
    if not isinstance(core_id, str) or not core_id.strip():
        raise _field_error(prefix, "id", core_id, "must be a non-empty string")
    if not _is_unicode_text(core_id):
        raise _field_error(prefix, "id", core_id, "must be valid Unicode text (it has a lone surrogate)")
    if not isinstance(host, str):
        raise _field_error(prefix, "host", host, "must be a string")
    kind = host_kind(host)
    if kind is None:
        raise _field_error(prefix, "host", host, "must be an IP address or a DNS name")
    if kinds is not None:
        kinds[host] = kind
    if allowed_networks:
        check_allowed(prefix, host, allowed_networks)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _field_error(prefix, "port", port, "must be an integer from 1 to 65535")
    return Core(prefix, core_id, host, port)


def parse_assignment(raw, default_port=DEFAULT_CORE_PORT, allowed_networks=None, kinds=None):
    """Parse the stored value (bytes, text, or an already decoded object) into a sorted tuple of Cores.

    Raises AssignmentError for anything that is not a non-empty, valid assignment, or that names a
    host outside ``allowed_networks`` (parse_networks' result; None allows every address). ``kinds``
    (a dict) gets each host's kind (host_kind), found once here.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise AssignmentError("assignment is not UTF-8 text: %s" % err) from err
    if isinstance(raw, str):
        if not raw.strip():
            raise AssignmentError("assignment is empty")
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise AssignmentError("assignment is not valid JSON: %s" % err) from err
    else:
        data = raw
    if not isinstance(data, dict):
        raise AssignmentError("assignment must be a JSON object of cores keyed by prefix, got %s" % _show(data),
                              value=data)
    if not data:
        raise AssignmentError("assignment has no cores")
    cores = tuple(parse_core(prefix, data[prefix], default_port, allowed_networks, kinds) for prefix in sorted(data))
    seen = {}
    for core in cores:
        other = seen.get(core.id)
        if other is not None and (other.host, other.port) != (core.host, core.port):
            raise AssignmentError("core %s: field 'id' duplicates core %s at another address (%s), got %s"
                                  % (_show(core.prefix), _show(other.prefix),
                                     _show("%s:%s" % (other.host, other.port)), _show(core.id)),
                                  prefix=core.prefix, field="id", value=core.id)
        seen.setdefault(core.id, core)
    return cores


def distinct_cores(cores):
    """One Core per core id (its first prefix): a core serving several stores is one upstream."""
    seen = {}
    for core in cores:
        seen.setdefault(core.id, core)
    return tuple(seen.values())


def assignment_to_dict(cores):
    """The stored form of a tuple of Cores (the inverse of parse_assignment)."""
    return dict((c.prefix, {"id": c.id, "host": c.host, "port": c.port}) for c in cores)


def dump_assignment(cores):
    """Canonical JSON text of the assignment: sorted keys, no spaces, so equal data compares equal."""
    return json.dumps(assignment_to_dict(cores), sort_keys=True, separators=(",", ":"))
