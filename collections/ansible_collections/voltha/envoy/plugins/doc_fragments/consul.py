# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

class ModuleDocFragment:
    # How to reach Consul; shared by every Consul-facing module (module_defaults group voltha.envoy.consul).
    DOCUMENTATION = r"""
options:
  host:
    description:
      - Host name or address of the Consul agent's HTTP API.
      - When not set, the host of E(CONSUL_HTTP_ADDR), else V(127.0.0.1).
    type: str
  port:
    description:
      - Port of the Consul agent's HTTP API.
      - When not set, the port of E(CONSUL_HTTP_ADDR), else V(8500).
    type: int
  scheme:
    description:
      - V(http) or V(https).
      - When not set, the scheme of E(CONSUL_HTTP_ADDR) or E(CONSUL_HTTP_SSL), else V(http).
    type: str
    choices: [http, https]
  token:
    description:
      - ACL token for Consul. Never logged.
      - When not set, E(CONSUL_HTTP_TOKEN), or the contents of the file named by E(CONSUL_HTTP_TOKEN_FILE).
    type: str
  validate_certs:
    description:
      - Whether to verify Consul's TLS certificate.
      - When not set, E(CONSUL_HTTP_SSL_VERIFY), else V(true).
    type: bool
  ca_path:
    description:
      - CA bundle that signed Consul's certificate. When not set, E(CONSUL_CACERT).
    type: path
  client_cert:
    description:
      - Client certificate for mutual TLS, with O(client_key). When not set, E(CONSUL_CLIENT_CERT).
    type: path
  client_key:
    description:
      - Client key for mutual TLS, with O(client_cert). When not set, E(CONSUL_CLIENT_KEY).
    type: path
  datacenter:
    description:
      - Consul datacenter to talk to. When not set, the agent's own.
    type: str
  timeout:
    description:
      - Seconds to wait for Consul to connect or answer. When not set, V(30).
    type: float
  consistency:
    description:
      - The consistency mode of reads.
      - V(default) is Consul's own (the leader answers, with a short window of staleness after a leader change).
      - V(stale) lets any server answer, also while the cluster has no leader; the answer may be behind.
      - V(consistent) asks the leader to confirm it still leads before it answers.
      - Writes always go through the leader.
      - When not set, V(default).
    type: str
    choices: [default, stale, consistent]
requirements:
  - py-consul (the Python package; not python-consul)
"""
