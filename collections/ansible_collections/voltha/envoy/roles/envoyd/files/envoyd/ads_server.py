# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""envoyd's ADS server: Envoy's clusters, endpoints and listeners over one gRPC stream (state of the
world, xDS v3), and Envoy's ACK or NACK of each version as the confirmation of an update.

As in go-control-plane's snapshot cache: envoyd sets a snapshot (a version and the resources of each
type), the server sends each subscribed stream every type whose version it has not sent, clusters
first, then endpoints, then listeners (a listener never names a cluster Envoy does not have), and
remembers what each stream answered. An ACK names the version Envoy applied; a NACK keeps the
version Envoy serves and carries its reason. wait_acked() waits for the newest stream (after a hot
restart the new Envoy's) to take or refuse a snapshot.

Daemon-only: it needs grpcio and xds-protos, which envoyd's venv carries.
"""

import hashlib
import os
import queue
import threading
import time
from concurrent import futures

try:
    import grpc
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
    from google.protobuf import any_pb2

    _Servicer = ads_pb2_grpc.AggregatedDiscoveryServiceServicer
except ImportError:  # xds.available() says what is missing
    grpc = ads_pb2_grpc = discovery_pb2 = any_pb2 = None
    _Servicer = object

from envoyd.confirm import EnvoyRejected, NotConfirmed
from envoyd.xds import CLUSTER, ENDPOINTS, KINDS, LISTENER

_END = object()


class Snapshot:
    """What Envoy should serve: per type url, a version and the resources as (name, bytes)."""

    def __init__(self, resources):
        self.resources = {}
        self.versions = {}
        for type_url in KINDS:
            items = sorted(resources.get(type_url, ()))
            digest = hashlib.sha256()
            for name, data in items:
                digest.update(name.encode() + b"\0" + data)
            self.resources[type_url] = items
            self.versions[type_url] = digest.hexdigest()[:16]

    def kinds(self):
        """{"cds": version, "eds": version, "lds": version}."""
        return {KINDS[type_url]: version for type_url, version in self.versions.items()}


class _TypeState:
    __slots__ = ("subscribed", "names", "sent_version", "sent_names", "nonce", "acked", "nacked")

    def __init__(self):
        self.subscribed = False
        self.names = None  # the names Envoy asked for (None: all)
        self.sent_version = self.sent_names = self.nonce = self.acked = None
        self.nacked = None  # (version, reason) of the last NACK


class _Stream:
    """One Envoy's ADS stream: what was sent to it, and what it answered."""

    def __init__(self, server, number):
        self.server = server
        self.number = number
        self.types = {type_url: _TypeState() for type_url in KINDS}
        self.outbox = queue.SimpleQueue()
        self.nonces = 0
        self.open = True

    def send_pending(self, snapshot):
        """Send every subscribed type whose version (or asked-for names) this stream has not been sent.
        Called with the server's lock held."""
        if snapshot is None:
            return
        for type_url in KINDS:
            state = self.types[type_url]
            if not state.subscribed:
                continue
            version = snapshot.versions[type_url]
            if state.sent_version == version and state.sent_names == state.names:
                continue
            items = snapshot.resources[type_url]
            if state.names is not None and type_url not in _WILDCARD:
                items = [(name, data) for name, data in items if name in state.names]
            self.nonces += 1
            state.sent_version, state.sent_names, state.nonce = version, state.names, str(self.nonces)
            if type_url == _CLUSTER:
                # A cluster sent again is a new cluster in Envoy, which waits for its endpoints: send them too.
                self.types[_ENDPOINTS].sent_version = None
            self.outbox.put(discovery_pb2.DiscoveryResponse(
                version_info=version, type_url=type_url, nonce=state.nonce,
                resources=[any_pb2.Any(type_url=type_url, value=data) for _name, data in items]))

    def on_request(self, request):
        """An Envoy request: a subscription, an ACK or a NACK. Called with the server's lock held."""
        state = self.types.get(request.type_url)
        if state is None:
            return
        names = set(request.resource_names) or None
        if request.response_nonce and request.response_nonce != state.nonce:
            return  # an answer to a response superseded since: the newer one's answer will come
        if request.response_nonce:
            if request.HasField("error_detail"):
                state.nacked = (state.sent_version, request.error_detail.message)
            else:
                state.acked, state.nacked = request.version_info, None
        state.subscribed = True
        state.names = names
        self.send_pending(self.server.snapshot)
        self.server.changed.notify_all()


_WILDCARD = (CLUSTER, LISTENER)
_CLUSTER, _ENDPOINTS = CLUSTER, ENDPOINTS


class AdsServer(_Servicer):
    """The ADS gRPC server on a unix socket; set() a Snapshot, wait_acked() for Envoy's word."""

    def __init__(self, socket_path, on_event=None):
        self.socket_path = socket_path
        self.on_event = on_event or (lambda name, **fields: None)
        self.changed = threading.Condition()
        self.snapshot = None
        self.streams = []  # open streams, oldest first
        self.opened = 0
        self.server = None

    def start(self):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="ads"))
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(self, self.server)
        self.server.add_insecure_port("unix:" + self.socket_path)
        self.server.start()
        return self

    def stop(self, grace=1.0):
        if self.server is not None:
            with self.changed:
                for stream in self.streams:
                    stream.outbox.put(_END)
            self.server.stop(grace).wait(grace + 1)
            self.server = None
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass

    def set(self, snapshot):
        """Make ``snapshot`` what every Envoy is sent (each type only when its version changed)."""
        with self.changed:
            self.snapshot = snapshot
            for stream in self.streams:
                stream.send_pending(snapshot)

    def wait_acked(self, snapshot, timeout, envoy_gone=None):
        """Wait until the newest Envoy stream has ACKed every version of ``snapshot``.

        Raises EnvoyRejected (kind, version, Envoy's reason) on a NACK of one of them, NotConfirmed when
        neither came within ``timeout``, or at once when ``envoy_gone()`` says why no Envoy will answer."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                gone = envoy_gone() if envoy_gone else None
                if gone:
                    raise NotConfirmed(gone)
                waiting = []
                stream = self.streams[-1] if self.streams else None
                if stream is None:
                    waiting.append("no Envoy connected")
                else:
                    for type_url, version in snapshot.versions.items():
                        state = stream.types[type_url]
                        if state.acked == version:
                            continue
                        if state.nacked is not None and state.nacked[0] == version:
                            raise EnvoyRejected(KINDS[type_url], version, state.nacked[1])
                        waiting.append("%s at %s, not %s" % (KINDS[type_url], state.acked, version))
                if not waiting:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise NotConfirmed("Envoy did not confirm the update within %.1fs (%s)"
                                       % (timeout, "; ".join(waiting)))
                self.changed.wait(min(remaining, 0.05))  # an Envoy that dies says nothing: look again

    # ------------------------------------------------------------ the gRPC service

    def StreamAggregatedResources(self, request_iterator, context):  # noqa: N802 (the gRPC API)
        with self.changed:
            self.opened += 1
            stream = _Stream(self, self.opened)
            self.streams.append(stream)
        self.on_event("ads-stream-open", stream=stream.number)
        reader = threading.Thread(target=self._read, args=(stream, request_iterator),
                                  name="ads-read-%d" % stream.number, daemon=True)
        reader.start()
        try:
            while True:
                response = stream.outbox.get()
                if response is _END:
                    return
                yield response
        finally:
            with self.changed:
                stream.open = False
                if stream in self.streams:
                    self.streams.remove(stream)
                self.changed.notify_all()
            self.on_event("ads-stream-closed", stream=stream.number)

    def _read(self, stream, request_iterator):
        try:
            for request in request_iterator:
                with self.changed:
                    stream.on_request(request)
        except grpc.RpcError:
            pass  # the stream ended: Envoy went away
        finally:
            stream.outbox.put(_END)

    def DeltaAggregatedResources(self, request_iterator, context):  # noqa: N802 (the gRPC API)
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "envoyd serves the state-of-the-world ADS protocol only")
