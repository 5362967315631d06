"""Pieces the benchmarks share: cores in their own processes, a paced gRPC load, process probes."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.paths import source_env
from tests.support.processes import ManagedProcess, free_port, wait_for


class CoreProcesses:
    """Simulated cores, each a process of its own, so the cores do not share the benchmark's GIL."""

    def __init__(self, workdir: Path, count: int):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.ports = [free_port() for _ in range(count)]
        self.ids = [f"core-{i}" for i in range(count)]
        self.processes: list[ManagedProcess] = []

    def start(self) -> CoreProcesses:
        import grpc

        for core_id, port in zip(self.ids, self.ports):
            argv = [sys.executable, "-m", "voltha_core_sim", "--core-id", core_id, "--port", str(port)]
            self.processes.append(ManagedProcess(core_id, argv, self.workdir / f"{core_id}.log", env=source_env()))
        for process, port in zip(self.processes, self.ports):
            process.wait_ready(lambda p=port: _grpc_ready(grpc, p), 30)
        return self

    def assignment(self, indexes) -> str:
        return json.dumps({f"p{i}": {"id": self.ids[i], "host": "127.0.0.1", "port": self.ports[i]}
                           for i in indexes})

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def _grpc_ready(grpc, port: int) -> bool:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=0.5)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def _load_worker(address: str, rate: float, duration: float, result_queue) -> None:
    """Paced calls (CreateDevice and GetVoltha alternately); reports ok and failed counts and errors."""
    from voltha_core_sim.nbi_load import run

    result_queue.put(run(address, rate, duration))


class PacedLoad:
    """A steady gRPC load from a separate process."""

    def __init__(self, address: str, rate: float, duration: float):
        ctx = multiprocessing.get_context("spawn")
        self.queue = ctx.Queue()
        self.process = ctx.Process(target=_load_worker, args=(address, rate, duration, self.queue), daemon=True)

    def start(self) -> PacedLoad:
        self.process.start()
        return self

    def result(self, timeout: float) -> dict:
        try:
            return self.queue.get(timeout=timeout)
        finally:
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def envoy_admin(config_dir: Path, epoch: int | None = None) -> str:
    """Admin address of the newest Envoy epoch envoyd runs."""
    files = sorted(config_dir.glob("envoy-admin-address.*"), key=lambda p: int(p.suffix[1:]))
    if epoch is not None:
        files = [config_dir / f"envoy-admin-address.{epoch}"]
    return "http://" + files[-1].read_text().strip()


def envoy_stat(config_dir: Path, name: str) -> int | None:
    try:
        base = envoy_admin(config_dir)
    except (OSError, IndexError, ValueError):
        return None
    return admin_stat(base, name)


def admin_stat(base_url: str, name: str) -> int | None:
    """One counter or gauge of an Envoy admin API at base_url; None when it does not answer."""
    try:
        with urllib.request.urlopen(base_url + f"/stats?filter=^{name}$", timeout=2) as resp:
            text = resp.read().decode()
    except (OSError, ValueError):
        return None
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return None


def machine_facts() -> list[str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    return [f"CPU: {cpu}, {os.cpu_count()} cores", f"Memory: {int(mem) // 1024 // 1024} GiB",
            f"Kernel: {kernel}", f"Python: {sys.version.split()[0]}"]


__all__ = ["CoreProcesses", "PacedLoad", "cpu_seconds", "envoy_stat", "machine_facts", "peak_rss_bytes", "rss_bytes",
           "wait_for"]
