"""The ADS server's bookkeeping, stream by stream: what is sent in which order, and ACK and NACK as
Envoy sends them (the gRPC transport itself is tried with a real Envoy in the integration tests)."""

import pytest

pytest.importorskip("envoy.service.discovery.v3.discovery_pb2", reason="xds-protos is in the test venv")

from envoy.service.discovery.v3 import discovery_pb2  # noqa: E402
from google.rpc import status_pb2  # noqa: E402

from envoyd.ads_server import AdsServer, Snapshot  # noqa: E402
from envoyd.confirm import (  # noqa: E402
    EnvoyRejected,
    NotConfirmed,
)
from envoyd.xds import CLUSTER, ENDPOINTS, LISTENER  # noqa: E402


def snapshot(endpoints=b"e1", clusters=b"c1"):
    return Snapshot({CLUSTER: [("voltha-grpc", clusters)], ENDPOINTS: [("voltha-grpc", endpoints)],
                     LISTENER: [("voltha_nbi", b"l1")]})


class Envoy:
    """Envoy's side of one stream, on the server's bookkeeping."""

    def __init__(self, server):
        self.server = server
        with server.changed:
            server.opened += 1
            from envoyd.ads_server import _Stream

            self.stream = _Stream(server, server.opened)
            server.streams.append(self.stream)

    def request(self, type_url, names=(), version="", nonce="", error=None):
        request = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=names, version_info=version,
                                                 response_nonce=nonce)
        if error:
            request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        with self.server.changed:
            self.stream.on_request(request)

    def received(self):
        out = []
        while not self.stream.outbox.empty():
            out.append(self.stream.outbox.get())
        return out

    def ack_all(self):
        for response in self.received():
            names = ["voltha-grpc"] if response.type_url == ENDPOINTS else []
            self.request(response.type_url, names, response.version_info, response.nonce)


def test_each_type_is_sent_when_asked_and_again_only_when_it_changed():
    server = AdsServer("/unused")
    server.set(snapshot())
    envoy = Envoy(server)
    envoy.request(CLUSTER)
    envoy.request(LISTENER)
    envoy.request(ENDPOINTS, ["voltha-grpc"])
    assert [r.type_url for r in envoy.received()] == [CLUSTER, LISTENER, ENDPOINTS]  # as asked
    server.set(Snapshot({CLUSTER: [("voltha-grpc", b"c0")], ENDPOINTS: [("voltha-grpc", b"e0")],
                         LISTENER: [("voltha_nbi", b"l0")]}))
    # A change goes clusters first, then endpoints, then listeners.
    assert [r.type_url for r in envoy.received()] == [CLUSTER, ENDPOINTS, LISTENER]
    server.set(snapshot())
    envoy.received()
    server.set(snapshot(endpoints=b"e2"))
    [response] = envoy.received()
    assert response.type_url == ENDPOINTS and response.resources[0].value == b"e2"
    server.set(snapshot(endpoints=b"e2", clusters=b"c2"))  # a cluster sent again brings its endpoints
    assert [r.type_url for r in envoy.received()] == [CLUSTER, ENDPOINTS]


def test_endpoints_go_only_by_the_names_asked_for():
    server = AdsServer("/unused")
    server.set(Snapshot({ENDPOINTS: [("a", b"1"), ("b", b"2")]}))
    envoy = Envoy(server)
    envoy.request(ENDPOINTS, ["b"])
    [response] = envoy.received()
    assert [r.value for r in response.resources] == [b"2"]


def test_acks_confirm_and_a_nack_is_a_rejection_with_envoys_reason():
    server = AdsServer("/unused")
    good = snapshot()
    server.set(good)
    envoy = Envoy(server)
    for type_url in (CLUSTER, LISTENER):
        envoy.request(type_url)
    envoy.request(ENDPOINTS, ["voltha-grpc"])
    with pytest.raises(NotConfirmed, match="cds at None"):
        server.wait_acked(good, 0.01)
    envoy.ack_all()
    server.wait_acked(good, 0.01)
    bad = snapshot(endpoints=b"e2")
    server.set(bad)
    [response] = envoy.received()
    # A NACK names the version Envoy keeps and says why.
    envoy.request(ENDPOINTS, ["voltha-grpc"], good.versions[ENDPOINTS], response.nonce, error="no such host")
    with pytest.raises(EnvoyRejected) as caught:
        server.wait_acked(bad, 1.0)
    assert (caught.value.kind, caught.value.version, caught.value.reason) == ("eds", bad.versions[ENDPOINTS],
                                                                              "no such host")


def test_an_answer_to_a_superseded_response_is_ignored():
    server = AdsServer("/unused")
    server.set(snapshot())
    envoy = Envoy(server)
    envoy.request(ENDPOINTS, ["voltha-grpc"])
    [first] = envoy.received()
    server.set(snapshot(endpoints=b"e2"))
    [second] = envoy.received()
    envoy.request(ENDPOINTS, ["voltha-grpc"], "", first.nonce, error="late")  # about the first: stale
    assert envoy.stream.types[ENDPOINTS].nacked is None
    envoy.request(ENDPOINTS, ["voltha-grpc"], second.version_info, second.nonce)
    assert envoy.stream.types[ENDPOINTS].acked == second.version_info


def test_the_newest_stream_confirms_and_a_dead_envoy_ends_the_wait():
    server = AdsServer("/unused")
    good = snapshot()
    server.set(good)
    with pytest.raises(NotConfirmed, match="no Envoy connected"):
        server.wait_acked(good, 0.01)
    with pytest.raises(NotConfirmed, match="killed by SIGSEGV"):
        server.wait_acked(good, 5.0, envoy_gone=lambda: "Envoy was killed by SIGSEGV")
