"""The cores as one VOLTHA cluster: any core answers for any device, and no device is lost with a core.

Real parts: simulated core processes with their stores in a real Consul, envoyd and its Envoy in
front, gRPC calls through Envoy and straight to each core.
"""

from __future__ import annotations

import json
import signal
import time

import grpc
import pytest
from google.protobuf import empty_pb2
from voltha_protos import common_pb2, device_pb2
from voltha_protos import openflow_13_pb2 as of

from tests.support.consul_faults import CallLoad
from tests.support.grpc_client import NbiClient
from tests.support.processes import wait_for
from tests.support.sim_cores import assigned
from voltha_core_sim import nbi_client
from voltha_core_sim.devices import store_of

pytestmark = pytest.mark.slow

ADMIN, OPER, CONNECT = common_pb2.AdminState, common_pb2.OperStatus, common_pb2.ConnectStatus


def cluster(consul_agent, start_cores, start_envoyd, keys, count=3):
    cores = start_cores(consul_agent.address, *(f"core-{n}" for n in range(count)))
    want = {c.core_id: ("127.0.0.1", c.port) for c in cores}
    wait_for(lambda: assigned(consul_agent.client().kv, keys["assignment"]) == want, 15, "all cores assigned")
    return cores, start_envoyd(consul_agent.address, extra=("--assignment-key", keys["assignment"]))


def ids_listed(client: NbiClient) -> list[str]:
    devices, _ = client.list_devices()
    return [d.id for d in devices.items]


def states(device) -> tuple:
    return device.admin_state, device.oper_status, device.connect_status


def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def trap(cookie, command=of.OFPFC_ADD):
    """A flow_mod as an SDN controller sends one: packets in on the NNI go to the controller."""
    mod = of.ofp_flow_mod(command=command, cookie=cookie, priority=1000, table_id=0)
    field = mod.match.oxm_fields.add(oxm_class=of.OFPXMC_OPENFLOW_BASIC)
    field.ofb_field.type, field.ofb_field.port = of.OFPXMT_OFB_IN_PORT, 129
    mod.instructions.add(type=of.OFPIT_APPLY_ACTIONS).actions.actions.add(
        type=of.OFPAT_OUTPUT).output.port = of.OFPP_CONTROLLER
    return mod


def test_an_operators_session_with_an_olt_answers_alike_from_every_core(consul_agent, start_cores, start_envoyd, keys):
    """Create and enable an OLT, then what an operator looks at next (its ports, its logical device and that
    device's ports, flows, PM configs, the adapter), asked through Envoy and of every core; disable, delete."""
    cores, envoyd = cluster(consul_agent, start_cores, start_envoyd, keys)
    nbi = NbiClient(envoyd.nbi)
    clients = [nbi] + [NbiClient(f"127.0.0.1:{core.port}") for core in cores]
    try:
        olt = nbi.create("simulated_olt", "10.1.0.1:9191")[0]
        assert nbi.call("ListDevicePorts", common_pb2.ID(id=olt.id))[0].items == []  # pre-provisioned: no ports yet
        assert nbi.call("ListLogicalDevices", empty_pb2.Empty())[0].items == []
        nbi.change("enable", olt.id)
        logical_id = nbi.call("ListLogicalDevices", empty_pb2.Empty())[0].items[0].id
        for n, client in enumerate(clients[1:]):  # a flow through each core: each hands it to the OLT's
            client.call("UpdateLogicalDeviceFlowTable", of.FlowTableUpdate(id=logical_id, flow_mod=trap(n)))
        answered = set()
        for client in clients:
            ports, core = client.call("ListDevicePorts", common_pb2.ID(id=olt.id))
            answered.add(core)
            assert [(p.port_no, device_pb2.Port.PortType.Name(p.type), p.admin_state, p.oper_status)
                    for p in ports.items] == [(2, "ETHERNET_NNI", ADMIN.ENABLED, OPER.ACTIVE),
                                              (1, "PON_OLT", ADMIN.ENABLED, OPER.ACTIVE)]
            [logical] = client.call("ListLogicalDevices", empty_pb2.Empty())[0].items
            assert logical.root_device_id == olt.id and store_of(logical.id) == store_of(olt.id)
            assert client.call("GetLogicalDevice", common_pb2.ID(id=logical.id))[0] == logical
            [nni] = client.call("ListLogicalDevicePorts", common_pb2.ID(id=logical.id))[0].items
            assert (nni.id, nni.device_id, nni.device_port_no, nni.root_port, nni.ofp_port.port_no) == (
                "nni", olt.id, 2, True, 129)
            table = client.call("ListLogicalDeviceFlows", common_pb2.ID(id=logical.id))[0]
            assert [(f.cookie, f.priority) for f in table.items] == [(0, 1000), (1, 1000), (2, 1000)]
            assert client.call("ListDeviceFlows", common_pb2.ID(id=olt.id))[0] == table  # one OLT: the same table
            configs = client.call("ListDevicePmConfigs", common_pb2.ID(id=olt.id))[0]
            assert (configs.id, configs.default_freq, len(configs.metrics)) == (olt.id, 150, 18)
            [adapter] = client.call("ListAdapters", empty_pb2.Empty())[0].items
            assert abs(adapter.last_communication - time.time()) < 60
        assert answered == {c.core_id for c in cores}  # every core answered for the OLT of one store
        # The operator's client: what it prints, and its --json.
        lines = nbi_client.run(nbi, "ports", [olt.id], 1, 5.0, False)
        assert lines[0].startswith(f"{olt.id} (core ") and [line.split()[:4] for line in lines[2:]] == [
            ["2", "ETHERNET_NNI", "ENABLED", "ACTIVE"], ["1", "PON_OLT", "ENABLED", "ACTIVE"]]
        listed = nbi_client.run(nbi, "logical-devices", [], 1, 5.0, False)
        assert listed[0].split()[::2] == [logical.id, "root"] and listed[0].endswith(olt.id)
        assert listed[1].startswith("1 logical device(s), core ")
        assert json.loads(nbi_client.run(nbi, "logical-devices", [], 1, 5.0, True)[0])["logical_devices"][0][
            "root_device_id"] == olt.id
        [ports_doc] = nbi_client.run(nbi, "logical-ports", [logical.id], 1, 5.0, True)
        assert json.loads(ports_doc)["logical-ports"]["items"][0]["ofp_port"]["port_no"] == 129
        nbi.call("UpdateLogicalDeviceFlowTable", of.FlowTableUpdate(id=logical.id, flow_mod=trap(
            1, of.OFPFC_DELETE_STRICT)))
        listed_flows = nbi_client.run(nbi, "logical-flows", [logical.id], 1, 5.0, False)
        assert [line.split(",")[2] for line in listed_flows[1:-1]] == [" cookie 0", " cookie 2"]
        assert listed_flows[-1] == "2 flow(s)"
        code, details = code_of(lambda: nbi.call("UpdateLogicalDeviceFlowTable", of.FlowTableUpdate(
            id=logical.id, flow_mod=trap(3, of.OFPFC_MODIFY))))
        assert (code, details) == (grpc.StatusCode.UNIMPLEMENTED, "flow_mod command OFPFC_MODIFY is not simulated "
                                                                  "(ADD, DELETE and DELETE_STRICT are)")
        configs = nbi_client.run(nbi, "pm-configs", [olt.id], 1, 5.0, False)
        assert configs[1] == "default_freq 150, grouped false, freq_override false" and len(configs) == 20
        nbi.change("disable", olt.id)
        for client in clients:
            ports = client.call("ListDevicePorts", common_pb2.ID(id=olt.id))[0].items
            assert [(p.admin_state, p.oper_status) for p in ports] == [(ADMIN.DISABLED, OPER.UNKNOWN)] * 2
            assert client.call("ListLogicalDevices", empty_pb2.Empty())[0].items == []
            code, details = code_of(lambda c=client: c.call("GetLogicalDevice", common_pb2.ID(id=logical.id)))
            assert (code, details) == (grpc.StatusCode.NOT_FOUND, f"logical device {logical.id!r} not found")
            assert client.call("ListDeviceFlows", common_pb2.ID(id=olt.id))[0] == of.Flows()  # gone with it
        nbi.change("delete", olt.id)
        for client in clients:
            code, details = code_of(lambda c=client: c.call("ListDevicePorts", common_pb2.ID(id=olt.id)))
            assert (code, details) == (grpc.StatusCode.NOT_FOUND, f"device {olt.id!r} not found")
        # Two OLTs of one store with one MAC address would be one logical device: the second is refused.
        twins = [clients[1].call("CreateDevice", device_pb2.Device(type="openolt", mac_address="00:0a:95:9d:68:16"))[0]
                 for _twin in range(2)]
        assert store_of(twins[0].id) == store_of(twins[1].id)  # both made by one core, in its store
        nbi.change("enable", twins[0].id)
        code, details = code_of(lambda: nbi.change("enable", twins[1].id))
        assert (code, details) == (grpc.StatusCode.FAILED_PRECONDITION,
                                   f"device {twins[1].id!r} cannot be enabled: OLT {twins[0].id!r} of the same MAC "
                                   f"address is the root of logical device '{store_of(twins[0].id)}:000a959d6816'")
        code, details = code_of(lambda: nbi.call("SelfTest", common_pb2.ID(id=olt.id)))
        assert (code, details) == (grpc.StatusCode.UNIMPLEMENTED,
                                   "voltha.VolthaService/SelfTest is not simulated by this core")
    finally:
        for client in clients:
            client.close()


def test_every_core_lists_and_reads_every_device(consul_agent, start_cores, start_envoyd, keys):
    cores, envoyd = cluster(consul_agent, start_cores, start_envoyd, keys)
    nbi = NbiClient(envoyd.nbi)
    direct = [NbiClient(f"127.0.0.1:{core.port}") for core in cores]
    try:
        created = [nbi.create("simulated_olt", f"10.1.0.{n}:9191") for n in range(30)]
        ids = sorted(device.id for device, _ in created)
        assert {store_of(i) for i in ids} == {"vcore-0", "vcore-1", "vcore-2"}  # round robin over the stores
        assert all(states(d) == (ADMIN.PREPROVISIONED, OPER.UNKNOWN, CONNECT.UNKNOWN) for d, _ in created)
        listers = set()
        for _ in range(9):
            devices, core = nbi.list_devices()
            assert sorted(d.id for d in devices.items) == ids
            listers.add(core)
        for client in direct:
            assert ids_listed(client) == ids
            for device_id in ids:
                device, _ = client.get_device(device_id)
                assert device.id == device_id and device.type == "simulated_olt"
        # Each change through another core than the one serving the device's store.
        for n, device_id in enumerate(ids):
            client = direct[n % 3]
            client.change("enable", device_id)
            assert states(nbi.get_device(device_id)[0]) == (ADMIN.ENABLED, OPER.ACTIVE, CONNECT.REACHABLE)
            again = code_of(lambda c=client, i=device_id: c.change("enable", i))[0]
            assert again == grpc.StatusCode.FAILED_PRECONDITION
            direct[(n + 1) % 3].change("disable", device_id)
            assert states(direct[(n + 2) % 3].get_device(device_id)[0]) == \
                (ADMIN.DISABLED, OPER.UNKNOWN, CONNECT.REACHABLE)
            nbi.change("enable", device_id)
            nbi.change("reboot", device_id)
            assert states(nbi.get_device(device_id)[0]) == (ADMIN.ENABLED, OPER.ACTIVE, CONNECT.REACHABLE)
            direct[(n + 2) % 3].change("delete", device_id)
            code, details = code_of(lambda c=client, i=device_id: c.get_device(i))
            assert code == grpc.StatusCode.NOT_FOUND and device_id in details
        assert all(ids_listed(client) == [] for client in direct)
        print(f"\n30 devices: listed whole by {sorted(listers)} through Envoy and by every core, each read, "
              "enabled, disabled, rebooted and deleted through other cores")
    finally:
        for client in [nbi, *direct]:
            client.close()


def test_bad_requests_and_unknown_methods(consul_agent, start_cores, start_envoyd, keys):
    _, envoyd = cluster(consul_agent, start_cores, start_envoyd, keys, count=2)
    nbi = NbiClient(envoyd.nbi)
    try:
        code, details = code_of(lambda: nbi.get_device("vcore-0:" + "0" * 12))
        assert code == grpc.StatusCode.NOT_FOUND and "vcore-0:000000000000" in details
        assert code_of(lambda: nbi.get_device("nonsense")) == (grpc.StatusCode.NOT_FOUND,
                                                                "device 'nonsense' not found")
        code, details = code_of(lambda: nbi.call("CreateDevice", device_pb2.Device(type="")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "'type'" in details
        code, details = code_of(lambda: nbi.call("CreateDevice", device_pb2.Device(type="openolt", id="x")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "'id'" in details
        code, details = code_of(lambda: nbi.call("EnableDevice", common_pb2.ID()))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "'id'" in details
        code, details = code_of(lambda: nbi.call("GetImages", common_pb2.ID(id="vcore-0:" + "0" * 12)))
        assert (code, details) == (grpc.StatusCode.UNIMPLEMENTED,
                                   "voltha.VolthaService/GetImages is not simulated by this core")
        assert code_of(lambda: nbi.call("ListLogicalDevicePorts", common_pb2.ID(id="nonsense"))) == (
            grpc.StatusCode.NOT_FOUND, "logical device 'nonsense' not found")
        assert code_of(lambda: nbi.call("ListDevicePorts", common_pb2.ID())) == (
            grpc.StatusCode.INVALID_ARGUMENT, "field 'id' is required, got ''")
        adapters, _ = nbi.call("ListAdapters", empty_pb2.Empty())
        types, _ = nbi.call("ListDeviceTypes", empty_pb2.Empty())
        assert [a.id for a in adapters.items] == ["simulated"]
        assert "simulated_olt" in [t.id for t in types.items]
        assert nbi.call("GetVoltha", empty_pb2.Empty())[0].version.startswith("voltha-core-sim ")
    finally:
        nbi.close()


def listed_whole(clients, ids) -> float:
    started = time.monotonic()
    wait_for(lambda: all(ids_listed(c) == ids for c in clients), 5, "every device listed, once, by every core",
             interval=0.05)
    return time.monotonic() - started


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_core_lost_with_30_devices_loses_none(consul_agent, start_cores, start_envoyd, keys, how):
    cores, envoyd = cluster(consul_agent, start_cores, start_envoyd, keys)
    victim, survivors = cores[2], cores[:2]
    on_victim = NbiClient(f"127.0.0.1:{victim.port}")
    nbi = NbiClient(envoyd.nbi)
    direct = [NbiClient(f"127.0.0.1:{core.port}") for core in survivors]
    try:
        ids = sorted(on_victim.create()[0].id for _ in range(30))
        assert {store_of(i) for i in ids} == {"vcore-2"}
        on_victim.close()
        victim.process.signal(getattr(signal, how))
        started = time.monotonic()
        # Read through the survivors while the store is still the dead core's, and after it moved.
        took = listed_whole(direct, ids)
        for device_id in ids:
            for client in direct:
                assert client.get_device(device_id)[0].id == device_id
        readable = time.monotonic() - started
        kv = consul_agent.client().kv
        wait_for(lambda: set(assigned(kv, keys["assignment"])) == {"core-0", "core-1"}, 15, "the store moved")
        moved = time.monotonic() - started
        # The store's new core changes its devices; the cluster still lists each once.
        for device_id in ids[:5]:
            nbi.change("enable", device_id)
            assert states(direct[1].get_device(device_id)[0])[0] == ADMIN.ENABLED
        assert ids_listed(nbi) == ids
        print(f"\n{how} of a core with 30 devices: all listed by both survivors after {took:.2f}s, all read by "
              f"both after {readable:.2f}s, its store served by a survivor after {moved:.2f}s")
    finally:
        for client in [nbi, on_victim, *direct]:
            client.close()


def test_a_returning_core_takes_its_store_back(consul_agent, start_cores, start_envoyd, keys):
    cores, envoyd = cluster(consul_agent, start_cores, start_envoyd, keys, count=2)
    first = NbiClient(f"127.0.0.1:{cores[1].port}")
    ids = sorted(first.create()[0].id for _ in range(10))
    first.close()
    cores[1].process.signal(signal.SIGKILL)
    kv = consul_agent.client().kv
    wait_for(lambda: set(assigned(kv, keys["assignment"])) == {"core-0"}, 15, "the store moved to core-0")
    again = start_cores(consul_agent.address, "core-1")[0]
    wait_for(lambda: set(assigned(kv, keys["assignment"])) == {"core-0", "core-1"}, 15, "core-1 back")
    back = NbiClient(f"127.0.0.1:{again.port}")
    try:
        wait_for(lambda: all(back.get_device(i)[0].id == i for i in ids), 5, "core-1 serving its store again")
        back.change("enable", ids[0])
        assert states(back.get_device(ids[0])[0])[0] == ADMIN.ENABLED
        assert ids_listed(back) == ids
    finally:
        back.close()


def test_cores_replaced_one_at_a_time_lose_no_call(consul_agent, start_cores, start_envoyd, keys):
    """A rolling update as the swarm does it (start-first): a new instance of a core, with the same
    core id, starts beside the old one, then the old one gets SIGTERM, core after core, under 200
    calls/s through Envoy: once as soon as the new instance answers (the old one still assigned), once
    after the assignment names the new one. No call may fail: a stopping core serves until Envoy
    sends it nothing more, and only then stops its gRPC server."""
    cores, envoyd = cluster(consul_agent, start_cores, start_envoyd, keys)
    kv = consul_agent.client().kv
    load = CallLoad(envoyd.nbi, clients=8, rate=25.0).start()
    stops = []
    try:
        for assigned_first in (False, True):
            for n, old in enumerate(list(cores)):
                new = start_cores(consul_agent.address, old.core_id)[0]
                if assigned_first:
                    wait_for(lambda new=new: assigned(kv, keys["assignment"]).get(new.core_id)
                             == ("127.0.0.1", new.port), 15, f"{new.core_id} assigned at its new port")
                started = time.monotonic()
                assert old.stop() == 0, old.log()
                stops.append(time.monotonic() - started)
                wait_for(lambda new=new: assigned(kv, keys["assignment"]).get(new.core_id) == ("127.0.0.1", new.port),
                         15, f"{new.core_id} assigned at its new port")
                cores[n] = new
        time.sleep(1.0)
    finally:
        load.stop()
    print(f"\n6 cores replaced under load: {load.ok} calls answered, {load.failed()} failed; "
          f"SIGTERM to exit {min(stops):.2f}-{max(stops):.2f} s")
    assert load.failures == [], load.failures
    assert load.ok >= 1000
