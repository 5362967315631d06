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
import select
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

# index: X-Consul-Index. value: the decoded answer (None on 404). known_leader: X-Consul-KnownLeader.
# blocked: whether the request was a blocking one (False for the first one on a new connection,
# whose index is then the agent's current one, to be taken as it is).
Reading = collections.namedtuple("Reading", "index value known_leader blocked")


class ConsulHTTPError(VolthaEnvoyError):
    """Consul answered with an error status."""

    def __init__(self, status, reason, path):
        self.status = status
        super().__init__("consul answered %s %s for %s" % (status, reason.strip() or "(no text)", path))


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
    """

    def __init__(self, settings, consistency=None, margin=None, keepalive=KEEPALIVE):
        self.settings = settings
        self.consistency = check_consistency(consistency or getattr(settings, "consistency", None) or "default")
        self.margin = float(margin if margin is not None else (settings.timeout or DEFAULT_MARGIN))
        self.keepalive = keepalive
        self.connections = 0  # how many connections were opened (a new one may reach a new agent)
        self._conn = None

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connected(self):
        """Whether the kept connection can carry another request: open, and no EOF waiting on it."""
        sock = self._conn.sock if self._conn is not None else None
        if sock is None:
            return False
        try:
            readable, dummy, dummy = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable  # an idle connection that is readable was closed by the agent

    def _connect(self):
        self.close()
        host, port = self.settings.host, self.settings.port
        if self.settings.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=self.margin,
                                               context=_ssl_context(self.settings))
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.margin)
        try:
            conn.connect()
            if self.keepalive:
                _keepalive(conn.sock, *self.keepalive)
        except Exception:
            conn.close()
            raise
        self._conn = conn
        self.connections += 1

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
        headers = {"Accept": "application/json"}
        if self.settings.token:
            headers["X-Consul-Token"] = self.settings.token
        try:
            self._conn.sock.settimeout(budget)
            self._conn.request("GET", target, headers=headers)
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
