"""A Consul KV in memory with py-consul's kv.get/put/delete and CAS, for the assignment store's tests
and the core_assignment module's."""

import json

KEY = "test/assignment"  # the key the tests use when they name none


class FakeKV:
    """Consul KV semantics that matter here: a global index, ModifyIndex per key, cas on put and delete."""

    def __init__(self):
        self.index = 10
        self.data = {}  # key -> (value bytes, modify index)
        self.puts = []
        self.deletes = []
        self.before_write = None  # called before put/delete decides, to simulate another writer

    def get(self, key):
        if key not in self.data:
            return str(self.index), None
        value, modify = self.data[key]
        return str(self.index), {"Key": key, "Value": value, "ModifyIndex": modify, "CreateIndex": 1}

    def raw_put(self, key, value):
        self.index += 1
        self.data[key] = (value.encode() if isinstance(value, str) else value, self.index)

    def put(self, key, value, cas=None):
        if self.before_write:
            self.before_write(self)
        self.puts.append((key, value, cas))
        current = self.data.get(key, (None, 0))[1]
        if cas is not None and cas != current:
            return False
        self.raw_put(key, value)
        return True

    def delete(self, key, cas=None):
        if self.before_write:
            self.before_write(self)
        self.deletes.append((key, cas))
        if key not in self.data:
            return True
        if cas is not None and cas != self.data[key][1]:
            return False
        del self.data[key]
        self.index += 1
        return True

    def stored(self, key=KEY):
        return json.loads(self.data[key][0])
