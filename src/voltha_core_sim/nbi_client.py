"""Calls into the VOLTHA NBI (usually through Envoy), reporting which core answered.

python -m voltha_core_sim.nbi_client ADDRESS [--count N] [--json]: N CreateDevice and N GetVoltha
calls; prints the answering core of each, or one JSON document with --json.
"""

from __future__ import annotations

import argparse
import json
import sys

import grpc
from google.protobuf import empty_pb2
from voltha_protos import device_pb2, voltha_pb2_grpc


class NbiClient:
    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(address)
        self.stub = voltha_pb2_grpc.VolthaServiceStub(self.channel)

    def create_device(self, timeout: float = 5.0) -> str:
        """The id of the core that created the device (device ids are CORE:N)."""
        device = self.stub.CreateDevice(device_pb2.Device(type="simulated_olt"), timeout=timeout)
        return device.id.split(":")[0]

    def get_voltha(self, timeout: float = 5.0) -> str:
        """The answering core's version string, which names the core."""
        return self.stub.GetVoltha(empty_pb2.Empty(), timeout=timeout).version

    def close(self) -> None:
        self.channel.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voltha_core_sim.nbi_client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address", help="HOST:PORT of the NBI")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per call (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    client = NbiClient(args.address)
    try:
        created = [client.create_device(args.timeout) for _ in range(args.count)]
        versions = [client.get_voltha(args.timeout) for _ in range(args.count)]
    except grpc.RpcError as err:
        print(f"NBI {args.address}: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if args.json:
        print(json.dumps({"create_device": created, "get_voltha": versions}))
    else:
        for core in created:
            print(f"CreateDevice through {args.address}: answered by core {core}")
        for version in versions:
            print(f"GetVoltha through {args.address}: {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
