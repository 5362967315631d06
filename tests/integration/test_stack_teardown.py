"""playbooks/teardown.yml (the stack role's teardown) from every state an engine can be in, on a real
Docker Engine of the test's own: no swarm, a swarm without the stack, a stack whose tasks are still
there, a stack removed half-way (a network left), containers of a stack no swarm manages any more."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from tests.support.paths import REPO

STACK = "voltha_teardown"
VOLUME = f"{STACK}_consul-data"
LABEL = f"com.docker.stack.namespace={STACK}"
PROBE = "voltha-envoy/health-probe:latest"


def teardown(endpoint: str, **extra) -> str:
    argv = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(REPO / "inventories/local"),
            str(REPO / "playbooks/teardown.yml"), "-e", json.dumps({"stack_name": STACK, **extra})]
    env = dict(os.environ, DOCKER_HOST=endpoint, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    run = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return " ".join(run.stdout.split())


def stack_objects(client):
    return (client.containers.list(all=True, filters={"label": LABEL}), client.networks.list(filters={"label": LABEL}),
            [v for v in client.volumes.list() if v.name == VOLUME])


def deploy(own, tmp_path):
    """A stack of one service whose tasks exit at once (the probe finds nothing listening), with a network."""
    compose = tmp_path / "compose.yml"
    compose.write_text(
        'version: "3.8"\nservices:\n  probe:\n    image: ' + PROBE + '\n    command: ["tcp", "127.0.0.1:9"]\n'
        "    networks: [net]\n    volumes: [consul-data:/data]\n"
        "    deploy:\n      replicas: 2\n      restart_policy: {condition: none}\n"
        "networks:\n  net:\n    driver: overlay\n    attachable: true\nvolumes:\n  consul-data:\n")
    subprocess.run(["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(compose), STACK], check=True,
                   capture_output=True, env=dict(os.environ, DOCKER_HOST=own.endpoint), timeout=120)


def test_an_engine_in_no_swarm(own_engine):
    own, client = own_engine
    said = teardown(own.endpoint)
    assert "swarm inactive" in said and "nothing to remove" in said, said
    client.volumes.create(VOLUME)
    said = teardown(own.endpoint, stack_leave_swarm=True)
    assert f"volume {VOLUME} found" in said and "the volume" in said, said
    assert stack_objects(client) == ([], [], [])


def test_containers_no_swarm_manages_are_removed(own_engine):
    own, client = own_engine
    client.containers.create(PROBE, ["tcp", "127.0.0.1:9"], labels={"com.docker.stack.namespace": STACK},
                             name=f"{STACK}_left-{uuid.uuid4().hex[:6]}")
    said = teardown(own.endpoint)
    assert "1 container(s) no swarm manages" in said, said
    assert stack_objects(client) == ([], [], [])


def test_a_swarm_with_and_without_the_stack(own_engine, tmp_path):
    own, client = own_engine
    client.swarm.init(advertise_addr="127.0.0.1")
    said = teardown(own.endpoint)
    assert "swarm active (manager)" in said and "0 service(s)" in said and "nothing to remove" in said, said

    deploy(own, tmp_path)
    said = teardown(own.endpoint)
    assert "1 service(s)" in said and "the stack" in said, said
    assert stack_objects(client) == ([], [], [])
    assert client.services.list() == []

    # Removed half-way: the services went, a network of the stack stayed.
    client.networks.create(f"{STACK}_net", driver="overlay", attachable=True,
                           labels={"com.docker.stack.namespace": STACK})
    said = teardown(own.endpoint)
    assert "1 network(s) left behind" in said, said
    assert stack_objects(client) == ([], [], [])

    said = teardown(own.endpoint, stack_leave_swarm=True)
    assert "left the swarm" in said, said
    assert client.info()["Swarm"]["LocalNodeState"] == "inactive"
