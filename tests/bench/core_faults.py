"""make bench: dead, hung and unreachable cores (the scenarios of tests/support/core_faults.py), with
the template's watch options (keepalive, health checks, outlier detection, read retries) on and off."""

from __future__ import annotations

from pathlib import Path

from tests.support.consul_faults import Rig
from tests.support.core_faults import FAULTS, run_fault


def log(msg: str) -> None:
    print(f"bench: {msg}", flush=True)


def run(workdir: Path, rounds: int) -> list:
    results = []
    for fault in FAULTS:
        for watch in (True, False):
            for number in range(rounds):
                log(f"core faults: {fault}, watch options {'on' if watch else 'off'}, round {number + 1}")
                with Rig(workdir / f"core-{fault.replace(' ', '-')}-{watch}-{number}") as rig:
                    results.append(run_fault(rig, fault, watch))
    return results


def report(results: list) -> list[str]:
    def sec(value):
        return "never" if value is None else ("-" if value != value else f"{value * 1000:.0f} ms")

    lines = [
        "## Dead, hung and unreachable cores",
        "",
        "Three simulated cores (processes; the victim in a network namespace of its own), envoyd and its Envoy, and "
        "eight clients calling GetVoltha (a read) and CreateDevice in turn through Envoy, 50 calls/s each. One core "
        "is SIGKILLed, frozen (SIGSTOP) or cut off the network (its link taken down), for 3 s, then comes back at "
        "the same address (started again, SIGCONT, link up). The assignment stays as it is, so this is Envoy "
        "noticing by itself. \"on\" is the shipped template (keepalive 0.1 s/0.15 s, gRPC health checks every "
        "0.2 s, ejection after 2 local-origin failures, reads retried elsewhere with a 0.5 s per-try timeout); "
        "\"off\" the same template with those options off, as it was before them. Detection: from the fault until "
        "envoyd's /status (Envoy's /clusters) shows the core flagged. In flight: Envoy's rq_active for the victim, "
        "the most seen between the fault and the detection. Back: from the core serving again until it answered a "
        "call. Targets (on): 0 failed reads, detection <= 300 ms, read p99 during the fault <= 1 s (2 x the per-try "
        "timeout).",
        "",
        "| fault | watch | calls | failed reads | failed creates | creates in flight at the fault | in flight on "
        "the core | detection | read p99 during the fault | back |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(f"| {r.fault} | {'on' if r.watch else 'off'} | {r.calls} | {r.failed_reads} | "
                     f"{r.failed_creates} | {r.creates_in_flight} | {r.victim_in_flight} | {sec(r.detection)} | "
                     f"{sec(r.read_p99)} | {sec(r.back)} |")
    errors = {}
    for r in results:
        for text, count in r.errors.items():
            key = ("on" if r.watch else "off", text)
            errors[key] = errors.get(key, 0) + count
    if errors:
        lines += ["", "Errors the clients saw: " + "; ".join(f"({watch}) {text} x{count}"
                                                         for (watch, text), count in sorted(errors.items()))]
    lines.append("")
    return lines
