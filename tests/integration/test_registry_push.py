"""The images role pushes to a registry (Debian's docker-registry, as multi-node labs use): every image
under its inputs tag, which the stack's services name, and under latest."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.paths import REPO, STATE
from tests.support.processes import ManagedProcess, free_port

PROBE = "voltha-envoy/health-probe"


@pytest.fixture
def registry(tmp_path, docker_client):
    binary = STATE / "bin" / "docker-registry"
    if not binary.exists():
        pytest.fail(f"no docker-registry at {binary}: run `make setup`")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    process = ManagedProcess("registry", [str(binary), "serve", str(config)], tmp_path / "registry.log")
    address = f"127.0.0.1:{port}"
    try:
        process.wait_ready(lambda: _get(f"http://{address}/v2/") is not None, 20)
        yield address
    finally:
        process.stop()
        for image in docker_client.images.list(name=f"{address}/{PROBE}"):
            for tag in image.tags:
                if tag.startswith(f"{address}/"):  # the image keeps its own tags
                    docker_client.images.remove(tag)


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return json.loads(answer.read() or b"{}")
    except OSError:
        return None


def test_images_are_pushed_under_their_inputs_tag_and_latest(registry, lab_images):
    engine = lab_images
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(REPO / "inventories/local"),
            str(REPO / "playbooks/build.yml"), "-e", json.dumps({"images_build": ["go"], "images_registry": registry})]
    run = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    inputs_tag = engine.images.get(f"{PROBE}:latest").labels["io.voltha-envoy.inputs"][:12]
    tags = _get(f"http://{registry}/v2/{PROBE}/tags/list")
    assert sorted(tags["tags"]) == sorted(["latest", inputs_tag])
