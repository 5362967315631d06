"""A Consul in memory for the core simulator's unit tests: KV with sessions and CAS, transactions,
an agent and the health API, as py-consul's client shows them."""

from __future__ import annotations

import base64
import json

from consul import ConsulException
from consul.exceptions import ClientError

from voltha_core_sim.election import LeaderElection


class FakeKV:
    """Consul's KV with ModifyIndex, sessions holding locks, and cas."""

    def __init__(self, consul):
        self.consul = consul
        self.items: dict[str, dict] = {}

    def get(self, key, index=None, wait=None):
        self.consul.gets.append((key, index, wait))
        item = self.items.get(key)
        return str(self.consul.index), (dict(item) if item else None)

    def _bump(self):
        self.consul.index += 1
        return self.consul.index

    def put(self, key, value, cas=None, acquire=None):
        if self.consul.fail_next:
            raise self.consul.fail_next.pop(0)
        item = self.items.get(key)
        if acquire is not None:
            if acquire not in self.consul.sessions:
                raise ConsulException(f'500 invalid session "{acquire}"')
            if item and item.get("Session") not in (None, acquire):
                return False
        if cas is not None and (item["ModifyIndex"] if item else 0) != cas:
            return False
        new = {"Key": key, "Value": value.encode() if isinstance(value, str) else value, "ModifyIndex": self._bump()}
        if acquire is not None:
            new["Session"] = acquire
        elif item and item.get("Session"):
            new["Session"] = item["Session"]
        self.items[key] = new
        return True

    def delete(self, key, cas=None):
        self.items.pop(key, None)
        return True


class FakeTxn:
    def __init__(self, consul):
        self.consul = consul
        self.calls = []

    def put(self, operations):
        self.calls.append(operations)
        kv = self.consul.kv
        errors = []
        for op in operations:
            op = op["KV"]
            item = kv.items.get(op["Key"])
            if op["Verb"] == "check-session" and (item or {}).get("Session") != op["Session"]:
                errors.append(f'failed session check for key "{op["Key"]}"')
            if op["Verb"] in ("cas", "delete-cas") and (item["ModifyIndex"] if item else 0) != op["Index"]:
                errors.append(f'failed to set key "{op["Key"]}", index is stale')
        if errors:
            raise ClientError("409 " + json.dumps({"Errors": errors}))
        for op in operations:
            op = op["KV"]
            if op["Verb"] == "cas":
                kv.items[op["Key"]] = {"Key": op["Key"], "Value": base64.b64decode(op["Value"]),
                                       "ModifyIndex": kv._bump()}
        return {"Results": []}


class FakeSession:
    def __init__(self, consul):
        self.consul = consul
        self.created = []

    def create(self, **kwargs):
        if self.consul.session_error:
            raise self.consul.session_error
        session_id = f"session-{len(self.created)}"
        self.created.append(kwargs)
        self.consul.sessions.add(session_id)
        return session_id

    def destroy(self, session_id):
        self.consul.invalidate(session_id)
        return True


class FakeAgent:
    def __init__(self):
        self.entries: dict[str, dict] = {}
        self.registrations = []
        self.service = self

    def services(self):
        return self.entries

    def register(self, **kwargs):
        self.registrations.append(kwargs)
        self.entries[kwargs["service_id"]] = {"ID": kwargs["service_id"], "Service": kwargs["name"],
                                              "Address": kwargs["address"], "Port": kwargs["port"],
                                              "Meta": kwargs["meta"]}

    def deregister(self, service_id):
        self.entries.pop(service_id, None)
        return True


class FakeHTTP:
    """The one raw request the simulator makes: PUT /v1/txn (election.txn_put)."""

    def __init__(self, consul):
        self.consul = consul
        self.headers = []

    def put(self, callback, path, params=None, data="", headers=None):
        assert path == "/v1/txn"
        self.headers.append(headers)
        return self.consul.txn.put(json.loads(data))


class FakeConsul:
    def __init__(self):
        self.index = 10
        self.gets = []
        self.sessions: set[str] = set()
        self.session_error = None
        self.fail_next: list[Exception] = []
        self.kv = FakeKV(self)
        self.txn = FakeTxn(self)
        self.http = FakeHTTP(self)
        self.session = FakeSession(self)
        self.agent = FakeAgent()

    def prepare_headers(self, token=None):
        return {"X-Consul-Token": token} if token else {}

    def invalidate(self, session_id):
        """What Consul does when a session's check fails: release its locks."""
        self.sessions.discard(session_id)
        for item in self.kv.items.values():
            if item.get("Session") == session_id:
                del item["Session"]
                item["ModifyIndex"] = self.kv._bump()


def health_entry(core_id, host="127.0.0.1", port=50556, prefix=None, node_address="10.9.9.9"):
    meta = {"core_id": core_id}
    if prefix is not None:
        meta["prefix"] = prefix
    return {"Node": {"Address": node_address},
            "Service": {"ID": core_id, "Service": "vcore", "Address": host, "Port": port, "Meta": meta}}


def election(consul, core_id="core-1"):
    """A core's leader election on the fake Consul, its session tied to the core's check."""
    return LeaderElection(consul, core_id, "lock", checks=("serfHealth", f"service:{core_id}"), lock_delay=0)
