"""The images role pushes to a registry (Debian's docker-registry, as multi-node labs use, with TLS from a
CA of its own and a login): every image under its inputs tag, which the stack's services name, and under
latest."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from scripts.lab_registry import USER, make_files
from tests.support.paths import REPO, STATE
from tests.support.processes import ManagedProcess, free_port

PROBE = "voltha-envoy/health-probe"


CERTS_DIR = Path("/etc/docker/certs.d")


@pytest.fixture
def registry(tmp_path, docker_client):
    """Debian's docker-registry as the three-host lab runs it (scripts/lab_registry.py): TLS from a CA of
    its own, and a login for every request."""
    binary = STATE / "bin" / "docker-registry"
    if not binary.exists():
        pytest.fail(f"no docker-registry at {binary}: run `make setup`")
    address = f"127.0.0.1:{free_port()}"
    files = make_files(tmp_path / "registry", address)
    process = ManagedProcess("registry", [str(binary), "serve", str(files.config)], tmp_path / "registry.log")
    try:
        process.wait_ready(lambda: _get(address, files) is not None, 20)
        yield address, files
    finally:
        process.stop()
        trust = CERTS_DIR / address
        (trust / "ca.crt").unlink(missing_ok=True)
        if trust.exists():
            trust.rmdir()
        for image in docker_client.images.list(name=f"{address}/{PROBE}"):
            for tag in image.tags:
                if tag.startswith(f"{address}/"):  # the image keeps its own tags
                    docker_client.images.remove(tag)


def _get(address, files, path="/v2/", login=True):
    """The registry's answer over TLS with its CA: (status, JSON), None when it does not answer."""
    headers = {"Authorization": files.authorization()} if login else {}
    request = urllib.request.Request(f"https://{address}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2, context=files.trusted()) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")
    except OSError:
        return None


def test_images_are_pushed_under_their_inputs_tag_and_latest_with_the_registrys_ca_and_login(registry, lab_images,
                                                                                               tmp_path):
    address, files = registry
    engine = lab_images
    password = files.password_file.read_text().strip()
    config_dir = tmp_path / "docker-client"
    extra = {"images_build": ["go"], "images_registry": address, "images_registry_ca_file": str(files.ca_cert),
             "images_registry_username": USER, "images_registry_password": password,
             "images_registry_config_dir": str(config_dir)}
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(REPO / "inventories/local"),
            str(REPO / "playbooks/build.yml"), "-e", json.dumps(extra)]
    run = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert password not in run.stdout + run.stderr
    inputs_tag = engine.images.get(f"{PROBE}:latest").labels["io.voltha-envoy.inputs"][:12]
    status, tags = _get(address, files, f"/v2/{PROBE}/tags/list")
    assert (status, sorted(tags["tags"])) == (200, sorted(["latest", inputs_tag]))
    # Without the login the registry answers nothing; the engine got the CA where it reads it, and the
    # login is kept in the configuration directory given, not in ~/.docker.
    status, refused = _get(address, files, f"/v2/{PROBE}/tags/list", login=False)
    assert (status, refused["errors"][0]["code"]) == (401, "UNAUTHORIZED")
    assert (CERTS_DIR / address / "ca.crt").read_bytes() == files.ca_cert.read_bytes()
    assert list(json.loads((config_dir / "config.json").read_text())["auths"]) == [address]
