"""voltha.envoy.envoy_config through real ansible-playbook, with the real Envoy validating and a real Consul."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import uuid

import pytest

from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import parse_assignment
from ansible_collections.voltha.envoy.plugins.module_utils._envoy.render import Renderer
from tests.support.ansible_runner import run_playbook
from tests.support.envoyd_runner import envoyd_argv, envoyd_env
from tests.support.grpc_client import NbiClient
from tests.support.pki import certificate, pem

CORES = {"vcore1": {"id": "core-1", "host": "10.0.1.5", "port": 50556},
         "vcore2": {"id": "core-2", "host": "10.0.1.6", "port": 50557}}

# A template Envoy rejects although it renders fine: two clusters of the same name.
DUPLICATE_CLUSTER_TEMPLATE = """\
{"static_resources": {"clusters": [
  {"name": "dup", "type": {{ cluster_type }},
   "load_assignment": {"cluster_name": "dup", "endpoints": [{"lb_endpoints": {{ lb_endpoints }}}]}},
  {"name": "dup", "type": {{ cluster_type }},
   "load_assignment": {"cluster_name": "dup", "endpoints": [{"lb_endpoints": {{ lb_endpoints }}}]}}
]}}
"""


def task(name="render", **args):
    return {"name": name, "voltha.envoy.envoy_config": args}


def play(workdir, *tasks, **kwargs):
    return run_playbook(workdir / "play", list(tasks), **kwargs)


def succeeded(run, name="render"):
    assert name in run.tasks, run.stdout[-3000:] + run.stderr[-3000:]
    result = run[name]
    assert not result.get("failed"), result.get("msg")
    assert run.rc == 0, run.stderr[-3000:]
    return result


def failed(run, name="render"):
    assert name in run.tasks, run.stdout[-3000:] + run.stderr[-3000:]
    result = run[name]
    assert result.get("failed"), result
    assert run.rc != 0
    return result["msg"]


def files_under(directory):
    return sorted(str(p) for p in directory.rglob("*") if p.is_file())


@pytest.fixture
def consul_key(consul_agent):
    """A key of this test's own in the session's Consul; module_defaults that point the module at it."""
    key = f"test/envoy_config/{uuid.uuid4().hex}/assignment"
    kv = consul_agent.client().kv
    defaults = {"group/voltha.envoy.consul": {"host": "127.0.0.1", "port": consul_agent.http_port}}
    yield key, kv, defaults
    kv.delete(key)


def test_inline_assignment_is_rendered_validated_written_once(tmp_path):
    dest = tmp_path / "etc" / "envoy.json"
    result = succeeded(play(tmp_path, task(dest=str(dest), assignment=CORES)))
    text = dest.read_text()
    assert result["changed"] is True
    assert result["validated"] is True
    assert result["dest"] == str(dest)
    assert result["files"] == [str(dest)]
    assert result["checksum"] == hashlib.sha256(text.encode()).hexdigest()
    assert result["cores"] == 2
    assert result["assignment"] == CORES
    assert result["format"] == "json"
    assert text == Renderer().render(parse_assignment(CORES)).text  # envoyd's renderer, byte for byte
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644

    again = succeeded(play(tmp_path, task(dest=str(dest), assignment=CORES)))
    assert again["changed"] is False
    assert again["checksum"] == result["checksum"]
    assert files_under(tmp_path / "etc") == [str(dest)]  # no temporary files left behind


def test_assignment_from_consul(consul_key, tmp_path):
    key, kv, defaults = consul_key
    kv.put(key, json.dumps({"vcore1": {"id": "core-1", "host": "voltha-core-1.example.net"}}))
    dest = tmp_path / "envoy.json"
    result = succeeded(play(tmp_path, task(dest=str(dest), key=key), module_defaults=defaults))
    assert result["changed"] is True and result["validated"] is True
    assert result["assignment"] == {"vcore1": {"id": "core-1", "host": "voltha-core-1.example.net", "port": 50556}}
    config = json.loads(dest.read_text())
    assert {c["type"] for c in config["static_resources"]["clusters"]} == {"STRICT_DNS"}

    # The same key read with the connection options on the task itself.
    again = succeeded(play(tmp_path, task(dest=str(dest), key=key, host="127.0.0.1",
                                          port=int(defaults["group/voltha.envoy.consul"]["port"]))))
    assert again["changed"] is False


def test_missing_consul_key_fails(consul_key, tmp_path):
    key, _kv, defaults = consul_key
    msg = failed(play(tmp_path, task(dest=str(tmp_path / "envoy.json"), key=key), module_defaults=defaults))
    assert msg == f"bad assignment in consul key {key}: assignment key {key} does not exist"
    assert not (tmp_path / "envoy.json").exists()


def test_bad_assignment_in_consul_names_core_and_field(consul_key, tmp_path):
    key, kv, defaults = consul_key
    kv.put(key, json.dumps({"vcore9": {"id": "core-9", "host": "10.0.0.9", "port": "http"}}))
    msg = failed(play(tmp_path, task(dest=str(tmp_path / "envoy.json"), key=key), module_defaults=defaults))
    assert msg == (f"bad assignment in consul key {key}: core \"vcore9\": field 'port' must be an integer "
                   "from 1 to 65535, got \"http\"")


def test_bad_inline_assignment_names_core_and_field(tmp_path):
    dest = tmp_path / "envoy.json"
    bad = {"vcore1": CORES["vcore1"], "vcore2": {"id": "core-2", "host": "10.0.1.6; rm -rf /"}}
    msg = failed(play(tmp_path, task(dest=str(dest), assignment=bad)))
    assert msg == ("bad assignment in the assignment option: core \"vcore2\": field 'host' must be an IP address "
                   "or a DNS name, got \"10.0.1.6; rm -rf /\"")
    assert not dest.exists()


def test_check_mode_writes_nothing(tmp_path):
    static = tmp_path / "static" / "envoy.json"
    dynamic = tmp_path / "dynamic"
    run = play(tmp_path, task("static", dest=str(static), assignment=CORES),
               task("dynamic", dest=str(dynamic), assignment=CORES, layout="dynamic"), check=True)
    assert succeeded(run, "static")["changed"] is True
    result = succeeded(run, "dynamic")
    assert result["changed"] is True
    assert result["files"] == [str(dynamic / "envoy.json"), str(dynamic / "xds" / "eds" / "voltha-grpc@0.json"),
                               str(dynamic / "xds" / "cds.json"), str(dynamic / "xds" / "lds.json"),
                               str(dynamic / "bootstrap.json")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["play"]  # not even a directory was made

    # An existing file stays as it is, too.
    succeeded(play(tmp_path, task(dest=str(static), assignment=CORES)))
    before = static.read_bytes()
    changed = dict(CORES, vcore3={"id": "core-3", "host": "10.0.1.7"})
    result = succeeded(play(tmp_path, task(dest=str(static), assignment=changed), check=True))
    assert result["changed"] is True and result["cores"] == 3
    assert static.read_bytes() == before
    assert files_under(static.parent) == [str(static)]


def test_diff_shows_the_change(tmp_path):
    dest = tmp_path / "envoy.json"
    succeeded(play(tmp_path, task(dest=str(dest), assignment=CORES)))
    before = dest.read_text()
    moved = dict(CORES, vcore2={"id": "core-2", "host": "10.9.9.9", "port": 50557})
    run = play(tmp_path, task(dest=str(dest), assignment=moved), diff=True)
    result = succeeded(run)
    assert result["changed"] is True
    diff = result["diff"]
    assert diff["before"] == before and "10.0.1.6" in diff["before"] and "10.9.9.9" not in diff["before"]
    assert diff["after"] == dest.read_text() and "10.9.9.9" in diff["after"]
    assert diff["after_header"] == str(dest)


def test_template_envoy_rejects_fails_with_envoys_reason_and_keeps_the_old_file(tmp_path):
    dest = tmp_path / "conf" / "envoy.json"
    succeeded(play(tmp_path, task(dest=str(dest), assignment=CORES)))
    good = dest.read_bytes()
    template = tmp_path / "duplicate.json.j2"
    template.write_text(DUPLICATE_CLUSTER_TEMPLATE)
    msg = failed(play(tmp_path, task(dest=str(dest), assignment=CORES, template=str(template))))
    assert msg.startswith("Envoy rejected the config, nothing was written: ")
    assert "cluster manager: duplicate cluster 'dup'" in msg
    assert dest.read_bytes() == good
    assert files_under(dest.parent) == [str(dest)]

    # Without validation the same template is written: validation is what kept it out.
    result = succeeded(play(tmp_path, task(dest=str(dest), assignment=CORES, template=str(template),
                                           validate=False)))
    assert result["changed"] is True and result["validated"] is False
    assert len(json.loads(dest.read_text())["static_resources"]["clusters"]) == 2


def test_dynamic_layout_writes_the_files_envoyd_writes(consul_key, tmp_path):
    key, kv, defaults = consul_key
    kv.put(key, json.dumps(CORES))
    config_dir = tmp_path / "envoyd"
    port = defaults["group/voltha.envoy.consul"]["port"]
    done = subprocess.run(envoyd_argv("--consul-addr", f"127.0.0.1:{port}", "--assignment-key", key,
                                      "--config-dir", str(config_dir), "--once", "--var", "listen_port=6001"),
                          capture_output=True, text=True, timeout=120, env=envoyd_env())
    assert done.returncode == 0, done.stderr
    written_by_envoyd = {path: open(path, "rb").read() for path in files_under(config_dir)}

    # Over envoyd's own files: byte for byte the same, so nothing changes.
    args = dict(dest=str(config_dir), key=key, layout="dynamic", variables={"listen_port": 6001})
    result = succeeded(play(tmp_path, task(**args), module_defaults=defaults))
    assert result["changed"] is False, written_by_envoyd
    assert sorted(result["files"]) == sorted(written_by_envoyd)
    assert {path: open(path, "rb").read() for path in files_under(config_dir)} == written_by_envoyd

    # Into a fresh directory: the same files, naming their own directory.
    fresh = tmp_path / "fresh"
    result = succeeded(play(tmp_path, task(**dict(args, dest=str(fresh))), module_defaults=defaults))
    assert result["changed"] is True
    assert files_under(fresh) == sorted(result["files"])
    for path, data in written_by_envoyd.items():
        mine = (fresh / path[len(str(config_dir)) + 1:]).read_bytes()
        theirs = data.replace(str(config_dir).encode(), str(fresh).encode())
        if path.endswith("/xds/cds.json"):  # it names the endpoint files, so its version (a digest) differs too
            mine, theirs = (dict(json.loads(text), version_info=None) for text in (mine, theirs))
        assert mine == theirs, path
    assert result["checksum"] == hashlib.sha256((fresh / "envoy.json").read_bytes()).hexdigest()


def test_mode_is_applied(tmp_path):
    dest = tmp_path / "envoy.json"
    conf = tmp_path / "conf"
    run = play(tmp_path, task("static", dest=str(dest), assignment=CORES, mode="0600"),
               task("dynamic", dest=str(conf), assignment=CORES, layout="dynamic", mode="0640"))
    assert succeeded(run, "static")["changed"] is True
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    for path in succeeded(run, "dynamic")["files"]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640, path

    result = succeeded(play(tmp_path, task("static", dest=str(dest), assignment=CORES, mode="0600")), "static")
    assert result["changed"] is False
    result = succeeded(play(tmp_path, task("static", dest=str(dest), assignment=CORES, mode="0640")), "static")
    assert result["changed"] is True
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640


def test_written_config_serves(tmp_path, cores, start_envoy):
    dest = tmp_path / "envoy.json"
    assignment = [{"prefix": f"p{i}", "id": s.core_id, "host": "127.0.0.1", "port": s.port}
                  for i, s in enumerate(cores[:2])]
    variables = {"admin_port": 0, "listen_port": 0, "listen_address": "127.0.0.1",
                 "access_log_path": str(tmp_path / "access.log")}
    succeeded(play(tmp_path, task(dest=str(dest), assignment=assignment, variables=variables)))
    envoy = start_envoy(dest.read_text())
    client = NbiClient(f"127.0.0.1:{envoy.listener_port('voltha_nbi')}")
    try:
        assert {client.create_device() for _ in range(6)} == {cores[0].core_id, cores[1].core_id}
    finally:
        client.close()


def test_tls_writes_its_sds_files_and_envoy_validates_the_listener(tmp_path):
    ca, ca_key = certificate("ca", ca=True)
    server, server_key = certificate("localhost", ca, ca_key, server=True)
    (tmp_path / "nbi.pem").write_bytes(pem(server))
    (tmp_path / "nbi.key").write_bytes(pem(key=server_key))
    dest = tmp_path / "out" / "envoy.json"
    variables = {"tls_cert_file": str(tmp_path / "nbi.pem"), "tls_key_file": str(tmp_path / "nbi.key")}
    result = succeeded(play(tmp_path, task(dest=str(dest), assignment=CORES, variables=variables)))
    secret = tmp_path / "out" / "secrets" / "nbi_certificate.json"
    assert result["changed"] and result["validated"] and str(secret) in result["files"]
    resource = json.loads(secret.read_text())["resources"][0]
    assert resource["tls_certificate"]["certificate_chain"] == {"filename": str(tmp_path / "nbi.pem")}
    listener = json.loads(dest.read_text())["static_resources"]["listeners"][0]
    assert listener["filter_chains"][0]["transport_socket"]["name"] == "envoy.transport_sockets.tls"
    assert not succeeded(play(tmp_path, task(dest=str(dest), assignment=CORES, variables=variables)))["changed"]
