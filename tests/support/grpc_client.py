"""Calls into the VOLTHA NBI through Envoy, reporting which core answered."""

from __future__ import annotations

import grpc
from google.protobuf import empty_pb2
from voltha_protos import device_pb2, voltha_pb2_grpc


class NbiClient:
    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(address)
        self.stub = voltha_pb2_grpc.VolthaServiceStub(self.channel)

    def create_device(self, timeout: float = 5.0) -> str:
        """The id of the core that created the device."""
        device = self.stub.CreateDevice(device_pb2.Device(type="simulated_olt"), timeout=timeout)
        return device.id.split(":")[0]

    def get_voltha(self, timeout: float = 5.0) -> str:
        return self.stub.GetVoltha(empty_pb2.Empty(), timeout=timeout).version

    def close(self) -> None:
        self.channel.close()
