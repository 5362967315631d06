#!/usr/bin/env python3
"""Three test hosts on this machine, for the lab on a real multi-node swarm.

    python scripts/cluster.py up             the hosts, each running its own dockerd; nodes.json
    python scripts/cluster.py down [--purge] stop them (by their PIDs); --purge also removes their data
    python scripts/cluster.py status         what runs
    python scripts/cluster.py cut NODE       take NODE's link down (cut off the network, nothing sent)
    python scripts/cluster.py join NODE      bring NODE's link up again

Each host is a network namespace with one address on a bridge of this machine (so the machine reaches
every host, and the hosts reach each other), its own hostname (a UTS namespace), and a dockerd of its
own: data root, exec root, pidfile and socket. node1 also runs the registry (Debian's docker-registry,
port 5000) that the engines push to and pull from: over TLS from a CA of its own, for its user only
(scripts/lab_registry.py; the playbooks give each engine the CA). The cluster directory (CLUSTER_DIR, default
STATE_DIR/cluster) holds their data and logs, and nodes.json: one {"name", "netns", "address",
"docker_host"} per node. Names, the bridge and its subnet (a /24 in 198.18.0.0/15, the range kept
for benchmarks; CLUSTER_SUBNET to choose another) are derived from the cluster directory, so two
directories give two clusters that never meet. A subnet that a route of this machine covers (its own
uplink, a VPN, a Docker bridge), that holds one of its addresses or its DNS resolver is refused: an
address there would take the machine off its network.

Standard library only, like docker_engine.py, whose helpers it shares.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

try:  # run as a script (scripts/ on the path) or imported as scripts.cluster (the tests)
    from docker_engine import STATE, EngineError, _pid_alive, _read_pid, _start_dockerd, _stop_pid  # noqa: I001
    from docker_engine import engine_version, unmount_under
    from lab_registry import USER, RegistryError, make_files
except ImportError:
    from scripts.docker_engine import (
        STATE,
        EngineError,
        _pid_alive,
        _read_pid,
        _start_dockerd,
        _stop_pid,
        engine_version,
        unmount_under,
    )
    from scripts.lab_registry import USER, RegistryError, make_files

CLUSTER = Path(os.environ.get("CLUSTER_DIR", STATE / "cluster")).resolve()
NODES = 3
REGISTRY_PORT = 5000
# Where a Docker Engine on this machine looks for a registry's CA (every engine here: the nodes share it).
CERTS_DIR = Path("/etc/docker/certs.d")
SUBNET_POOL = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544: benchmarking, never routed on the Internet


def derived_subnet(directory: Path) -> ipaddress.IPv4Network:
    """The /24 of SUBNET_POOL that the cluster directory's name picks."""
    number = int(hashlib.sha256(str(directory).encode()).hexdigest()[6:9], 16) % 512
    return ipaddress.ip_network(f"198.{18 + number // 256}.{number % 256}.0/24")


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        subnet = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as err:
        raise EngineError(f"CLUSTER_SUBNET={text!r} is not a network such as 198.18.7.0/24: {err}") from None
    if subnet.version != 4 or subnet.prefixlen > 28:
        raise EngineError(f"CLUSTER_SUBNET={text!r}: an IPv4 network of at least 16 addresses is needed "
                          f"(/28 or larger), for the gateway and {NODES} nodes")
    return subnet


def conflicts(subnet, routes: list[dict], addresses: list[dict], resolvers: list[str], own_bridge: str) -> list[str]:
    """What of this machine's network the subnet would overlap: routes (`ip -j route show`, the default
    route aside), addresses (`ip -j addr show`) and DNS resolvers; our own bridge's route and address
    do not count. Empty when the subnet is free."""
    found = []
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("dev") == own_bridge:
            continue
        try:
            network = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue
        if network.version == 4 and network.overlaps(subnet):
            found.append(f"the route to {dst} (dev {route.get('dev', '?')})")
    for link in addresses:
        for info in link.get("addr_info", ()):
            if info.get("family") != "inet" or link.get("ifname") == own_bridge:
                continue
            if ipaddress.ip_address(info["local"]) in subnet:
                found.append(f"the address {info['local']} of {link.get('ifname', '?')}")
    for resolver in resolvers:
        try:
            if ipaddress.ip_address(resolver) in subnet:
                found.append(f"the DNS resolver {resolver} (/etc/resolv.conf)")
        except ValueError:
            continue
    return found


def _resolvers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    return [line.split()[1] for line in lines if line.startswith("nameserver") and len(line.split()) > 1]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode:
        raise EngineError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


def _cmdline_has(pid: int, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


def _leftovers(node: Node) -> list[str]:
    """After the node's dockerd is gone: kill what outlived it (a dockerd that was killed leaves its
    containers and their shims running) and unmount what it left mounted. Only what is the node's:
    processes in its network namespace or in the cgroups of its containers, mounts under its data
    and run directories."""
    said = []
    pids = set()
    netns = Path(f"/run/netns/{node.netns}")
    if netns.exists():
        inode = netns.stat().st_ino
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and entry.name != str(os.getpid()):
                try:
                    if (entry / "ns" / "net").stat().st_ino == inode:
                        pids.add(int(entry.name))
                except OSError:
                    continue
    containers = node.state / "data" / "containers"
    for container in containers.iterdir() if containers.is_dir() else ():
        try:
            pids.update(int(p) for p in Path(f"/sys/fs/cgroup/pids/docker/{container.name}/cgroup.procs")
                        .read_text().split())
        except (OSError, ValueError):
            continue
    for pid in sorted(pids):
        try:
            os.kill(pid, signal.SIGKILL)
            said.append(f"killed pid {pid}, left running by its dockerd")
        except ProcessLookupError:
            pass
    said.extend(unmount_under(node.state, node.run_dir))
    return said


@dataclass
class Node:
    cluster: Cluster
    index: int

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def netns(self) -> str:
        return f"{self.cluster.prefix}-{self.name}"

    @property
    def address(self) -> str:
        return str(self.cluster.subnet.network_address + 10 + self.index)

    @property
    def veth(self) -> str:  # the machine's end of the node's link (15 characters at most)
        return f"{self.cluster.bridge}n{self.index}"

    @property
    def run_dir(self) -> Path:  # a unix socket's path must stay short, which CLUSTER_DIR may not be
        return Path("/run") / self.netns

    @property
    def state(self) -> Path:
        return self.cluster.dir / self.name

    @property
    def pidfile(self) -> Path:
        return self.state / "dockerd.pid"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.run_dir / 'docker.sock'}"

    def wrap(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *argv]

    def dockerd_pid(self) -> int | None:
        pid = _read_pid(self.pidfile)
        if not pid or not _pid_alive(pid):
            return None
        try:  # the pidfile may be stale and its number reused: it must be this node's dockerd
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if f"--data-root={self.state / 'data'}".encode() in cmdline else None

    def running(self) -> bool:
        return self.dockerd_pid() is not None and engine_version(self.docker_host) is not None

    def describe(self) -> dict:
        return {"name": self.name, "netns": self.netns, "address": self.address, "docker_host": self.docker_host}


class Cluster:
    def __init__(self, directory: Path = CLUSTER, subnet: str | None = None):
        self.dir = directory
        digest = hashlib.sha256(str(directory).encode()).hexdigest()
        self.prefix = f"voltha-envoy-c{digest[:6]}"
        self.bridge = f"vec{digest[:6]}"
        subnet = subnet if subnet is not None else os.environ.get("CLUSTER_SUBNET", "")
        self.subnet = parse_subnet(subnet) if subnet else derived_subnet(directory)
        self.gateway = str(self.subnet.network_address + 1)
        self.nodes = [Node(self, i) for i in range(1, NODES + 1)]
        self.registry_pidfile = self.dir / "registry" / "registry.pid"

    @property
    def registry(self) -> str:
        return f"{self.nodes[0].address}:{REGISTRY_PORT}"

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise EngineError(f"no node {name!r}: the nodes are {', '.join(n.name for n in self.nodes)}")

    # -- the network

    def check_subnet(self) -> None:
        """Refuse a subnet that this machine's network already uses (see the module's docstring)."""
        routes = json.loads(_ip("-j", "-4", "route", "show").stdout or "[]")
        addresses = json.loads(_ip("-j", "-4", "addr", "show").stdout or "[]")
        found = conflicts(self.subnet, routes, addresses, _resolvers(), self.bridge)
        if found:
            raise EngineError(f"the cluster's subnet {self.subnet} overlaps {', '.join(found)}: addresses there "
                              "would take this machine off its network. Choose a free one with CLUSTER_SUBNET "
                              "(e.g. another /24 of 198.18.0.0/15; `ip route` shows what is taken).")

    def _bridge_up(self) -> None:
        if _ip("link", "show", self.bridge, check=False).returncode:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        # Where bridged frames pass the machine's iptables (br_netfilter, as Docker's own engine sets
        # up), its FORWARD policy may drop them: let the nodes' traffic through, once.
        if Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() and shutil.which("iptables"):
            rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]
            if subprocess.run(["iptables", "-C", *rule], capture_output=True).returncode:
                subprocess.run(["iptables", "-I", *rule], capture_output=True, check=False)

    def _link_up(self, node: Node) -> None:
        if not Path(f"/run/netns/{node.netns}").exists():
            _ip("netns", "add", node.netns)
        if _ip("-n", node.netns, "link", "show", "eth0", check=False).returncode:
            _ip("link", "del", node.veth, check=False)
            _ip("link", "add", node.veth, "type", "veth", "peer", "name", f"{node.veth}p")
            _ip("link", "set", f"{node.veth}p", "netns", node.netns)
            _ip("-n", node.netns, "link", "set", f"{node.veth}p", "name", "eth0")
            _ip("-n", node.netns, "addr", "add", f"{node.address}/{self.subnet.prefixlen}", "dev", "eth0")
            _ip("link", "set", node.veth, "master", self.bridge)
        _ip("link", "set", node.veth, "up")
        _ip("-n", node.netns, "link", "set", "lo", "up")
        _ip("-n", node.netns, "link", "set", "eth0", "up")
        _ip("-n", node.netns, "route", "replace", "default", "via", self.gateway)

    # -- the daemons

    def _start_registry(self) -> str:
        pid = _read_pid(self.registry_pidfile)
        home = self.registry_pidfile.parent
        if pid and _pid_alive(pid) and _cmdline_has(pid, str(home / "registry.yml")):
            if "  tls:\n" in (home / "registry.yml").read_text():
                return f"registry at https://{self.registry}: running (pid {pid})"
            _stop_pid(pid, 10)  # one of an earlier version, in plain HTTP for anyone: started anew below
        binary = STATE / "bin" / "docker-registry"
        if not binary.exists():
            raise EngineError(f"no docker-registry at {binary}: run `make setup`")
        try:
            files = make_files(home, self.registry)
        except RegistryError as err:
            raise EngineError(str(err)) from None
        with open(home / "registry.log", "ab") as log:
            proc = subprocess.Popen(self.nodes[0].wrap([str(binary), "serve", str(files.config)]),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self.registry_pidfile.write_text(str(proc.pid))
        trusted = ssl.create_default_context(cafile=str(files.ca_cert))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"https://{self.registry}/v2/", timeout=2, context=trusted).close()
                raise EngineError(f"the registry at https://{self.registry} answers without its login; see "
                                  f"{files.config}")
            except urllib.error.HTTPError as err:
                if err.code == 401:  # up, over TLS, and asking for its login
                    return (f"registry at https://{self.registry}: started (pid {proc.pid}); its CA "
                            f"{files.ca_cert}, user {USER}, password in {files.password_file}")
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.2)
        raise EngineError(f"the registry did not answer at https://{self.registry}; see {home / 'registry.log'}")

    def _start_dockerd(self, node: Node) -> str:
        if node.running():
            return f"{node.name}: dockerd running (pid {node.dockerd_pid()})"
        stale = node.dockerd_pid()
        if stale:  # alive but not answering
            _stop_pid(stale)
        node.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        node.state.mkdir(parents=True, exist_ok=True)
        # A UTS namespace gives the node its own hostname: the swarm and Consul tell the nodes apart by it.
        argv = node.wrap(["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', node.name,
                          "dockerd", f"--data-root={node.state / 'data'}", f"--exec-root={node.run_dir / 'exec'}",
                          f"--host={node.docker_host}", f"--pidfile={node.pidfile}", "--storage-driver=overlay2",
                          f"--containerd-namespace={node.netns}", f"--containerd-plugins-namespace={node.netns}-p"])
        proc, version = _start_dockerd(argv, node.docker_host, node.state / "dockerd.log")
        return f"{node.name}: started dockerd {version} (pid {proc.pid}) at {node.address}, {node.docker_host}"

    # -- the actions

    def up(self) -> list[str]:
        if os.geteuid() != 0:
            raise EngineError("the cluster's hosts are network namespaces with a dockerd each: run it as root")
        missing = [tool for tool in ("dockerd", "nsenter", "unshare", "ip") if not shutil.which(tool)]
        if missing:
            raise EngineError(f"{', '.join(missing)} not found: run `make setup` (it installs docker.io on Debian).")
        self.check_subnet()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._bridge_up()
        for node in self.nodes:
            self._link_up(node)
        said = [self._start_registry()]
        said += [self._start_dockerd(node) for node in self.nodes]
        (self.dir / "nodes.json").write_text(json.dumps([n.describe() for n in self.nodes], indent=2) + "\n")
        said.append(f"nodes: {self.dir / 'nodes.json'}")
        return said

    def down(self, purge: bool) -> list[str]:
        """Stop and remove what up made; says only what it did (nothing when nothing was there)."""
        said = []
        pid = _read_pid(self.registry_pidfile)
        if pid:
            if _pid_alive(pid) and _cmdline_has(pid, str(self.registry_pidfile.parent / "registry.yml")):
                said.append(f"registry (pid {pid}) {_stop_pid(pid, 10)}")
            self.registry_pidfile.unlink(missing_ok=True)
        # The engines stop together: each gives its containers their stop grace period.
        running = [(node, node.dockerd_pid()) for node in self.nodes]
        with ThreadPoolExecutor(len(running)) as pool:
            stopped = pool.map(lambda item: (item[0], item[1], _stop_pid(item[1]) if item[1] else None), running)
        for node, pid, how in stopped:
            if pid:
                said.append(f"{node.name}: dockerd (pid {pid}) {how}")
            said += [f"{node.name}: {what}" for what in _leftovers(node)]
        for node in self.nodes:
            if Path(f"/run/netns/{node.netns}").exists():
                _ip("netns", "delete", node.netns, check=False)
                said.append(f"{node.name}: removed network namespace {node.netns}")
            if not _ip("link", "show", node.veth, check=False).returncode:
                _ip("link", "del", node.veth, check=False)
            if node.run_dir.exists():
                shutil.rmtree(node.run_dir, ignore_errors=True)
        if not _ip("link", "show", self.bridge, check=False).returncode:
            _ip("link", "del", self.bridge, check=False)
            said.append(f"removed bridge {self.bridge} ({self.gateway}/{self.subnet.prefixlen})")
        if shutil.which("iptables"):
            rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]
            while not subprocess.run(["iptables", "-C", *rule], capture_output=True).returncode:
                subprocess.run(["iptables", "-D", *rule], capture_output=True, check=False)
                said.append(f"removed the iptables rule {' '.join(rule)}")
        (self.dir / "nodes.json").unlink(missing_ok=True)
        trust = CERTS_DIR / self.registry
        if purge and (trust / "ca.crt").exists():
            (trust / "ca.crt").unlink()
            with contextlib.suppress(OSError):
                trust.rmdir()
            said.append(f"removed {trust / 'ca.crt'} (the engines' trust in the registry's CA)")
        if purge and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
            said.append(f"removed {self.dir} (the nodes' images, swarm and volumes)")
        return said or ["nothing to stop or remove"]

    def status(self) -> list[str]:
        said = []
        for node in self.nodes:
            link = _ip("-n", node.netns, "-br", "link", "show", "eth0", check=False).stdout.split()
            said.append(f"{node.name}: {node.address} link {link[1] if len(link) > 1 else 'absent'}, dockerd "
                        f"{'running (pid %s)' % node.dockerd_pid() if node.running() else 'not running'}")
        pid = _read_pid(self.registry_pidfile)
        said.append(f"registry https://{self.registry}: {'running' if pid and _pid_alive(pid) else 'not running'}")
        return said

    def cut(self, name: str) -> list[str]:
        node = self.node(name)
        _ip("-n", node.netns, "link", "set", "eth0", "down")
        return [f"{name}: cut off ({node.address} unreachable)"]

    def join(self, name: str) -> list[str]:
        node = self.node(name)
        _ip("-n", node.netns, "link", "set", "eth0", "up")
        _ip("-n", node.netns, "route", "replace", "default", "via", self.gateway)
        return [f"{name}: joined again"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "cut", "join"])
    parser.add_argument("node", nargs="?", help="for cut and join: node1, node2 or node3")
    parser.add_argument("--purge", action="store_true", help="down: also remove the nodes' data")
    args = parser.parse_args()
    cluster = Cluster()
    try:
        if args.action in ("cut", "join"):
            if not args.node:
                parser.error(f"{args.action} needs a node")
            said = getattr(cluster, args.action)(args.node)
        elif args.action == "down":
            said = cluster.down(args.purge)
        else:
            said = getattr(cluster, args.action)()
    except EngineError as err:
        print(f"cluster: FAILED: {err}", file=sys.stderr)
        return 1
    for line in said:
        print(f"cluster: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
