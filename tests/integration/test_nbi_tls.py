"""TLS on the NBI: envoyd's Envoy serving the shipped template's listener with a certificate (and, for
mutual TLS, a client CA) from files, reloaded through SDS when they are replaced. Real Envoy, real
gRPC clients, certificates made here with the cryptography package.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time

import grpc
import pytest
from cryptography import x509
from google.protobuf import empty_pb2
from voltha_protos import voltha_pb2_grpc

from tests.support.pki import certificate, pem, replace_file
from tests.support.processes import wait_for
from voltha_core_sim.nbi_client import Tls, nbi_channel

pytestmark = pytest.mark.slow
KEY = "test/tls/assignment"


@pytest.fixture
def pki(tmp_path):
    ca, ca_key = certificate("voltha test CA", ca=True)
    server, server_key = certificate("localhost", ca, ca_key, server=True)
    client, client_key = certificate("an operator", ca, ca_key)
    certs = tmp_path / "certs"
    certs.mkdir()
    files = {"ca": certs / "ca.pem", "cert": certs / "nbi.pem", "key": certs / "nbi.key"}
    files["ca"].write_bytes(pem(ca))
    files["cert"].write_bytes(pem(server))
    files["key"].write_bytes(pem(key=server_key))
    files["client_cert"], files["client_key"] = certs / "client.pem", certs / "client.key"
    files["client_cert"].write_bytes(pem(client))
    files["client_key"].write_bytes(pem(key=client_key))
    return {"ca": ca, "ca_key": ca_key, "files": files, "server": server}


def tls_envoyd(consul_agent, cores, start_envoyd, pki, mutual=False):
    consul_agent.client().kv.put(KEY, json.dumps({f"p{n}": {"id": c.core_id, "host": "127.0.0.1", "port": c.port}
                                                  for n, c in enumerate(cores[:2])}))
    files = pki["files"]
    extra = ["--assignment-key", KEY, "--var", f"tls_cert_file={files['cert']}", "--var",
             f"tls_key_file={files['key']}"]
    if mutual:
        extra += ["--var", f"tls_client_ca_file={files['ca']}"]
    return start_envoyd(consul_agent.address, extra=tuple(extra))


def channel(address, pki, client_cert=False, plaintext=False):
    """A channel of the simulator's NBI client (the operator's tool), plaintext or TLS."""
    if plaintext:
        return nbi_channel(address)
    files = pki["files"]
    cert, key = (str(files["client_cert"]), str(files["client_key"])) if client_cert else (None, None)
    return nbi_channel(address, Tls(str(files["ca"]), cert, key, server_name="localhost"))


def version(chan) -> str:
    return voltha_pb2_grpc.VolthaServiceStub(chan).GetVoltha(empty_pb2.Empty(), timeout=3).version


def closed(details: str) -> str:
    """What a refused gRPC connection says after the address (not "Connection refused": nothing listening)."""
    prefix = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:"
    assert details.startswith(prefix), details
    return details[len(prefix):].split(": ", 1)[1]


def tls_alert(address, ca_pem: bytes) -> str | None:
    """The TLS alert a client without a certificate gets (TLS 1.3: after its handshake, at its first read)."""
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=3) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            try:
                tls.recv(1)
            except ssl.SSLError as refused:
                return refused.reason
    return None


def served_serial(address, ca_pem: bytes) -> int:
    """The serial number of the certificate a new TLS connection is served."""
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=3) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def test_tls_answers_clients_with_the_ca_and_refuses_plaintext(consul_agent, cores, start_envoyd, pki):
    envoyd = tls_envoyd(consul_agent, cores, start_envoyd, pki)
    secure = channel(envoyd.nbi, pki)
    plain = channel(envoyd.nbi, pki, plaintext=True)
    try:
        assert version(secure).startswith("voltha-core-sim")
        with pytest.raises(grpc.RpcError) as refused:
            version(plain)
        # Closed by the TLS listener: an orderly close, or a reset when the client's bytes were left unread.
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert closed(refused.value.details()) in ("Socket closed", "Connection reset by peer")
        assert served_serial(envoyd.nbi, pem(pki["ca"])) == pki["server"].serial_number
    finally:
        secure.close()
        plain.close()


def test_mutual_tls_refuses_a_client_without_a_certificate(consul_agent, cores, start_envoyd, pki):
    envoyd = tls_envoyd(consul_agent, cores, start_envoyd, pki, mutual=True)
    with_cert = channel(envoyd.nbi, pki, client_cert=True)
    without = channel(envoyd.nbi, pki)
    try:
        assert version(with_cert).startswith("voltha-core-sim")
        with pytest.raises(grpc.RpcError) as refused:
            version(without)
        # gRPC reads the server's alert as data that cannot be unwrapped; a plain TLS client names it.
        assert (refused.value.code(), closed(refused.value.details())) == (
            grpc.StatusCode.UNAVAILABLE, "Unwrap failed (TSI_DATA_CORRUPTED)")
        assert tls_alert(envoyd.nbi, pem(pki["ca"])) == "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    finally:
        with_cert.close()
        without.close()


def test_a_rotated_certificate_is_served_without_dropping_calls(consul_agent, cores, start_envoyd, pki):
    envoyd = tls_envoyd(consul_agent, cores, start_envoyd, pki)
    failures, calls, stop = [], [0], threading.Event()

    def load():
        chan = channel(envoyd.nbi, pki)
        try:
            while not stop.is_set():
                try:
                    version(chan)
                    calls[0] += 1
                except grpc.RpcError as err:
                    failures.append(f"{err.code().name}: {err.details()}")
                time.sleep(0.005)
        finally:
            chan.close()

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        new, new_key = certificate("localhost", pki["ca"], pki["ca_key"], server=True)
        files = pki["files"]
        started = time.monotonic()
        replace_file(files["key"], pem(key=new_key))
        replace_file(files["cert"], pem(new))
        wait_for(lambda: served_serial(envoyd.nbi, pem(pki["ca"])) == new.serial_number, 10,
                 "the new certificate served")
        took = time.monotonic() - started
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(5)
    assert failures == [] and calls[0] > 50, (calls[0], failures[:3])
    print(f"\nrotated certificate served {took:.2f}s after its files were replaced; {calls[0]} calls, 0 failed")
