"""A network namespace of a test's own, joined to the test's namespace by a veth pair, so a process
in it can be cut off the network (its link taken down) and joined again."""

from __future__ import annotations

import secrets
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
