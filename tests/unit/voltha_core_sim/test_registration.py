"""registration.py: the service definition with its gRPC check, durations, registering again."""

from __future__ import annotations

from tests.unit.voltha_core_sim.fakes import FakeConsul
from voltha_core_sim.registration import ServiceRegistration, instance_id, new_run, service_definition

# Registration.

def test_service_definition_has_a_grpc_check_and_the_prefix():
    definition = service_definition("core-1", "10.0.0.5", 50557, "vcore1", check_interval="1s")
    assert definition["name"] == "vcore" and definition["service_id"] == "core-1"
    assert (definition["address"], definition["port"]) == ("10.0.0.5", 50557)
    assert definition["meta"] == {"core_id": "core-1", "prefix": "vcore1"}
    started = service_definition("core-1", "10.0.0.5", 50557, "vcore1", started=1796598097.25)
    assert started["meta"] == {"core_id": "core-1", "prefix": "vcore1", "started": "1796598097.250"}
    assert definition["check"] == {"GRPC": "10.0.0.5:50557/core-1", "GRPCUseTLS": False, "Interval": "1s",
                                   "Timeout": "1s", "DeregisterCriticalServiceAfter": "60s"}


def test_registration_registers_once_and_again_when_forgotten_or_different():
    consul = FakeConsul()
    registration = ServiceRegistration(consul, service_definition("core-1", "127.0.0.1", 50557, "p1"))
    assert registration.ensure() is True
    assert registration.ensure() is False  # already there
    consul.agent.entries.clear()  # a restarted dev agent
    assert registration.ensure() is True
    consul.agent.entries["core-1"]["Port"] = 1  # an older registration under our id
    assert registration.ensure() is True
    assert len(consul.agent.registrations) == 3
    assert registration.check_id == "service:core-1"
    registration.deregister()
    assert consul.agent.entries == {}


# Election.


def test_each_run_has_its_own_service_id_and_the_check_asks_for_it():
    """The check asks the gRPC health service for the instance id: a process that reuses the address
    (another core, or this core started again) does not serve it, so the old registration fails."""
    first, second = new_run(), new_run()
    assert first != second and len(first) == 8
    instance = instance_id("core-1", "10.0.0.5", 50557, first)
    assert instance == f"core-1@10.0.0.5:50557~{first}"
    definition = service_definition("core-1", "10.0.0.5", 50557, "vcore1", instance=instance)
    assert definition["service_id"] == instance
    assert definition["check"]["GRPC"] == f"10.0.0.5:50557/{instance}"
    assert definition["meta"] == {"core_id": "core-1", "prefix": "vcore1"}
