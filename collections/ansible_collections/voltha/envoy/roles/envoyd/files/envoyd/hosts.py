# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What Envoy thinks of each upstream host, from its admin API's ``/clusters?format=json``.

Each host gets a state: ``healthy``; ``ejected`` (outlier detection took it out); ``failing_checks``
(its active health checks fail); ``pending_check`` (added, first health check not done yet); or
``unhealthy`` (another flag, such as EDS health). Used by envoyd's status and metrics.
"""

import collections

HOST_STATES = ("healthy", "ejected", "failing_checks", "pending_check", "unhealthy")

# host, the address as HOST:PORT, the state, Envoy's health flags that are set, and the requests
# in flight to it (Envoy's rq_active).
HostView = collections.namedtuple("HostView", "cluster hostname address state flags rq_active")

_FLAGS = ("failed_active_health_check", "failed_outlier_check", "failed_active_degraded_check",
          "pending_active_hc", "pending_dynamic_removal", "excluded_via_immediate_hc_fail", "active_hc_timeout")


def _address(host):
    socket_address = (host.get("address") or {}).get("socket_address") or {}
    return "%s:%s" % (socket_address.get("address"), socket_address.get("port_value"))


def host_state(health):
    """The one-word state of a host from its ``health_status``."""
    if health.get("failed_outlier_check"):
        return "ejected"
    if health.get("failed_active_health_check") or health.get("active_hc_timeout") \
            or health.get("excluded_via_immediate_hc_fail"):
        return "pending_check" if health.get("pending_active_hc") else "failing_checks"
    if health.get("eds_health_status", "HEALTHY") not in ("HEALTHY", "UNKNOWN") \
            or health.get("failed_active_degraded_check"):
        return "unhealthy"
    return "healthy"


def host_views(clusters_json, names=None):
    """HostViews of every host of the clusters named (all when None), from the decoded JSON."""
    views = []
    for cluster in (clusters_json or {}).get("cluster_statuses") or ():
        if names is not None and cluster.get("name") not in names:
            continue
        for host in cluster.get("host_statuses") or ():
            health = host.get("health_status") or {}
            flags = tuple(flag for flag in _FLAGS if health.get(flag))
            stats = dict((stat.get("name"), stat.get("value", 0)) for stat in host.get("stats") or ())
            views.append(HostView(cluster.get("name"), host.get("hostname") or "", _address(host),
                                  host_state(health), flags, int(stats.get("rq_active", 0))))
    return views


def state_counts(views):
    """{(cluster, state): number of hosts}, every state of every cluster present (0 when none)."""
    counts = {}
    for view in views:
        for state in HOST_STATES:
            counts.setdefault((view.cluster, state), 0)
        counts[(view.cluster, view.state)] += 1
    return counts
