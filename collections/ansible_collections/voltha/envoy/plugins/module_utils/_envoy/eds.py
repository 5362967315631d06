# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A rendered bootstrap's static clusters as EDS clusters apart from their endpoints, and the name the
endpoints of each go under, change after change.

Both ways envoyd hands Envoy a config without restarting it take a core cluster's endpoints apart from
the cluster: files (files.py: xds/cds.json, and a file of endpoints per cluster in xds/eds/) and ADS
(envoyd's xds.py). A change of the cores then changes only the endpoints, which Envoy takes without rebuilding
the cluster or checking every core anew. EndpointNames says when the cluster must be sent anew all the
same. Pure Python: no Envoy, no protobuf.
"""

EDS_CLUSTER_TYPE = "EDS"


def split_endpoints(clusters):
    """[(name, cluster, endpoints)] of a bootstrap's static clusters: each STATIC cluster with a
    load_assignment as an EDS cluster (its eds_cluster_config is the caller's: where the endpoints come
    from) and its ClusterLoadAssignment; any other cluster as it is, with None."""
    split = []
    for cluster in clusters or []:
        name = cluster.get("name")
        # A cluster of another type, or of a custom cluster_type (which excludes "type"), keeps its endpoints.
        if cluster.get("type", "STATIC") != "STATIC" or "cluster_type" in cluster or "load_assignment" not in cluster:
            split.append((name, cluster, None))
            continue
        cluster = dict(cluster)
        assignment = dict(cluster.pop("load_assignment"), cluster_name=name)
        cluster["type"] = EDS_CLUSTER_TYPE
        # A core taken out of the assignment leaves at once, as from a rebuilt static cluster; by
        # default Envoy keeps a removed host for as long as it passes its health checks.
        cluster.setdefault("ignore_health_on_host_removal", True)
        split.append((name, cluster, assignment))
    return split


def with_endpoints_from(cluster, eds_name, eds_config):
    """The EDS cluster taking its endpoints named ``eds_name`` from ``eds_config``."""
    cluster = dict(cluster)
    eds_cluster_config = {"eds_config": eds_config}
    if eds_name != cluster.get("name"):
        eds_cluster_config["service_name"] = eds_name
    cluster["eds_cluster_config"] = eds_cluster_config
    return cluster


def eds_name(cluster_name, generation):
    """The name a cluster's endpoints go under: the cluster's own, then CLUSTER/GENERATION."""
    return "%s/%d" % (cluster_name, generation) if generation else cluster_name


class EndpointNames:
    """The name each cluster's endpoints go under, change after change.

    A change of the cores changes only a cluster's endpoints. But Envoy sends no call to a new core
    before its first health check passes, so endpoints that share no core with the last ones would
    leave the cluster without a healthy host for that long. Then the cluster is sent anew, with its
    endpoints under a name of their own (CLUSTER/GENERATION: the old cluster keeps its own), and Envoy
    warms the new cluster, endpoints and first checks, while the old one serves. So is a cluster that
    changed itself (its health-check pace, say): Envoy rebuilds it anyway, and under the old name both
    the old cluster and the warming one would take the new endpoints and check every core twice.
    """

    def __init__(self):
        self.hosts = {}  # cluster name -> the (address, port) of its last endpoints
        self.clusters = {}  # cluster name -> the cluster as last seen (without its endpoints)
        self.generations = {}  # cluster name -> how many times it was sent anew

    def state(self):
        """What restore() takes back to (after a refused config, the names go back with the files)."""
        return dict(self.hosts), dict(self.clusters), dict(self.generations)

    def restore(self, state):
        self.hosts, self.clusters, self.generations = (dict(part) for part in state)

    def generation(self, cluster_name, cluster, assignment):
        """The generation of the endpoints of ``cluster`` this time (0: the cluster's own name)."""
        hosts = endpoint_hosts(assignment)
        before, cluster_before = self.hosts.get(cluster_name), self.clusters.get(cluster_name)
        if (before and hosts and before.isdisjoint(hosts)) or (
                cluster_before is not None and cluster_before != cluster):
            self.generations[cluster_name] = self.generations.get(cluster_name, 0) + 1
        self.hosts[cluster_name], self.clusters[cluster_name] = hosts, cluster
        return self.generations.get(cluster_name, 0)


def endpoint_hosts(assignment):
    """{(address, port)} of a ClusterLoadAssignment's socket addresses."""
    hosts = set()
    for locality in assignment.get("endpoints") or []:
        for lb_endpoint in locality.get("lb_endpoints") or []:
            try:
                address = lb_endpoint["endpoint"]["address"]["socket_address"]
                hosts.add((address.get("address"), address.get("port_value")))
            except (KeyError, TypeError, AttributeError):
                continue
    return hosts
