"""Leader election among the cores: a Consul session tied to the core's health, and a lock key.

Each core creates a session bound to its node's ``serfHealth`` and its own service check, so the
session (and the lock, if it held it) goes away by itself when the core dies or turns unhealthy.
Then it tries to acquire the lock key with that session; the one that holds it is the leader. The
others wait on the key with blocking queries and try again as soon as it is released.

Writes that only the leader may make go through ``LeaderKV``: a Consul transaction that checks the
lock is still held by our session and writes with check-and-set, atomically. A leader that lost the
lock a moment ago cannot overwrite what the new leader wrote.
"""

from __future__ import annotations

import base64
import json

from ansible_collections.voltha.envoy.plugins.module_utils._consul.blocking import LeaderChanged, Reading

LEADER, FOLLOWER, FREE = "leader", "follower", "free"
DEFAULT_LOCK_KEY = "service/voltha/leader"


def txn_put(client, operations):
    """PUT /v1/txn with the client's ACL token (py-consul's txn.put sends none, so Consul's ACLs
    refuse every operation in it)."""
    from consul.callback import CB

    return client.http.put(CB.json(), "/v1/txn", data=json.dumps(operations), headers=client.prepare_headers())


class NotLeader(Exception):
    """The lock is not held by our session (any more)."""


class SessionInvalid(Exception):
    """Consul no longer knows our session (invalidated by a failed check, or Consul restarted)."""


def lock_role(holder: str | None, session_id: str | None) -> str:
    """Who holds the lock, from our point of view: LEADER, FOLLOWER (someone else) or FREE."""
    if not holder:
        return FREE
    if session_id and holder == session_id:
        return LEADER
    return FOLLOWER


def _text(error: Exception) -> str:
    return str(error).lower()


def is_invalid_session(error: Exception) -> bool:
    text = _text(error)
    return "invalid session" in text or ("session" in text and "not found" in text)


class LeaderElection:
    """One core's side of the election.

    ``poll(index, wait)`` is one round, made for ``KeyWatcher``: make sure we have a session, read
    the lock key (blocking on ``index``), acquire it when it is free, and return a Reading whose
    value is the role. Every failure raises, so the watcher backs off and tries again; the role is
    then FOLLOWER until a round succeeds. ``reader`` (a BlockingReader) reads the lock key; without
    one, the client's kv does.
    """

    def __init__(self, client, core_id: str, lock_key: str = DEFAULT_LOCK_KEY, checks=("serfHealth",),
                 lock_delay: int = 0, behavior: str = "release", session_name: str | None = None, reader=None):
        self.client = client
        self.reader = reader
        self.core_id = core_id
        self.lock_key = lock_key
        self.checks = list(checks)
        self.lock_delay = lock_delay
        self.behavior = behavior
        self.session_name = session_name or f"voltha-core-{core_id}"
        self.session_id: str | None = None
        self.role = FOLLOWER
        self.holder: str | None = None

    @property
    def is_leader(self) -> bool:
        return self.role == LEADER

    def lock_value(self) -> str:
        return json.dumps({"core_id": self.core_id})

    def ensure_session(self) -> str:
        if self.session_id is None:
            # Fails while our service check is still critical (just registered, or unhealthy): the
            # caller backs off and tries again.
            self.session_id = self.client.session.create(
                name=self.session_name, checks=self.checks, lock_delay=self.lock_delay, behavior=self.behavior)
        return self.session_id

    def forget_session(self) -> None:
        self.session_id = None
        self.role = FOLLOWER

    def poll(self, index, wait):
        try:
            return self._poll(index, wait)
        except LeaderChanged:
            raise  # Consul's leader moved while the lock was watched: the lock, and our role, did not
        except Exception:
            self.role = FOLLOWER  # no answer from Consul: not the leader as far as we can tell
            raise

    def read_lock(self, index, wait) -> Reading:
        """Reading of the lock key's entry (a dict with its Session, if held), or None when missing."""
        if self.reader is None:
            new_index, item = self.client.kv.get(self.lock_key, index=index or None, wait=wait)
            return Reading(new_index, item, True, bool(index))
        reading = self.reader.get("/v1/kv/" + self.lock_key, (), index, wait)
        return reading._replace(value=(reading.value or [None])[0])

    def _poll(self, index, wait):
        session_id = self.ensure_session()
        reading = self.read_lock(index, wait)
        item = reading.value
        self.holder = (item or {}).get("Session")
        role = lock_role(self.holder, session_id)
        if role == FREE:
            try:
                acquired = self.client.kv.put(self.lock_key, self.lock_value(), acquire=session_id)
            except Exception as error:
                if is_invalid_session(error):
                    self.forget_session()
                    raise SessionInvalid(f"session {session_id} is gone: {error}") from error
                raise
            role = LEADER if acquired else FOLLOWER
            if acquired:
                self.holder = session_id
        self.role = role
        return reading._replace(value=role)

    def resign(self) -> None:
        """Destroy the session: the lock, if we held it, is released at once (lock delay permitting)."""
        session_id, self.session_id = self.session_id, None
        self.role = FOLLOWER
        if session_id:
            self.client.session.destroy(session_id)

    def guarded_kv(self, client=None) -> LeaderKV:
        """A LeaderKV over ``client`` (another thread's py-consul client; ours by default)."""
        return LeaderKV(client or self.client, self)


class LeaderKV:
    """A kv for ``AssignmentStore`` whose writes succeed only while our session holds the lock.

    ``get`` reads as usual; ``put`` and ``delete`` are transactions of ``check-session`` on the lock
    key and ``cas`` on the key. A lost check-and-set returns False (the store retries); a lost lock
    raises NotLeader.
    """

    def __init__(self, client, election: LeaderElection, kv=None):
        self.client = client
        self.election = election
        self.kv = kv or client.kv

    def get(self, key, **kwargs):
        return self.kv.get(key, **kwargs)

    def _operations(self, verb: str, key: str, cas: int, value: str | bytes | None = None) -> list:
        session_id = self.election.session_id
        if not session_id or not self.election.is_leader:
            raise NotLeader(f"core {self.election.core_id} does not hold {self.election.lock_key}")
        operation = {"Verb": verb, "Key": key, "Index": int(cas or 0)}
        if value is not None:
            data = value.encode("utf-8") if isinstance(value, str) else value
            operation["Value"] = base64.b64encode(data).decode("ascii")
        return [{"KV": {"Verb": "check-session", "Key": self.election.lock_key, "Session": session_id}},
                {"KV": operation}]

    def _run(self, operations) -> bool:
        try:
            txn_put(self.client, operations)
        except Exception as error:
            text = _text(error)
            if "failed session check" in text or "lock not held" in text or "invalid session" in text:
                self.election.role = FOLLOWER
                raise NotLeader(f"core {self.election.core_id} lost {self.election.lock_key}: {error}") from error
            if "409" in text and ("index is stale" in text or "cas" in text):
                return False
            raise
        return True

    def put(self, key, value, cas=None):
        return self._run(self._operations("cas", key, cas, value))

    def delete(self, key, cas=None):
        return self._run(self._operations("delete-cas", key, cas))
