"""envoyd against a real Consul, a real Envoy and real gRPC cores."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.support.assignments import assignment_of as assignment
from tests.support.grpc_client import NbiClient
from tests.support.processes import wait_for

KEY = "service/voltha/data/core/assignment"


def answered_by(client: NbiClient, calls: int = 12) -> set[str]:
    return {client.create_device() for _ in range(calls)} | {client.get_voltha() for _ in range(calls)}


def wait_routed_to(client: NbiClient, expected: set[str], timeout: float = 10.0) -> None:
    wait_for(lambda: answered_by(client, 6) == expected, timeout, f"calls answered by exactly {sorted(expected)}")


@pytest.fixture
def kv(consul_agent):
    client = consul_agent.client()
    client.kv.delete(KEY)
    yield client.kv
    client.kv.delete(KEY)


@pytest.mark.parametrize("reload", ["dynamic", "xds", "hot-restart"])
def test_routes_to_assigned_cores_and_follows_changes(consul_agent, kv, cores, start_envoyd, reload):
    kv.put(KEY, assignment(cores[0], cores[1]))
    envoyd = start_envoyd(consul_agent.address, reload)
    client = NbiClient(envoyd.nbi)
    try:
        creators = [client.create_device() for _ in range(8)]
        assert set(creators) == {"core-0", "core-1"}
        # Round robin: CreateDevice alternates between the two cores.
        assert all(a != b for a, b in zip(creators, creators[1:])), creators
        assert client.get_voltha() in {"core-0", "core-1"}

        kv.put(KEY, assignment(cores[2]))
        wait_routed_to(client, {"core-2"})
        kv.put(KEY, assignment(*cores))
        wait_routed_to(client, {"core-0", "core-1", "core-2"})
    finally:
        client.close()
    # An apply is counted once Envoy confirms it, which can trail the first calls it routes.
    applies = f'envoyd_applies_total{{mode="{reload}"}}'
    wait_for(lambda: envoyd.metric(applies) >= 3, 5, "the third apply counted")
    assert envoyd.metric(applies) == 3


HOSTILE_HOSTS = [
    '127.0.0.1", "port_value": 1}',
    "127.0.0.1\n- endpoint: {address: {socket_address: {address: 10.0.0.1}}}",
    "host: evil\nadmin: {}",
    "{{ admin_port }}",
    "'single'quote",
    "a" * 10_000,
    "",
    "bad host name",
]


def bad_values(cores):
    good = {"id": "core-x", "host": "127.0.0.1", "port": cores[2].port}
    yield "not json", "assignment"
    yield "[1, 2, 3]", "assignment"
    yield '"just a string"', "assignment"
    yield "{}", "assignment"
    yield json.dumps({"p": "not an object"}), "assignment"
    yield json.dumps({"p": dict(good, port="50556")}), "assignment"
    yield json.dumps({"p": dict(good, port=0)}), "assignment"
    yield json.dumps({"p": dict(good, port=70000)}), "assignment"
    yield json.dumps({"p": dict(good, id=7)}), "assignment"
    yield json.dumps({"p": dict(good), "q": dict(good, port=cores[1].port)}), "assignment"  # one id, two addresses
    for host in HOSTILE_HOSTS:
        yield json.dumps({"p": dict(good, host=host)}), "assignment"
    for core_id in ('x", "evil": "1', "line\nbreak: {}", "{{ 7 * 7 }}", "z" * 10_000):
        yield json.dumps({"p": dict(good, id=core_id)}), None  # odd ids are data, not config


def test_bad_data_keeps_the_last_good_config(consul_agent, kv, cores, start_envoyd):
    kv.put(KEY, assignment(cores[0], cores[1]))
    envoyd = start_envoyd(consul_agent.address)
    client = NbiClient(envoyd.nbi)
    try:
        rejects = 0
        for value, reason in bad_values(cores):
            before_applies = envoyd.metric('envoyd_applies_total{mode="dynamic"}')
            kv.put(KEY, value)
            if reason is None:
                # A hostile core id is quoted into the config and routes like any other.
                envoyd.wait_metric('envoyd_applies_total{mode="dynamic"}', before_applies + 1)
                wait_routed_to(client, {"core-2"})
                kv.put(KEY, assignment(cores[0], cores[1]))
                envoyd.wait_metric('envoyd_applies_total{mode="dynamic"}', before_applies + 2)
                wait_routed_to(client, {"core-0", "core-1"})
                continue
            rejects += 1
            envoyd.wait_metric(f'envoyd_rejects_total{{reason="{reason}"}}', rejects)
            assert answered_by(client, 4) == {"core-0", "core-1"}, value[:200]
        kv.delete(KEY)
        time.sleep(0.3)
        assert answered_by(client, 4) == {"core-0", "core-1"}
        assert envoyd.healthy()
        assert envoyd.process.alive()
    finally:
        client.close()
    log = envoyd.log()
    assert "field 'port' must be an integer from 1 to 65535, got 70000" in log
    assert "field 'host' must be an IP address or a DNS name" in log
    assert "duplicates core" in log
    assert f"assignment key {KEY} does not exist" in log


def test_an_assignment_outside_the_allowed_networks_is_rejected(consul_agent, kv, cores, start_envoyd):
    kv.put(KEY, assignment(cores[0], cores[1]))
    envoyd = start_envoyd(consul_agent.address, extra=("--allowed-networks", "10.0.0.0/8,127.0.0.0/8"))
    client = NbiClient(envoyd.nbi)
    try:
        wait_routed_to(client, {"core-0", "core-1"})
        # Someone who can write the key points every call elsewhere: refused, the last good config serves.
        kv.put(KEY, json.dumps({"evil": {"id": "core-x", "host": "192.0.2.66", "port": cores[2].port},
                                f"prefix-{cores[0].core_id}": {"id": "core-0", "host": "127.0.0.1",
                                                               "port": cores[0].port}}))
        envoyd.wait_metric('envoyd_rejects_total{reason="assignment"}', 1)
        assert answered_by(client, 6) == {"core-0", "core-1"}
        kv.put(KEY, assignment(cores[2]))
        wait_routed_to(client, {"core-2"})
    finally:
        client.close()
    assert ('core "evil": field \'host\' is outside the allowed networks (10.0.0.0/8, 127.0.0.0/8), got '
            '"192.0.2.66"') in envoyd.log()


def test_identical_writes_reload_nothing(consul_agent, kv, cores, start_envoyd):
    kv.put(KEY, assignment(cores[0]))
    envoyd = start_envoyd(consul_agent.address, "hot-restart")
    pids = envoyd.envoy_pids()
    for _ in range(20):
        kv.put(KEY, assignment(cores[0]))
    # Same bytes: the watcher does not even report them; a reordered object renders equal bytes.
    kv.put(KEY, json.dumps(dict(reversed(list(json.loads(assignment(cores[0])).items())))))
    kv.put(KEY, json.dumps(json.loads(assignment(cores[0])), indent=4))
    envoyd.wait_metric("envoyd_unchanged_total", 1)
    assert envoyd.metric('envoyd_applies_total{mode="hot-restart"}') == 1
    assert envoyd.envoy_pids() == pids


def test_consul_down_and_back(start_consul, cores, start_envoyd):
    agent = start_consul()
    agent.client().kv.put(KEY, assignment(cores[0]))
    envoyd = start_envoyd(agent.address, extra=("--consul-wait", "2s"))
    client = NbiClient(envoyd.nbi)
    try:
        port = agent.http_port
        agent.stop()
        envoyd.wait_metric("envoyd_consul_errors_total", 2)
        assert answered_by(client, 4) == {"core-0"}
        assert envoyd.healthy()
        # A dev agent starts empty: the key is missing, so the last good config stays.
        agent = start_consul(http_port=port)
        wait_for(lambda: "answers again" in envoyd.log(), 40, "envoyd to reconnect to consul")
        assert answered_by(client, 4) == {"core-0"}
        agent.client().kv.put(KEY, assignment(cores[1]))
        wait_routed_to(client, {"core-1"}, timeout=20)
    finally:
        client.close()
    assert envoyd.log().count("unreachable") == 1  # a change of state is logged once


@pytest.mark.parametrize("wait", ["1", "1000ms", "0.5s500ms"])
def test_a_consul_wait_in_any_form_blocks_and_follows(consul_agent, kv, cores, start_envoyd, wait):
    """--consul-wait in plain seconds or as a Go duration: blocking queries time out quietly, changes arrive."""
    kv.put(KEY, assignment(cores[0]))
    envoyd = start_envoyd(consul_agent.address, extra=("--consul-wait", wait))
    client = NbiClient(envoyd.nbi)
    try:
        time.sleep(2.5)  # two blocking queries time out with no change in between
        assert envoyd.metric("envoyd_consul_errors_total") == 0
        kv.put(KEY, assignment(cores[1]))
        wait_routed_to(client, {"core-1"})
    finally:
        client.close()
    assert "duration" not in envoyd.log()


@pytest.mark.parametrize("reload", ["dynamic", "xds"])
def test_envoy_killed_comes_back(consul_agent, kv, cores, start_envoyd, reload):
    kv.put(KEY, assignment(cores[1]))
    envoyd = start_envoyd(consul_agent.address, reload)
    [pid] = envoyd.envoy_pids()
    # The killed Envoy's hot-restart shared memory; the new one may take another base id.
    base_id = int((envoyd.config_dir / "envoy-base-id").read_text())
    shared_memory = Path(f"/dev/shm/envoy_shared_memory_{base_id * 10}")
    assert shared_memory.exists()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: envoyd.healthy() and envoyd.envoy_pids() not in ([], [pid]), 30, "a new Envoy")
    assert shared_memory.exists() == (int((envoyd.config_dir / "envoy-base-id").read_text()) == base_id)
    client = NbiClient(envoyd.nbi)
    try:
        assert answered_by(client, 4) == {"core-1"}
    finally:
        client.close()
    assert envoyd.metric("envoyd_envoy_restarts_total") == 1


@pytest.mark.parametrize("reload", ["dynamic", "xds", "hot-restart"])
def test_sigterm_leaves_nothing_running(consul_agent, kv, cores, start_envoyd, reload):
    kv.put(KEY, assignment(cores[0]))
    envoyd = start_envoyd(consul_agent.address, reload)
    if reload == "hot-restart":
        kv.put(KEY, assignment(cores[1]))
        envoyd.wait_metric('envoyd_applies_total{mode="hot-restart"}', 2)
    pids = [envoyd.process.pid] + envoyd.envoy_pids()
    assert envoyd.stop() == 0
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} still running"
    assert not (envoyd.config_dir / "xds.sock").exists()  # the ADS server's socket (xds) goes with it


@pytest.mark.parametrize("reload", ["hot-restart", "xds"])
def test_sighup_renders_again_and_hands_over(consul_agent, kv, cores, start_envoyd, reload):
    kv.put(KEY, assignment(cores[0]))
    envoyd = start_envoyd(consul_agent.address, reload)
    first = envoyd.status()["envoy"][-1]
    envoyd.process.signal(signal.SIGHUP)
    wait_for(lambda: envoyd.status()["envoy"][-1]["epoch"] == first["epoch"] + 1 and envoyd.healthy(), 20,
             "a new Envoy epoch after SIGHUP")
    client = NbiClient(envoyd.nbi)
    try:
        assert answered_by(client, 4) == {"core-0"}
    finally:
        client.close()


def test_status_reports_what_is_applied(consul_agent, kv, cores, start_envoyd):
    kv.put(KEY, assignment(cores[0], cores[2]))
    envoyd = start_envoyd(consul_agent.address)
    status = envoyd.status()
    assert status["healthy"] is True
    assert [c["id"] for c in status["cores"]] == ["core-0", "core-2"]
    assert status["envoy"][0]["live"] is True
    metrics = envoyd.metrics()
    assert metrics["envoyd_up"] == 1
    assert metrics["envoyd_assignment_cores"] == 2
    assert metrics["envoyd_change_to_applied_seconds_count"] == 1


def test_unknown_key_waits_without_crashing(consul_agent, cores, start_envoyd):
    key = f"test/{uuid.uuid4()}"
    envoyd = start_envoyd(consul_agent.address, extra=("--assignment-key", key), wait_healthy=False)
    wait_for(lambda: "does not exist" in envoyd.log(), 10, "the missing key to be reported")
    assert not envoyd.healthy()
    consul_agent.client().kv.put(key, assignment(cores[0]))
    wait_for(envoyd.healthy, 15, "envoyd to serve once the key exists")
    client = NbiClient(envoyd.nbi)
    try:
        assert answered_by(client, 2) == {"core-0"}
    finally:
        client.close()


def run_envoyd(*args, timeout=60):
    import subprocess

    from tests.support.envoyd_runner import envoyd_argv, envoyd_env
    return subprocess.run(envoyd_argv(*args), capture_output=True, text=True, timeout=timeout, env=envoyd_env())


def test_once_writes_a_validated_config_and_exits(consul_agent, kv, cores, tmp_path):
    kv.put(KEY, assignment(cores[0], cores[1]))
    config_dir = tmp_path / "once"
    done = run_envoyd("--consul-addr", consul_agent.address, "--config-dir", str(config_dir), "--once")
    assert done.returncode == 0, done.stderr
    rendered = json.loads((config_dir / "envoy.json").read_text())
    endpoints = rendered["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["hostname"] for e in endpoints] == ["core-0", "core-1"]
    assert (config_dir / "xds" / "cds.json").exists() and (config_dir / "bootstrap.json").exists()


def test_once_fails_on_bad_data_and_writes_nothing(consul_agent, kv, tmp_path):
    kv.put(KEY, json.dumps({"p": {"id": "core-x", "host": "127.0.0.1", "port": 99999}}))
    config_dir = tmp_path / "once"
    done = run_envoyd("--consul-addr", consul_agent.address, "--config-dir", str(config_dir), "--once")
    assert done.returncode == 1
    assert "field 'port' must be an integer from 1 to 65535, got 99999" in done.stderr
    assert not (config_dir / "envoy.json").exists()


def test_once_fails_when_consul_is_unreachable(tmp_path):
    from tests.support.processes import free_port

    done = run_envoyd("--consul-addr", f"127.0.0.1:{free_port()}", "--config-dir", str(tmp_path / "c"), "--once")
    assert done.returncode == 1
    assert "cannot read service/voltha/data/core/assignment from consul" in done.stderr


def test_dry_run_prints_and_writes_nothing(consul_agent, kv, cores, tmp_path):
    kv.put(KEY, assignment(cores[2]))
    config_dir = tmp_path / "dry"
    done = run_envoyd("--consul-addr", consul_agent.address, "--config-dir", str(config_dir), "--dry-run",
                      "--var", "listen_port=6000")
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    assert config["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] == 6000
    assert not list(config_dir.glob("*.json"))


def test_bad_settings_are_named_not_tracebacks(tmp_path):
    done = run_envoyd("--config-dir", str(tmp_path), "--reload", "sometimes")
    assert done.returncode == 2
    assert done.stderr.strip() == "envoyd: reload must be one of dynamic, xds, hot-restart, got 'sometimes'"
    done = run_envoyd("--config-dir", str(tmp_path), "--consul-addr", "consul:http")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "consul:http" in done.stderr


def test_quiescence_window_applies_the_last_of_a_burst(consul_agent, kv, cores, start_envoyd):
    kv.put(KEY, assignment(cores[0]))
    envoyd = start_envoyd(consul_agent.address, extra=("--wait", "300ms:2s"))
    for server in (cores[1], cores[2], cores[0], cores[1]):
        kv.put(KEY, assignment(server))
        time.sleep(0.02)
    envoyd.wait_metric('envoyd_applies_total{mode="dynamic"}', 2)
    time.sleep(0.6)
    assert envoyd.metric('envoyd_applies_total{mode="dynamic"}') == 2  # the burst became one apply
    client = NbiClient(envoyd.nbi)
    try:
        assert answered_by(client, 4) == {"core-1"}
    finally:
        client.close()


def test_sigusr1_reopens_envoy_logs(consul_agent, kv, cores, start_envoyd, tmp_path):
    kv.put(KEY, assignment(cores[0]))
    envoy_log = tmp_path / "envoy.log"
    envoyd = start_envoyd(consul_agent.address, extra=("--envoy-log", str(envoy_log), "--envoy-log-level", "info"))
    wait_for(envoy_log.exists, 10, "Envoy's log file")
    envoy_log.rename(tmp_path / "envoy.log.1")
    envoyd.process.signal(signal.SIGUSR1)
    wait_for(envoy_log.exists, 10, "Envoy to reopen its log at the old path")
