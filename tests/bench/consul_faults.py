"""make bench: Consul's faults, timed (the scenarios of tests/support/consul_faults.py), beside a
reference watch loop that keeps its index after a failed request, as most blocking-query loops do."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

from tests.support import consul_faults
from tests.support.consul_faults import KEY, WAIT, Rig, put_until_accepted


def log(msg: str) -> None:
    print(f"bench: {msg}", flush=True)


def reference_after_lost_store(workdir: Path) -> float | None:
    """Seconds from a write into a restarted dev agent's new store until a plain py-consul watch loop
    (blocking at its last index, which it keeps across errors) sees it; None after 2 waits."""
    with Rig(workdir) as rig:
        agent = rig.consul("consul")
        client = agent.client()
        client.kv.put(KEY, "before")
        seen: dict[bytes, float] = {}
        stop = threading.Event()

        def watch():
            index = None
            watcher = agent.client()
            while not stop.is_set():
                try:
                    index, item = watcher.kv.get(KEY, index=index, wait=WAIT)
                except Exception:  # the agent restarting: try again, same index
                    time.sleep(0.25)
                    continue
                if item is not None:
                    seen.setdefault(item["Value"], time.monotonic())

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        while b"before" not in seen:
            time.sleep(0.01)
        agent.stop()
        agent.launch()
        accepted = put_until_accepted([agent.url], KEY, "after")
        deadline = accepted + 130
        while b"after" not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        return seen[b"after"] - accepted if b"after" in seen else None


def run(workdir: Path, rounds: int) -> dict:
    scenarios = [
        ("dev", lambda rig: consul_faults.restarted(rig, "dev", rounds)),
        ("server", lambda rig: consul_faults.restarted(rig, "server", rounds)),
        ("hung", lambda rig: consul_faults.hung(rig, rounds)),
        ("leader-default", lambda rig: consul_faults.leader_lost(rig, "default", rounds)),
        ("leader-stale", lambda rig: consul_faults.leader_lost(rig, "stale", rounds)),
        ("replaced", lambda rig: consul_faults.cores_replaced(rig, max(3, rounds // 3))),
    ]
    results = []
    for name, scenario in scenarios:
        log(f"consul faults: {name}")
        with Rig(workdir / f"faults-{name}") as rig:
            results.append(scenario(rig))
    log("consul faults: leader-cut")
    cuts = [consul_faults.FaultResult("")]
    for number in range(max(3, rounds // 3)):  # a cluster each: the watched follower may be the next leader
        with Rig(workdir / f"faults-leader-cut-{number}") as rig:
            cuts.append(consul_faults.leader_cut(rig))
    cuts[0].fault = cuts[1].fault
    cuts[0].rounds = [one for cut in cuts[1:] for one in cut.rounds]
    results.append(cuts[0])
    log("consul faults: reference watch loop after a lost store")
    reference = reference_after_lost_store(workdir / "faults-reference")
    return {"rounds": rounds, "results": results, "reference": reference}


def report(data: dict) -> list[str]:
    def sec(value):
        return "-" if value != value else f"{value:.3f} s"  # NaN: nothing measured

    reference = data["reference"]
    lines = [
        "## Consul faults",
        "",
        "envoyd (with its Envoy, `--consul-wait 60s`, the default) and simulated cores (processes, on keys of their "
        "own in the same Consul) run while eight clients call CreateDevice and GetVoltha through Envoy (50 calls/s "
        "each). Each round: the fault; then a new assignment is written as soon as Consul takes a write (tried "
        "every 10 ms), and the time is measured from that accepted write until a call is answered by the core it "
        "names. \"cores whole\" is the time from the same moment until the cores' own assignment names exactly the "
        "living cores and the lock is held by a session of one of them. Failed calls count every call of the load "
        "during the rounds. Target: at most 1 s in every case, 0 failed calls.",
        "",
        "| fault | rounds | to the new assignment in Envoy: median | max | cores whole: median | max | failed calls |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in data["results"]:
        cores = result.cores_resync
        lines.append(f"| {result.fault} | {len(result.rounds)} | {sec(result.median)} | {sec(result.worst)} | "
                     f"{sec(statistics.median(cores) if cores else float('nan'))} | "
                     f"{sec(max(cores) if cores else float('nan'))} | {result.failed} |")
    lines += [
        "",
        "In the last row envoyd watches the cores' own key, so both times are until the cores re-elected and "
        "rewrote it (their gRPC health checks run every second); its failed calls are those once the new cores "
        "served (while no core runs at all, calls fail whatever Consul does). A reference watch loop, the usual "
        "one (py-consul, blocking at its last index, which it keeps across errors), saw a write into a restarted "
        "dev agent's new store after "
        + (f"**{reference:.1f} s**" if reference is not None else "more than two waits (it never did)")
        + " in the same run: its query at the old, higher index is held for the whole wait.",
        "",
    ]
    return lines
