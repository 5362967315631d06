"""Devices as VOLTHA's cores keep them: ids carrying their core store, states, and the checks on each call.

A device id is its core store's prefix, a colon and 12 hexadecimal digits (``vcore-1:4fa6bb473b1b``;
VOLTHA 1.x's ``create_cluster_device_id`` put the store id in front the same way), so any core can
tell from the id alone which store, and so which core, holds the device.

The lifecycle follows VOLTHA's core: CreateDevice pre-provisions (admin PREPROVISIONED, oper and
connect UNKNOWN); EnableDevice activates (ENABLED, ACTIVE, REACHABLE); DisableDevice keeps it
reachable with oper UNKNOWN; RebootDevice needs an enabled device; DeleteDevice removes it in any
state. Every refusal is a ``DeviceError`` with the gRPC status code and a message naming the id or
the field and value. Pure logic, no gRPC server or Consul here.
"""

from __future__ import annotations

import re
import secrets
import time

import grpc
from google.protobuf import json_format
from voltha_protos import adapter_pb2, common_pb2, device_pb2

from . import __version__

ID_DIGITS = 12
HOST_AND_PORT = re.compile(r"[^\s:]+:[0-9]{1,5}|\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}")
_ID_TAIL = re.compile(r":[0-9a-f]{%d}\Z" % ID_DIGITS)
ADAPTER_ID = "simulated"
VERSION = f"voltha-core-sim {__version__}"
# The device types the simulated adapter takes: VOLTHA's own simulated OLT and ONU, and the types
# of the OLT and ONU adapters a lab usually names, so an operator's usual commands work.
DEVICE_TYPES = ("simulated_olt", "simulated_onu", "openolt", "brcm_openomci_onu")
ROOT_TYPES = ("simulated_olt", "openolt")

ADMIN = common_pb2.AdminState
OPER = common_pb2.OperStatus
CONNECT = common_pb2.ConnectStatus


class DeviceError(Exception):
    """A call the core refuses: ``code`` is the gRPC status, the message says why."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def check_prefix(prefix: str) -> str:
    """A core store prefix: non-empty, no '/' or ':', and not the assignment's own key name."""
    if not isinstance(prefix, str) or not prefix or "/" in prefix or ":" in prefix or prefix.strip() != prefix \
            or prefix == "assignment":
        raise ValueError(f"a core store prefix must be non-empty text without '/', ':' or spaces and other than "
                         f"'assignment', got {prefix!r}")
    return prefix


def new_device_id(prefix: str) -> str:
    return f"{prefix}:{secrets.token_hex(ID_DIGITS // 2)}"


def store_of(device_id: str) -> str | None:
    """The store prefix a device id names; None when it is not a device id of ours."""
    if not isinstance(device_id, str) or len(device_id) <= ID_DIGITS + 1 or not _ID_TAIL.search(device_id):
        return None
    return device_id[:-ID_DIGITS - 1]


def not_found(device_id: str) -> DeviceError:
    return DeviceError(grpc.StatusCode.NOT_FOUND, f"device {device_id!r} not found")


def required_id(device_id: str) -> str:
    """The id of a common.ID request; INVALID_ARGUMENT when it is empty."""
    if not device_id:
        raise DeviceError(grpc.StatusCode.INVALID_ARGUMENT, "field 'id' is required, got ''")
    return device_id


def _state(enum, value) -> str:
    """The name of a state (AdminState.Types and its kin), or the number when it has none."""
    try:
        return enum.Types.Name(value)
    except ValueError:
        return str(value)


def new_device(request: device_pb2.Device, prefix: str) -> device_pb2.Device:
    """The pre-provisioned device for a CreateDevice request, with a new id in store ``prefix``."""
    if request.id:
        raise DeviceError(grpc.StatusCode.INVALID_ARGUMENT,
                          f"field 'id' must be empty in CreateDevice (the core assigns it), got {request.id!r}")
    if request.type not in DEVICE_TYPES:
        raise DeviceError(grpc.StatusCode.INVALID_ARGUMENT,
                          f"field 'type' must be one of {', '.join(DEVICE_TYPES)}, got {request.type!r}")
    if request.admin_state not in (ADMIN.UNKNOWN, ADMIN.PREPROVISIONED):
        raise DeviceError(grpc.StatusCode.INVALID_ARGUMENT,
                          "field 'admin_state' of a new device must be UNKNOWN or PREPROVISIONED, got "
                          f"{_state(ADMIN, request.admin_state)}")
    if request.host_and_port and not HOST_AND_PORT.fullmatch(request.host_and_port):
        raise DeviceError(grpc.StatusCode.INVALID_ARGUMENT,
                          f"field 'host_and_port' must be HOST:PORT, got {request.host_and_port!r}")
    device = device_pb2.Device()
    device.CopyFrom(request)
    device.id = new_device_id(prefix)
    device.root = device.type in ROOT_TYPES
    device.adapter_endpoint = device.adapter_endpoint or ADAPTER_ID
    device.admin_state = ADMIN.PREPROVISIONED
    device.oper_status = OPER.UNKNOWN
    device.connect_status = CONNECT.UNKNOWN
    return device


def enabled(device: device_pb2.Device) -> device_pb2.Device:
    if device.admin_state == ADMIN.ENABLED:
        raise DeviceError(grpc.StatusCode.FAILED_PRECONDITION, f"device {device.id!r} is already enabled")
    if device.admin_state not in (ADMIN.PREPROVISIONED, ADMIN.DISABLED):
        raise DeviceError(grpc.StatusCode.FAILED_PRECONDITION,
                          f"device {device.id!r} cannot be enabled in admin state {_state(ADMIN, device.admin_state)}")
    return _with(device, ADMIN.ENABLED, OPER.ACTIVE, CONNECT.REACHABLE)


def disabled(device: device_pb2.Device) -> device_pb2.Device:
    if device.admin_state == ADMIN.DISABLED:
        return device  # as VOLTHA: disabling a disabled device is no error
    if device.admin_state != ADMIN.ENABLED:
        raise DeviceError(grpc.StatusCode.FAILED_PRECONDITION,
                          f"device {device.id!r} cannot be disabled in admin state "
                          f"{_state(ADMIN, device.admin_state)}")
    changed = _with(device, ADMIN.DISABLED, OPER.UNKNOWN, CONNECT.REACHABLE)
    if changed.root:
        changed.ClearField("custom")  # its logical device is gone (olt.py), and its flow table with it
    return changed


def rebooted(device: device_pb2.Device) -> device_pb2.Device:
    """The simulated device reboots at once: it is back ACTIVE and REACHABLE when the call returns."""
    if device.admin_state != ADMIN.ENABLED:
        raise DeviceError(grpc.StatusCode.FAILED_PRECONDITION,
                          f"device {device.id!r} cannot be rebooted in admin state "
                          f"{_state(ADMIN, device.admin_state)}")
    return _with(device, ADMIN.ENABLED, OPER.ACTIVE, CONNECT.REACHABLE)


def _with(device, admin, oper, connect) -> device_pb2.Device:
    changed = device_pb2.Device()
    changed.CopyFrom(device)
    changed.admin_state, changed.oper_status, changed.connect_status = admin, oper, connect
    return changed


TRANSITIONS = {"EnableDevice": enabled, "DisableDevice": disabled, "RebootDevice": rebooted}


def to_json(device: device_pb2.Device) -> str:
    """The stored form: protobuf JSON with the proto's field names, compact."""
    return json_format.MessageToJson(device, preserving_proto_field_name=True, indent=None)


def from_json(text: str | bytes) -> device_pb2.Device:
    return json_format.Parse(text, device_pb2.Device(), ignore_unknown_fields=True)


def adapters(now: float | None = None) -> adapter_pb2.Adapters:
    """The simulated adapter. It runs inside the core, so its last communication with the core is now
    (Unix seconds, as VOLTHA's voltctl reads the field)."""
    heard = int(time.time() if now is None else now)
    return adapter_pb2.Adapters(items=[adapter_pb2.Adapter(id=ADAPTER_ID, vendor="voltha.envoy", version=VERSION,
                                                           type=ADAPTER_ID, currentReplica=1, totalReplicas=1,
                                                           last_communication=heard)])


def device_types() -> device_pb2.DeviceTypes:
    return device_pb2.DeviceTypes(items=[device_pb2.DeviceType(id=name, adapter=ADAPTER_ID, adapter_type=ADAPTER_ID,
                                                               accepts_add_remove_flow_updates=True)
                                         for name in DEVICE_TYPES])
