"""core_store.py: the stores a core serves, as the assignment gives them, and the KV layout."""

from __future__ import annotations

from voltha_protos import device_pb2

from voltha_core_sim.core_store import CoreStores, data_root, list_stores
from voltha_core_sim.devices import new_device


class KeysKV:
    def __init__(self, keys):
        self.keys = keys

    def get(self, key, keys=False, separator=None):
        assert keys and separator == "/"
        return 7, [k for k in self.keys if k.startswith(key)]


def test_layout():
    assert data_root("service/voltha/data/core/assignment") == "service/voltha/data/core"
    stores = CoreStores("core-1", "0001", "service/voltha/data/core")
    assert stores.device_key("0001:aaaaaaaaaaaa") == "service/voltha/data/core/0001/devices/0001:aaaaaaaaaaaa"
    kv = KeysKV(["service/voltha/data/core/0001/", "service/voltha/data/core/0003/",
                 "service/voltha/data/core/assignment"])
    assert list_stores(kv, "service/voltha/data/core") == ["0001", "0003"]


def test_the_assignment_gives_and_takes_stores():
    stores = CoreStores("core-1", "0001")  # no Consul: memory only
    me = ("core-1", "10.0.0.1", 1)
    assert stores.served() == ["0001"] and stores.create_prefix() == "0001"
    stores.assignment_changed({"0002": ("core-2", "10.0.0.2", 1)}, me)  # our home not assigned yet: still ours
    assert stores.served() == ["0001"]
    stores.assignment_changed({"0001": me, "0003": me, "0002": ("core-2", "10.0.0.2", 1)}, me)
    assert stores.served() == ["0001", "0003"]
    device = new_device(device_pb2.Device(type="simulated_olt"), "0003")
    assert stores.put(device) and stores.local("0003", device.id) == (True, device)
    stores.assignment_changed({"0001": ("core-2", "10.0.0.2", 1), "0003": me}, me)
    assert stores.served() == ["0003"] and stores.create_prefix() == "0003"  # new devices go where we serve
    assert not stores.put(new_device(device_pb2.Device(type="simulated_olt"), "0001"))
    assert stores.local("0001", "0001:aaaaaaaaaaaa") == (False, None)
