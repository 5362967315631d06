"""The simulated core: CreateDevice, GetDevice, ListDevices and GetVoltha answer with the core's id.

Every answer carries the core id (Device.id is "<core id>:<n>", Voltha.version is the core id) so a
client can tell which core served it. The standard gRPC health service reports SERVING.
"""

from __future__ import annotations

import itertools
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from voltha_protos import device_pb2, voltha_pb2, voltha_pb2_grpc


class CoreServicer(voltha_pb2_grpc.VolthaServiceServicer):
    def __init__(self, core_id: str):
        self.core_id = core_id
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self.devices: dict[str, device_pb2.Device] = {}
        self.calls = 0

    def _count(self) -> int:
        with self._lock:
            self.calls += 1
            return next(self._numbers)

    def CreateDevice(self, request, context):  # noqa: N802 (gRPC method names)
        device = device_pb2.Device()
        device.CopyFrom(request)
        device.id = f"{self.core_id}:{self._count()}"
        with self._lock:
            self.devices[device.id] = device
        return device

    def GetDevice(self, request, context):  # noqa: N802
        self._count()
        with self._lock:
            device = self.devices.get(request.id)
        if device is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"core {self.core_id} has no device {request.id}")
        return device

    def ListDevices(self, request, context):  # noqa: N802
        self._count()
        with self._lock:
            return device_pb2.Devices(items=list(self.devices.values()))

    def GetVoltha(self, request, context):  # noqa: N802
        self._count()
        return voltha_pb2.Voltha(version=self.core_id)


# Envoy pings every upstream connection (the template's keepalive_interval, 0.1 s by default) to
# notice a frozen core: accept pings that often, with or without calls, and never answer them with
# GOAWAY ("too many pings"), which gRPC servers do by default for pings more often than every 5 min.
KEEPALIVE_OPTIONS = (
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 50),
    ("grpc.http2.max_ping_strikes", 0),
)


class CoreServer:
    """One simulated core listening on host:port (port 0 picks a free one)."""

    def __init__(self, core_id: str, host: str = "127.0.0.1", port: int = 0, workers: int = 8, interceptors=()):
        self.core_id = core_id
        self.servicer = CoreServicer(core_id)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=KEEPALIVE_OPTIONS,
                                  interceptors=list(interceptors))
        voltha_pb2_grpc.add_VolthaServiceServicer_to_server(self.servicer, self.server)
        self.health = health.HealthServicer()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set("voltha.VolthaService", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.host = host
        self.port = self.server.add_insecure_port(f"{host}:{port}")

    def serve_health(self, name: str) -> None:
        """Answer SERVING for the health service ``name`` too (the instance id Consul's check asks for)."""
        self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> CoreServer:
        self.server.start()
        return self

    def stop(self, grace: float | None = None) -> None:
        self.server.stop(grace).wait()
