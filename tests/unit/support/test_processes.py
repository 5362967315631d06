"""free_port: never the same port twice in one process, never one the kernel may take as a source port,
never one held over TCP or UDP."""

from __future__ import annotations

import socket

from tests.support import processes
from tests.support.processes import free_port


def ephemeral_low() -> int:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
        return int(ranges.read().split()[0])


def test_five_hundred_ports_all_different_and_below_the_ephemeral_range():
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == 500
    assert max(ports) < ephemeral_low()


def hold(kind: int, after: int) -> socket.socket:
    """A socket of ``kind`` bound to the first port of free_port's range past ``after`` it can take."""
    sock = socket.socket(socket.AF_INET, kind)
    for port in processes._PORTS:
        if port > after:
            try:
                sock.bind(("127.0.0.1", port))
                return sock
            except OSError:
                continue
    sock.close()
    raise RuntimeError("nothing to bind")


def test_a_port_held_over_tcp_or_over_udp_is_passed_over(monkeypatch):
    tcp = hold(socket.SOCK_STREAM, 0)
    udp = hold(socket.SOCK_DGRAM, tcp.getsockname()[1])
    try:
        taken = [tcp.getsockname()[1], udp.getsockname()[1]]
        # The search starts at the held TCP port; the UDP one follows it.
        monkeypatch.setattr(processes.random, "randrange", lambda n: processes._PORTS.index(taken[0]))
        given = free_port()
        assert given not in taken
        assert given > taken[0]
        assert processes._bindable(given)
    finally:
        tcp.close()
        udp.close()
