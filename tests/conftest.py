"""Fixtures that run the real parts: Consul dev agents, Envoy, the Docker Engine.

Every process a fixture starts is stopped by its PID in the fixture's teardown, which pytest runs
whether the test passed or failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.binary import envoy_version, find_envoy
from tests.support import sim_cores
from tests.support.consul_agent import ConsulAgent
from tests.support.envoy_proxy import EnvoyProxy
from tests.support.paths import REPO, consul_binary

PROBE = "voltha-envoy/health-probe:latest"


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
    """Start private Consul agents (a test that stops or restarts Consul needs its own).
    ``wait=False`` only launches the process (agents of one cluster wait for each other); ``agent``
    starts one made already (its config changed first)."""
    def make(n, wait=True, agent=None, **kwargs):
        agent = agent or ConsulAgent(tmp_path / f"consul-{n}", **kwargs)
        return agent, (agent.start if wait else agent.launch)

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
    """The Docker Engine of DOCKER_HOST (make test points it at an engine of its own)."""
    import docker

    endpoint = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException as err:
        pytest.fail(f"no Docker Engine answers at {endpoint}: {err} (make test starts one of its own)")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def lab_images(docker_client):
    """Every image of the lab, made by the images role (playbooks/build.yml). Images are tagged by
    their inputs, so when they are there already this builds nothing."""
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(REPO / "inventories/local"),
            str(REPO / "playbooks/build.yml")]
    run = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=1800,
                         env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1"))
    if run.returncode != 0:
        pytest.fail("the images role (playbooks/build.yml) failed:\n" + run.stdout[-4000:] + run.stderr[-2000:])
    return docker_client


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

    def make(n, consul_address, reload="dynamic", extra=(), wait_healthy=True, open_files=None):
        daemon = Envoyd(tmp_path / f"envoyd-{n}", consul_address, reload, tuple(extra), open_files=open_files)
        return daemon, lambda: daemon.start(wait_healthy=wait_healthy)

    yield from stop_all_afterwards(make)


@pytest.fixture
def own_engine(tmp_path, lab_images):
    """A Docker Engine of this test alone (its own network namespace and data root: no swarm, no
    images but the health probe's), for tests that change an engine's swarm state. Stopped after."""
    import docker

    from scripts.docker_engine import TestEngine

    if os.geteuid() != 0:
        pytest.fail("this test starts a Docker Engine of its own, which needs root (a network namespace)")
    engine = TestEngine(tmp_path / "state")
    try:
        engine.up()
        client = docker.DockerClient(base_url=engine.endpoint, timeout=120)
        client.images.load(b"".join(lab_images.images.get(PROBE).save(named=PROBE)))
        yield engine, client
        client.close()
    finally:
        engine.down()


@pytest.fixture
def keys():
    """Keys of their own for one test's simulated cores: service name, assignment and lock."""
    tag = uuid.uuid4().hex[:8]
    return {"service": f"vcore-{tag}", "assignment": f"test/{tag}/assignment", "lock": f"test/{tag}/leader"}


@pytest.fixture
def start_cores(tmp_path, keys):
    """Start simulated core processes in Consul on ``keys``; all are stopped by PID at teardown."""
    started: list = []

    def start(consul_address: str, *specs) -> list:
        """specs: core ids, or (core id, port) to put a core on a given port."""
        cores = []
        for spec in specs:
            core_id, port = (spec, None) if isinstance(spec, str) else spec
            workdir = tmp_path / f"core-{len(started)}"
            workdir.mkdir(exist_ok=True)
            core = sim_cores.Core(workdir, core_id, consul_address, keys, port=port)
            started.append(core)  # recorded before it starts: a failed start is stopped too
            cores.append(core.start())
        return cores

    try:
        yield start
    finally:
        for core in started:
            core.stop()
