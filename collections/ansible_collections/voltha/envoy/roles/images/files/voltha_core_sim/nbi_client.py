"""An operator's client of the VOLTHA NBI (usually through Envoy); every answer names the core that gave it.

python -m voltha_core_sim.nbi_client ADDRESS [VERB [ARG ...]] [--json]

  (no verb) [--count N]        N CreateDevice and N GetVoltha calls: which core answered each
  create [TYPE [HOST:PORT]]    CreateDevice (default type simulated_olt)
  list                         ListDevices, cluster-wide
  get ID ...                   GetDevice
  enable|disable|reboot|delete ID ...
  ports ID ...                 ListDevicePorts
  flows ID ...                 ListDeviceFlows
  pm-configs ID ...            ListDevicePmConfigs
  logical-devices              ListLogicalDevices, cluster-wide
  logical-device ID ...        GetLogicalDevice
  logical-ports ID ...         ListLogicalDevicePorts
  logical-flows ID ...         ListLogicalDeviceFlows
  adapters | types | version   ListAdapters, ListDeviceTypes, GetVoltha

Errors print the gRPC status and VOLTHA's message, and the exit status is 1. An NBI that serves TLS
takes --tls-ca (and --tls-cert/--tls-key when it asks for a client certificate).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NamedTuple

import grpc
from google.protobuf import empty_pb2, json_format
from voltha_protos import common_pb2, device_pb2, voltha_pb2_grpc

CORE_HEADER = "voltha-core-id"  # the trailer every simulated core sets on every answer
CHANGES = {"enable": "EnableDevice", "disable": "DisableDevice", "reboot": "RebootDevice", "delete": "DeleteDevice"}
# Verbs that ask one thing of each id given: the method, and how an answer is printed as lines.
BY_ID = {
    "ports": "ListDevicePorts", "flows": "ListDeviceFlows", "pm-configs": "ListDevicePmConfigs",
    "logical-device": "GetLogicalDevice", "logical-ports": "ListLogicalDevicePorts",
    "logical-flows": "ListLogicalDeviceFlows",
}
VERBS = ("create", "list", "get", *CHANGES, *BY_ID, "logical-devices", "adapters", "types", "version")


def core_of(call) -> str | None:
    """The core that answered a call (its ``voltha-core-id`` trailer); None when it did not say."""
    try:
        metadata = tuple(call.trailing_metadata() or ())
    except Exception:
        return None
    return next((value for key, value in metadata if key == CORE_HEADER), None)


class Tls(NamedTuple):
    """The client's side of the NBI's TLS: the CA file, and for mutual TLS a certificate and key."""

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("TLS", "for an NBI that serves TLS (plaintext without --tls-ca)")
    group.add_argument("--tls-ca", metavar="FILE", help="the CA certificates (PEM) that sign the NBI's")
    group.add_argument("--tls-cert", metavar="FILE", help="this client's certificate (PEM), for mutual TLS")
    group.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    group.add_argument("--tls-server-name", metavar="NAME",
                       help="the name the NBI's certificate must carry (default: the address's host)")


def tls_of(args: argparse.Namespace) -> Tls | None:
    if not args.tls_ca:
        if args.tls_cert or args.tls_key or args.tls_server_name:
            raise SystemExit("--tls-cert, --tls-key and --tls-server-name need --tls-ca")
        return None
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("--tls-cert and --tls-key go together")
    return Tls(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)


def _read(path: str | None, option: str) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as err:
        raise SystemExit(f"{option} {path}: {err.strerror}") from None


def nbi_channel(address: str, tls: Tls | None = None) -> grpc.Channel:
    """A channel to the NBI: plaintext, or TLS when tls names a CA."""
    if tls is None:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(_read(tls.ca_file, "--tls-ca"), _read(tls.key_file, "--tls-key"),
                                               _read(tls.cert_file, "--tls-cert"))
    options = [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []
    return grpc.secure_channel(address, credentials, options=options)


class NbiClient:
    def __init__(self, address: str, tls: Tls | None = None):
        self.channel = nbi_channel(address, tls)
        self.stub = voltha_pb2_grpc.VolthaServiceStub(self.channel)

    def call(self, method: str, request, timeout: float = 5.0):
        """(answer, the core that answered)."""
        answer, call = getattr(self.stub, method).with_call(request, timeout=timeout)
        return answer, core_of(call)

    def create(self, device_type: str = "simulated_olt", host_and_port: str = "", timeout: float = 5.0):
        return self.call("CreateDevice", device_pb2.Device(type=device_type, host_and_port=host_and_port), timeout)

    def create_device(self, timeout: float = 5.0) -> str:
        """The id of the core that created a device."""
        return self.create(timeout=timeout)[1]

    def get_voltha(self, timeout: float = 5.0) -> str:
        """The id of the core that answered GetVoltha."""
        return self.call("GetVoltha", empty_pb2.Empty(), timeout)[1]

    def list_devices(self, timeout: float = 5.0):
        return self.call("ListDevices", empty_pb2.Empty(), timeout)

    def get_device(self, device_id: str, timeout: float = 5.0):
        return self.call("GetDevice", common_pb2.ID(id=device_id), timeout)

    def change(self, verb: str, device_id: str, timeout: float = 5.0):
        """enable, disable, reboot or delete; (Empty, core)."""
        return self.call(CHANGES[verb], common_pb2.ID(id=device_id), timeout)

    def close(self) -> None:
        self.channel.close()


def _data(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _device_line(device) -> str:
    return (f"{device.id:<24} {device.type:<18} {common_pb2.AdminState.Types.Name(device.admin_state):<15} "
            f"{common_pb2.OperStatus.Types.Name(device.oper_status):<10} "
            f"{common_pb2.ConnectStatus.Types.Name(device.connect_status):<12} {device.host_and_port}")


def _name(enum, value) -> str:
    try:
        return enum.Name(value)
    except ValueError:
        return str(value)


def _logical_device_line(logical) -> str:
    return f"{logical.id:<24} {logical.datapath_id:016x}  root {logical.root_device_id}"


def _lines_of(verb: str, answer) -> list[str]:
    """An answer of a BY_ID verb, or of logical-devices, as an operator reads it."""
    if verb == "ports":
        return [f"{'PORT':>6} {'TYPE':<14} {'ADMIN':<9} {'OPER':<8} LABEL"] + [
            f"{p.port_no:>6} {_name(device_pb2.Port.PortType, p.type):<14} "
            f"{_name(common_pb2.AdminState.Types, p.admin_state):<9} "
            f"{_name(common_pb2.OperStatus.Types, p.oper_status):<8} {p.label}" for p in answer.items]
    if verb in ("flows", "logical-flows"):
        return [f"flow {f.id}: table {f.table_id}, priority {f.priority}, cookie {f.cookie}" for f in answer.items] + [
            f"{len(answer.items)} flow(s)"]
    if verb == "pm-configs":
        return [f"default_freq {answer.default_freq}, grouped {str(answer.grouped).lower()}, freq_override "
                f"{str(answer.freq_override).lower()}"] + [
            f"  {m.name} {_name(device_pb2.PmConfig.PmType, m.type)} {'enabled' if m.enabled else 'disabled'}"
            for m in answer.metrics]
    if verb == "logical-ports":
        return [f"{'ID':<8} {'OFP_PORT':>8} {'DEVICE_PORT':>11} ROOT  DEVICE"] + [
            f"{p.id:<8} {p.ofp_port.port_no:>8} {p.device_port_no:>11} {'yes ' if p.root_port else 'no  '}  "
            f"{p.device_id}" for p in answer.items]
    if verb == "logical-device":
        return [_logical_device_line(answer)]
    return [_logical_device_line(logical) for logical in answer.items] + [f"{len(answer.items)} logical device(s)"]


def run(client: NbiClient, verb: str | None, values: list[str], count: int, timeout: float, as_json: bool) -> list:
    """The lines (or JSON documents) to print."""
    if verb is None:
        created = [client.create_device(timeout) for _call in range(count)]
        versions = [client.get_voltha(timeout) for _call in range(count)]
        if as_json:
            return [json.dumps({"create_device": created, "get_voltha": versions})]
        return ([f"CreateDevice: answered by core {core}" for core in created]
                + [f"GetVoltha: answered by core {core}" for core in versions])
    if verb == "create":
        device, core = client.create(*(values[:2] or ["simulated_olt"]), timeout=timeout)
        return [json.dumps({"device": _data(device), "core": core})] if as_json else \
            [f"created {device.id} (core {core})"]
    if verb == "list":
        devices, core = client.list_devices(timeout)
        if as_json:
            return [json.dumps({"devices": [_data(d) for d in devices.items], "core": core})]
        header = f"{'ID':<24} {'TYPE':<18} {'ADMIN':<15} {'OPER':<10} {'CONNECT':<12} HOST_AND_PORT"
        return [header] + [_device_line(d) for d in devices.items] + [f"{len(devices.items)} device(s), core {core}"]
    if verb in BY_ID:
        if not values:
            raise SystemExit(f"{verb}: give one or more ids")
        lines = []
        for asked in values:
            answer, core = client.call(BY_ID[verb], common_pb2.ID(id=asked), timeout)
            lines.extend([json.dumps({"id": asked, verb: _data(answer), "core": core})] if as_json else
                         [f"{asked} (core {core}):", *_lines_of(verb, answer)])
        return lines
    if verb == "logical-devices":
        answer, core = client.call("ListLogicalDevices", empty_pb2.Empty(), timeout)
        return [json.dumps({"logical_devices": [_data(d) for d in answer.items], "core": core})] if as_json else \
            [*_lines_of(verb, answer)[:-1], f"{_lines_of(verb, answer)[-1]}, core {core}"]
    if verb in ("get", *CHANGES):
        if not values:
            raise SystemExit(f"{verb}: give one or more device ids")
        lines = []
        for device_id in values:
            if verb == "get":
                device, core = client.get_device(device_id, timeout)
                lines.append(json.dumps({"device": _data(device), "core": core}) if as_json else
                             f"{_device_line(device)} (core {core})")
            else:
                core = client.change(verb, device_id, timeout)[1]
                lines.append(json.dumps({verb: device_id, "core": core}) if as_json else f"{verb} {device_id}: ok "
                             f"(core {core})")
        return lines
    method = {"adapters": "ListAdapters", "types": "ListDeviceTypes", "version": "GetVoltha"}[verb]
    answer, core = client.call(method, empty_pb2.Empty(), timeout)
    if as_json:
        return [json.dumps({**_data(answer), "core": core})]
    if verb == "version":
        return [f"{answer.version} (core {core})"]
    return [f"{item.id}" + (f" {item.vendor} {item.version}" if verb == "adapters" else f" (adapter {item.adapter})")
            for item in answer.items]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voltha_core_sim.nbi_client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address", help="HOST:PORT of the NBI")
    parser.add_argument("verb", nargs="?", choices=VERBS, help="what to do (default: the answering-core check)")
    parser.add_argument("values", nargs="*", help="the verb's arguments")
    parser.add_argument("--count", type=int, default=1, help="without a verb: calls of each kind (default 1)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per call (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON, one document per line")
    add_tls_arguments(parser)
    args = parser.parse_intermixed_args(argv)  # options anywhere, also between the address and the verb
    client = NbiClient(args.address, tls_of(args))
    try:
        lines = run(client, args.verb, args.values, args.count, args.timeout, args.json)
    except grpc.RpcError as err:
        print(f"NBI {args.address}: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    finally:
        client.close()
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
