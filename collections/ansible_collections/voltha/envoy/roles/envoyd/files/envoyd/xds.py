# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A rendered bootstrap as xDS resources for envoyd's ADS server (ads_server.py), in protobuf.

ads_bootstrap() keeps what stays in the bootstrap and points Envoy at the ADS server on a unix socket;
resources() splits listeners (LDS), clusters (CDS) and the endpoints of every static cluster, which
become an EDS cluster and its ClusterLoadAssignment: a change of the cores changes only the endpoints,
and Envoy rebuilds no cluster for it. encode() turns them into protobuf bytes. The endpoints, thousands
of them, are encoded one by one (those of the renderer's shape field by field) and kept from one change
to the next, so a change encodes only the endpoints it adds; the rest comes from json_format, whose
extension types (any ``@type``) are imported on first sight.

Daemon-only: it needs the Python packages xds-protos and protobuf, which envoyd's venv carries.
"""

import collections
import importlib
import json
import os
import pkgutil

try:
    from envoy.config.cluster.v3 import cluster_pb2
    from envoy.config.core.v3 import address_pb2
    from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
    from envoy.config.listener.v3 import listener_pb2
    from google.protobuf import json_format
    from google.protobuf.internal.encoder import _VarintBytes
except ImportError:  # said by envoyd when the xds mode is asked for without them
    address_pb2 = cluster_pb2 = endpoint_pb2 = endpoint_components_pb2 = listener_pb2 = json_format = None
    _VarintBytes = None

from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.eds import (
    EndpointNames,
    eds_name,
    split_endpoints,
    with_endpoints_from,
)

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINTS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
KINDS = {CLUSTER: "cds", ENDPOINTS: "eds", LISTENER: "lds"}  # also the order a change is sent in
ADS_CLUSTER = "envoyd-xds"
ADS_SOURCE = {"ads": {}, "resource_api_version": "V3"}  # a resource that comes over ADS
ENDPOINT_CACHE_MAX = 50000


class XdsError(VolthaEnvoyError):
    """A rendered config that cannot become xDS resources (a field or type protobuf does not know)."""


def available():
    """None when the xds mode can run here, else what is missing."""
    if json_format is None:
        return "the xds reload mode needs the Python packages xds-protos and protobuf (pip install xds-protos)"
    return None


def ads_bootstrap(config, socket_path, node_id="envoyd", node_cluster="voltha"):
    """The bootstrap Envoy starts with: the rendered one without its listeners and clusters, which come
    over ADS from envoyd on ``socket_path``, with a static cluster to reach it."""
    bootstrap = dict(config)
    static = dict(bootstrap.pop("static_resources", None) or {})
    static.pop("listeners", None)
    static.pop("clusters", None)
    static["clusters"] = [{
        "name": ADS_CLUSTER, "type": "STATIC", "connect_timeout": "1s",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": ADS_CLUSTER, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"pipe": {"path": socket_path}}}}]}]},
    }]
    bootstrap["static_resources"] = static
    node = dict(bootstrap.get("node") or {})
    node.setdefault("id", node_id)
    node.setdefault("cluster", node_cluster)
    bootstrap["node"] = node
    bootstrap["dynamic_resources"] = {
        "ads_config": {"api_type": "GRPC", "transport_api_version": "V3", "set_node_on_first_message_only": True,
                       "grpc_services": [{"envoy_grpc": {"cluster_name": ADS_CLUSTER}}]},
        "cds_config": ADS_SOURCE, "lds_config": ADS_SOURCE}
    return bootstrap


def resources(config, names=None):
    """{type url: [(name, resource as a dict)]} of a rendered bootstrap: its listeners, its clusters,
    and the endpoints of each static cluster, which becomes an EDS cluster over ADS; its endpoints go
    under the name ``names`` (an EndpointNames) gives them, by default the cluster's own."""
    static = config.get("static_resources") or {}
    clusters, endpoints = [], []
    for name, cluster, assignment in split_endpoints(static.get("clusters")):
        if assignment is not None:
            service = eds_name(name, names.generation(name, cluster, assignment) if names else 0)
            cluster = with_endpoints_from(cluster, service, ADS_SOURCE)
            endpoints.append((service, dict(assignment, cluster_name=service)))
        clusters.append((name, cluster))
    listeners = [(listener.get("name"), listener) for listener in static.get("listeners") or []]
    return {CLUSTER: clusters, ENDPOINTS: endpoints, LISTENER: listeners}


class ResourceBuilder:
    """A rendered bootstrap -> {type url: [(name, protobuf bytes)]}, change after change: the endpoints
    of a cluster under the names EndpointNames gives them (_envoy/eds.py), each resource encoded once."""

    def __init__(self):
        self.encoder = Encoder()
        self.names = EndpointNames()

    def build(self, config):
        found = resources(config, self.names)
        encoded = {type_url: [(name, self.encoder.encode(type_url, data)) for name, data in items]
                   for type_url, items in found.items()}
        self.encoder.forget_unused()
        return encoded


class Encoder:
    """Resources as dicts -> protobuf bytes. Keeps what it encoded: a listener or cluster that did not
    change costs a dictionary lookup, an endpoint of the last change costs none."""

    def __init__(self):
        if json_format is None:
            raise XdsError(available())
        self._messages = {LISTENER: listener_pb2.Listener, CLUSTER: cluster_pb2.Cluster,
                          ENDPOINTS: endpoint_pb2.ClusterLoadAssignment}
        self._imported = set()
        self._small = {}  # json text of a listener or cluster -> bytes
        # (address, port, hostname) -> bytes of the LbEndpoint, of the last build and of this one
        self._endpoints, self._used = {}, {}
        self._tag_lb_endpoint = _tag(endpoint_components_pb2.LocalityLbEndpoints, "lb_endpoints")
        self._tag_locality = _tag(endpoint_pb2.ClusterLoadAssignment, "endpoints")
        self._plain_tags = _plain_endpoint_tags()

    def encode(self, type_url, data):
        """One resource's bytes."""
        if type_url == ENDPOINTS:
            return self._assignment(data)
        key = json.dumps(data, sort_keys=True, separators=(",", ":"))
        encoded = self._small.get(key)
        if encoded is None:
            encoded = self._parse(self._messages[type_url], data).SerializeToString(deterministic=True)
            if len(self._small) > 256:
                self._small.clear()
            self._small[key] = encoded
        return encoded

    def _parse(self, message_class, data):
        self._import_types(data)
        try:
            return json_format.ParseDict(data, message_class())
        except json_format.ParseError as err:
            raise XdsError("%s: %s" % (message_class.DESCRIPTOR.name, err)) from err

    def _import_types(self, data):
        """json_format resolves an Any's @type from the protobuf modules imported: import each type's package."""
        for type_url in _types_in(data):
            package = type_url.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            if package in self._imported:
                continue
            self._imported.add(package)
            try:
                module = importlib.import_module(package)
            except ImportError:
                continue  # an unknown type: json_format names it
            for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
                if info.name.endswith("_pb2"):
                    importlib.import_module("%s.%s" % (package, info.name))

    def _assignment(self, data):
        """A ClusterLoadAssignment: its other fields by json_format, each LbEndpoint by itself (kept by value)."""
        rest = {key: value for key, value in data.items() if key != "endpoints"}
        parts = [self._parse(endpoint_pb2.ClusterLoadAssignment, rest).SerializeToString(deterministic=True)]
        for locality in data.get("endpoints") or []:
            header = {key: value for key, value in locality.items() if key != "lb_endpoints"}
            body = [self._parse(endpoint_components_pb2.LocalityLbEndpoints, header).SerializeToString()]
            for lb_endpoint in locality.get("lb_endpoints") or []:
                encoded = self._lb_endpoint(lb_endpoint)
                body.append(self._tag_lb_endpoint + _VarintBytes(len(encoded)) + encoded)
            body = b"".join(body)
            parts.append(self._tag_locality + _VarintBytes(len(body)) + body)
        return b"".join(parts)

    def _lb_endpoint(self, data):
        key = _endpoint_key(data)
        encoded = (self._used.get(key) or self._endpoints.get(key)) if key else None
        if encoded is None:
            if key:
                encoded = self._plain_lb_endpoint(*key)
            else:
                encoded = self._parse(endpoint_components_pb2.LbEndpoint, data).SerializeToString(deterministic=True)
        if key:
            if len(self._used) >= ENDPOINT_CACHE_MAX:
                self._used.clear()
            self._used[key] = encoded
        return encoded

    def forget_unused(self):
        """After a build: keep the endpoints it used, no others (a cache the size of one assignment)."""
        self._endpoints, self._used = self._used, {}

    def _plain_lb_endpoint(self, host, port, hostname):
        """The bytes of an LbEndpoint of the renderer's shape, written field by field: json_format takes
        about 20 microseconds an endpoint, 200 ms for 10,000 new cores. Fields in number order, empty
        ones left out, as protobuf's deterministic serialization writes them."""
        tags = self._plain_tags
        socket_address = (_length_delimited(tags.address, host.encode("utf-8")) if host else b"") + (
            tags.port_value + _VarintBytes(port) if port else b"")
        endpoint = _length_delimited(tags.endpoint_address, _length_delimited(tags.socket_address, socket_address))
        if hostname:
            endpoint += _length_delimited(tags.hostname, hostname.encode("utf-8"))
        return _length_delimited(tags.endpoint, endpoint)


def _length_delimited(tag, data):
    return tag + _VarintBytes(len(data)) + data


# The wire tags of the fields _plain_lb_endpoint writes (their numbers from the descriptors).
PlainEndpointTags = collections.namedtuple("PlainEndpointTags",
                                           "endpoint endpoint_address hostname socket_address address port_value")


def _plain_endpoint_tags():
    port_number = address_pb2.SocketAddress.DESCRIPTOR.fields_by_name["port_value"].number
    return PlainEndpointTags(
        endpoint=_tag(endpoint_components_pb2.LbEndpoint, "endpoint"),
        endpoint_address=_tag(endpoint_components_pb2.Endpoint, "address"),
        hostname=_tag(endpoint_components_pb2.Endpoint, "hostname"),
        socket_address=_tag(address_pb2.Address, "socket_address"),
        address=_tag(address_pb2.SocketAddress, "address"),
        port_value=_VarintBytes(port_number << 3))  # a varint field: wire type 0


def _endpoint_key(data):
    """(address, port, hostname) of an LbEndpoint of exactly the shape and types the renderer builds, else None."""
    try:
        endpoint = data["endpoint"]
        socket_address = endpoint["address"]["socket_address"]
        if len(data) != 1 or len(endpoint) != 2 or len(endpoint["address"]) != 1 or len(socket_address) != 2:
            return None
        host, port, hostname = socket_address["address"], socket_address["port_value"], endpoint["hostname"]
    except (KeyError, TypeError):
        return None
    if (isinstance(host, str) and isinstance(hostname, str) and isinstance(port, int) and not isinstance(port, bool)
            and 0 < port < 2 ** 32):  # port 0 is written (a oneof): json_format's path
        return host, port, hostname
    return None


def _tag(message_class, field):
    """The wire tag of a length-delimited field (its number from the descriptor, not written here)."""
    return _VarintBytes(message_class.DESCRIPTOR.fields_by_name[field].number << 3 | 2)


def _types_in(data):
    """Every Any @type in a resource."""
    found = set()
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            type_url = item.get("@type")
            if isinstance(type_url, str):
                found.add(type_url)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def socket_path(config_dir):
    """The ADS server's unix socket in a config directory (a path must fit sun_path: 107 bytes)."""
    path = os.path.join(os.path.abspath(config_dir), "xds.sock")
    if len(path.encode()) > 107:
        raise XdsError("the ADS socket path %s is longer than a unix socket may have (107 bytes): use a shorter "
                       "--config-dir" % path)
    return path
