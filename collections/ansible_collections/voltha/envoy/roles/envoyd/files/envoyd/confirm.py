# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Did Envoy take the resource files envoyd wrote? Envoy's own account, from its admin API: the
version_text of its cds and lds subscriptions and of each EDS cluster's (the files' version_info) and
their update_rejected counters, and a rejection's reason from the error_state of /config_dump.

Used by envoyd's applier after every write of the dynamic layout. No Ansible imports: the daemon
runs it.
"""

import json
import re
import time
from urllib.parse import quote

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError

# The subscriptions envoyd writes files for, by the stat prefix Envoy counts them under; besides them,
# "eds CLUSTER", the endpoints of an EDS cluster, counted under cluster.CLUSTER.
SUBSCRIPTIONS = {"cds": "cluster_manager.cds", "lds": "listener_manager.lds"}
EDS_KIND = "eds "
# Where /config_dump keeps each subscription's resources (and their error_state).
DUMP_RESOURCES = {"cds": "dynamic_active_clusters", "lds": "dynamic_listeners",
                  EDS_KIND: "dynamic_endpoint_configs&include_eds"}
_SUBSCRIPTION_STAT = r"(cluster_manager\.cds|listener_manager\.lds|cluster\.(.+))\.(version_text|update_rejected)"
STATS_PATH = "/stats?filter=" + quote(r"^(%s|cluster_manager\.warming_clusters)$" % _SUBSCRIPTION_STAT)
_STAT_LINE = re.compile(r"^%s: (.*)$" % _SUBSCRIPTION_STAT)
_PREFIX_KIND = {prefix: kind for kind, prefix in SUBSCRIPTIONS.items()}
WARMING_POLL_S = 0.02  # the longest pause between questions while a cluster warms
_WARMING = re.compile(r"^cluster_manager\.warming_clusters: ([0-9]+)$", re.M)
_VERSION_INFO = re.compile(r'^\{"version_info":"([^"]*)"')


class EnvoyRejected(VolthaEnvoyError):
    """Envoy refused a resource file: which subscription, the version it refused, and why."""

    def __init__(self, kind, version, reason):
        self.kind, self.version, self.reason = kind, version, reason
        super().__init__("Envoy rejected %s version %s: %s" % (kind, version, reason))


class NotConfirmed(VolthaEnvoyError):
    """Envoy neither took nor refused the files in time."""


class XdsState:
    """Envoy's account of one subscription: the version it serves and how many updates it refused."""

    __slots__ = ("version", "rejected")

    def __init__(self, version=None, rejected=0):
        self.version, self.rejected = version, rejected

    def __repr__(self):
        return "XdsState(version=%r, rejected=%d)" % (self.version, self.rejected)


def file_version(text):
    """The version_info a resource file written by _envoy/files.py starts with (None when it has none)."""
    match = _VERSION_INFO.match(text)
    return match.group(1) if match else None


def parse_stats(text):
    """Envoy's /stats text (filtered to STATS_PATH) -> {"cds": XdsState, "lds": XdsState, "eds CLUSTER":
    XdsState for each cluster that has a subscription of its own}."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    states = {kind: XdsState() for kind in SUBSCRIPTIONS}
    for line in text.splitlines():
        match = _STAT_LINE.match(line.strip())
        if not match:
            continue
        kind = _PREFIX_KIND.get(match.group(1)) or EDS_KIND + match.group(2)
        state = states.setdefault(kind, XdsState())
        if match.group(3) == "version_text":
            state.version = match.group(4).strip().strip('"')
        else:
            state.rejected = int(match.group(4))
    return states


def warming_clusters(text):
    """How many clusters Envoy is warming (taking their endpoints and first health checks), from /stats
    text filtered to STATS_PATH: a cluster sent anew serves only once it is warm."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    match = _WARMING.search(text)
    return int(match.group(1)) if match else 0


def rejection_reasons(kind, dump):
    """The reasons Envoy gave for refusing resources of a subscription: "NAME: DETAILS" from each
    error_state of a /config_dump?resource=... answer."""
    if isinstance(dump, (bytes, str)):
        dump = json.loads(dump)
    reasons = []
    for config in dump.get("configs") or ():
        error = config.get("error_state") or {}
        if error.get("details"):
            failed = error.get("failed_configuration") or {}
            name = config.get("name") or failed.get("name") or "?"
            reasons.append("%s: %s" % (name, error["details"]))
    return list(dict.fromkeys(reasons))  # a listener may be dumped more than once (active and warming)


def reason_of(admin, kind):
    """Envoy's reason for the last refused update of a subscription (its admin API, best effort)."""
    try:
        resource = DUMP_RESOURCES[EDS_KIND if kind.startswith(EDS_KIND) else kind]
        reasons = rejection_reasons(kind, admin("/config_dump?resource=" + resource))
    except (OSError, ValueError) as err:
        return "Envoy gave no reason (its config_dump: %s)" % err
    return "; ".join(reasons) or "Envoy gave no reason in its config_dump"


def wait_confirmed(admin, expected, baseline, timeout, interval=0.001, clock=time.monotonic, sleep=time.sleep):
    """Ask Envoy until it serves each expected version ({"cds": version, ...}) and warms no cluster;
    returns its states.

    ``admin(path)`` is a GET on Envoy's admin API. A subscription whose update_rejected count went past
    its ``baseline`` count while it still serves another version raises EnvoyRejected with Envoy's
    reason; no answer either way within ``timeout`` raises NotConfirmed.
    """
    deadline = clock() + timeout
    waiting = []
    pause = interval
    while True:
        try:
            text = admin(STATS_PATH)
            states = parse_stats(text)
        except OSError as err:
            states, waiting = None, ["admin API: %s" % err]
        if states is not None:
            warming = warming_clusters(text)
            waiting = ["%d clusters warming" % warming] if warming else []
            # A few cores warm within milliseconds; the first checks of thousands are spread over up to
            # 2 s: ask less and less often, as each question costs Envoy's main thread.
            pause = min(max(pause * 2, interval), WARMING_POLL_S) if warming else interval
            for kind, version in expected.items():
                state = states.get(kind) or XdsState()
                if state.version == version:
                    continue
                if state.rejected > baseline.get(kind, 0):
                    raise EnvoyRejected(kind, version, reason_of(admin, kind))
                waiting.append("%s at %s, not %s" % (kind, state.version, version))
            if not waiting:
                return states
        if clock() >= deadline:
            raise NotConfirmed("Envoy did not confirm the update within %.1fs (%s)" % (timeout, "; ".join(waiting)))
        sleep(pause)
