"""flows.py: a logical device's flow table under OpenFlow flow_mods, kept in its OLT's record."""

from __future__ import annotations

import grpc
import pytest
from voltha_protos import device_pb2
from voltha_protos import openflow_13_pb2 as of

from voltha_core_sim import devices, flows
from voltha_core_sim.devices import DeviceError


def flow_mod(command=of.OFPFC_ADD, priority=1000, cookie=7, table_id=0, in_port=129, **fields):
    mod = of.ofp_flow_mod(command=command, priority=priority, cookie=cookie, table_id=table_id, **fields)
    mod.match.type = of.OFPMT_OXM
    field = mod.match.oxm_fields.add(oxm_class=of.OFPXMC_OPENFLOW_BASIC)
    field.ofb_field.type, field.ofb_field.port = of.OFPXMT_OFB_IN_PORT, in_port
    output = mod.instructions.add(type=of.OFPIT_APPLY_ACTIONS)
    output.actions.actions.add(type=of.OFPAT_OUTPUT).output.port = of.OFPP_CONTROLLER
    return mod


def table(*mods, start=None):
    result = start or of.Flows()
    for mod in mods:
        result = flows.updated(result, mod)
    return result


def test_an_add_makes_one_entry_per_flow_and_the_same_flow_again_replaces_it():
    added = table(flow_mod(), flow_mod(in_port=1))
    assert len(added.items) == 2 and len({f.id for f in added.items}) == 2
    first = added.items[0]
    assert (first.priority, first.cookie, first.table_id) == (1000, 7, 0)
    assert first.match == flow_mod().match and list(first.instructions) == list(flow_mod().instructions)
    assert first.id == flows.flow_id(first) and 0 < first.id < 2 ** 64
    counted = of.Flows()
    counted.CopyFrom(added)
    counted.items[0].packet_count, counted.items[0].byte_count = 5, 320
    again = table(flow_mod(), start=counted)
    assert len(again.items) == 2 and again.items[0].packet_count == 5  # the same flow: counters kept
    flagged = table(flow_mod(flags=of.OFPFF_SEND_FLOW_REM), start=counted)
    assert len(flagged.items) == 3 and flagged.items[2].id != first.id  # its flags are part of a flow
    assert table(flow_mod(priority=1001), start=added).items[2].id != first.id


def test_deletes_strict_by_the_flow_and_loose_by_cookie_and_table():
    full = table(flow_mod(cookie=1), flow_mod(cookie=2, in_port=1), flow_mod(cookie=3, table_id=1))
    strict = table(flow_mod(of.OFPFC_DELETE_STRICT, cookie=2, in_port=1), start=full)
    assert [f.cookie for f in strict.items] == [1, 3]
    assert table(flow_mod(of.OFPFC_DELETE_STRICT, cookie=9), start=full) == full  # no such flow: nothing changes
    by_cookie = table(flow_mod(of.OFPFC_DELETE, cookie=2, cookie_mask=0xff, table_id=of.OFPTT_ALL), start=full)
    assert [f.cookie for f in by_cookie.items] == [1, 3]
    by_table = table(flow_mod(of.OFPFC_DELETE, table_id=0), start=full)
    assert [f.cookie for f in by_table.items] == [3]
    assert table(flow_mod(of.OFPFC_DELETE, table_id=of.OFPTT_ALL), start=full).items == []


@pytest.mark.parametrize("mod,code,message", [
    (flow_mod(cookie_mask=1), grpc.StatusCode.INVALID_ARGUMENT, "'flow_mod.cookie_mask' must be 0 in an ADD, got 1"),
    (flow_mod(of.OFPFC_MODIFY), grpc.StatusCode.UNIMPLEMENTED, "flow_mod command OFPFC_MODIFY is not simulated"),
    (flow_mod(of.OFPFC_MODIFY_STRICT), grpc.StatusCode.UNIMPLEMENTED, "command OFPFC_MODIFY_STRICT is not"),
    (flow_mod(command=42), grpc.StatusCode.UNIMPLEMENTED, "flow_mod command 42 is not simulated"),
])
def test_flow_mods_it_does_not_take_are_refused_by_name(mod, code, message):
    with pytest.raises(DeviceError, match=message) as info:
        flows.updated(of.Flows(), mod)
    assert info.value.code == code


def test_the_table_travels_in_the_olt_record_and_goes_with_its_logical_device():
    olt = devices.enabled(devices.new_device(device_pb2.Device(type="simulated_olt"), "vcore-1"))
    assert flows.flows_of(olt) == of.Flows()
    kept = flows.with_flows(olt, table(flow_mod()))
    assert flows.flows_of(olt) == of.Flows()  # a new record: the old one is unchanged
    assert devices.from_json(devices.to_json(kept)) == kept  # as Consul stores it
    assert len(flows.flows_of(devices.from_json(devices.to_json(kept))).items) == 1
    assert flows.flows_of(devices.rebooted(kept)) == flows.flows_of(kept)
    assert flows.flows_of(devices.disabled(kept)) == of.Flows()  # disabled: no logical device, no table
