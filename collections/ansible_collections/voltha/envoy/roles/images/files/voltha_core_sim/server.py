"""The simulated core's NBI: voltha.VolthaService as a cluster of VOLTHA cores answers it.

Any core answers any device call, the way VOLTHA 1.x's dispatcher did: a device id names its core
store (devices.store_of); the core that serves that store answers from memory; any other core hands
the call to it (a gRPC call to that core, marked ``voltha-forwarded-by`` so it goes no further), and
when that core does not answer, reads the store in Consul (reads only: a change waits until the
store has moved to a living core). ListDevices asks every core for the stores it serves and reads
Consul for stores no living core answers for, so it is cluster-wide and lists each device once.

Every answer carries the trailer ``voltha-core-id``: the core the call reached, so a client can tell
which core Envoy chose. Methods the simulator does not implement answer UNIMPLEMENTED naming the
method. The standard gRPC health service reports SERVING.
"""

from __future__ import annotations

import functools
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from voltha_protos import common_pb2, device_pb2, logical_device_pb2, voltha_pb2, voltha_pb2_grpc
from voltha_protos import health_pb2 as voltha_health_pb2

from . import flows, olt
from .core_store import CoreStores
from .devices import (
    TRANSITIONS,
    VERSION,
    DeviceError,
    adapters,
    device_types,
    new_device,
    not_found,
    required_id,
    store_of,
)
from .nbi_client import CORE_HEADER

FORWARDED_HEADER = "voltha-forwarded-by"
STORES_HEADER = "voltha-stores"  # on a forwarded ListDevices: the stores to list
SERVICE = voltha_pb2.DESCRIPTOR.services_by_name["VolthaService"]
# A core that does not answer a handed-over call: read Consul instead (reads), or say so (changes).
PEER_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
             grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)


def _answer(method):
    """Name our core in the trailers; turn a DeviceError into its gRPC status.

    A trailer, not a header sent first: Envoy retries a read on another core only while the core has
    sent nothing back, so the answer's headers must leave with the answer."""
    @functools.wraps(method)
    def handler(self, request, context):
        context.set_trailing_metadata(((CORE_HEADER, self.core_id),))
        try:
            return method(self, request, context)
        except DeviceError as error:
            context.abort(error.code, str(error))
    return handler


def _unimplemented(name):
    def handler(self, request, context):
        context.set_trailing_metadata(((CORE_HEADER, self.core_id),))
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{SERVICE.full_name}/{name} is not simulated by this core")
    handler.__name__ = name
    return handler


class Peers:
    """gRPC channels to the other cores, one per address."""

    def __init__(self):
        self._stubs: dict[tuple, voltha_pb2_grpc.VolthaServiceStub] = {}
        self._channels: list[grpc.Channel] = []
        self._lock = threading.Lock()

    def stub(self, host: str, port: int) -> voltha_pb2_grpc.VolthaServiceStub:
        with self._lock:
            stub = self._stubs.get((host, port))
            if stub is None:
                target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                channel = grpc.insecure_channel(target)
                self._channels.append(channel)
                stub = self._stubs[(host, port)] = voltha_pb2_grpc.VolthaServiceStub(channel)
            return stub

    def close(self) -> None:
        with self._lock:
            for channel in self._channels:
                channel.close()
            self._channels, self._stubs = [], {}


class CoreServicer(voltha_pb2_grpc.VolthaServiceServicer):
    def __init__(self, core_id: str, stores: CoreStores | None = None, address: tuple = (None, None),
                 forward_timeout: float = 1.0):
        self.core_id = core_id
        self.stores = stores or CoreStores(core_id, core_id)
        self.me = (core_id, *address)
        self.forward_timeout = forward_timeout
        self.assignment: dict[str, tuple] = {}  # store prefix -> (core id, host, port)
        self.peers = Peers()
        self._change = threading.Lock()  # one read-modify-write of a device at a time

    def set_assignment(self, mapping: dict) -> None:
        """The assignment as prefix -> (core id, host, port); our own entries give us their stores."""
        self.assignment = dict(mapping)
        self.stores.assignment_changed(self.assignment, self.me)

    # Handing calls to the core that serves a store.

    def _timeout(self, context) -> float:
        remaining = context.time_remaining()
        return self.forward_timeout if remaining is None else max(0.05, min(self.forward_timeout, remaining - 0.05))

    def _owner(self, prefix: str):
        owner = self.assignment.get(prefix)
        return None if owner is None or owner == self.me else owner

    def _forward(self, name: str, request, context, owner, metadata=()):
        stub = self.peers.stub(owner[1], owner[2])
        return getattr(stub, name)(request, timeout=self._timeout(context),
                                   metadata=((FORWARDED_HEADER, self.core_id), *metadata))

    @staticmethod
    def _forwarded(context) -> bool:
        return any(item[0] == FORWARDED_HEADER for item in context.invocation_metadata() or ())

    def _consul_read(self, read, what: str, why: str):
        try:
            return read()
        except Exception as error:
            raise DeviceError(grpc.StatusCode.UNAVAILABLE,
                              f"{what}: {why}, and Consul could not be read: {type(error).__name__}") from None

    def _find(self, device_id: str, context):
        """The device, from memory, from the core serving its store, or from Consul."""
        prefix = store_of(device_id)
        if prefix is None:
            raise not_found(device_id)
        served, device = self.stores.local(prefix, device_id)
        if served:
            if device is None and not self.stores.deleted(device_id):
                device = self._consul_read(lambda: self.stores.read(device_id), f"device {device_id!r}",
                                           f"it is not in core store {prefix} in memory")
            if device is None:
                raise not_found(device_id)
            return device
        owner = None if self._forwarded(context) else self._owner(prefix)
        why = f"no core serves core store {prefix}"
        if owner is not None:
            try:
                return self._forward("GetDevice", common_pb2.ID(id=device_id), context, owner)
            except grpc.RpcError as error:
                if error.code() not in PEER_DOWN:
                    raise DeviceError(error.code(), error.details()) from None
                why = f"core {owner[0]} serving core store {prefix} does not answer ({error.code().name})"
        device = self._consul_read(lambda: self.stores.read(device_id), f"device {device_id!r}", why)
        if device is None:
            raise not_found(device_id)
        return device

    def _change_device(self, name: str, device_id: str, context, change=None, request=None):
        """Enable, disable, reboot or delete (or ``change``, a device -> changed device, for a call
        ``name`` whose ``request`` goes to the core serving the store as it came), where the device's
        store is served."""
        prefix = store_of(device_id)
        if prefix is None:
            raise not_found(device_id)
        if self.stores.serves(prefix):
            with self._change:
                device = self._find(device_id, context)
                if name == "DeleteDevice":
                    moved = not self.stores.delete(device_id)
                else:
                    changed = (change or TRANSITIONS[name])(device)
                    moved = changed is not device and not self.stores.put(changed)
            if not moved:
                return empty_pb2.Empty()
        owner = None if self._forwarded(context) else self._owner(prefix)
        if owner is None:
            self._find(device_id, context)  # NOT_FOUND for a device that does not exist
            raise DeviceError(grpc.StatusCode.UNAVAILABLE,
                              f"device {device_id!r}: core store {prefix} is moving to another core; try again")
        try:
            return self._forward(name, common_pb2.ID(id=device_id) if request is None else request, context, owner)
        except grpc.RpcError as error:
            if error.code() not in PEER_DOWN:
                raise DeviceError(error.code(), error.details()) from None
            raise DeviceError(grpc.StatusCode.UNAVAILABLE,
                              f"device {device_id!r}: core {owner[0]} serving core store {prefix} does not answer "
                              f"({error.code().name}); try again when the store has moved") from None

    def _list_on(self, owner, prefixes, context, future=False):
        """ListDevices of the stores ``prefixes`` on the core ``owner`` serving them (a call, or its future)."""
        method = self.peers.stub(owner[1], owner[2]).ListDevices
        return (method.future if future else method)(
            empty_pb2.Empty(), timeout=self._timeout(context),
            metadata=((FORWARDED_HEADER, self.core_id), (STORES_HEADER, ",".join(prefixes))))

    def _list(self, context) -> list:
        """Every device of the cluster, each once (or, forwarded, those of the stores asked for)."""
        metadata = dict(context.invocation_metadata() or ())
        if FORWARDED_HEADER in metadata:
            asked = [p for p in metadata.get(STORES_HEADER, "").split(",") if p]
            devices, loading = self.stores.local_devices(asked)
            read = [p for p in asked if not self.stores.serves(p)] + loading
        else:
            devices, loading = self.stores.local_devices()
            read = list(loading)
            by_owner: dict[tuple, list[str]] = {}
            for prefix in sorted(self.assignment):
                owner = self._owner(prefix)
                if owner is not None and not self.stores.serves(prefix):
                    by_owner.setdefault(owner, []).append(prefix)
            calls = {owner: self._list_on(owner, prefixes, context, future=True)
                     for owner, prefixes in by_owner.items()}
            for owner, call in calls.items():
                try:
                    devices.extend(call.result().items)
                except grpc.RpcError:
                    read.extend(by_owner[owner])
            try:  # stores with devices that the assignment does not name (yet): read them too
                known = set(self.assignment) | set(self.stores.served())
                read.extend(p for p in self.stores.stores_in_consul() if p not in known)
            except Exception:
                pass
        for prefix in dict.fromkeys(read):
            devices.extend(self._consul_read(lambda p=prefix: self.stores.read_store(p), "ListDevices",
                                             f"no core answers for core store {prefix}"))
        unique = {}
        for device in devices:
            unique.setdefault(device.id, device)
        return [unique[key] for key in sorted(unique)]

    # voltha.VolthaService

    @_answer
    def CreateDevice(self, request, context):  # noqa: N802 (gRPC method names)
        prefix = self.stores.create_prefix()
        if prefix is not None:
            device = new_device(request, prefix)
            if self.stores.put(device):
                return device
        # We serve no store right now (another core holds ours until the leader hands it back):
        # the core holding it creates the device.
        holder = None if self._forwarded(context) else self._owner(self.stores.home)
        if holder is None:
            new_device(request, self.stores.home)  # a bad request is INVALID_ARGUMENT all the same
            raise DeviceError(grpc.StatusCode.UNAVAILABLE, f"core {self.core_id} serves no core store right now; "
                                                           "try again")
        try:
            return self._forward("CreateDevice", request, context, holder)
        except grpc.RpcError as error:
            raise DeviceError(error.code(), error.details()) from None

    @_answer
    def GetDevice(self, request, context):  # noqa: N802
        return self._find(required_id(request.id), context)

    @_answer
    def ListDevices(self, request, context):  # noqa: N802
        return device_pb2.Devices(items=self._list(context))

    @_answer
    def ListDeviceIds(self, request, context):  # noqa: N802
        return common_pb2.IDs(items=[common_pb2.ID(id=d.id) for d in self._list(context)])

    @_answer
    def EnableDevice(self, request, context):  # noqa: N802
        device_id = required_id(request.id)

        def change(device):  # under the store's lock, on the core serving it
            enabled = TRANSITIONS["EnableDevice"](device)
            if olt.has_logical_device(enabled):  # one logical device per id, as VOLTHA refuses a second
                logical_id = olt.logical_device_id(enabled)
                for other in self.stores.local_devices([store_of(device_id)])[0]:
                    if other.id != device_id and olt.is_root_of(other, logical_id):
                        raise DeviceError(grpc.StatusCode.FAILED_PRECONDITION,
                                          f"device {device_id!r} cannot be enabled: OLT {other.id!r} of the same "
                                          f"MAC address is the root of logical device {logical_id!r}")
            return enabled

        return self._change_device("EnableDevice", device_id, context, change)

    @_answer
    def DisableDevice(self, request, context):  # noqa: N802
        return self._change_device("DisableDevice", required_id(request.id), context)

    @_answer
    def RebootDevice(self, request, context):  # noqa: N802
        return self._change_device("RebootDevice", required_id(request.id), context)

    @_answer
    def DeleteDevice(self, request, context):  # noqa: N802
        return self._change_device("DeleteDevice", required_id(request.id), context)

    @_answer
    def ListDevicePorts(self, request, context):  # noqa: N802
        return olt.ports(self._find(required_id(request.id), context))

    @_answer
    def ListDevicePmConfigs(self, request, context):  # noqa: N802
        return olt.pm_configs(self._find(required_id(request.id), context))

    @_answer
    def ListDeviceFlows(self, request, context):  # noqa: N802
        return flows.flows_of(self._find(required_id(request.id), context))  # one OLT: the logical device's table

    def _store_devices(self, prefix: str, context) -> list:
        """The devices of one store: from memory, from the core serving it, or from Consul."""
        if self.stores.serves(prefix):
            devices, loading = self.stores.local_devices([prefix])
            if not loading:
                return devices
            why = f"core store {prefix} is still loading"
        else:
            owner = None if self._forwarded(context) else self._owner(prefix)
            why = f"no core serves core store {prefix}"
            if owner is not None:
                try:
                    return list(self._list_on(owner, [prefix], context).items)
                except grpc.RpcError as error:
                    why = f"core {owner[0]} serving core store {prefix} does not answer ({error.code().name})"
        return self._consul_read(lambda: self.stores.read_store(prefix), f"core store {prefix}", why)

    def _root_of(self, logical_id: str, context):
        """The enabled OLT whose logical device has this id (its store is the id's); NOT_FOUND naming the id."""
        prefix = store_of(required_id(logical_id))
        if prefix is not None:
            for device in self._store_devices(prefix, context):
                if olt.is_root_of(device, logical_id):
                    return device
        raise DeviceError(grpc.StatusCode.NOT_FOUND, f"logical device {logical_id!r} not found")

    @_answer
    def ListLogicalDevices(self, request, context):  # noqa: N802
        return logical_device_pb2.LogicalDevices(
            items=[olt.logical_device(d) for d in self._list(context) if olt.has_logical_device(d)])

    @_answer
    def GetLogicalDevice(self, request, context):  # noqa: N802
        return olt.logical_device(self._root_of(request.id, context))

    @_answer
    def ListLogicalDevicePorts(self, request, context):  # noqa: N802
        return olt.logical_ports(self._root_of(request.id, context))

    @_answer
    def ListLogicalDeviceFlows(self, request, context):  # noqa: N802
        return flows.flows_of(self._root_of(request.id, context))

    @_answer
    def UpdateLogicalDeviceFlowTable(self, request, context):  # noqa: N802
        root = self._root_of(request.id, context)
        flows.updated(flows.flows_of(root), request.flow_mod)  # a flow_mod refused is refused here, by any core

        def change(device):  # under the store's lock, on the core serving it: the OLT as it is now
            if not olt.is_root_of(device, request.id):
                raise DeviceError(grpc.StatusCode.NOT_FOUND, f"logical device {request.id!r} not found")
            return flows.with_flows(device, flows.updated(flows.flows_of(device), request.flow_mod))

        return self._change_device("UpdateLogicalDeviceFlowTable", root.id, context, change, request)

    @_answer
    def GetVoltha(self, request, context):  # noqa: N802
        return voltha_pb2.Voltha(version=VERSION)

    @_answer
    def ListAdapters(self, request, context):  # noqa: N802
        return adapters()

    @_answer
    def ListDeviceTypes(self, request, context):  # noqa: N802
        return device_types()

    @_answer
    def GetDeviceType(self, request, context):  # noqa: N802
        for item in device_types().items:
            if item.id == required_id(request.id):
                return item
        raise DeviceError(grpc.StatusCode.NOT_FOUND, f"device type {request.id!r} not found")

    @_answer
    def ListCoreInstances(self, request, context):  # noqa: N802
        cores = sorted({owner[0] for owner in self.assignment.values()} | {self.core_id})
        healthy = voltha_health_pb2.HealthStatus(state=voltha_health_pb2.HealthStatus.HEALTHY)
        return voltha_pb2.CoreInstances(items=[voltha_pb2.CoreInstance(instance_id=core, health=healthy)
                                               for core in cores])


for _method in SERVICE.methods:
    if _method.name not in CoreServicer.__dict__:
        setattr(CoreServicer, _method.name, _unimplemented(_method.name))


# Envoy pings every upstream connection (the template's keepalive_interval, 0.1 s by default) to
# notice a frozen core: accept pings that often, with or without calls, and never answer them with
# GOAWAY ("too many pings"), which gRPC servers do by default for pings more often than every 5 min.
# Threads serving calls, health checks included. A device call may wait on Consul (up to the store's
# persist wait when Consul's leader is lost): with too few threads, Envoy's health checks queue behind
# those calls and every core fails them at once. Threads start only as calls need them.
WORKERS = 64

KEEPALIVE_OPTIONS = (
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 50),
    ("grpc.http2.max_ping_strikes", 0),
)


class _Arrivals(grpc.ServerInterceptor):
    """When the last call arrived, health checks aside (they go on while Envoy routes nothing here)."""

    def __init__(self):
        self.last = time.monotonic()

    def intercept_service(self, continuation, handler_call_details):
        if not handler_call_details.method.startswith("/grpc.health."):
            self.last = time.monotonic()
        return continuation(handler_call_details)


class CoreServer:
    """One simulated core listening on host:port (port 0 picks a free one).

    ``stores`` (CoreStores) holds its devices; by default its home store, named by the core id,
    in memory only.

    Stopping without losing a call: drain() reports NOT_SERVING to Envoy's health checks,
    wait_quiet() waits until calls stop arriving, then stop(). gRPC's stop ends a call that has
    arrived but is not yet in a handler with CANCELLED, whatever the grace, and Envoy cannot retry
    that, so the server must not stop while calls still arrive."""

    def __init__(self, core_id: str, host: str = "127.0.0.1", port: int = 0, workers: int = WORKERS, interceptors=(),
                 stores: CoreStores | None = None, advertise: str | None = None):
        self.core_id = core_id
        self.arrivals = _Arrivals()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=KEEPALIVE_OPTIONS,
                                  interceptors=[self.arrivals, *interceptors])
        self.host = host
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        self.servicer = CoreServicer(core_id, stores, (advertise or host, self.port))
        voltha_pb2_grpc.add_VolthaServiceServicer_to_server(self.servicer, self.server)
        self.health = health.HealthServicer()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set("voltha.VolthaService", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)

    def serve_health(self, name: str) -> None:
        """Answer SERVING for the health service ``name`` too (the instance id Consul's check asks for)."""
        self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> CoreServer:
        self.servicer.stores.start()
        self.server.start()
        return self

    def drain(self) -> None:
        """Answer NOT_SERVING to health checks of the whole server and of voltha.VolthaService: Envoy's
        active health checks stop routing here even before the assignment drops this core."""
        for name in ("", "voltha.VolthaService"):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    def wait_quiet(self, quiet: float, timeout: float) -> bool:
        """Wait until no call (health checks aside) has arrived for ``quiet`` seconds; False when calls
        still arrived after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            idle = time.monotonic() - self.arrivals.last
            wait = min(quiet - idle, deadline - time.monotonic())
            if idle >= quiet:
                return True
            if wait <= 0:
                return False
            time.sleep(wait)

    def stop(self, grace: float | None = None) -> None:
        self.server.stop(grace).wait()
        self.servicer.stores.stop()
        self.servicer.peers.close()
