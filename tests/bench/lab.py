"""The swarm lab, measured: `make lab` cold and warm, image sizes, and a core's death under load.

The lab runs as its own stack (voltha_bench, NBI on 52555, Consul on 28500) so it never touches a
`make lab` stack; it is removed at the end, pass or fail.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import docker

from tests.support.paths import REPO
from tests.support.stats import median, percentile

STACK = "voltha_bench"
NBI_PORT = 52555
CONSUL_PORT = 28500
EXTRA_VARS = {"stack_name": STACK, "stack_nbi_port": NBI_PORT, "stack_consul_port": CONSUL_PORT,
              "stack_prometheus_port": 29090}
ASSIGNMENT_URL = f"http://127.0.0.1:{CONSUL_PORT}/v1/kv/service/voltha/data/core/assignment?raw"
PREFIX = "voltha-envoy/"


def log(msg: str) -> None:
    print(f"bench: lab: {msg}", flush=True)


def playbook(name: str, extra: dict | None = None) -> tuple[float, int, str]:
    """Run a playbook on inventories/local; (seconds, tasks changed, output)."""
    argv = [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(REPO / "inventories/local"),
            str(REPO / "playbooks" / name), "-e", json.dumps({**EXTRA_VARS, **(extra or {})})]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=1800)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", proc.stdout))
    return seconds, changed, proc.stdout


def smoke_call() -> float:
    started = time.monotonic()
    subprocess.run([str(REPO / ".venv/bin/python"), "-m", "voltha_core_sim.nbi_client", f"127.0.0.1:{NBI_PORT}"],
                   check=True, capture_output=True, cwd=REPO, timeout=60)
    return time.monotonic() - started


def remove_images(client: docker.DockerClient) -> int:
    """Every voltha-envoy image and the dangling build stages: the Docker Engine of a fresh machine."""
    removed = 0
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(PREFIX):
                client.images.remove(tag, force=True)
                removed += 1
    client.images.prune(filters={"dangling": True})
    return removed


def image_sizes(client: docker.DockerClient) -> list[tuple[str, int]]:
    sizes = []
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(PREFIX) and tag.endswith(":latest"):
                sizes.append((tag, image.attrs["Size"]))
    return sorted(sizes)


OPERATOR_TOKEN = Path(f"/etc/voltha-envoy/{STACK}/secrets/operator.token")  # the stack role's, with ACLs on


def assignment() -> dict:
    request = urllib.request.Request(ASSIGNMENT_URL)
    if OPERATOR_TOKEN.exists():
        request.add_header("X-Consul-Token", OPERATOR_TOKEN.read_text().strip())
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            return json.loads(answer.read() or b"{}")
    except (OSError, ValueError):
        return {}


def assigned_cores() -> set[str]:
    """The ids of the cores the assignment routes to. Its keys are the core stores: a dead core's store
    is taken over by another core, so the dead core leaves the values, not the keys."""
    return {entry.get("id") for entry in assignment().values() if isinstance(entry, dict)}


class BackgroundLoad:
    """nbi_load on a thread, every call kept, until stop()."""

    def __init__(self, address: str, rate: float, name: str):
        from voltha_core_sim.nbi_load import run as run_load

        self.stop_file = Path(f"/tmp/voltha-envoy-bench-stop-{name}")
        self.stop_file.unlink(missing_ok=True)
        self.result: dict = {}
        self.thread = threading.Thread(target=lambda: self.result.update(
            run_load(address, rate, 900, str(self.stop_file), keep_calls=True)), daemon=True)

    def start(self) -> BackgroundLoad:
        self.thread.start()
        return self

    def stop(self) -> dict:
        self.stop_file.touch()
        self.thread.join(120)
        self.stop_file.unlink(missing_ok=True)
        return self.result


def vcore_containers(client: docker.DockerClient) -> dict[str, object]:
    """Running core containers of the bench stack by core id (their host name)."""
    found = {}
    for container in client.containers.list(filters={"label": f"com.docker.swarm.service.name={STACK}_vcore"}):
        found[container.attrs["Config"]["Hostname"]] = container
    return found


def wait_until(predicate, timeout: float, step: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError("gave up waiting")


def last_apply(client: docker.DockerClient) -> float:
    """envoyd's envoyd_last_apply_timestamp_seconds, read inside the voltha container (its status port
    is on the container's loopback)."""
    container = client.containers.list(filters={"label": f"com.docker.swarm.service.name={STACK}_envoyd"})[0]
    code = ("import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/metrics').read().decode())")
    out = container.exec_run(["/opt/envoyd/bin/python", "-c", code]).output.decode()
    return float(re.search(r"^envoyd_last_apply_timestamp_seconds (\S+)$", out, re.M).group(1))


def core_deaths(client: docker.DockerClient, kills: int, rate: float) -> dict:
    """SIGKILL one core at a time under load. For each: when the assignment in Consul dropped it, and
    when envoyd applied the config without it (Envoy takes the new files within milliseconds)."""
    wait_until(lambda: len(assigned_cores()) == 3, 120, 0.2)
    load = BackgroundLoad(f"127.0.0.1:{NBI_PORT}", rate, "deaths").start()
    time.sleep(3)
    deaths = []
    try:
        for i in range(kills):
            victim = f"vcore-{i % 3 + 1}"
            container = wait_until(lambda v=victim: vcore_containers(client).get(v), 60, 0.2)
            killed_wall, killed_at = time.time(), time.monotonic()
            container.kill()
            dropped_at = wait_until(lambda v=victim: v not in assigned_cores() and time.monotonic(), 30)
            time.sleep(1)  # the apply follows in milliseconds; the slot's new task comes seconds later
            applied = last_apply(client) - killed_wall
            deaths.append({"core": victim, "dropped": dropped_at - killed_at, "applied": applied})
            # Swarm starts a new task for the slot (same core id) after its restart delay.
            wait_until(lambda: len(assigned_cores()) == 3, 120, 0.2)
            time.sleep(2)
    finally:
        records = load.stop()["calls"]
    failed = [r for r in records if r[3]]
    errors: dict[str, int] = {}
    for r in failed:
        errors[r[3]] = errors.get(r[3], 0) + 1
    latencies = [r[1] for r in records if not r[3]]
    return {"deaths": deaths, "calls": len(records), "failed": len(failed), "errors": errors,
            "p50": median(latencies), "p99": percentile(latencies, 99), "max": max(latencies), "rate": rate}


def core_pauses(client: docker.DockerClient, pauses: int, rate: float, hold: float = 3.0) -> dict:
    """docker pause one core at a time for ``hold`` seconds under load (its process frozen, its
    sockets open), then unpause it: the calls that failed, and the latency of the calls meanwhile."""
    wait_until(lambda: len(assigned_cores()) == 3, 120, 0.2)
    load = BackgroundLoad(f"127.0.0.1:{NBI_PORT}", rate, "pauses").start()
    time.sleep(3)
    windows = []
    try:
        for i in range(pauses):
            container = wait_until(lambda v=f"vcore-{i % 3 + 1}": vcore_containers(client).get(v), 60, 0.2)
            started = time.monotonic()
            container.pause()
            time.sleep(hold)
            container.unpause()
            windows.append((started, time.monotonic()))
            time.sleep(3)
    finally:
        records = load.stop()["calls"]
    during = [r for r in records if any(a <= r[0] <= b for a, b in windows)]
    failed = [r for r in records if r[3]]
    errors: dict[str, int] = {}
    for r in failed:
        errors[r[3]] = errors.get(r[3], 0) + 1
    latencies = [r[1] for r in during if not r[3]]
    return {"pauses": pauses, "hold": hold, "calls": len(records), "failed": len(failed), "errors": errors,
            "p50": median(latencies), "p99": percentile(latencies, 99), "max": max(latencies), "rate": rate}


def replacements(rate: float) -> list[dict]:
    """replace.yml for each service under a steady load through the NBI: failed calls and wall time."""

    rows = []
    for service in ("vcore", "envoyd", "consul"):
        load = BackgroundLoad(f"127.0.0.1:{NBI_PORT}", rate, service).start()
        time.sleep(2)
        seconds, _, out = playbook("replace.yml", {"service": service,
                                                   "images_labels": {"org.opencontainers.image.revision": "bench"}})
        time.sleep(2)
        outcome = load.stop()
        outcome.pop("calls", None)
        match = re.search(r"(\d+) task\(s\) replaced (\S+) in ([0-9.]+) s", out)
        rows.append({"service": service, "playbook_seconds": seconds,
                     "tasks": int(match.group(1)) if match else 0, "order": match.group(2) if match else "?",
                     "seconds": float(match.group(3)) if match else float("nan"), "load": outcome})
        log(f"replace {service}: {rows[-1]['tasks']} task(s) {rows[-1]['order']} in {rows[-1]['seconds']} s; "
            f"{outcome.get('failed')} of {outcome.get('sent')} calls failed")
    return rows


def run(kills: int = 6, rate: float = 200.0) -> dict:
    client = docker.from_env(timeout=600)
    results: dict = {}
    try:
        playbook("teardown.yml")
        removed = remove_images(client)
        log(f"cold: removed {removed} image tags; site.yml from nothing")
        seconds, changed, _ = playbook("site.yml")
        results["cold"] = {"seconds": seconds + smoke_call(), "changed": changed}
        log(f"cold: {results['cold']['seconds']:.0f} s")
        seconds, changed, _ = playbook("site.yml")
        results["warm"] = {"seconds": seconds + smoke_call(), "changed": changed}
        log(f"warm: {results['warm']['seconds']:.1f} s, changed={changed}")
        results["sizes"] = image_sizes(client)
        results["deaths"] = core_deaths(client, kills, rate)
        results["pauses"] = core_pauses(client, 3, rate)
        results["replacements"] = replacements(rate)
        log("core deaths: " + ", ".join(f"{d['core']} dropped {d['dropped'] * 1000:.0f} ms, applied "
                                        f"{d['applied'] * 1000:.0f} ms" for d in results["deaths"]["deaths"])
            + f"; {results['deaths']['failed']} of {results['deaths']['calls']} calls failed")
    finally:
        playbook("teardown.yml")
        client.close()
    return results


def report(results: dict) -> list[str]:
    """BENCHMARKS.md lines for the lab."""
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731 (a local formatter)
    cold, warm = results["cold"], results["warm"]
    lines = [
        "## The swarm lab (`make lab`)",
        "",
        "`playbooks/site.yml` on `inventories/local` plus the smoke call through the NBI, as `make lab` runs them "
        f"(the stack `{STACK}` on its own ports). Cold: no voltha-envoy image in the Docker Engine (every image, "
        "the debootstrap base and the Go builder included, is built from source; the wheels were already in the "
        "wheelhouse, the venv ready). Warm: everything there. Target for warm: at most 60 s and changed=0.",
        "",
        "| run | wall time | tasks changed |",
        "| --- | --- | --- |",
        f"| cold | {cold['seconds']:.0f} s | {cold['changed']} |",
        f"| warm | {warm['seconds']:.1f} s ({'met' if warm['seconds'] <= 60 and not warm['changed'] else 'MISSED'})"
        f" | {warm['changed']} |",
        "",
        "Image sizes (as the Docker Engine reports them):",
        "",
        "| image | size |",
        "| --- | --- |",
    ]
    lines += [f"| `{tag}` | {size / 2**20:.1f} MiB |" for tag, size in results["sizes"]]
    deaths = results["deaths"]
    dropped = [d["dropped"] for d in deaths["deaths"]]
    applied = [d["applied"] for d in deaths["deaths"]]
    lines += [
        "",
        "### A core's death",
        "",
        f"One core container SIGKILLed at a time ({len(dropped)} times, each core in turn, the leader among them) "
        f"while {deaths['rate']:.0f} calls/s (CreateDevice and GetVoltha alternately) go through Envoy. "
        "*Dropped*: from the kill until the "
        "assignment in Consul no longer has the core (its gRPC health check fails, the leader rewrites the key). "
        "*Not routed*: from the kill until envoyd applied the config without the core (its "
        "`envoyd_last_apply_timestamp_seconds`). Envoy does not wait for either: its keepalive, health checks and "
        "outlier detection take the core out within milliseconds (see \"Dead, hung and unreachable cores\"), "
        "reads in flight are retried on another core, and a CreateDevice fails only when it was on the killed "
        "core (it may have been acted on).",
        "",
        "| | median | max |",
        "| --- | --- | --- |",
        f"| kill -> dropped from the assignment | {ms(median(dropped))} | {ms(max(dropped))} |",
        f"| kill -> no longer routed by Envoy | {ms(median(applied))} | {ms(max(applied))} |",
        "",
        f"Calls: {deaths['calls']:,}, failed: {deaths['failed']}"
        + (f" ({', '.join(f'{k} x{v}' for k, v in deaths['errors'].items())})" if deaths["errors"] else "")
        + f"; latency p50 {ms(deaths['p50'])}, p99 {ms(deaths['p99'])}, max {ms(deaths['max'])}.",
        "",
        "### A core frozen (`docker pause`)",
        "",
        f"One core container paused for {results['pauses']['hold']:.0f} s at a time ({results['pauses']['pauses']} "
        "times, each core in turn), then unpaused, under the same load: its process is frozen, its sockets stay "
        "open, so only Envoy's own keepalive and health checks can tell. Latency is of the calls started while a "
        "core was paused.",
        "",
        f"Calls: {results['pauses']['calls']:,}, failed: {results['pauses']['failed']}"
        + (f" ({', '.join(f'{k} x{v}' for k, v in results['pauses']['errors'].items())})"
           if results["pauses"]["errors"] else "")
        + f"; latency while paused p50 {ms(results['pauses']['p50'])}, p99 {ms(results['pauses']['p99'])}, "
        f"max {ms(results['pauses']['max'])}.",
        "",
        "### Replacing one service in the running lab",
        "",
        "`ansible-playbook playbooks/replace.yml -e service=NAME` (with a revision label, so each image is new) "
        f"while {deaths['rate']:.0f} calls/s (CreateDevice and GetVoltha alternately) go through the NBI. *Rollout* "
        "is the service_replace module's time, from the service update to the last new task healthy; *playbook* "
        "includes checking that the image is built. Targets: 0 failed calls for the cores and the proxy, at most "
        "30 s for a service of 3 replicas.",
        "",
        "| service | tasks | order | rollout | playbook | calls | failed calls |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results.get("replacements", []):
        load = row["load"]
        lines.append(f"| {row['service']} | {row['tasks']} | {row['order']} | {row['seconds']:.1f} s | "
                     f"{row['playbook_seconds']:.1f} s | {load.get('sent', 0):,} | {load.get('failed')} |")
    lines.append("")
    return lines


if __name__ == "__main__":
    out = run()
    print("\n".join(report(out)))
    Path(REPO / ".state" / "bench-lab.json").write_text(json.dumps(out))
