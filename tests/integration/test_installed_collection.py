"""The collection as users get it: the built tarball installed into an empty collections path and
used from an empty playbook directory, with nothing of this checkout on Ansible's paths but the
ansible package's own collections. The stack comes up and the NBI answers; then it is torn down.

The tests' network namespace reaches no package index or mirror, so the images role is pointed at
the files make setup fetched (images_work_dir), as in an air-gapped lab; the images stage of make
test runs the installed role with its defaults, fetching everything itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.collection_checks import build_and_install, installed_env
from tests.support.paths import REPO, STATE

pytestmark = pytest.mark.slow

PLAY = """---
- name: Build the images and deploy the lab from the installed collection
  hosts: swarm_managers
  gather_facts: false
  roles:
    - role: voltha.envoy.images
    - role: voltha.envoy.stack
"""
TEARDOWN = """---
- name: Tear the lab down
  hosts: swarm_managers
  gather_facts: false
  tasks:
    - name: Remove the stack
      ansible.builtin.include_role:
        name: voltha.envoy.stack
        tasks_from: teardown
"""
INVENTORY = {"all": {"children": {"image_builders": {"hosts": {"localhost": {}}},
                                  "swarm_managers": {"hosts": {"localhost": {}}}, "swarm_workers": {"hosts": {}}},
                     "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                              "stack_name": "voltha_installed", "stack_swarm_advertise_addr": "127.0.0.1",
                              "stack_nbi_port": 54555, "stack_consul_port": 48500,
                              "stack_prometheus_port": 49190, "images_work_dir": str(STATE)}}}


def test_the_installed_tarball_builds_and_deploys_the_lab_from_an_empty_directory(tmp_path, lab_images):
    build_and_install(tmp_path)
    play = tmp_path / "playbooks"
    play.mkdir()
    (play / "site.yml").write_text(PLAY)
    (play / "teardown.yml").write_text(TEARDOWN)
    (play / "inventory.json").write_text(json.dumps(INVENTORY))
    env = installed_env(tmp_path)
    playbook = str(Path(sys.executable).parent / "ansible-playbook")

    def run(name):
        return subprocess.run([playbook, "-i", "inventory.json", name], cwd=play, env=env, capture_output=True,
                              text=True, timeout=1800)

    listed = subprocess.run([str(Path(sys.executable).parent / "ansible-galaxy"), "collection", "list", "voltha.envoy"],
                            cwd=play, env=env, capture_output=True, text=True)
    assert str(tmp_path / "collections") in listed.stdout and str(REPO) not in listed.stdout, listed.stdout
    try:
        deployed = run("site.yml")
        assert deployed.returncode == 0, deployed.stdout[-5000:] + deployed.stderr[-2000:]
        check = subprocess.run([sys.executable, "-m", "voltha_core_sim.device_check", "127.0.0.1:54555",
                                "--create", "6", "--lists", "3", "--within", "30"],
                               capture_output=True, text=True, timeout=120)
        assert check.returncode == 0, check.stderr
        print(f"\nthe installed collection built and deployed the lab; through its NBI: {check.stdout.strip()}")
    finally:
        down = run("teardown.yml")
        assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-2000:]
