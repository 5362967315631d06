"""olt.py: what an enabled OLT brings with it (ports, a logical device and its NNI port, PM configs),
as VOLTHA 1.x's simulated OLT builds it, from the device record alone."""

from __future__ import annotations

from voltha_protos import common_pb2, device_pb2
from voltha_protos import openflow_13_pb2 as of

from voltha_core_sim import devices, olt

ADMIN, OPER = common_pb2.AdminState, common_pb2.OperStatus


def olt_device(prefix="vcore-1", **fields):
    return devices.new_device(device_pb2.Device(type=fields.pop("type", "simulated_olt"), **fields), prefix)


def states(ports):
    return [(p.port_no, p.label, device_pb2.Port.PortType.Name(p.type), ADMIN.Types.Name(p.admin_state),
             OPER.Types.Name(p.oper_status)) for p in ports.items]


def test_an_olt_gets_its_ports_when_enabled_and_keeps_them_disabled():
    device = olt_device()
    assert states(olt.ports(device)) == []  # pre-provisioned: nothing yet
    enabled = devices.enabled(device)
    assert states(olt.ports(enabled)) == [(2, "NNI facing Ethernet port", "ETHERNET_NNI", "ENABLED", "ACTIVE"),
                                          (1, "PON port", "PON_OLT", "ENABLED", "ACTIVE")]
    assert {p.device_id for p in olt.ports(enabled).items} == {device.id}
    assert states(olt.ports(devices.disabled(enabled))) == [
        (2, "NNI facing Ethernet port", "ETHERNET_NNI", "DISABLED", "UNKNOWN"),
        (1, "PON port", "PON_OLT", "DISABLED", "UNKNOWN")]
    assert states(olt.ports(devices.enabled(olt_device(type="simulated_onu")))) == []  # not an OLT


def test_an_enabled_olt_is_the_root_of_a_logical_device_any_core_can_place():
    device = devices.enabled(olt_device(serial_number="SIM0001"))
    assert olt.has_logical_device(device) and not olt.has_logical_device(devices.disabled(device))
    assert not olt.has_logical_device(olt_device()) and not olt.has_logical_device(
        devices.enabled(olt_device(type="simulated_onu")))
    logical = olt.logical_device(device)
    assert logical.root_device_id == device.id
    assert devices.store_of(logical.id) == "vcore-1" and logical.id != device.id
    assert logical.id == olt.logical_device_id(device)  # the same on every core: from the record alone
    assert olt.is_root_of(device, logical.id) and not olt.is_root_of(devices.disabled(device), logical.id)
    assert not olt.is_root_of(device, device.id)
    assert logical.datapath_id == int(logical.id.split(":")[1], 16) == logical.switch_features.datapath_id
    assert (logical.desc.mfr_desc, logical.desc.hw_desc, logical.desc.serial_num) == (
        "VOLTHA Project", "simulated pon", "SIM0001")
    assert (logical.switch_features.n_buffers, logical.switch_features.n_tables) == (256, 2)
    assert logical.switch_features.capabilities == (of.OFPC_FLOW_STATS | of.OFPC_TABLE_STATS | of.OFPC_PORT_STATS
                                                   | of.OFPC_GROUP_STATS)


def test_the_datapath_id_is_the_olt_mac_address_when_it_has_one():
    device = devices.enabled(olt_device(mac_address="00:0A:95:9D:68:16"))
    assert olt.logical_device(device).datapath_id == 0x000A959D6816
    assert olt.logical_device_id(device) == "vcore-1:000a959d6816"
    other = devices.enabled(olt_device(mac_address="not a mac"))
    assert olt.logical_device_id(other) != olt.logical_device_id(devices.enabled(olt_device()))


def test_the_logical_device_has_the_olt_nni_as_its_root_port():
    device = devices.enabled(olt_device())
    [port] = olt.logical_ports(device).items
    assert (port.id, port.device_id, port.device_port_no, port.root_port) == ("nni", device.id, 2, True)
    assert (port.ofp_port.port_no, list(port.ofp_port.hw_addr), port.ofp_port.name) == (129, [0, 0, 0, 0, 0, 129],
                                                                                        "nni")
    assert port.ofp_port.state == of.OFPPS_LIVE and port.ofp_port.curr == of.OFPPF_1GB_FD | of.OFPPF_FIBER


def test_pm_configs_are_the_simulated_olt_counters():
    device = olt_device()
    configs = olt.pm_configs(device)
    assert (configs.id, configs.default_freq, configs.grouped, configs.freq_override) == (device.id, 150, False, False)
    names = [m.name for m in configs.metrics]
    assert len(names) == 18 and names == sorted(names) and "rx_64_pkts" in names and "tx_bytes" in names
    assert {(m.type, m.enabled) for m in configs.metrics} == {(device_pb2.PmConfig.COUNTER, True)}
