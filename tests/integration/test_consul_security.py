"""Consul with ACLs on (default deny) and Consul over HTTPS, against the real agent: anonymous access
is refused, envoyd and the cores work with tokens of their own, a revoked token is logged once (never
the token) while Envoy keeps serving, envoyd, the cores and the modules reach Consul over TLS, and the
modules and the lookup work with a right token over HTTPS, name Consul's refusal of a wrong one, and
refuse a core outside their allowed networks.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.support.ansible_runner import run_playbook
from tests.support.consul_agent import ConsulAgent, acl_agent, acl_settings
from tests.support.consul_agent import consul_call as call
from tests.support.grpc_client import NbiClient
from tests.support.pki import certificate, pem
from tests.support.processes import free_port, wait_for
from tests.support.sim_cores import Core, assigned

pytestmark = pytest.mark.slow
ROOT = "test/acl"
KEYS = {"service": "vcore-acl", "assignment": f"{ROOT}/assignment", "lock": f"{ROOT}/leader"}
POLICIES = {
    # What a core does: register itself, run for leader, write the assignment and its core store,
    # and prune the registrations of dead cores.
    "cores": f'service_prefix "" {{ policy = "write" }} node_prefix "" {{ policy = "write" }} '
             f'session_prefix "" {{ policy = "write" }} agent_prefix "" {{ policy = "read" }} '
             f'key_prefix "{ROOT}/" {{ policy = "write" }}',
    # envoyd reads the assignment and nothing else.
    "envoyd": f'key "{KEYS["assignment"]}" {{ policy = "read" }}',
}


def make_tokens(agent, master: str, directory) -> dict:
    """A policy and a token for each of POLICIES; each token's SecretID also in <name>.token."""
    tokens = {}
    for name, rules in POLICIES.items():
        status, _ = call(f"{agent.url}/v1/acl/policy", "PUT", master, {"Name": name, "Rules": rules})
        assert status == 200
        status, token = call(f"{agent.url}/v1/acl/token", "PUT", master,
                             {"Description": name, "Policies": [{"Name": name}]})
        assert status == 200
        tokens[name] = token
        (directory / f"{name}.token").write_text(token["SecretID"])
    return tokens


@pytest.fixture
def acl_consul(tmp_path):
    with acl_agent(tmp_path / "consul") as (agent, master):
        yield agent, master, make_tokens(agent, master, tmp_path)


def refused_line(agent, key: str) -> str:
    return (f"consul {agent.address} refused the request (ConsulHTTPError: consul answered 403 ACL not found for "
            f"/v1/kv/{key}); trying again, Envoy keeps the last good config")


def test_acls_refuse_anonymous_access_and_the_parts_work_with_their_tokens(acl_consul, tmp_path, start_envoyd):
    """Anonymous writes and reads refused; envoyd may only read; the cores register, elect and write with
    their token and envoyd routes with its own. envoyd's token revoked while it runs, and another envoyd
    started with a wrong token: each says once (never the token) that Consul refused it; the first keeps
    serving its last good config, the second keeps trying."""
    agent, master, tokens = acl_consul
    key_url = f"{agent.url}/v1/kv/{KEYS['assignment']}"
    assert call(key_url, "PUT", body={"evil": {"id": "x", "host": "192.0.2.1"}}) == (403, "Permission denied")
    assert call(key_url, "PUT", tokens["envoyd"]["SecretID"], body={}) == (403, "Permission denied")
    cores = [Core(tmp_path / f"core-{n}", f"core-{n}", agent.address, KEYS,
                  env={"CONSUL_HTTP_TOKEN_FILE": str(tmp_path / "cores.token")}) for n in range(2)]
    for directory in (tmp_path / "core-0", tmp_path / "core-1"):
        directory.mkdir()
    try:
        for core in cores:
            core.start()
        want = {c.core_id: ("127.0.0.1", c.port) for c in cores}
        wait_for(lambda: assigned(agent_kv(agent, master), KEYS["assignment"]) == want, 20,
                 "the cores' assignment, written with their token")
        assert call(key_url) == (403, "Permission denied")  # an anonymous read of the key
        envoyd = start_envoyd(agent.address, extra=("--assignment-key", KEYS["assignment"],
                                                    "--consul-token-file", str(tmp_path / "envoyd.token")))
        client = NbiClient(envoyd.nbi)
        refused = refused_line(agent, KEYS["assignment"])
        try:
            wait_for(lambda: {client.get_voltha() for _ in range(6)} == {"core-0", "core-1"}, 15,
                     "calls reaching both cores")
            status, _ = call(f"{agent.url}/v1/acl/token/{tokens['envoyd']['AccessorID']}", "DELETE", master)
            assert status == 200
            wait_for(lambda: refused in envoyd.log(), 15, "envoyd seeing Consul refuse its revoked token")
            assert {client.get_voltha() for _ in range(6)} == {"core-0", "core-1"}
            assert envoyd.process.alive()
        finally:
            client.close()

        wrong = str(uuid.uuid4())
        (tmp_path / "wrong.token").write_text(wrong + "\n")
        started_wrong = start_envoyd(agent.address, wait_healthy=False, extra=(
            "--assignment-key", KEYS["assignment"], "--consul-token-file", str(tmp_path / "wrong.token")))
        wait_for(lambda: refused in started_wrong.log(), 15, "envoyd seeing Consul refuse a wrong token")
        time.sleep(3)  # several retries later
        assert started_wrong.process.alive()
        assert started_wrong.status(brief=True)["state"] == "consul-error"

        for daemon in (envoyd, started_wrong):
            log = daemon.log()
            assert tokens["envoyd"]["SecretID"] not in log and master not in log and wrong not in log
            assert log.count(refused) == 1, log[-3000:]  # once per change of state, not once per retry
        for core in cores:
            assert tokens["cores"]["SecretID"] not in core.log()
    finally:
        for core in cores:
            core.stop()


def agent_kv(agent, token):
    import consul

    return consul.Consul(host="127.0.0.1", port=agent.http_port, token=token).kv


def tls_files(directory) -> dict:
    ca, ca_key = certificate("consul test CA", ca=True)
    server, server_key = certificate("localhost", ca, ca_key, server=True, ip="127.0.0.1")
    files = {"ca": directory / "consul-ca.pem", "cert": directory / "consul.pem", "key": directory / "consul.key"}
    files["ca"].write_bytes(pem(ca))
    files["cert"].write_bytes(pem(server))
    files["key"].write_bytes(pem(key=server_key))
    return files


def tls_agent(directory, files, extra_config=None) -> ConsulAgent:
    agent = ConsulAgent(directory / "consul", extra_config={
        "ca_file": str(files["ca"]), "cert_file": str(files["cert"]), "key_file": str(files["key"]),
        **(extra_config or {})})
    agent.https_port = agent.config["ports"]["https"] = free_port()
    return agent


@pytest.fixture
def tls_consul(tmp_path):
    files = tls_files(tmp_path)
    agent = tls_agent(tmp_path, files)
    try:
        agent.start()
        yield agent, files
    finally:
        agent.stop()


def test_envoyd_the_cores_and_the_modules_reach_consul_over_https(tls_consul, tmp_path, start_envoyd):
    agent, files = tls_consul
    https = f"https://127.0.0.1:{agent.https_port}"
    core_dir = tmp_path / "core-0"
    core_dir.mkdir()
    core = Core(core_dir, "core-0", https, KEYS, env={"CONSUL_CACERT": str(files["ca"])})
    try:
        core.start()
        want = {"core-0": ("127.0.0.1", core.port)}
        wait_for(lambda: assigned(agent.client().kv, KEYS["assignment"]) == want, 20,
                 "the assignment written over HTTPS")
        envoyd = start_envoyd(https, extra=("--assignment-key", KEYS["assignment"], "--consul-ca-file",
                                            str(files["ca"])))
        client = NbiClient(envoyd.nbi)
        try:
            wait_for(lambda: client.get_voltha() == "core-0", 15, "calls through envoyd's routing")
        finally:
            client.close()
        run = run_playbook(tmp_path / "play", [{"name": "read", "voltha.envoy.core_assignment": {
            "state": "read", "key": KEYS["assignment"], "host": "127.0.0.1", "port": agent.https_port,
            "scheme": "https", "ca_path": str(files["ca"])}}])
        assert run.rc == 0 and run["read"]["cores"][0]["id"] == "core-0", run.stdout[-2000:]
        # Without the CA the certificate is not trusted: refused, with the reason.
        run = run_playbook(tmp_path / "play", [{"name": "read", "voltha.envoy.core_assignment": {
            "state": "read", "key": KEYS["assignment"], "host": "127.0.0.1", "port": agent.https_port,
            "scheme": "https"}}])
        assert run.rc != 0 and "CERTIFICATE_VERIFY_FAILED" in json.dumps(run["read"]), run.stdout[-2000:]
    finally:
        core.stop()


def leftover_holding_the_lock(agent, master: str, node: str, gone: bool = False) -> str:
    """A core's registration left in the catalog on ``node`` (its check passing, run by no agent) whose
    session holds the leader lock, as an agent that went down before syncing its deregistration leaves it.
    ``gone``: the node's agent is no member of Consul's gossip, so its serfHealth check is registered here
    too, and again should the leader reap the node first (its reconcile removes such a node)."""
    leftover = "core-0@127.0.0.1:1~old"
    checks = [{"CheckID": f"service:{leftover}", "Name": "leftover", "ServiceID": leftover, "Status": "passing"}]
    if gone:
        checks.append({"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing"})

    def register() -> None:
        status, _ = call(f"{agent.url}/v1/catalog/register", "PUT", master, {
            "Node": node, "Address": "127.0.0.1",
            "Service": {"ID": leftover, "Service": KEYS["service"], "Address": "127.0.0.1", "Port": 1,
                        "Meta": {"core_id": "core-0", "prefix": "vcore-0"}},
            "Checks": checks})
        assert status == 200

    register()

    def node_checked():
        status, found = call(f"{agent.url}/v1/health/node/{node}", token=master)
        if gone and status == 200 and not found:
            register()
            return False
        return status == 200 and any(check.get("CheckID") == "serfHealth" for check in found or ())

    # The leader registers the node's serfHealth check a moment after the agent starts; a session
    # tied to it before then is refused ("Missing check 'serfHealth' registration").
    wait_for(node_checked, 15, f"Consul's serfHealth check of node {node}")
    status, session = call(f"{agent.url}/v1/session/create", "PUT", master,
                           {"Node": node, "Checks": ["serfHealth", f"service:{leftover}"], "LockDelay": "0s"})
    assert status == 200, session
    status, acquired = call(f"{agent.url}/v1/kv/{KEYS['lock']}?acquire={session['ID']}", "PUT", master, {})
    assert status == 200 and acquired is True
    # What anti-entropy runs into: the default (anonymous) token may not deregister it.
    status, _ = call(f"{agent.url}/v1/catalog/deregister", "PUT", None, {"Node": node, "ServiceID": leftover})
    assert status == 403
    return leftover


def a_core_clears(agent, master: str, tmp_path, leftover: str, node: str) -> None:
    """A new core is elected and writes its assignment; the leftover is gone from the catalog, and the
    core says it removed it."""
    (tmp_path / "core-0").mkdir()
    core = Core(tmp_path / "core-0", "core-0", agent.address, KEYS,
                env={"CONSUL_HTTP_TOKEN_FILE": str(tmp_path / "cores.token")})
    try:
        core.start()
        kv = agent_kv(agent, master)
        wait_for(lambda: assigned(kv, KEYS["assignment"]) == {"core-0": ("127.0.0.1", core.port)}, 20,
                 "the new core elected and its assignment written")
        status, services = call(f"{agent.url}/v1/catalog/service/{KEYS['service']}", token=master)
        assert status == 200
        assert [s["ServiceID"] for s in services] == [f"core-0@127.0.0.1:{core.port}~" + services[0]["ServiceID"]
                                                     .rsplit("~", 1)[1]]  # the new core's only
        assert f"removed {leftover} from node {node}'s catalog" in core.log()
    finally:
        core.stop()


def test_a_leftover_registration_holding_the_lock_is_cleared_by_a_core_on_its_node(acl_consul, tmp_path):
    """A Consul agent that went down before syncing a core's deregistration comes back with the old entry
    still in the catalog, its check passing, and the session tied to it holding the leader lock. Consul
    1.8's anti-entropy cannot remove it under ACLs (it uses the default token), so without the cores no
    leader would ever be elected again."""
    agent, master, _ = acl_consul
    status, self_info = call(f"{agent.url}/v1/agent/self", token=master)
    assert status == 200
    node = self_info["Config"]["NodeName"]
    leftover = leftover_holding_the_lock(agent, master, node)
    a_core_clears(agent, master, tmp_path, leftover, node)


def test_a_leftover_registration_on_a_node_without_cores_is_cleared_by_a_core_elsewhere(acl_consul, tmp_path):
    """The same leftover on a node where no core runs any more (its core moved to another node while
    the node was lost): a core on another node asks that node's agent (at the node's address, on our
    agent's port; here the same agent, which never held it) and removes what the agent no longer has."""
    agent, master, _ = acl_consul
    node = "consul-gone"
    leftover = leftover_holding_the_lock(agent, master, node, gone=True)
    a_core_clears(agent, master, tmp_path, leftover, node)


def test_the_modules_and_the_lookup_with_a_token_over_https_and_the_modules_allowed_networks(tmp_path):
    """envoy_config, core_assignment and the lookup against Consul with ACLs (default deny), over HTTPS only
    with the CA, each with the token it is given: a right one reads (and, for the cores' token, writes), a
    wrong one is refused with Consul's 403 named; allowed_networks refuses a core outside them, naming it."""
    master = str(uuid.uuid4())
    files = tls_files(tmp_path)
    agent = tls_agent(tmp_path, files, acl_settings(master))
    try:
        agent.start()
        tokens = make_tokens(agent, master, tmp_path)
        key = KEYS["assignment"]
        value = {"p0": {"id": "core-0", "host": "127.0.0.1", "port": 50057}}
        assert call(f"{agent.url}/v1/kv/{key}", "PUT", master, value)[0] == 200
        https = {"host": "127.0.0.1", "port": agent.https_port, "scheme": "https", "ca_path": str(files["ca"])}
        envoyd_token, cores_token, wrong = tokens["envoyd"]["SecretID"], tokens["cores"]["SecretID"], str(uuid.uuid4())

        def config(name, token, **extra):
            return {"name": name, "ignore_errors": True, "voltha.envoy.envoy_config": dict(
                key=key, dest=str(tmp_path / f"{name}.json"), token=token, validate=False, **https, **extra)}

        def lookup(name, token):
            terms = ", ".join(f"{option}={json.dumps(setting)}" for option, setting in dict(https, token=token).items())
            return {"name": name, "ignore_errors": True,
                    "ansible.builtin.debug": {"msg": "{{ lookup('voltha.envoy.core_assignment', '%s', %s) }}"
                                              % (key, terms)}}

        def cores(name, token, **extra):
            return {"name": name, "ignore_errors": True, "voltha.envoy.core_assignment": dict(
                key=key, token=token, **https, **extra)}

        run = run_playbook(tmp_path / "play", [
            config("config", envoyd_token),
            config("config with a wrong token", wrong),
            config("config outside the allowed networks", envoyd_token, allowed_networks=["10.0.0.0/8"]),
            lookup("lookup", envoyd_token),
            lookup("lookup with a wrong token", wrong),
            cores("add", cores_token, state="present", add={"p1": {"id": "core-1", "host": "127.0.0.2"}}),
            cores("add with envoyd's token", envoyd_token, state="present",
                  add={"p2": {"id": "core-2", "host": "127.0.0.3"}}),
            cores("add outside the allowed networks", cores_token, state="present", allowed_networks=["127.0.0.0/30"],
                  add={"p3": {"id": "core-3", "host": "127.0.0.9"}}),
        ])
        assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert run["config"].get("changed") is True and not run["config"].get("failed"), run["config"]
        assert json.loads((tmp_path / "config.json").read_text())["static_resources"]["clusters"]
        assert run["lookup"]["msg"] == value, run["lookup"]
        assert run["add"].get("changed") is True and not run["add"].get("failed"), run["add"]
        port = agent.https_port
        said = {
            "config with a wrong token": f"cannot read {key} from consul 127.0.0.1:{port}: ConsulHTTPError: "
                                         f"consul answered 403 ACL not found for /v1/kv/{key}",
            "lookup with a wrong token": f"voltha.envoy.core_assignment: Consul at https://127.0.0.1:{port} failed "
                                         f"reading {key}: ACLPermissionDenied: ACL not found",
            "add with envoyd's token": f"Consul at https://127.0.0.1:{port} failed: ACLPermissionDenied: "
                                       "Permission denied",
            "config outside the allowed networks": f"bad assignment in consul key {key}: core \"p0\": field 'host' "
                                                   "is outside the allowed networks (10.0.0.0/8), got \"127.0.0.1\"",
            "add outside the allowed networks": "core \"p3\": field 'host' is outside the allowed networks "
                                                "(127.0.0.0/30), got \"127.0.0.9\"",
        }
        for name, text in said.items():
            assert run[name].get("failed") and run[name]["msg"].endswith(text), (name, run[name].get("msg"))
        assert not (tmp_path / "config outside the allowed networks.json").exists()
        written = call(f"{agent.url}/v1/kv/{key}?raw", token=master)[1]
        assert sorted(written) == ["p0", "p1"], written  # the refused adds wrote nothing
        for secret in (envoyd_token, cores_token, master):
            assert secret not in run.stdout and secret not in run.stderr
    finally:
        agent.stop()
