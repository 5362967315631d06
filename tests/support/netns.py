"""A network namespace of a test's own, joined to the test's namespace by a veth pair, so a process
in it can be cut off the network (its link taken down) and joined again."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


class LinkedNamespace:
    """``voltha-envoy-t<hex>``: inside it ``address`` (on link ``inner``), outside ``gateway``."""

    def __init__(self):
        tag = secrets.token_hex(3)
        self.name = f"voltha-envoy-t{tag}"
        self.outer, self.inner = f"vt{tag}o", f"vt{tag}i"
        third, fourth = int(tag[:2], 16), (int(tag[2:4], 16) & 0xFC)
        self.gateway, self.address = f"10.254.{third}.{fourth + 1}", f"10.254.{third}.{fourth + 2}"
        self.created = False

    def up(self) -> LinkedNamespace:
        _ip("netns", "add", self.name)
        self.created = True
        _ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        _ip("link", "set", self.inner, "netns", self.name)
        _ip("addr", "add", f"{self.gateway}/30", "dev", self.outer)
        _ip("link", "set", self.outer, "up")
        _ip("-n", self.name, "addr", "add", f"{self.address}/30", "dev", self.inner)
        _ip("-n", self.name, "link", "set", self.inner, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def wrap(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.name}", "--", *argv]

    def cut(self) -> None:
        """Take the inside link down: packets either way are dropped, no reset is sent."""
        _ip("-n", self.name, "link", "set", self.inner, "down")

    def join(self) -> None:
        _ip("-n", self.name, "link", "set", self.inner, "up")

    def stop(self) -> None:
        """Remove the namespace (and the veth pair with it)."""
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
            subprocess.run(["ip", "link", "del", self.outer], capture_output=True, timeout=30)
            self.created = False


class BridgedHosts:
    """``count`` namespaces on one bridge of the test's namespace, as hosts on one LAN: host n at
    ``10.253.<tag>.<10+n>``, the bridge (the test's side) at ``.1``. Each host can be cut off alone."""

    def __init__(self, count: int):
        taken = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True, timeout=30).stdout
        while True:  # a /24 no route covers yet (another run's hosts, one left behind)
            tag = secrets.token_hex(3)
            prefix = f"10.253.{int(tag[:2], 16)}"
            if f"{prefix}.0/24" not in taken:
                break
        self.bridge = f"vb{tag}"
        self.gateway = f"{prefix}.1"
        self.hosts = [LinkedNamespace() for _dummy in range(count)]
        for number, host in enumerate(self.hosts):
            host.address = f"{prefix}.{10 + number}"
        # Where bridged frames pass this namespace's iptables (br_netfilter, which Docker's engine loads),
        # a FORWARD policy of DROP would drop the hosts' traffic to each other.
        self.forward = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]
        self.created = self.forwarding = False

    def up(self) -> BridgedHosts:
        _ip("link", "add", self.bridge, "type", "bridge")
        self.created = True
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        if os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables") and shutil.which("iptables"):
            subprocess.run(["iptables", "-I", *self.forward], check=True, capture_output=True, timeout=30)
            self.forwarding = True
        for host in self.hosts:
            _ip("netns", "add", host.name)
            host.created = True
            _ip("link", "add", host.outer, "type", "veth", "peer", "name", host.inner)
            _ip("link", "set", host.inner, "netns", host.name)
            _ip("link", "set", host.outer, "master", self.bridge)
            _ip("link", "set", host.outer, "up")
            _ip("-n", host.name, "addr", "add", f"{host.address}/24", "dev", host.inner)
            _ip("-n", host.name, "link", "set", host.inner, "up")
            _ip("-n", host.name, "link", "set", "lo", "up")
        return self

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()
        if self.forwarding:
            subprocess.run(["iptables", "-D", *self.forward], capture_output=True, timeout=30)
            self.forwarding = False
        if self.created:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)
            self.created = False
