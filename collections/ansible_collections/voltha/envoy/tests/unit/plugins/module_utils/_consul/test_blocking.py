"""Unit tests for BlockingReader (blocking.py) against a scripted HTTP server on loopback."""

import base64
import http.server
import json
import socket
import threading
import time

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._consul.blocking import (
    BlockingReader,
    ConsulHTTPError,
    LeaderChanged,
    kv_reading,
    kv_value,
)
from ansible_collections.voltha.envoy.plugins.module_utils._consul.connection import ConsulSettings


class ScriptedConsul(http.server.ThreadingHTTPServer):
    """Answers each GET with the next scripted (status, headers, body[, seconds to wait first]); records
    path and connection. /v1/status/leader answers ``leader`` (a 500 when None), recorded in ``looks``."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.script = []
        self.seen = []  # (path with query, client port: one per connection, headers)
        self.leader = "10.0.0.1:8300"
        self.looks = []  # (path, client port)

    @property
    def port(self):
        return self.server_address[1]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path.startswith("/v1/status/leader"):
            self.server.looks.append((self.path, self.client_address[1]))
            leader = self.server.leader
            self._send(200 if leader is not None else 500, {}, leader if leader is not None else b"no agent")
            return
        self.server.seen.append((self.path, self.client_address[1], dict(self.headers)))
        status, headers, body, *delay = self.server.script.pop(0)
        if status is None:  # never answer
            threading.Event().wait(5)
            return
        if delay:
            threading.Event().wait(delay[0])
        self._send(status, headers, body)

    def _send(self, status, headers, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def consul():
    server = ScriptedConsul()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def reader_for(consul, **kwargs):
    timeout = kwargs.pop("timeout", 2.0)
    leader_check = kwargs.pop("leader_check", 1.0)
    return BlockingReader(ConsulSettings(port=consul.port, timeout=timeout, **kwargs), leader_check=leader_check)


def answer(index, body, known_leader="true", **headers):
    return 200, dict({"X-Consul-Index": str(index), "X-Consul-KnownLeader": known_leader}, **headers), body


def test_the_first_request_on_a_new_connection_does_not_block(consul):
    """A new connection may reach a restarted agent or a new store: read its current state first,
    consistently (a restarted server answers default reads while it still replays its Raft log)."""
    consul.script = [answer(3, []), answer(4, []), answer(5, [])]
    reader = reader_for(consul)
    first = reader.get("/v1/kv/a", (), index=5000, wait="60s")
    second = reader.get("/v1/kv/a", (), index=3, wait="60s")
    third = reader.get("/v1/kv/a", (), index=4, wait="1m30s")
    assert [path for path, _port, _headers in consul.seen] == [
        "/v1/kv/a?consistent=", "/v1/kv/a?index=3&wait=60s", "/v1/kv/a?index=4&wait=90s"]
    assert len({port for _path, port, _headers in consul.seen}) == 1  # one kept-alive connection
    assert (first.index, first.blocked, second.blocked, third.index) == (3, False, True, 5)
    assert reader.connections == 1


def test_a_zero_wait_is_consuls_default_said_out_loud(consul):
    """Consul reads wait=0s as its five-minute default: the read timeout must be sized for that."""
    consul.script = [answer(3, []), answer(4, []), answer(5, []), answer(6, [])]
    reader = reader_for(consul)
    reader.get("/v1/kv/a", (), index=1)
    for wait in ("0s", 0, None):
        reader.get("/v1/kv/a", (), index=3, wait=wait)
    assert [path for path, _port, _headers in consul.seen][1:] == ["/v1/kv/a?index=3&wait=300s"] * 3


def test_a_closed_connection_means_a_new_one_and_no_blocking(consul):
    consul.script = [answer(7, [], Connection="close"), answer(2, [])]
    reader = reader_for(consul)
    reader.get("/v1/kv/a", (), 0)
    again = reader.get("/v1/kv/a", (), index=7, wait="10s")
    assert consul.seen[1][0] == "/v1/kv/a?consistent=" and not again.blocked
    assert reader.connections == 2 and consul.seen[0][1] != consul.seen[1][1]


def test_headers_consistency_datacenter_and_token(consul):
    consul.script = [answer(9, [], known_leader="false"), answer(9, [])]
    reader = reader_for(consul, token="s3cret", datacenter="dc2", consistency="stale")
    reading = reader.get("/v1/health/service/vcore", (("passing", None),))
    assert reading.known_leader is False
    assert consul.seen[0][0] == "/v1/health/service/vcore?stale=&dc=dc2"
    assert consul.seen[0][2]["X-Consul-Token"] == "s3cret"
    assert BlockingReader(ConsulSettings(), consistency="consistent").url("/v1/kv/x") == "/v1/kv/x?consistent="
    # A wait given in seconds, as a number or as text, goes to Consul as a Go duration.
    assert BlockingReader(ConsulSettings()).url("/v1/kv/x", index=3, wait=1.5) == "/v1/kv/x?index=3&wait=1500ms"
    assert BlockingReader(ConsulSettings()).url("/v1/kv/x", index=3, wait="30") == "/v1/kv/x?index=3&wait=30s"


def test_reads_that_do_not_block_are_consistent_unless_stale_was_chosen(consul):
    consul.script = [answer(5, []), answer(6, []), answer(7, []), answer(8, [])]
    reader = reader_for(consul)
    reader.get("/v1/kv/a", (), 0)
    reader.get("/v1/kv/a", (), 5, "1s")
    reader.get("/v1/kv/a", (), 0)
    stale = reader_for(consul, consistency="stale")
    stale.get("/v1/kv/a", (), 0)
    assert [path for path, _port, _headers in consul.seen] == [
        "/v1/kv/a?consistent=", "/v1/kv/a?index=5&wait=1s", "/v1/kv/a?consistent=", "/v1/kv/a?stale="]


def test_missing_key_and_errors(consul):
    consul.script = [(404, {"X-Consul-Index": "12"}, b""), (500, {}, b"No cluster leader")]
    reader = reader_for(consul)
    missing = kv_reading(reader, "service/voltha/x")
    assert (missing.index, missing.value) == (12, None)
    with pytest.raises(ConsulHTTPError, match="consul answered 500 No cluster leader for /v1/kv/service/voltha/x") \
            as raised:
        kv_reading(reader, "service/voltha/x")
    assert raised.value.status == 500


def test_an_agent_that_never_answers_is_noticed(consul):
    consul.script = [(None, {}, b"")]
    reader = reader_for(consul, timeout=0.3)
    with pytest.raises((socket.timeout, TimeoutError)):
        reader.get("/v1/kv/a", (), 0)
    assert reader._conn is None  # the next request starts on a new connection


def blocked_on(consul, reader):
    """Read once (not blocking), then start a blocking read on another thread: (thread, outcome)."""
    reader.get("/v1/kv/a", (), 0)
    outcome = {}

    def read():
        try:
            outcome["reading"] = reader.get("/v1/kv/a", (), index=3, wait="30s")
        except Exception as error:
            outcome["error"] = error
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, outcome


def until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within %ss" % timeout
        time.sleep(0.01)


@pytest.mark.parametrize("new_leader", ["10.0.0.2:8300", ""], ids=["another", "none"])
def test_a_blocking_read_whose_leader_changed_is_given_up(consul, new_leader):
    """An agent forwards a blocking read to the leader; a leader lost off the network holds it for
    about 40 s after another took over. The reader looks at the leader while it waits and gives up."""
    consul.script = [answer(3, []), (None, {}, b""), answer(4, [])]
    reader = reader_for(consul, leader_check=0.1)
    thread, outcome = blocked_on(consul, reader)
    until(lambda: len(consul.looks) >= 3)  # waiting, and looking meanwhile
    assert thread.is_alive() and outcome == {}
    consul.leader = new_leader
    thread.join(5.0)
    assert isinstance(outcome.get("error"), LeaderChanged), outcome
    assert str(outcome["error"]) == ("consul's leader changed from 10.0.0.1:8300 to %s while a blocking read "
                                     "waited; reading again" % (new_leader or "none"))
    again = reader.get("/v1/kv/a", (), index=3, wait="30s")  # a new connection: read the current state first
    assert (again.index, again.blocked, consul.seen[-1][0]) == (4, False, "/v1/kv/a?consistent=")
    assert {port for _path, port in consul.looks}.isdisjoint({port for _path, port, _headers in consul.seen})


def test_a_blocking_read_under_the_same_leader_waits_for_its_answer(consul):
    consul.script = [answer(3, []), answer(5, []) + (0.6,)]
    reader = reader_for(consul, leader_check=0.1, datacenter="dc2")
    thread, outcome = blocked_on(consul, reader)
    until(lambda: len(consul.looks) >= 1)
    consul.leader = None  # an agent that does not say (an error) gives no reason to give up
    thread.join(5.0)
    assert outcome["reading"].index == 5 and outcome["reading"].blocked
    assert len(consul.looks) >= 3 and {path for path, _port in consul.looks} == {"/v1/status/leader?dc=dc2"}


@pytest.mark.parametrize("settings", [{"leader_check": 0}, {"consistency": "stale"}], ids=["off", "stale"])
def test_no_looks_when_turned_off_or_for_stale_reads(consul, settings):
    """A server agent answers stale reads itself: a leader lost elsewhere does not hold them."""
    consul.script = [answer(3, []), answer(4, []) + (0.3,)]
    reader = reader_for(consul, **dict({"leader_check": 0.05}, **settings))
    reader.get("/v1/kv/a", (), 0)
    assert reader.get("/v1/kv/a", (), index=3, wait="30s").index == 4
    assert consul.looks == []


def test_nothing_listening_raises_and_the_next_try_connects_again():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reader = BlockingReader(ConsulSettings(port=port, timeout=1.0))
    for _dummy in range(2):
        with pytest.raises(ConnectionRefusedError):
            reader.get("/v1/kv/a", ())


def test_bad_consistency_is_named():
    with pytest.raises(ValueError, match="consistency must be one of default, stale, consistent, got 'eventual'"):
        BlockingReader(ConsulSettings(), consistency="eventual")


@pytest.mark.parametrize("entries,value", [
    (None, None),
    ([], None),
    ([{"Value": None}], b""),
    ([{"Value": base64.b64encode(b'{"a": 1}').decode()}], b'{"a": 1}'),
])
def test_kv_value(entries, value):
    assert kv_value(entries) == value
