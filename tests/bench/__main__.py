"""make bench: measure envoyd on the real parts and rewrite BENCHMARKS.md (and its plots).

Each run measures everything side by side on this machine: the dynamic and the hot-restart modes,
validation by the real Envoy on every change against once per config shape, and beside envoyd the
floor (tests/bench/floor.py), a bare watcher with its own Envoy on the same key, each change timed
on both at once.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from ansible_collections.voltha.envoy.plugins.module_utils._envoy.binary import envoy_version, find_envoy
from tests.bench.floor import FloorWatcher
from tests.bench.harness import (
    CoreProcesses,
    PacedLoad,
    cpu_seconds,
    envoy_stat,
    machine_facts,
    peak_rss_bytes,
    rss_bytes,
    wait_for,
)
from tests.support.consul_agent import ConsulAgent
from tests.support.envoyd_runner import Envoyd
from tests.support.grpc_client import NbiClient
from tests.support.paths import REPO
from tests.support.stats import median, percentile

KEY = "service/voltha/data/core/assignment"


def log(msg: str) -> None:
    print(f"bench: {msg}", flush=True)


def timed_together(waiters: dict, started: float) -> dict:
    """Run each waiter (a function that returns once its side has the change) on a thread of its own;
    seconds from ``started`` until each returned."""
    done: dict = {}

    def run(name, wait):
        wait()
        done[name] = time.monotonic() - started

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in waiters.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return done


def stages_of(envoyd: Envoyd, after_index: int, timeout: float = 5.0) -> dict | None:
    """The stages of envoyd's apply of a Consul index past ``after_index`` (from /status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stages = envoyd.status(brief=True).get("last_apply_stages") or {}
        if stages.get("index", 0) > after_index:
            return stages
        time.sleep(0.01)
    return None


def propagation_under_load(workdir: Path, consul: ConsulAgent, cores: CoreProcesses, mode: str, changes: int,
                           interval: float, rate: float) -> dict:
    """KV write -> first call answered by a newly assigned core, through envoyd's Envoy and through the
    floor's at the same time, while a paced load runs through each."""
    kv = consul.client().kv
    pairs = [(0, 1), (2, 3), (4, 5)]
    kv.put(KEY, cores.assignment(pairs[0]))
    envoyd = Envoyd(workdir / f"propagation-{mode}", consul.address, mode,
                    ("--var", "access_log_path=/dev/null", "--envoy-log-level", "error")).start()
    floor = FloorWatcher(workdir / f"floor-{mode}", consul.address, KEY).start()
    try:
        duration = changes * interval + 4
        loads = {"envoyd": PacedLoad(envoyd.nbi, rate, duration).start(),
                 "floor": PacedLoad(floor.nbi, rate, duration).start()}
        clients = {"envoyd": NbiClient(envoyd.nbi), "floor": NbiClient(floor.nbi)}
        samples, floor_samples, stages, probe_failures = [], [], [], {"envoyd": 0, "floor": 0}
        time.sleep(2)
        for i in range(changes):
            target = pairs[(i + 1) % len(pairs)]
            wanted = {cores.ids[j] for j in target}
            index = int(kv.get(KEY)[0])

            def reached(side, wanted=wanted):
                while True:
                    try:
                        if clients[side].create_device(timeout=5) in wanted:
                            return
                    except Exception:  # counted: a failed probe call is a failed call too
                        probe_failures[side] += 1

            started = time.monotonic()
            kv.put(KEY, cores.assignment(target))
            done = timed_together({side: (lambda s=side: reached(s)) for side in clients}, started)
            samples.append(done["envoyd"])
            floor_samples.append(done["floor"])
            if mode == "dynamic":
                stages.append(stages_of(envoyd, index))
            time.sleep(max(0.0, started + interval - time.monotonic()))
        results = {side: load.result(timeout=duration + 60) for side, load in loads.items()}
        for client in clients.values():
            client.close()
        applies = envoyd.metric(f'envoyd_applies_total{{mode="{mode}"}}')
    finally:
        floor.stop()
        envoyd.stop()
    log(f"{mode}: propagation p50 {median(samples) * 1000:.1f} ms p99 {percentile(samples, 99) * 1000:.1f} ms "
        f"(floor p50 {median(floor_samples) * 1000:.1f} ms p99 {percentile(floor_samples, 99) * 1000:.1f} ms); "
        f"load {results['envoyd']['sent']} calls at {results['envoyd']['rate']:.0f}/s, "
        f"{results['envoyd']['failed']} failed")
    return {"mode": mode, "samples": samples, "floor_samples": floor_samples, "load": results["envoyd"],
            "floor_load": results["floor"], "probe_failures": probe_failures["envoyd"],
            "floor_probe_failures": probe_failures["floor"], "applies": applies,
            "stages": [s for s in stages if s]}


def identical_writes(workdir: Path, consul: ConsulAgent, cores: CoreProcesses, mode: str, writes: int) -> dict:
    kv = consul.client().kv
    value = cores.assignment((0, 1))
    kv.put(KEY, value)
    envoyd = Envoyd(workdir / f"identical-{mode}", consul.address, mode,
                    ("--var", "access_log_path=/dev/null", "--envoy-log-level", "error")).start()
    try:
        epochs_before = [g["epoch"] for g in envoyd.status()["envoy"]]
        cds_before = envoy_stat(envoyd.config_dir, "cluster_manager.cds.update_attempt")
        applies_before = envoyd.metric(f'envoyd_applies_total{{mode="{mode}"}}')
        for _ in range(writes):
            kv.put(KEY, value)
        time.sleep(1.0)
        epochs_after = [g["epoch"] for g in envoyd.status()["envoy"]]
        cds_after = envoy_stat(envoyd.config_dir, "cluster_manager.cds.update_attempt")
        applies = envoyd.metric(f'envoyd_applies_total{{mode="{mode}"}}') - applies_before
    finally:
        envoyd.stop()
    reloads = (len(set(epochs_after) - set(epochs_before))
               + (0 if mode == "hot-restart" else (cds_after or 0) - (cds_before or 0)))
    log(f"{mode}: {writes} identical writes -> {reloads} Envoy reloads, {applies:.0f} applies")
    return {"mode": mode, "writes": writes, "reloads": reloads, "applies": applies}


def scale_assignment(n: int, variant: int) -> str:
    """n cores on distinct loopback addresses (nothing is called: only Envoy's config holds them)."""
    cores = {}
    for i in range(n):
        cores[f"p{i:05d}"] = {"id": f"core-{i}", "host": f"127.{1 + variant}.{i // 250}.{1 + i % 250}",
                              "port": 50556}
    return json.dumps(cores)


def scale(workdir: Path, consul: ConsulAgent, validation: str, sizes: list[int], repeats: int) -> dict:
    kv = consul.client().kv
    kv.put(KEY, scale_assignment(2, 0))
    # Nothing answers at these addresses: active health checks of 20,000 hosts that refuse every
    # connection would measure Envoy's health checker, not the propagation, so they are off here.
    envoyd = Envoyd(workdir / f"scale-{validation}", consul.address, "dynamic",
                    ("--validation", validation, "--var", "access_log_path=/dev/null",
                     "--var", "health_check_interval=", "--envoy-log-level", "error")).start()
    floor = FloorWatcher(workdir / f"floor-scale-{validation}", consul.address, KEY).start()
    rows = []
    try:
        pid = envoyd.process.pid
        for n in sizes:
            samples, floor_samples, stages = [], [], []
            for repeat in range(repeats):
                # A different count each time, so Envoy's membership count tells this config from the last.
                count = n - repeat
                value = scale_assignment(count, repeat % 2 + 1)
                index = int(kv.get(KEY)[0])
                started = time.monotonic()
                kv.put(KEY, value)
                done = timed_together({
                    "envoyd": lambda c=count: wait_for(
                        lambda: envoy_stat(envoyd.config_dir, "cluster.voltha-grpc.membership_total") == c, 120,
                        f"{c} cores in envoyd's Envoy", interval=0.002),
                    "floor": lambda c=count: wait_for(lambda: floor.members() == c, 120,
                                                      f"{c} cores in the floor's Envoy", interval=0.002),
                }, started)
                samples.append(done["envoyd"])
                floor_samples.append(done["floor"])
                stages.append(stages_of(envoyd, index))
            rows.append({"cores": n, "samples": samples, "floor_samples": floor_samples,
                         "stages": [s for s in stages if s], "rss": rss_bytes(pid), "peak_rss": peak_rss_bytes(pid)})
            log(f"scale {validation}: {n} cores applied in median {median(samples) * 1000:.0f} ms "
                f"(floor {median(floor_samples) * 1000:.0f} ms), "
                f"RSS {rss_bytes(pid) / 2**20:.1f} MiB (peak {peak_rss_bytes(pid) / 2**20:.1f} MiB)")
        idle_start, wall_start = cpu_seconds(pid), time.monotonic()
        time.sleep(10)
        idle = (cpu_seconds(pid) - idle_start) / (time.monotonic() - wall_start)
    finally:
        floor.stop()
        envoyd.stop()
    return {"validation": validation, "rows": rows, "idle_cpu": idle}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def ratio_cells(ours: list[float], floor: list[float]) -> list[str]:
    """p50, p90, p99 of both sides and envoyd / floor, each against its target (1.5x, 1.5x, 2x)."""
    cells = []
    for q, target in ((50, 1.5), (90, 1.5), (99, 2.0)):
        a, b = percentile(ours, q), percentile(floor, q)
        ratio = a / b if b else float("inf")
        cells.append(f"{ms(a)} / {ms(b)} = {ratio:.2f}x ({'met' if ratio <= target else 'MISSED'})")
    return cells


def floor_section(results: dict) -> list[str]:
    lines = [
        "",
        "## envoyd against the floor",
        "",
        "The floor (`tests/bench/floor.py`) is the least a watcher can do: a blocking query on the same key, "
        "the value read into two clusters of its endpoints (as the shipped template has), one CDS file "
        "renamed into its own Envoy's watched directory; no template, checks, validation or confirmation. "
        "Both watched the key at once and every change was timed on both: calls answered by a newly assigned "
        "core (two cores, under load), or every core of the new assignment in the Envoy's cluster (larger "
        "assignments, no load: nothing answers at their addresses). Each cell is "
        "envoyd / floor = ratio; targets 1.5x at p50 and p90, 2x at p99.",
        "",
        "| what | changes | p50 | p90 | p99 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results["propagation"]:
        lines.append(f"| {r['mode']}, 2 cores, {r['load']['rate']:.0f} calls/s | {len(r['samples'])} | "
                     + " | ".join(ratio_cells(r["samples"], r["floor_samples"])) + " |")
    for r in results["scale"]:
        for row in r["rows"]:
            lines.append(f"| dynamic, validation {r['validation']}, {row['cores']:,} cores | {len(row['samples'])} | "
                         + " | ".join(ratio_cells(row["samples"], row["floor_samples"])) + " |")
    floor_failed = sum(r["floor_load"]["failed"] + r["floor_probe_failures"] for r in results["propagation"])
    lines += ["", f"Failed calls through the floor's Envoy: {floor_failed}."]
    return lines


STAGES = ("consul", "parse", "render", "validate", "write", "confirm")


def stage_section(results: dict) -> list[str]:
    lines = [
        "",
        "## Where envoyd's time goes",
        "",
        "Median milliseconds of each stage of envoyd's applies above, from its `/status` (`last_apply_stages`; "
        "Prometheus has them as `envoyd_apply_stage_seconds`): consul (Consul's answer read and decoded), "
        "parse (the assignment checked), render (the template), validate (shape cache or `envoy --mode validate`), "
        "write (the files renamed into place), confirm (until Envoy's cds/lds version_text are the files').",
        "",
        "| what | applies | " + " | ".join(STAGES) + " | sum |",
        "| --- | --- | " + " | ".join("---" for _ in STAGES) + " | --- |",
    ]

    def row(label, stages):
        if not stages:
            return
        medians = [median([s.get(stage, 0.0) for s in stages]) for stage in STAGES]
        lines.append(f"| {label} | {len(stages)} | " + " | ".join(f"{m * 1000:.1f}" for m in medians)
                     + f" | {sum(medians) * 1000:.1f} |")

    for r in results["propagation"]:
        row(f"{r['mode']}, 2 cores, under load", r.get("stages"))
    for r in results["scale"]:
        for size in r["rows"]:
            row(f"validation {r['validation']}, {size['cores']:,} cores", size.get("stages"))
    return lines


def write_report(path: Path, args, results: dict, seconds: float) -> None:
    envoy = find_envoy()
    consul_version = results["consul_version"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` ({' '.join(['python -m tests.bench'] + sys.argv[1:])}) on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC in {seconds:.0f} s. "
        "Everything below was measured in that one run, on the real parts: a Consul dev agent, Envoy, "
        "envoyd and simulated cores (gRPC servers, one process each), all on loopback; the swarm lab at the end "
        "runs the images on the real Docker Engine.",
        "",
        "Machine: " + "; ".join(machine_facts()) + f"; Envoy {envoy_version(envoy)}; {consul_version}.",
        "",
        "## Propagation under load",
        "",
        f"From the KV write to the first CreateDevice answered by a newly assigned core, over {args.changes} "
        f"changes (each moves the assignment to two other cores), while a separate process sends "
        f"{args.rate:.0f} calls/s (CreateDevice and GetVoltha alternately) through Envoy. Failed calls count "
        "every call of the load and of the probe that did not succeed. With fewer than 100 changes, p99 is "
        "the slowest change. The floor (below) watched the same key at the same time, under a load of its own "
        "at the same rate.",
        "",
        "| mode | changes | p50 | p90 | p99 | max | target p99 | calls | rate | failed calls |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    targets = {"dynamic": 0.050, "hot-restart": 1.5}
    for r in results["propagation"]:
        s, load = r["samples"], r["load"]
        failed = load["failed"] + r["probe_failures"]
        ok = "met" if percentile(s, 99) <= targets[r["mode"]] else "MISSED"
        lines.append(f"| {r['mode']} | {len(s)} | {ms(median(s))} | {ms(percentile(s, 90))} | "
                     f"{ms(percentile(s, 99))} | {ms(max(s))} | {ms(targets[r['mode']])} ({ok}) | {load['sent']} | "
                     f"{load['rate']:.0f}/s | {failed} |")
    errors = {k: v for r in results["propagation"] for k, v in r["load"]["errors"].items()}
    if errors:
        lines += ["", "Errors seen by the load: " + "; ".join(f"{k} x{v}" for k, v in errors.items())]
    lines += floor_section(results)
    lines += stage_section(results)
    if results.get("plots"):
        lines += ["", "## Plots", "", "Written by this run beside this file (generated images, not kept in git):", ""]
        lines += [f"- [{title}]({name})" for title, name in results["plots"]]
    lines += [
        "",
        "## Identical writes",
        "",
        f"{args.identical} writes of the same value to the key. The seed's envoyd starts a new Envoy on every "
        f"index change, so it restarts Envoy {args.identical} times for them (by its code: `runEnvoy` runs for "
        "every new index). envoyd compares values, then rendered bytes.",
        "",
        "| mode | writes | Envoy reloads | applies |",
        "| --- | --- | --- | --- |",
    ]
    for r in results["identical"]:
        lines.append(f"| {r['mode']} | {r['writes']} | {r['reloads']} | {r['applies']:.0f} |")
    lines += [
        "",
        "## Assignment size",
        "",
        f"From the KV write until Envoy's `voltha-grpc` cluster has every core of the new assignment "
        f"(dynamic mode), {args.repeats} writes per size (N, N-1, ... cores, on other addresses each time). "
        "`envoy` validates every change with `envoy --mode validate`; `shape-cache` (the default) runs it "
        "once per config shape. RSS is envoyd's (the watcher's) resident memory after the writes, and its "
        "peak. Targets at 10,000 cores: at most 300 ms (median) and 80 MB. 10,000 cores make a ~700 KB value, over "
        "Consul's default 512 KiB limit, so this run's agent has `limits.kv_max_value_size` raised. Nothing "
        "answers at these cores' addresses, so Envoy's active health checks are off here "
        "(`--var health_check_interval=`).",
        "",
        "| validation | cores | median | max | envoyd RSS | envoyd peak RSS |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results["scale"]:
        for row in r["rows"]:
            mib, peak = row["rss"] / 2**20, row["peak_rss"] / 2**20
            lines.append(f"| {r['validation']} | {row['cores']:,} | {ms(median(row['samples']))} | "
                         f"{ms(max(row['samples']))} | {mib:.1f} MiB | {peak:.1f} MiB |")
    lines += [
        "",
        "## Idle",
        "",
        "envoyd's CPU time over 10 s with nothing changing, right after the 10,000-core writes above. Its "
        "blocking queries wait 5 s each here (`--consul-wait 5s`; the default is 60 s); nothing else wakes it:",
        "",
    ]
    for r in results["scale"]:
        lines.append(f"- validation {r['validation']}: {r['idle_cpu'] * 10 * 1000:.0f} ms of CPU in 10 s "
                     f"({r['idle_cpu'] * 100:.3f} % of one core)")
    lines.append("")
    if results.get("faults"):
        from tests.bench import consul_faults

        lines += consul_faults.report(results["faults"])
    if results.get("core_faults"):
        from tests.bench import core_faults

        lines += core_faults.report(results["core_faults"])
    if results.get("lab"):
        from tests.bench import lab

        lines += lab.report(results["lab"])
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--changes", type=int, default=60)
    parser.add_argument("--rate", type=float, default=250.0)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between changes")
    parser.add_argument("--identical", type=int, default=100)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--no-lab", action="store_true", help="skip the swarm lab (images, stack, core deaths)")
    parser.add_argument("--kills", type=int, default=6, help="core deaths in the lab")
    parser.add_argument("--fault-rounds", type=int, default=10, help="rounds per Consul fault (0: none)")
    parser.add_argument("--core-fault-rounds", type=int, default=2, help="rounds per core fault and template (0: none)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = {"propagation": [], "identical": [], "scale": []}
    with tempfile.TemporaryDirectory(prefix="voltha-envoy-bench-") as tmp:
        workdir = Path(tmp)
        # 10,000 cores make a ~700 KB assignment: over Consul's default 512 KiB value limit.
        consul = ConsulAgent(workdir / "consul", extra_config={"limits": {"kv_max_value_size": 4 << 20}}).start()
        cores = CoreProcesses(workdir / "cores", 6)
        try:
            import subprocess

            from tests.support.paths import consul_binary
            results["consul_version"] = subprocess.run([consul_binary(), "version"], capture_output=True,
                                                       text=True).stdout.splitlines()[0]
            cores.start()
            for mode in ("dynamic", "hot-restart"):
                results["propagation"].append(
                    propagation_under_load(workdir, consul, cores, mode, args.changes, args.interval, args.rate))
            for mode in ("dynamic", "hot-restart"):
                results["identical"].append(identical_writes(workdir, consul, cores, mode, args.identical))
            sizes = [int(s) for s in args.sizes.split(",")]
            for validation in ("shape-cache", "envoy"):
                results["scale"].append(scale(workdir, consul, validation, sizes, args.repeats))
        finally:
            cores.stop()
            consul.stop()
        if args.fault_rounds:
            from tests.bench import consul_faults

            results["faults"] = consul_faults.run(workdir, args.fault_rounds)
        if args.core_fault_rounds:
            from tests.bench import core_faults

            results["core_faults"] = core_faults.run(workdir, args.core_fault_rounds)
    if not args.no_lab:
        from tests.bench import lab

        results["lab"] = lab.run(kills=args.kills)
    from tests.bench import plots

    results["plots"] = plots.write(Path(args.output).parent, results)
    from tests.bench import cluster

    kept = cluster.kept_section(Path(args.output))  # make bench-cluster's section, measured apart
    write_report(Path(args.output), args, results, time.monotonic() - started)
    if kept:
        with open(args.output, "a") as report:
            report.write("\n" + kept)
    log(f"wrote {args.output} in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
