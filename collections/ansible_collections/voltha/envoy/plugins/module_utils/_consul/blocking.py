# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Blocking queries over one HTTP connection of our own, for the watch loops.

A watch has to know what a general client hides:

- Whether a request goes out on a new TCP connection. A new connection may reach another agent or
  another store (Consul restarted, replaced or rebuilt): its index may have started again near 1,
  and a blocking query at our old, higher index would sit out the whole wait there. So the first
  request on every new connection does not block.
- Consul's ``X-Consul-KnownLeader`` header: an answer without a known leader is stale at best.
- A read timeout per request, the wait plus Consul's jitter (wait/16) plus a margin, so an agent
  that holds the socket open and never answers is noticed.
- TCP keepalive, so a peer gone from the network is noticed within seconds, even in a long wait.
- Consul's leader, looked at once a second while a read blocks (``/v1/status/leader``, which a server
  answers from its own Raft state): an agent forwards a blocking read to the leader, and when the
  leader's host drops off the network (no reset, the socket stays open) the read stays parked there
  long after another server was elected and took new writes, until the agent's own connection to the
  lost leader times out (about 40 s). A read whose leader changed, or went, is given up at the next
  look and the watch reads again from the new leader. ``stale`` reads are not forwarded to the leader
  by a server agent, so they are not looked after. What the first look said is what later looks are
  compared with: a read that started while the agent could not say (a client agent whose server is the
  one lost) is bounded only by its read timeout.
- A read that does not block (the first on a connection, or after an error or an index that went
  back) is the one a watch starts again from, so in the default mode it is made ``consistent``: a
  Consul server that restarted with its data elects itself leader and answers default reads while
  it is still applying its Raft log, one old value after another (an assignment of cores long
  gone); a consistent read waits until the leader has applied everything it committed (its
  barrier). Blocking reads from that index on see only newer states. ``stale`` reads stay stale:
  whoever chose them takes any server's view, also one still catching up.

Used by envoyd's watch, the envoy_config module and the core simulator's watchers (through
``KeyWatcher`` in watch.py).
"""

import base64
import collections
import http.client
import json
import selectors
import socket
import ssl
import time
import urllib.parse

from ansible_collections.voltha.envoy.plugins.module_utils._common import durations
from ansible_collections.voltha.envoy.plugins.module_utils._common.errors import VolthaEnvoyError

CONSISTENCY_MODES = ("default", "stale", "consistent")
DEFAULT_WAIT = "5m"  # Consul's own when a blocking query names none
DEFAULT_MARGIN = 5.0  # seconds on top of the wait (and the whole budget of a request that does not block)
KEEPALIVE = (1, 1, 3)  # idle seconds, interval seconds, probes: a silent peer is dropped after ~4 s
LEADER_CHECK = 1.0  # seconds between looks at Consul's leader while a read blocks (0: never look)
LEADER_LOOK_TIMEOUT = 2.0  # seconds one look may take at most (and never longer than leader_check)
# A kept connection the agent closed while it sat idle: worth one more try on a new one.
_CLOSED = (http.client.RemoteDisconnected, http.client.CannotSendRequest, BrokenPipeError, ConnectionResetError)

# index: X-Consul-Index. value: the decoded answer (None on 404). known_leader: X-Consul-KnownLeader.
# blocked: whether the request was a blocking one (False for the first one on a new connection,
# whose index is then the agent's current one, to be taken as it is).
Reading = collections.namedtuple("Reading", "index value known_leader blocked")


class ConsulHTTPError(VolthaEnvoyError):
    """Consul answered with an error status."""

    def __init__(self, status, reason, path):
        self.status = status
        super().__init__("consul answered %s %s for %s" % (status, reason.strip() or "(no text)", path))


class LeaderChanged(VolthaEnvoyError):
    """Consul's leader changed (or was lost) while a blocking read waited on the old one."""

    def __init__(self, before, after):
        self.before, self.after = before, after
        super().__init__("consul's leader changed from %s to %s while a blocking read waited; reading again"
                         % (before or "none", after or "none"))


def check_consistency(mode):
    if mode not in CONSISTENCY_MODES:
        raise ValueError("consul consistency must be one of %s, got %r" % (", ".join(CONSISTENCY_MODES), mode))
    return mode


def _ssl_context(settings):
    if settings.validate_certs:
        context = ssl.create_default_context(cafile=settings.ca_path or None)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.client_cert:
        context.load_cert_chain(settings.client_cert, settings.client_key)
    return context


def _keepalive(sock, idle, interval, probes):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", probes)):
        if hasattr(socket, name):  # Linux; elsewhere the system's keepalive defaults apply
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class BlockingReader:
    """GETs against one Consul agent (a ``ConsulSettings``), on one kept-alive connection.

    Reads are made in ``consistency`` (default: the settings' own): ``stale`` lets any server answer,
    also while the cluster has no leader; ``consistent`` asks the leader to confirm it still leads.

    ``margin`` bounds connecting and every request that does not block, and is added to the wait
    of those that do; by default the settings' timeout, else DEFAULT_MARGIN.

    ``leader_check``: seconds between looks at Consul's leader (on a second connection) while a read
    blocks; a read whose leader changed raises LeaderChanged. 0 never looks.
    """

    def __init__(self, settings, consistency=None, margin=None, keepalive=KEEPALIVE, leader_check=LEADER_CHECK):
        self.settings = settings
        self.consistency = check_consistency(consistency or getattr(settings, "consistency", None) or "default")
        self.margin = float(margin if margin is not None else (settings.timeout or DEFAULT_MARGIN))
        self.keepalive = keepalive
        self.leader_check = float(leader_check or 0.0)
        self.connections = 0  # how many connections were opened (a new one may reach a new agent)
        self._conn = None
        self._look_conn = None  # the leader's looks go on a connection of their own
        self._leader = None  # the leader's address at the last look ('' for none), and when
        self._leader_at = None

    def close(self):
        for name in ("_conn", "_look_conn"):
            conn = getattr(self, name)
            if conn is not None:
                conn.close()
                setattr(self, name, None)

    def _connected(self):
        """Whether the kept connection can carry another request: open, and no EOF waiting on it."""
        sock = self._conn.sock if self._conn is not None else None
        if sock is None:
            return False
        try:
            return not _readable(sock, 0)  # an idle connection that is readable was closed by the agent
        except (OSError, ValueError):
            return False

    def _open(self, timeout):
        host, port = self.settings.host, self.settings.port
        if self.settings.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=_ssl_context(self.settings))
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.connect()
            if self.keepalive:
                _keepalive(conn.sock, *self.keepalive)
        except Exception:
            conn.close()
            raise
        return conn

    def _connect(self):
        self.close()
        self._conn = self._open(self.margin)
        self.connections += 1

    def _headers(self):
        headers = {"Accept": "application/json"}
        if self.settings.token:
            headers["X-Consul-Token"] = self.settings.token
        return headers

    def look_at_leader(self):
        """The leader's address as the agent knows it ('' for none), or None when it did not say."""
        path = "/v1/status/leader"
        if self.settings.datacenter:
            path += "?" + urllib.parse.urlencode([("dc", self.settings.datacenter)])
        leader = None
        for _dummy in range(2):  # a kept connection the agent has closed since is tried once more on a new one
            fresh = self._look_conn is None
            try:
                if fresh:
                    self._look_conn = self._open(min(self.margin, LEADER_LOOK_TIMEOUT, self.leader_check))
                self._look_conn.request("GET", path, headers=self._headers())
                response = self._look_conn.getresponse()
                body = response.read()
                if response.will_close:
                    self._look_conn.close()
                    self._look_conn = None
                leader = json.loads(body.decode("utf-8")) if response.status == 200 else None
                break
            except Exception as error:  # a look that fails says nothing: the read's own budget still bounds it
                if self._look_conn is not None:
                    self._look_conn.close()
                    self._look_conn = None
                if fresh or not isinstance(error, _CLOSED):
                    return None
        if leader is None or not isinstance(leader, str):
            return None
        self._leader, self._leader_at = leader, time.monotonic()
        return leader

    def _leader_now(self):
        """The leader, from a look at most ``leader_check`` old (a new look otherwise)."""
        if self._leader_at is not None and time.monotonic() - self._leader_at < self.leader_check:
            return self._leader
        return self.look_at_leader()

    def _await_answer(self, leader, deadline):
        """Wait for the first bytes of the answer until ``deadline``, looking at the leader meanwhile."""
        sock = self._conn.sock
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return  # the read itself times out
            if _readable(sock, min(self.leader_check, remaining)):
                return
            now = self.look_at_leader()
            if now is None:
                continue  # the agent did not say: keep waiting within the budget
            if leader is None:
                leader = now
            elif now != leader:
                raise LeaderChanged(leader, now)

    def url(self, path, params=(), index=0, wait=None, consistency=None):
        consistency = consistency or self.consistency
        query = [(k, v) for k, v in params if v is not None]
        if index:
            query.append(("index", str(int(index))))
            if wait:
                query.append(("wait", durations.go_duration(durations.seconds(wait, "wait"))))
        if consistency != "default":
            query.append((consistency, ""))
        if self.settings.datacenter:
            query.append(("dc", self.settings.datacenter))
        text = urllib.parse.quote(path, safe="/:@~")
        return text + ("?" + urllib.parse.urlencode(query) if query else "")

    def get(self, path, params=(), index=0, wait=None):
        """One GET -> Reading. Blocks on ``index`` (if > 0) for up to ``wait`` on a kept connection."""
        if not self._connected():
            self._connect()
            index = 0  # a new connection may reach another agent or store: read its current state first
        blocking = bool(index and index > 0)
        if blocking and not (wait and durations.seconds(wait, "wait")):
            wait = DEFAULT_WAIT  # said explicitly, so the read timeout is sized from it (Consul reads 0 as this)
        # The read a watch starts from: not from a store a restarted server is still rebuilding.
        consistency = "consistent" if not blocking and self.consistency == "default" else self.consistency
        target = self.url(path, params, index if blocking else 0, wait if blocking else None, consistency)
        budget = self.margin + (durations.seconds(wait, "wait") * 17.0 / 16.0 if blocking else 0.0)
        looking = blocking and self.leader_check > 0 and self.consistency != "stale"
        leader = self._leader_now() if looking else None
        try:
            deadline = time.monotonic() + budget
            self._conn.sock.settimeout(budget)
            self._conn.request("GET", target, headers=self._headers())
            if looking:
                self._await_answer(leader, deadline)
                self._conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
            response = self._conn.getresponse()
            self.answered_at = time.monotonic()  # the answer's headers are in: where a change reaches us
            body = response.read()
        except Exception:
            self.close()  # whatever state the connection is in, the next request starts a new one
            raise
        if response.will_close:
            self.close()
        if response.status == 404:
            value = None
        elif response.status != 200:
            raise ConsulHTTPError(response.status, body.decode("utf-8", "replace"), path)
        else:
            value = json.loads(body.decode("utf-8")) if body else None
        try:
            new_index = int(response.getheader("X-Consul-Index") or 0)
        except ValueError:
            new_index = 0
        known_leader = (response.getheader("X-Consul-KnownLeader") or "true").lower() != "false"
        return Reading(new_index, value, known_leader, blocking)


def _readable(sock, timeout):
    """Whether ``sock`` has something to read (or was closed) within ``timeout`` seconds."""
    with selectors.DefaultSelector() as selector:  # select.select fails on descriptors over 1023
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(timeout))


def kv_value(entries):
    """The bytes of a /v1/kv/<key> answer (b'' for an empty value); None when the key is missing."""
    if not entries:
        return None
    encoded = entries[0].get("Value")
    return base64.b64decode(encoded) if encoded else b""


def kv_reading(reader, key, index=0, wait=None):
    """Reading of one key, its value as bytes (or None when missing)."""
    reading = reader.get("/v1/kv/" + key.lstrip("/"), (), index, wait)
    return reading._replace(value=kv_value(reading.value))
