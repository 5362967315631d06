"""make bench: measure envoyd on the real parts and rewrite BENCHMARKS.md (with its charts).

Each run measures everything side by side on this machine, with envoyd's shipped defaults: the
dynamic, xds and hot-restart modes, and beside envoyd the floor (tests/bench/floor.py), a bare
watcher with its own Envoy on the same key, each change timed on both at once; beside the
hot-restart mode the design this project grew from (tests/bench/seed.py), a restart per index change.
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
from tests.bench.floor import CLUSTER as FLOOR_CLUSTER
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
from tests.bench.seed import SeedWatcher
from tests.support.consul_agent import ConsulAgent
from tests.support.envoyd_runner import Envoyd
from tests.support.grpc_client import NbiClient
from tests.support.paths import REPO
from tests.support.stats import median, percentile

KEY = "service/voltha/data/core/assignment"
MODES = ("dynamic", "xds", "hot-restart")
SCALE_WAIT = 60.0  # seconds a side may take for one change of the assignment-size runs
SEED_LABEL = "a restart per index change (the design we grew from)"


def log(msg: str) -> None:
    print(f"bench: {msg}", flush=True)


def timed_together(waiters: dict, started: float) -> dict:
    """Run each waiter (a function that returns once its side has the change) on a thread of its own;
    seconds from ``started`` until each returned (a side whose waiter timed out is left out)."""
    done: dict = {}

    def run(name, wait):
        try:
            wait()
        except TimeoutError as err:
            log(f"{name}: {err}")
            return
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


def with_delivery(stages: dict | None, put_at: float) -> dict | None:
    """An apply's stages with delivery: from the KV write (``put_at``, seconds since the epoch) until
    Consul's answer reached envoyd."""
    if stages and "received_at" in stages:
        stages = dict(stages, delivery=max(0.0, stages["received_at"] - put_at))
    return stages


def propagation_under_load(workdir: Path, consul: ConsulAgent, cores: CoreProcesses, mode: str, changes: int,
                           interval: float, rate: float) -> dict:
    """KV write -> first call answered by a newly assigned core, through envoyd's Envoy (mode "seed": the
    design we grew from instead) and through the floor's at the same time, while a paced load runs
    through each."""
    kv = consul.client().kv
    pairs = [(0, 1), (2, 3), (4, 5)]
    kv.put(KEY, cores.assignment(pairs[0]))
    if mode == "seed":
        envoyd = SeedWatcher(workdir / "seed", consul.address, KEY).start()
    else:
        envoyd = Envoyd(workdir / f"propagation-{mode}", consul.address, mode,
                        ("--var", "access_log_path=/dev/null", "--envoy-log-level", "error")).start()
    watchers = {"floor": FloorWatcher(workdir / f"floor-{mode}", consul.address, KEY).start()}
    nbis = dict({"envoyd": envoyd.nbi}, **{side: w.nbi for side, w in watchers.items()})
    try:
        duration = changes * interval + 4
        loads = {side: PacedLoad(nbi, rate, duration).start() for side, nbi in nbis.items()}
        clients = {side: NbiClient(nbi) for side, nbi in nbis.items()}
        samples = {side: [] for side in nbis}
        stages, probe_failures = [], {side: 0 for side in nbis}
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

            value = cores.assignment(target)
            started, put_at = time.monotonic(), time.time()
            kv.put(KEY, value)
            done = timed_together({side: (lambda s=side: reached(s)) for side in clients}, started)
            for side in nbis:
                samples[side].append(done[side])
            if mode in ("dynamic", "xds"):
                stages.append(with_delivery(stages_of(envoyd, index), put_at))
            time.sleep(max(0.0, started + interval - time.monotonic()))
        results = {side: load.result(timeout=duration + 60) for side, load in loads.items()}
        for client in clients.values():
            client.close()
        applies = envoyd.restarts if mode == "seed" else envoyd.metric(f'envoyd_applies_total{{mode="{mode}"}}')
    finally:
        for watcher in watchers.values():
            watcher.stop()
        envoyd.stop()
    for side in nbis:
        log(f"{mode}, {side}: propagation p50 {median(samples[side]) * 1000:.1f} ms "
            f"p99 {percentile(samples[side], 99) * 1000:.1f} ms; load {results[side]['sent']} calls at "
            f"{results[side]['rate']:.0f}/s, {results[side]['failed']} failed, {probe_failures[side]} probes failed")
    return {"mode": mode, "samples": samples["envoyd"], "floor_samples": samples["floor"], "load": results["envoyd"],
            "floor_load": results["floor"], "probe_failures": probe_failures["envoyd"],
            "floor_probe_failures": probe_failures["floor"], "applies": applies, "stages": [s for s in stages if s]}


def identical_writes_seed(workdir: Path, consul: ConsulAgent, cores: CoreProcesses, writes: int) -> dict:
    """The design we grew from under the same writes: how many times it restarted Envoy."""
    kv = consul.client().kv
    kv.put(KEY, cores.assignment((0, 1)))
    seed = SeedWatcher(workdir / "identical-seed", consul.address, KEY).start()
    try:
        time.sleep(0.5)
        before, index_before = seed.restarts, int(kv.get(KEY)[0])
        for _ in range(writes):
            kv.put(KEY, cores.assignment((0, 1)))
        time.sleep(1.0)
        reloads, index_moves = seed.restarts - before, int(kv.get(KEY)[0]) - index_before
    finally:
        seed.stop()
    log(f"seed: {writes} identical writes (the key's index moved by {index_moves}) -> {reloads} Envoy restarts")
    return {"mode": SEED_LABEL, "writes": writes, "reloads": reloads, "applies": reloads, "index_moves": index_moves}


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


def scale_assignment(cores: CoreProcesses, n: int, variant: int) -> str:
    """n cores: the first two simulated cores (they answer the load) and n - 2 on loopback addresses
    nothing answers (their health checks fail, so no call goes to them), 127.<1 + variant>.x.y: each
    variant names hosts no other one names."""
    if not 0 <= variant <= 253 or n > 250 * 256:
        raise ValueError(f"no loopback addresses for variant {variant} of {n} cores")
    value = json.loads(cores.assignment((0, 1)))
    for i in range(n - 2):
        value[f"q{i:05d}"] = {"id": f"gone-{i}", "host": f"127.{1 + variant}.{i // 250}.{1 + i % 250}",
                              "port": 50556}
    return json.dumps(value)


def serving(stat, cluster: str, cores: int) -> bool:
    """Whether an Envoy serves with ``cores`` cores: its cluster has them and no cluster is warming (a
    cluster sent anew counts its members before it takes a call: its first health checks are pending)."""
    return (stat(f"cluster.{cluster}.membership_total") == cores
            and stat("cluster_manager.warming_clusters") == 0)


def scale(workdir: Path, consul: ConsulAgent, cores: CoreProcesses, mode: str, sizes: list[int], changes: int,
          interval: float, rate: float) -> dict:
    """KV write -> every core of the new assignment in Envoy's cluster, envoyd (shipped defaults, health
    checks on) and the floor at once, each under a paced load of its own, ``changes`` per size."""
    kv = consul.client().kv
    kv.put(KEY, scale_assignment(cores, sizes[0] - 1, 0))
    envoyd = Envoyd(workdir / f"scale-{mode}", consul.address, mode,
                    ("--var", "access_log_path=/dev/null", "--envoy-log-level", "error")).start()
    floor = FloorWatcher(workdir / f"floor-scale-{mode}", consul.address, KEY).start()
    rows = []

    def envoyd_stat(name):
        return envoy_stat(envoyd.config_dir, name)

    try:
        pid = envoyd.process.pid
        for size_index, n in enumerate(sizes):
            kv.put(KEY, scale_assignment(cores, n - 1, 0))
            try:
                wait_for(lambda n=n: serving(envoyd_stat, "voltha-grpc", n - 1)
                         and serving(floor.stat, FLOOR_CLUSTER, n - 1), 2 * SCALE_WAIT, f"{n - 1} cores in both Envoys")
            except TimeoutError as err:
                log(f"scale {mode}: {err}; no larger size is tried")
                rows.append({"cores": n, "unreached": str(err)})
                break
            duration = changes * interval + 4
            loads = {"envoyd": PacedLoad(envoyd.nbi, rate, duration).start(),
                     "floor": PacedLoad(floor.nbi, rate, duration).start()}
            time.sleep(2)
            samples, floor_samples, stages, missed = [], [], [], {}
            pids_before = set(envoyd.envoy_pids())
            for i in range(changes):
                # The count alternates, so Envoy's membership count tells this config from the last.
                count = n - i % 2
                index = int(kv.get(KEY)[0])
                # Every change names hosts no earlier change named: nothing envoyd kept helps it.
                value = scale_assignment(cores, count, 1 + size_index * changes + i)
                started, put_at = time.monotonic(), time.time()
                kv.put(KEY, value)
                done = timed_together({
                    "envoyd": lambda c=count: wait_for(lambda: serving(envoyd_stat, "voltha-grpc", c), SCALE_WAIT,
                                                       f"{c} cores in envoyd's Envoy", interval=0.002),
                    "floor": lambda c=count: wait_for(lambda: serving(floor.stat, FLOOR_CLUSTER, c), SCALE_WAIT,
                                                      f"{c} cores in the floor's Envoy", interval=0.002),
                }, started)
                if len(done) < 2:  # a side that did not take a change within SCALE_WAIT: the size ends here
                    missed = {side: SCALE_WAIT for side in ("envoyd", "floor") if side not in done}
                    samples.append(done.get("envoyd", SCALE_WAIT))
                    floor_samples.append(done.get("floor", SCALE_WAIT))
                    break
                samples.append(done["envoyd"])
                floor_samples.append(done["floor"])
                stages.append(with_delivery(stages_of(envoyd, index), put_at))
                time.sleep(max(0.0, started + interval - time.monotonic()))
            load = {side: item.result(timeout=duration + 120) for side, item in loads.items()}
            restarts = len(set(envoyd.envoy_pids()) - pids_before)
            rows.append({"missed": missed, "envoy_restarts": restarts, "cores": n, "samples": samples,
                         "floor_samples": floor_samples,
                         "stages": [s for s in stages if s], "rss": rss_bytes(pid), "peak_rss": peak_rss_bytes(pid),
                         "load": load["envoyd"], "floor_load": load["floor"]})
            log(f"scale {mode}: {n} cores applied in median {median(samples) * 1000:.0f} ms "
                f"(floor {median(floor_samples) * 1000:.0f} ms), RSS {rss_bytes(pid) / 2**20:.1f} MiB "
                f"(peak {peak_rss_bytes(pid) / 2**20:.1f} MiB); load {load['envoyd']['sent']} calls, "
                f"{load['envoyd']['failed']} failed (floor {load['floor']['failed']})")
            if missed:
                log(f"scale {mode}: no larger size is tried")
                break
        idle_start, wall_start = cpu_seconds(pid), time.monotonic()
        time.sleep(10)
        idle = (cpu_seconds(pid) - idle_start) / (time.monotonic() - wall_start)
    finally:
        floor.stop()
        envoyd.stop()
    return {"mode": mode, "rows": rows, "idle_cpu": idle}


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


def scale_rows(results: dict):
    """(mode, row) of every size measured; a size whose start neither Envoy reached is not one."""
    for r in results["scale"]:
        for row in r["rows"]:
            if "samples" in row:
                yield r["mode"], row


def unmeasured(results: dict) -> list[str]:
    """Sentences on what the assignment-size runs could not measure, and why."""
    out = []
    for r in results["scale"]:
        for row in r["rows"]:
            if "unreached" in row:
                out.append(f"{r['mode']}, {row['cores']:,} cores: not measured ({row['unreached']}).")
            elif row.get("missed"):
                sides = " and ".join(f"{side}'s Envoy" for side in row["missed"])
                out.append(f"{r['mode']}, {row['cores']:,} cores: {sides} did not take change "
                           f"{len(row['samples'])} within {SCALE_WAIT:.0f} s, counted as {SCALE_WAIT:.0f} s; "
                           "the size ended there.")
    return out


def floor_section(results: dict) -> list[str]:
    lines = [
        "",
        "## envoyd against the floor",
        "",
        "The floor (`tests/bench/floor.py`) is the least a watcher can do: a blocking query on the same key, "
        "the value read into one cluster of its endpoints (as the shipped template has, with the same health "
        "checks, paced alike), one CDS file renamed into its own Envoy's watched directory; no template, "
        "checks of the data, validation or confirmation. Both watched the key at once and every change was "
        "timed on both, each under a paced load of its own: calls answered by a newly assigned core (two "
        "cores), or the Envoy serving with every core of the new assignment in its cluster, none warming "
        "(larger assignments). Each cell is envoyd / floor = ratio; targets 1.5x at p50 and p90, 2x at p99.",
        "",
        "| what | changes | p50 | p90 | p99 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results["propagation"]:
        lines.append(f"| {r['mode']}, 2 cores, {r['load']['rate']:.0f} calls/s | {len(r['samples'])} | "
                     + " | ".join(ratio_cells(r["samples"], r["floor_samples"])) + " |")
    for mode, row in scale_rows(results):
        lines.append(f"| {mode}, {row['cores']:,} cores, {row['load']['rate']:.0f} calls/s | {len(row['samples'])} | "
                     + " | ".join(ratio_cells(row["samples"], row["floor_samples"])) + " |")
    floor_failed = (sum(r["floor_load"]["failed"] + r["floor_probe_failures"] for r in results["propagation"])
                    + sum(row["floor_load"]["failed"] for _mode, row in scale_rows(results)))
    lines += ["", f"Failed calls through the floor's Envoy: {floor_failed}."]
    return lines


STAGES = ("delivery", "consul", "parse", "render", "validate", "write", "confirm")


def stage_section(results: dict) -> list[str]:
    lines = [
        "",
        "## Where envoyd's time goes",
        "",
        "Median milliseconds of each stage of envoyd's applies above, from its `/status` (`last_apply_stages`; "
        "Prometheus has them as `envoyd_apply_stage_seconds`): delivery (the bench's own count, from its KV write "
        "until Consul's answer reached envoyd, `received_at`: Consul's time, not envoyd's), consul (Consul's "
        "answer read and decoded), "
        "parse (the assignment checked), render (the template), validate (shape cache), write (dynamic: the "
        "files renamed into place; xds: the resources encoded and sent), confirm (dynamic: until Envoy's "
        "cds, lds and endpoints version_text are the files' and no cluster warms; xds: until Envoy ACKed each "
        "type's version, "
        "and no cluster warms when the cluster itself changed).",
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
    for mode, size in scale_rows(results):
        row(f"{mode}, {size['cores']:,} cores", size.get("stages"))
    return lines


TARGET_10K = 0.100
TARGET_RSS = 80 * 2**20
PROPAGATION_TARGETS = {"dynamic": 0.050, "xds": 0.050, "hot-restart": 1.5}


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def failed_calls(results: dict) -> int:
    """Every failed call through envoyd's Envoy: the loads and probes of propagation, the scale loads."""
    return (sum(r["load"]["failed"] + r["probe_failures"] for r in results["propagation"])
            + sum(row["load"]["failed"] for _mode, row in scale_rows(results)))


def targets_section(results: dict) -> list[str]:
    lines = ["", "## Targets", "", "Each judged on this run's numbers below.", "",
             "| target | measured | verdict |", "| --- | --- | --- |"]
    if not any(row["cores"] == 10000 for _mode, row in scale_rows(results)):
        lines.append("| 10,000 cores within 100 ms, no restart, RSS <= 80 MiB | not measured | MISSED |")
    for mode, row in scale_rows(results):
        if row["cores"] == 10000:
            value = median(row["samples"])
            lines.append(f"| 10,000 cores from the KV write to Envoy's membership, median, {mode} (validated, "
                         f"confirmed) <= {ms(TARGET_10K)} | {ms(value)} | {met(value <= TARGET_10K)} |")
            restarts = row["envoy_restarts"]
            lines.append(f"| no Envoy restart during the 10,000-core changes, {mode} | {restarts} restarts | "
                         f"{met(restarts == 0)} |")
            lines.append(f"| envoyd RSS at 10,000 cores <= 80 MiB, {mode} | {row['rss'] / 2**20:.1f} MiB "
                         f"(peak {row['peak_rss'] / 2**20:.1f} MiB) | {met(row['rss'] <= TARGET_RSS)} |")
    misses, cells = 0, 0
    for _mode, row in scale_rows(results):
        for cell in ratio_cells(row["samples"], row["floor_samples"]):
            cells += 1
            misses += cell.endswith("(MISSED)")
    for r in results["propagation"]:
        for cell in ratio_cells(r["samples"], r["floor_samples"]):
            cells += 1
            misses += cell.endswith("(MISSED)")
    lines.append(f"| envoyd within 1.5x of the floor at p50 and p90, 2x at p99, every row | {cells - misses} of "
                 f"{cells} cells within | {met(misses == 0)} |")
    failed = failed_calls(results)
    lines.append(f"| 0 failed calls through envoyd's Envoy throughout | {failed} | {met(failed == 0)} |")
    for r in results["propagation"]:
        target = PROPAGATION_TARGETS[r["mode"]]
        p99 = percentile(r["samples"], 99)
        lines.append(f"| propagation under load, {r['mode']}, p99 <= {ms(target)} | {ms(p99)} | {met(p99 <= target)} |")
    return lines


def write_report(path: Path, args, results: dict, seconds: float) -> None:
    from tests.bench import charts

    envoy = find_envoy()
    consul_version = results["consul_version"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` ({' '.join(['python -m tests.bench'] + sys.argv[1:])}) on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC in {seconds:.0f} s. "
        "Everything below was measured in that one run, on the real parts: a Consul dev agent, Envoy, "
        "envoyd and simulated cores (gRPC servers, one process each), all on loopback; the swarm lab at the end "
        "runs the images on the real Docker Engine. envoyd ran with its shipped defaults (active health checks "
        "of every core, shape-cache validation, confirmation by Envoy); only its access log went to /dev/null.",
        "",
        "Machine: " + "; ".join(machine_facts()) + f"; Envoy {envoy_version(envoy)}; {consul_version}.",
    ]
    lines += targets_section(results)
    lines += [
        "",
        "## Propagation under load",
        "",
        f"From the KV write to the first CreateDevice answered by a newly assigned core, over {args.changes} "
        f"changes (each moves the assignment to two other cores), while a separate process sends "
        f"{args.rate:.0f} calls/s (CreateDevice and GetVoltha alternately) through each Envoy. Failed calls count "
        "every call of the load and of the probe that did not succeed. With fewer than 100 changes, p99 is "
        "the slowest change. The floor (below) watched the same key at the same time, under a load of its own "
        "at the same rate. The last row is the design we grew from, run the same way (`tests/bench/seed.py`: "
        "on every new index a bootstrap with the cores in a static cluster and a hot restart of Envoy).",
        "",
        "| mode | changes | p50 | p90 | p99 | max | target p99 | calls | rate | failed calls |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def propagation_row(label, s, load, failed, target=None):
        judged = f"{ms(target)} ({met(percentile(s, 99) <= target)})" if target else "none"
        return (f"| {label} | {len(s)} | {ms(median(s))} | {ms(percentile(s, 90))} | {ms(percentile(s, 99))} | "
                f"{ms(max(s))} | {judged} | {load['sent']} | {load['rate']:.0f}/s | {failed} |")

    for r in results["propagation"] + results["seed"]:
        lines.append(propagation_row(SEED_LABEL if r["mode"] == "seed" else r["mode"], r["samples"], r["load"],
                                     r["load"]["failed"] + r["probe_failures"], PROPAGATION_TARGETS.get(r["mode"])))
    errors = {k: v for r in results["propagation"] for k, v in r["load"]["errors"].items()}
    if errors:
        lines += ["", "Errors seen by envoyd's loads: " + "; ".join(f"{k} x{v}" for k, v in errors.items())]
    lines += floor_section(results)
    lines += stage_section(results)
    lines += charts.section(results)
    moves = [r["index_moves"] for r in results["identical"] if "index_moves" in r]
    lines += [
        "",
        "## Identical writes",
        "",
        f"{args.identical} writes of the same value to the key. envoyd compares values, then rendered bytes; "
        "the design we grew from restarts Envoy on every new index it sees"
        + (f", and Consul moved the key's index {moves[0]} times for these writes." if moves else "."),
        "",
        "| mode | writes | Envoy reloads or restarts | applies |",
        "| --- | --- | --- | --- |",
    ]
    for r in results["identical"]:
        lines.append(f"| {r['mode']} | {r['writes']} | {r['reloads']} | {r['applies']:.0f} |")
    lines += [
        "",
        "## Assignment size",
        "",
        f"From the KV write until Envoy serves with every core of the new assignment (its `voltha-grpc` cluster "
        "has them, and no cluster is warming: a cluster sent anew takes no call before its first health checks), "
        f"{args.repeats} changes per size and mode: the two cores that answer the load, and N - 2 or N - 3 "
        "cores on loopback addresses no earlier change named, which nothing answers (their health checks fail, so "
        f"no call goes to them), under {args.rate:.0f} calls/s through each Envoy. RSS is envoyd's (the "
        "watcher's) resident memory after the changes, and its peak. 10,000 cores make a ~700 KB value, over "
        "Consul's default 512 KiB limit, so this run's agent has `limits.kv_max_value_size` raised.",
        "",
        "| mode | cores | changes | p50 | p90 | p99 | max | floor p50 | envoyd RSS (peak) | calls | failed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode, row in scale_rows(results):
        s = row["samples"]
        lines.append(f"| {mode} | {row['cores']:,} | {len(s)} | {ms(median(s))} | {ms(percentile(s, 90))} | "
                     f"{ms(percentile(s, 99))} | {ms(max(s))} | {ms(median(row['floor_samples']))} | "
                     f"{row['rss'] / 2**20:.1f} MiB ({row['peak_rss'] / 2**20:.1f} MiB) | {row['load']['sent']} | "
                     f"{row['load']['failed']} |")
    lines += [""] + unmeasured(results) if unmeasured(results) else []
    failures = [f"{mode}, {row['cores']:,} cores, {side}: " + "; ".join(f"{k} x{v}" for k, v in load["errors"].items())
                for mode, row in scale_rows(results)
                for side, load in (("envoyd", row["load"]), ("floor", row["floor_load"])) if load.get("errors")]
    if failures:
        lines += ["", "Errors seen by the loads: " + " | ".join(failures) + "."]
    lines += [
        "",
        "## Idle",
        "",
        "envoyd's CPU time over 10 s with nothing changing, right after the 10,000-core changes above. Its "
        "blocking queries wait 5 s each here (`--consul-wait 5s`; the default is 60 s):",
        "",
    ]
    for r in results["scale"]:
        lines.append(f"- {r['mode']}: {r['idle_cpu'] * 10 * 1000:.0f} ms of CPU in 10 s "
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


def lab_section_kept(path: Path) -> str:
    """The swarm lab's section of the report in ``path``, marked as an earlier run's (--no-lab)."""
    text = path.read_text() if path.exists() else ""
    start = text.find("## The swarm lab")
    if start < 0:
        return ""
    end = text.find("\n## ", start + 1)
    section = text[start:end if end >= 0 else len(text)].rstrip() + "\n"
    written = text.split(" on ", 1)[1].split(" UTC", 1)[0] if " UTC" in text[:400] else "an earlier run"
    heading, _, body = section.partition("\n")
    if " (from the run of " in heading:
        return section  # already an earlier run's, and it says which
    return f"{heading} (from the run of {written}; this run skipped the lab)\n{body}\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--changes", type=int, default=60)
    parser.add_argument("--rate", type=float, default=250.0)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between changes")
    parser.add_argument("--identical", type=int, default=100)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--repeats", type=int, default=30, help="changes per assignment size and mode")
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--no-lab", action="store_true", help="skip the swarm lab (images, stack, core deaths)")
    parser.add_argument("--kills", type=int, default=6, help="core deaths in the lab")
    parser.add_argument("--fault-rounds", type=int, default=10, help="rounds per Consul fault (0: none)")
    parser.add_argument("--core-fault-rounds", type=int, default=2, help="rounds per core fault and template (0: none)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = {"propagation": [], "seed": [], "identical": [], "scale": []}
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
            for mode in MODES:
                results["propagation"].append(
                    propagation_under_load(workdir, consul, cores, mode, args.changes, args.interval, args.rate))
            results["seed"] = [propagation_under_load(workdir, consul, cores, "seed", args.changes, args.interval,
                                                      args.rate)]
            for mode in MODES:
                results["identical"].append(identical_writes(workdir, consul, cores, mode, args.identical))
            results["identical"].append(identical_writes_seed(workdir, consul, cores, args.identical))
            sizes = [int(s) for s in args.sizes.split(",")]
            for mode in ("dynamic", "xds"):
                results["scale"].append(scale(workdir, consul, cores, mode, sizes, args.repeats, args.interval,
                                              args.rate))
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
    from tests.bench import cluster

    kept = cluster.kept_section(Path(args.output))  # make bench-cluster's section, measured apart
    if args.no_lab:  # the lab's section of an earlier run stays, said to be from that run
        kept = lab_section_kept(Path(args.output)) + kept
    write_report(Path(args.output), args, results, time.monotonic() - started)
    if kept:
        with open(args.output, "a") as report:
            report.write("\n" + kept)
    log(f"wrote {args.output} in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
