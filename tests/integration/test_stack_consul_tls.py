"""The stack role's TLS for Consul's server RPC, on real Consul servers: the role's lab CA and server
certificate, and its Consul TLS settings, make three servers that form one Raft cluster over TLS, while an
agent without a certificate has its plaintext RPC refused."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.support.ansible_runner import run_playbook
from tests.support.consul_agent import ConsulAgent
from tests.support.consul_faults import agreed_leader
from tests.support.paths import REPO
from tests.support.processes import wait_for

pytestmark = pytest.mark.slow
ROLE = REPO / "collections" / "ansible_collections" / "voltha" / "envoy" / "roles" / "stack"
MAKE = [{"name": "Make the lab CA",
         "ansible.builtin.include_role": {"name": "voltha.envoy.stack", "tasks_from": "ca_files.yml"}},
        {"name": "Make the certificate of Consul's servers",
         "ansible.builtin.include_role": {"name": "voltha.envoy.stack", "tasks_from": "consul_tls_files.yml"}}]


def make_files(tmp_path) -> dict:
    """The role's files in tmp_path/tls, and its Consul TLS settings naming them there."""
    run = run_playbook(tmp_path / "play", MAKE, extra_vars={"stack_tls_dir": str(tmp_path / "tls"),
                                                           "stack_name": "tlstest"})
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
    settings = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["stack_consul_tls_settings"]
    names = {"/run/secrets/consul-ca.crt": "ca.crt", "/run/secrets/consul.crt": "consul.crt",
             "/run/secrets/consul.key": "consul.key"}
    return {option: str(tmp_path / "tls" / names[value]) if value in names else value
            for option, value in settings.items()}


def test_three_servers_form_a_cluster_over_tls_and_plaintext_rpc_is_refused(tmp_path):
    settings = make_files(tmp_path)
    assert settings["verify_incoming_rpc"] is True and settings["verify_server_hostname"] is True
    names = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName,extendedKeyUsage", "-in",
                            settings["cert_file"]], capture_output=True, text=True, timeout=30, check=True).stdout
    assert "DNS:server.dc1.consul" in names and "TLS Web Server Authentication" in names
    assert "TLS Web Client Authentication" in names

    servers = [ConsulAgent(tmp_path / f"server-{n}", mode="server", bootstrap_expect=3, extra_config=settings)
               for n in range(3)]
    outsider = None
    try:
        for server in servers:
            server.config["retry_join"] = [s.serf_address for s in servers]
            server.launch()
        wait_for(lambda: agreed_leader(servers) is not None, 60, "three servers over TLS agreeing on a leader")
        servers[1].client().kv.put("tls/check", "written through a follower or the leader")
        assert servers[2].client().kv.get("tls/check", consistency="consistent")[1]["Value"] == \
            b"written through a follower or the leader"

        # An agent without a certificate joins the gossip (no key here) and calls a server over RPC in plain text.
        outsider = ConsulAgent(tmp_path / "outsider", mode="client", join=tuple(s.serf_address for s in servers))
        outsider.launch()
        refused = "Non-TLS connection attempted with VerifyIncoming set"
        wait_for(lambda: any(refused in (server.workdir / "consul.log").read_text() for server in servers), 60,
                 "a server refusing the agent's plaintext RPC")
        with pytest.raises(Exception) as raised:
            outsider.client().kv.get("tls/check")
        assert "rpc error" in str(raised.value), raised.value
    finally:
        for agent in [*servers, outsider]:
            if agent is not None:
                agent.stop()
