"""What an enabled OLT brings with it, as VOLTHA 1.x's simulated OLT adapter builds it: its ports, the
logical device whose root it is (an OpenFlow switch for the SDN controller), that device's NNI port,
and the device's performance-monitoring configs.

All of it follows from the device record alone, so any core answers for any OLT from the record its
store keeps (in memory or in Consul), and nothing more needs storing: enabled, an OLT has an NNI and a
PON port, both active, and a logical device; disabled, its ports are disabled and its logical device is
gone (as VOLTHA's simulated OLT deletes it on disable); deleted, nothing is left. A pre-provisioned
device, and a device that is not an OLT, has neither. Pure logic, no gRPC server or Consul here.
"""

from __future__ import annotations

import hashlib

from voltha_protos import device_pb2, logical_device_pb2
from voltha_protos import openflow_13_pb2 as of

from .devices import ADMIN, OPER, ROOT_TYPES, store_of

# VOLTHA 1.x's simulated OLT: the PON port is port 1, the NNI (towards the SDN side) port 2.
PON_PORT_NO, NNI_PORT_NO = 1, 2
PON_LABEL, NNI_LABEL = "PON port", "NNI facing Ethernet port"
# The NNI as a port of the logical device: OpenFlow port 129, its MAC 00:00:00:00:00:81.
NNI_LOGICAL_PORT_ID, NNI_OFP_PORT_NO = "nni", 129
ONE_GIGABIT_FIBER = of.OFPPF_1GB_FD | of.OFPPF_FIBER
CAPABILITIES = of.OFPC_FLOW_STATS | of.OFPC_TABLE_STATS | of.OFPC_PORT_STATS | of.OFPC_GROUP_STATS
# The simulated OLT's counters, each sampled every DEFAULT_FREQ tenths of a second.
DEFAULT_FREQ = 150
PM_METRICS = tuple(f"{way}_{name}" for way in ("rx", "tx") for name in (
    "1024_1518_pkts", "128_255_pkts", "1519_9k_pkts", "256_511_pkts", "512_1023_pkts", "64_pkts", "65_127_pkts",
    "bytes", "pkts"))


def is_olt(device: device_pb2.Device) -> bool:
    return device.root or device.type in ROOT_TYPES


def has_logical_device(device: device_pb2.Device) -> bool:
    """An enabled OLT: it is the root of a logical device."""
    return is_olt(device) and device.admin_state == ADMIN.ENABLED


def is_root_of(device: device_pb2.Device, logical_id: str) -> bool:
    """Whether the device is the enabled OLT whose logical device has this id."""
    return has_logical_device(device) and logical_device_id(device) == logical_id


def datapath_hex(device: device_pb2.Device) -> str:
    """The 12 hexadecimal digits of the logical device's datapath id: the OLT's MAC address when it has
    one (as VOLTHA takes it), else digits drawn from the device id, the same on every core."""
    mac = device.mac_address.replace(":", "").replace("-", "").lower()
    if len(mac) == 12 and all(c in "0123456789abcdef" for c in mac):
        return mac
    return hashlib.sha256(device.id.encode()).hexdigest()[:12]


def logical_device_id(device: device_pb2.Device) -> str:
    """The logical device's id: its OLT's core store and its datapath id, so that any core can tell
    from the id which store holds the OLT (devices.store_of reads it as it reads a device id)."""
    return f"{store_of(device.id)}:{datapath_hex(device)}"


def ports(device: device_pb2.Device) -> device_pb2.Ports:
    """The OLT's ports: none before it was first enabled, active while enabled, disabled after."""
    if not is_olt(device) or device.admin_state not in (ADMIN.ENABLED, ADMIN.DISABLED):
        return device_pb2.Ports()
    enabled = device.admin_state == ADMIN.ENABLED
    admin, oper = (ADMIN.ENABLED, OPER.ACTIVE) if enabled else (ADMIN.DISABLED, OPER.UNKNOWN)
    return device_pb2.Ports(items=[
        device_pb2.Port(port_no=NNI_PORT_NO, label=NNI_LABEL, type=device_pb2.Port.ETHERNET_NNI, admin_state=admin,
                        oper_status=oper, device_id=device.id),
        device_pb2.Port(port_no=PON_PORT_NO, label=PON_LABEL, type=device_pb2.Port.PON_OLT, admin_state=admin,
                        oper_status=oper, device_id=device.id),
    ])


def logical_device(device: device_pb2.Device) -> logical_device_pb2.LogicalDevice:
    """The logical device of an enabled OLT (has_logical_device)."""
    digits = datapath_hex(device)
    return logical_device_pb2.LogicalDevice(
        id=logical_device_id(device), datapath_id=int(digits, 16), root_device_id=device.id,
        desc=of.ofp_desc(mfr_desc="VOLTHA Project", hw_desc="simulated pon", sw_desc="simulated pon",
                         serial_num=device.serial_number or digits, dp_desc="n/a"),
        switch_features=of.ofp_switch_features(datapath_id=int(digits, 16), n_buffers=256, n_tables=2,
                                               capabilities=CAPABILITIES))


def logical_ports(device: device_pb2.Device) -> logical_device_pb2.LogicalPorts:
    """The logical device's ports: its root's NNI, live."""
    nni = of.ofp_port(port_no=NNI_OFP_PORT_NO, hw_addr=[0, 0, 0, 0, 0, NNI_OFP_PORT_NO], name=NNI_LOGICAL_PORT_ID,
                      config=0, state=of.OFPPS_LIVE, curr=ONE_GIGABIT_FIBER, advertised=ONE_GIGABIT_FIBER,
                      peer=ONE_GIGABIT_FIBER, curr_speed=of.OFPPF_1GB_FD, max_speed=of.OFPPF_1GB_FD)
    return logical_device_pb2.LogicalPorts(items=[logical_device_pb2.LogicalPort(
        id=NNI_LOGICAL_PORT_ID, ofp_port=nni, device_id=device.id, device_port_no=NNI_PORT_NO, root_port=True)])


def pm_configs(device: device_pb2.Device) -> device_pb2.PmConfigs:
    """The performance-monitoring configs a device starts with: the simulated OLT's counters."""
    return device_pb2.PmConfigs(id=device.id, default_freq=DEFAULT_FREQ, grouped=False, freq_override=False,
                                metrics=[device_pb2.PmConfig(name=name, type=device_pb2.PmConfig.COUNTER, enabled=True)
                                         for name in sorted(PM_METRICS)])
