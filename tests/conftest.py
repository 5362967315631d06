"""Fixtures that run the real parts: Consul dev agents, Envoy, the Docker Engine.

Every process a fixture starts is stopped by its PID in the fixture's teardown, which pytest runs
whether the test passed or failed.
"""

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils.envoy_binary import envoy_version, find_envoy
from tests.support.consul_agent import ConsulAgent
from tests.support.envoy_proxy import EnvoyProxy
from tests.support.paths import consul_binary


def pytest_report_header(config):
    lines = []
    try:
        envoy = find_envoy()
        lines.append(f"envoy: {envoy_version(envoy)} at {envoy}")
    except Exception as err:  # the header must not hide the real failure in the fixtures
        lines.append(f"envoy: unavailable ({err})")
    try:
        consul = consul_binary()
        out = subprocess.run([consul, "version"], capture_output=True, text=True, timeout=20).stdout
        lines.append(f"consul: {out.splitlines()[0]} at {consul}")
    except Exception as err:
        lines.append(f"consul: unavailable ({err})")
    return lines


@pytest.fixture(scope="session")
def consul_agent(tmp_path_factory):
    """One real Consul dev agent for the session; tests use their own keys."""
    agent = ConsulAgent(tmp_path_factory.mktemp("consul"))
    try:
        yield agent.start()
    finally:
        agent.stop()


def stop_all_afterwards(make_started):
    """A factory fixture's body: yields start(...), which records what it starts; all are stopped after."""
    started = []

    def start(*args, **kwargs):
        thing, begin = make_started(len(started), *args, **kwargs)
        started.append(thing)  # recorded before it starts, so a failed start is stopped too
        return begin()

    try:
        yield start
    finally:
        for thing in started:
            thing.stop()


@pytest.fixture
def start_consul(tmp_path):
    """Start private Consul agents (a test that stops or restarts Consul needs its own)."""
    def make(n, http_port=None):
        agent = ConsulAgent(tmp_path / f"consul-{n}", http_port=http_port)
        return agent, agent.start

    yield from stop_all_afterwards(make)


@pytest.fixture
def start_envoy(tmp_path):
    """Start real Envoys from v3 bootstraps (dicts or YAML text)."""
    def make(n, bootstrap, **kwargs):
        proxy = EnvoyProxy(tmp_path / f"envoy-{n}", bootstrap)
        return proxy, lambda: proxy.start(**kwargs)

    yield from stop_all_afterwards(make)


@pytest.fixture(scope="session")
def docker_client():
    import docker

    client = docker.from_env()
    client.ping()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def cores():
    """Three simulated VOLTHA cores (real gRPC servers) on loopback."""
    from voltha_core_sim.server import CoreServer

    servers = []
    try:
        for i in range(3):
            servers.append(CoreServer(f"core-{i}"))
            servers[-1].start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def start_envoyd(tmp_path):
    """Start envoyd processes (each with its own Envoy); all are stopped by PID at teardown."""
    from tests.support.envoyd_runner import Envoyd

    def make(n, consul_address, reload="dynamic", extra=(), wait_healthy=True):
        daemon = Envoyd(tmp_path / f"envoyd-{n}", consul_address, reload, tuple(extra))
        return daemon, lambda: daemon.start(wait_healthy=wait_healthy)

    yield from stop_all_afterwards(make)
