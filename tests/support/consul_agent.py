"""Real Consul agents on free loopback ports: a dev agent (keeps nothing), a server with a data
directory (keeps its store across restarts), or a member of a cluster (servers and clients)."""

from __future__ import annotations

import contextlib
import json
import signal
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from .paths import consul_binary
from .processes import ManagedProcess, free_port


def acl_settings(master: str, agent: str | None = None) -> dict:
    """Consul's ACL settings as the lab's: default deny, the given management token, and the agent's own
    token (the management token if none is given)."""
    return {"primary_datacenter": "dc1",
            "acl": {"enabled": True, "default_policy": "deny", "down_policy": "extend-cache",
                    "tokens": {"master": master, "agent": agent or master}}}


@contextlib.contextmanager
def acl_agent(workdir: Path, agent_token: str | None = None):
    """A dev agent with the lab's ACL settings, running: (agent, its management token); stopped after."""
    master = str(uuid.uuid4())
    agent = ConsulAgent(workdir, extra_config=acl_settings(master, agent_token))
    try:
        agent.start()
        yield agent, master
    finally:
        agent.stop()


def consul_call(url, method="GET", token=None, body=None, context=None):
    """(status, decoded answer) of one HTTP request to Consul's API; a refusal gives its text."""
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    if token:
        request.add_header("X-Consul-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as answer:
            text = answer.read()
            return answer.status, json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


class ConsulAgent:
    """One agent. ``mode`` is ``dev``, ``server`` (with ``bootstrap_expect`` servers and a data
    directory) or ``client`` (a data directory, no Raft). ``join`` lists the serf LAN addresses of
    agents to join. The ports stay the same across stop() and start(), as a restarted agent's do.
    ``host`` (a netns.LinkedNamespace) runs it in that namespace, on its address."""

    def __init__(self, workdir: Path, http_port: int | None = None, extra_config: dict | None = None,
                 mode: str = "dev", bootstrap_expect: int = 1, join: tuple[str, ...] = (), host=None):
        self.workdir = workdir
        self.host = host
        self.ip = host.address if host is not None else "127.0.0.1"
        workdir.mkdir(parents=True, exist_ok=True)
        self.mode = mode
        self.http_port = http_port or free_port()
        self.serf_port = free_port()
        self.server_port = free_port()
        self.node = f"test-{self.http_port}"
        config = {
            "ports": {"http": self.http_port, "serf_lan": self.serf_port, "serf_wan": free_port(),
                      "server": self.server_port, "dns": -1, "grpc": -1},
            "disable_update_check": True,
            "log_level": "warn",
            **(extra_config or {}),
        }
        if mode != "dev":
            config.update(data_dir=str(workdir / "data"), retry_join=list(join), retry_interval="1s",
                          performance={"raft_multiplier": 1})
        if mode == "server":
            config.update(server=True, bootstrap_expect=bootstrap_expect)
        self.config = config  # written at each launch: a test may change retry_join before
        self.config_file = workdir / "consul.json"
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.http_port}"

    @property
    def serf_address(self) -> str:
        return f"{self.ip}:{self.serf_port}"

    @property
    def raft_address(self) -> str:
        return f"{self.ip}:{self.server_port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def leader(self) -> str | None:
        """The Raft address of the leader this agent knows, or None (no answer, or no leader)."""
        try:
            with urllib.request.urlopen(f"{self.url}/v1/status/leader", timeout=1) as resp:
                return json.load(resp) or None
        except (OSError, ValueError):
            return None

    def has_leader(self) -> bool:
        return self.leader() is not None

    def launch(self) -> ConsulAgent:
        """Start the process and return at once (a test that times Consul's return starts it so)."""
        self.config_file.write_text(json.dumps(self.config))
        argv = [consul_binary(), "agent", "-bind", self.ip, "-client", self.ip, "-node", self.node,
                "-config-file", str(self.config_file)]
        if self.mode == "dev":
            argv.insert(2, "-dev")
        if self.host is not None:
            argv = self.host.wrap(argv)
        self.process = ManagedProcess("consul", argv, self.workdir / "consul.log")
        return self

    def start(self, timeout: float = 30.0) -> ConsulAgent:
        self.launch()
        self.process.wait_ready(self.has_leader, timeout)
        return self

    def freeze(self) -> None:
        self.process.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: the agent ends without leaving or saving anything."""
        if self.process:
            self.process.signal(signal.SIGKILL)
            self.process.stop()
            self.process = None

    def stop(self) -> None:
        if self.process:
            self.process.stop()
            self.process = None

    def client(self):
        import consul  # py-consul
        return consul.Consul(host=self.ip, port=self.http_port)
