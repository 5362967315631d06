"""The core's entry in Consul's catalog: service ``vcore`` with a gRPC health check."""

from __future__ import annotations

import secrets

from ansible_collections.voltha.envoy.plugins.module_utils._common.durations import go_duration, seconds

DEFAULT_SERVICE_NAME = "vcore"


def check_id(service_id: str) -> str:
    """The id Consul gives the single check registered with a service."""
    return f"service:{service_id}"


def instance_id(core_id: str, host: str, port: int, run: str) -> str:
    """The id of one run of a core: CORE@HOST:PORT~RUN, RUN being new every time the process starts."""
    return f"{core_id}@{host}:{port}~{run}"


def new_run() -> str:
    return secrets.token_hex(4)


def service_definition(core_id: str, host: str, port: int, prefix: str, service_name: str = DEFAULT_SERVICE_NAME,
                       check_interval: str = "1s", check_timeout: str | None = None,
                       deregister_after: str = "1m", instance: str | None = None,
                       started: float | None = None) -> dict:
    """Keyword arguments for py-consul's ``agent.service.register``.

    The service id is ``instance`` (default: the core id), one per run of the core process. Giving
    each instance its own id lets a new instance of a core start before the old one stops (a
    rolling update): the old one's deregistration never removes the new one. The core id and the
    prefix the core wants in the assignment travel in Meta, so the leader can write every core's
    entry from the catalog alone, and so does ``started`` (when the process started, seconds since
    the epoch), which tells the leader which of two instances of a core is the newer one.

    The check is Consul's own gRPC health check (type GRPC) asking grpc.health.v1 for the service
    named by the instance id, which only this run of this core serves: it proves which core answers,
    not only that something listens. When the address is reused (a new task on the same overlay
    address, a restarted process on the same port), the old registration's check fails, and with it
    every session tied to that check, so no leftover can hold the leader lock.
    """
    check_interval = go_duration(seconds(check_interval, "check interval"))
    deregister_after = go_duration(seconds(deregister_after, "deregister-after"))
    service_id = instance or core_id
    check = {"GRPC": f"{host}:{port}/{service_id}", "GRPCUseTLS": False, "Interval": check_interval,
             "Timeout": check_timeout or check_interval, "DeregisterCriticalServiceAfter": deregister_after}
    meta = {"core_id": core_id, "prefix": prefix}
    if started is not None:
        meta["started"] = f"{started:.3f}"
    return {"name": service_name, "service_id": service_id, "address": host, "port": port,
            "meta": meta, "check": check}


class ServiceRegistration:
    """Keeps this core registered with the local Consul agent.

    ``client`` is a py-consul client (or a fake with ``agent.services()``, ``agent.service.register``
    and ``agent.service.deregister``). A dev agent that restarts forgets every service: ``ensure``
    finds ours missing and registers it again.
    """

    def __init__(self, client, definition: dict):
        self.client = client
        self.definition = definition

    @property
    def service_id(self) -> str:
        return self.definition["service_id"]

    @property
    def check_id(self) -> str:
        return check_id(self.service_id)

    def matches(self, service: dict | None) -> bool:
        """Whether the agent's entry for our id is our registration (not an older one under that id)."""
        if not service:
            return False
        wanted = self.definition
        return (service.get("Service") == wanted["name"] and service.get("Address") == wanted["address"]
                and service.get("Port") == wanted["port"] and (service.get("Meta") or {}) == wanted["meta"])

    def registered(self) -> bool:
        return self.matches((self.client.agent.services() or {}).get(self.service_id))

    def ensure(self) -> bool:
        """Register unless the agent already has this very registration; True when it registered now.

        An entry under our id that differs (a previous run of this core on another port, or under
        another service name) is replaced.
        """
        if self.registered():
            return False
        self.client.agent.service.register(**self.definition)
        return True

    def deregister(self) -> None:
        self.client.agent.service.deregister(self.service_id)
