"""devices.py: ids that carry their store, VOLTHA's device lifecycle, and the refusals."""

from __future__ import annotations

import time

import grpc
import pytest
from voltha_protos import common_pb2, device_pb2

from voltha_core_sim import devices
from voltha_core_sim.devices import DeviceError

ADMIN, OPER, CONNECT = common_pb2.AdminState, common_pb2.OperStatus, common_pb2.ConnectStatus


def created(prefix="0001", **fields):
    return devices.new_device(device_pb2.Device(type=fields.pop("type", "simulated_olt"), **fields), prefix)


def refused(call) -> DeviceError:
    with pytest.raises(DeviceError) as info:
        call()
    return info.value


def test_a_device_id_names_its_store():
    device = created("0001")
    assert len(device.id) == 17 and device.id.startswith("0001:")
    assert devices.store_of(device.id) == "0001"
    assert devices.store_of(created("vcore-1").id) == "vcore-1"
    assert devices.store_of("0001") is None and devices.store_of("0001:nothexnothex") is None
    assert devices.store_of("0001aaaaaaaaaaaa") is None  # no colon
    assert devices.store_of("") is None and devices.store_of(None) is None


def test_create_preprovisions():
    device = created(host_and_port="10.0.0.9:9191", serial_number="SN1")
    assert (device.admin_state, device.oper_status, device.connect_status) == \
        (ADMIN.PREPROVISIONED, OPER.UNKNOWN, CONNECT.UNKNOWN)
    assert device.root and device.serial_number == "SN1" and device.host_and_port == "10.0.0.9:9191"
    assert not created(type="simulated_onu").root


@pytest.mark.parametrize("fields, named", [
    ({"type": ""}, "field 'type' must be one of"),
    ({"type": "nosuch"}, "got 'nosuch'"),
    ({"id": "0001:aaaaaaaaaaaa"}, "field 'id' must be empty"),
    ({"admin_state": ADMIN.ENABLED},
     "field 'admin_state' of a new device must be UNKNOWN or PREPROVISIONED, got ENABLED"),
    ({"host_and_port": "10.0.0.9"}, "field 'host_and_port' must be HOST:PORT, got '10.0.0.9'"),
])
def test_create_refuses_bad_requests_naming_the_field(fields, named):
    error = refused(lambda: created(**fields))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and named in str(error)


def test_the_lifecycle():
    device = created()
    assert refused(lambda: devices.disabled(device)).code == grpc.StatusCode.FAILED_PRECONDITION
    assert refused(lambda: devices.rebooted(device)).code == grpc.StatusCode.FAILED_PRECONDITION
    on = devices.enabled(device)
    assert (on.admin_state, on.oper_status, on.connect_status) == (ADMIN.ENABLED, OPER.ACTIVE, CONNECT.REACHABLE)
    assert device.admin_state == ADMIN.PREPROVISIONED  # a new message, the old one untouched
    error = refused(lambda: devices.enabled(on))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION and "already enabled" in str(error)
    assert devices.rebooted(on).oper_status == OPER.ACTIVE
    off = devices.disabled(on)
    assert (off.admin_state, off.oper_status, off.connect_status) == (ADMIN.DISABLED, OPER.UNKNOWN, CONNECT.REACHABLE)
    assert devices.disabled(off) is off  # disabling a disabled device: no error, no change
    assert devices.enabled(off).admin_state == ADMIN.ENABLED


def test_the_stored_form_round_trips():
    device = devices.enabled(created(host_and_port="h:1"))
    assert devices.from_json(devices.to_json(device)) == device
    assert '"admin_state":"ENABLED"' in devices.to_json(device).replace(" ", "")


def test_ids_and_prefixes():
    assert refused(lambda: devices.required_id("")).code == grpc.StatusCode.INVALID_ARGUMENT
    assert devices.check_prefix("0001") == "0001"
    for bad in ("", "a/b", "a:b", "assignment", " x"):
        with pytest.raises(ValueError, match="core store prefix"):
            devices.check_prefix(bad)


def test_the_adapter_and_its_types():
    assert [a.id for a in devices.adapters().items] == [devices.ADAPTER_ID]
    [adapter] = devices.adapters(now=1765000000.25).items
    assert adapter.last_communication == 1765000000  # Unix seconds, as voltctl reads them
    assert abs(devices.adapters().items[0].last_communication - time.time()) < 5  # in-process: heard just now
    assert {t.id for t in devices.device_types().items} == set(devices.DEVICE_TYPES)
