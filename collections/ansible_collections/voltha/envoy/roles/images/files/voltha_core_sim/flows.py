"""A logical device's flow table, as VOLTHA 1.x's logical device agent keeps it, stored with its OLT.

UpdateLogicalDeviceFlowTable carries an OpenFlow flow_mod. ADD puts a flow in the table (a flow with
the same id, the digest of its table, priority, flags, cookie, match and instructions, is replaced and
keeps its counters); DELETE_STRICT removes the flow with the same id;
DELETE removes every flow of the table (or every table) whose cookie matches under the cookie mask.
MODIFY is refused, as VOLTHA 1.x does. The table travels in the OLT's device record (its ``custom``
field holds an ``openflow_13.Flows``), so it lives in the core store in Consul with the device, moves
with the store, and any core answers for it. The OLT's own flow table is the logical device's: one OLT,
nothing to decompose. Pure logic, no gRPC server or Consul here.
"""

from __future__ import annotations

import hashlib

import grpc
from voltha_protos import device_pb2
from voltha_protos import openflow_13_pb2 as of

from .devices import DeviceError

_STATS_FIELDS = ("table_id", "priority", "idle_timeout", "hard_timeout", "flags", "cookie")


def flow_id(flow) -> int:
    """A flow's id: the first 64 bits of the MD5 digest of what makes it the flow it is."""
    digest = hashlib.md5(usedforsecurity=False)
    digest.update(("%d,%d,%d,%d," % (flow.table_id, flow.priority, flow.flags, flow.cookie)).encode())
    digest.update(flow.match.SerializeToString(deterministic=True))
    for instruction in flow.instructions:
        digest.update(instruction.SerializeToString(deterministic=True))
    return int(digest.hexdigest()[:16], 16)


def stats_of(flow_mod) -> of.ofp_flow_stats:
    """The table entry an ADD makes of a flow_mod."""
    flow = of.ofp_flow_stats(**{name: getattr(flow_mod, name) for name in _STATS_FIELDS})
    flow.match.CopyFrom(flow_mod.match)
    flow.instructions.extend(flow_mod.instructions)
    flow.id = flow_id(flow)
    return flow


def _cookie_matches(flow, flow_mod) -> bool:
    return (flow.cookie & flow_mod.cookie_mask) == (flow_mod.cookie & flow_mod.cookie_mask)


def _in_table(flow, flow_mod) -> bool:
    return flow_mod.table_id == of.OFPTT_ALL or flow.table_id == flow_mod.table_id


def updated(flows: of.Flows, flow_mod) -> of.Flows:
    """The table after one flow_mod; DeviceError (INVALID_ARGUMENT, UNIMPLEMENTED) for one it refuses."""
    command = flow_mod.command
    items = list(flows.items)
    if command == of.OFPFC_ADD:
        if flow_mod.cookie_mask:
            raise DeviceError(grpc.StatusCode.INVALID_ARGUMENT,
                              f"field 'flow_mod.cookie_mask' must be 0 in an ADD, got {flow_mod.cookie_mask}")
        flow = stats_of(flow_mod)
        for n, old in enumerate(items):
            if old.id == flow.id:
                flow.packet_count, flow.byte_count = old.packet_count, old.byte_count
                items[n] = flow
                break
        else:
            items.append(flow)
    elif command == of.OFPFC_DELETE_STRICT:
        gone = flow_id(stats_of(flow_mod))
        items = [flow for flow in items if flow.id != gone]
    elif command == of.OFPFC_DELETE:
        items = [flow for flow in items if not (_in_table(flow, flow_mod) and _cookie_matches(flow, flow_mod))]
    else:
        name = of.ofp_flow_mod_command.Name(command) if command in of.ofp_flow_mod_command.values() else command
        raise DeviceError(grpc.StatusCode.UNIMPLEMENTED,
                          f"flow_mod command {name} is not simulated (ADD, DELETE and DELETE_STRICT are)")
    return of.Flows(items=items)


def flows_of(device: device_pb2.Device) -> of.Flows:
    """The flow table kept in a device's record (empty when it has none)."""
    flows = of.Flows()
    if device.HasField("custom") and device.custom.Is(of.Flows.DESCRIPTOR):
        device.custom.Unpack(flows)
    return flows


def with_flows(device: device_pb2.Device, flows: of.Flows) -> device_pb2.Device:
    changed = device_pb2.Device()
    changed.CopyFrom(device)
    changed.custom.Pack(flows)
    return changed
