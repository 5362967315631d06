"""make bench-cluster: the lab on three test hosts, measured, into BENCHMARKS.md's section of its own.

- cold: empty engines (the hosts' data removed first): the hosts up, then the images built on node1
  and pushed to the registry, one node pulling every image of the stack (timed by itself), and the
  stack deployed, as `make lab-cluster` runs them (the pull is its only addition: node2 would pull the
  same images during the deploy);
- warm: `make lab-cluster` again, everything there (target: at most 90 s and changed=0);
- memory at rest, 30 s after the warm run: the resident memory of every process of each host (its
  engine, containerd, the shims, the registry) and of every container, by service;
- a node lost under load and back (tests/support/node_loss.py), three times: its link cut, its dockerd
  killed, and the node of Consul's Raft leader cut.

The hosts are the bench's own (CLUSTER_DIR=STATE_DIR/bench-cluster), taken down with their data at
the end, pass or fail. Only the section between the markers below is rewritten; make bench keeps it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import docker

from scripts.lab_registry import USER, RegistryFiles
from tests.bench.harness import machine_facts
from tests.support import node_loss
from tests.support.paths import REPO, STATE

BEGIN, END = "<!-- make bench-cluster: begin -->", "<!-- make bench-cluster: end -->"
CLUSTER_DIR = STATE / "bench-cluster"
WARM_TARGET = 90.0
# Node losses, in this order, each back before the next: (victim, how) as tests.support.node_loss takes them.
LOSSES = [("auto", "cut"), ("auto", "kill"), ("consul-leader", "cut")]
LOSS_HOLD, LOSS_RATE = 30.0, 200.0
ENV = dict(os.environ, CLUSTER_DIR=str(CLUSTER_DIR), STATE_DIR=str(STATE), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
           ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="all",
           PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
for _name in ("DOCKER_HOST", "DOCKER_CONTEXT"):
    ENV.pop(_name, None)


def log(msg: str) -> None:
    print(f"bench-cluster: {msg}", flush=True)


def run(argv: list[str], timeout: float = 3600) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=ENV, timeout=timeout)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


def hosts(action: str, *extra: str) -> float:
    return run([sys.executable, str(REPO / "scripts" / "cluster.py"), action, *extra], timeout=600)[0]


def playbook(name: str, *args: str) -> tuple[float, int, str]:
    seconds, out = run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(REPO / "inventories" / "cluster"),
                        str(REPO / "playbooks" / name), *args])
    return seconds, sum(int(n) for n in re.findall(r"changed=(\d+)", out)), out


def task_seconds(output: str, name: str) -> float:
    """The time profile_tasks gave the task named ``name`` (summed over its includes)."""
    pattern = re.compile(r"^(?:[\w.]+ : )?" + re.escape(name) + r" -+ (\d+\.\d+)s$", re.M)
    return sum(float(m) for m in pattern.findall(output))


def nodes() -> list[dict]:
    return json.loads((CLUSTER_DIR / "nodes.json").read_text())


def pull_all(node: dict, registry: str) -> tuple[float, int, int]:
    """Pull every inputs-tagged image of the registry on ``node``: (seconds, images, bytes). The registry
    answers over TLS from its CA and to its user only (scripts/lab_registry.py); node's engine has the CA
    from build.yml."""
    files = RegistryFiles(CLUSTER_DIR / "registry")
    login = {"username": USER, "password": files.password_file.read_text().strip()}

    def get(path: str) -> dict:
        request = urllib.request.Request(f"https://{registry}{path}", headers={"Authorization": files.authorization()})
        with urllib.request.urlopen(request, timeout=10, context=files.trusted()) as answer:
            return json.loads(answer.read())

    refs = []
    for repository in get("/v2/_catalog")["repositories"]:
        refs += [f"{registry}/{repository}:{tag}" for tag in get(f"/v2/{repository}/tags/list")["tags"]
                 if tag != "latest"]
    client = docker.DockerClient(base_url=node["docker_host"], timeout=600)
    started = time.monotonic()
    size = 0
    for ref in refs:
        repository, tag = ref.rsplit(":", 1)
        size += client.images.pull(repository, tag=tag, auth_config=login).attrs["Size"]
    seconds = time.monotonic() - started
    client.close()
    return seconds, len(refs), size


def rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_at_rest() -> dict:
    """Resident bytes of each host's own processes (those in its network namespace) and of each
    container, by service."""
    by_node, by_service = {}, {}
    for node in nodes():
        inode = os.stat(f"/run/netns/{node['netns']}").st_ino
        own = 0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "ns" / "net").stat().st_ino == inode:
                        own += rss(int(entry.name))
                except OSError:
                    continue
        client = docker.DockerClient(base_url=node["docker_host"], timeout=60)
        containers = 0
        for container in client.containers.list():
            service = container.labels.get("com.docker.swarm.service.name", container.name)
            procs = Path(f"/sys/fs/cgroup/pids/docker/{container.id}/cgroup.procs")
            used = sum(rss(int(pid)) for pid in procs.read_text().split()) if procs.exists() else 0
            by_service[service] = by_service.get(service, 0) + used
            containers += used
        client.close()
        by_node[node["name"]] = {"engine": own, "containers": containers}
    return {"nodes": by_node, "services": by_service}


def measure(settle: float) -> dict:
    log("taking down any earlier bench hosts, with their data")
    hosts("down", "--purge")
    result: dict = {}
    try:
        log("cold: hosts up")
        result["hosts_up"] = hosts("up")
        log("cold: build.yml (images built on node1, pushed to its registry)")
        build, build_changed, build_out = playbook("build.yml")
        result["build"], result["push"] = build, task_seconds(build_out, "Push the images to the registry")
        registry = f"{nodes()[0]['address']}:5000"
        log("cold: node2 pulls every image of the registry")
        result["pull"], result["pulled"], result["pulled_bytes"] = pull_all(nodes()[1], registry)
        log("cold: deploy.yml")
        deploy, deploy_changed, _ = playbook("deploy.yml")
        result["deploy"] = deploy
        result["cold"] = result["hosts_up"] + build + result["pull"] + deploy
        result["cold_changed"] = build_changed + deploy_changed
        log("warm: make lab-cluster again")
        up = hosts("up")
        site, site_changed, _ = playbook("site.yml")
        result["warm"], result["warm_changed"] = up + site, site_changed
        log(f"at rest: waiting {settle:.0f} s, then reading memory")
        time.sleep(settle)
        result["memory"] = memory_at_rest()
        lab = node_loss.Lab(CLUSTER_DIR)
        result["losses"] = []
        for victim, how in LOSSES:
            log(f"node lost: {how}, victim {victim}, under {LOSS_RATE:.0f} calls/s through another node's NBI")
            result["losses"].append(node_loss.run(lab, victim, "node1", how, LOSS_HOLD, LOSS_RATE))
        log(f"replace.yml -e service=vcore under {LOSS_RATE:.0f} calls/s through node1's NBI")
        result["replace"] = replace_under_load(lab)
    finally:
        log("taking the bench hosts down")
        hosts("down", "--purge")
    return result


def replace_under_load(lab: node_loss.Lab) -> dict:
    """replace.yml for the cores (a new image: a revision label of this run), under load through node1's NBI."""
    with lab.load_through("node1", LOSS_RATE, 900, "replace-load") as load:
        time.sleep(3)
        revision = json.dumps({"images_labels": {"org.opencontainers.image.revision": f"bench-{time.time():.0f}"}})
        seconds, _, out = playbook("replace.yml", "-e", "service=vcore", "-e", revision)
        time.sleep(3)
    replaced = re.search(r"(\d+)\s+task\(s\)\s+replaced\s+(\S+)\s+in\s+([0-9.]+)\s+s", out)  # folded lines
    return {"seconds": seconds, "tasks": int(replaced.group(1)) if replaced else 0,
            "rollout": float(replaced.group(3)) if replaced else None,
            "sent": load.get("sent", 0), "failed": load.get("failed", 0), "errors": load.get("errors", {})}


def mib(value: int) -> str:
    return f"{value / 2**20:,.0f} MiB"


def section(result: dict, seconds: float) -> list[str]:
    memory = result["memory"]
    engines = sum(n["engine"] for n in memory["nodes"].values())
    containers = sum(n["containers"] for n in memory["nodes"].values())
    met = "met" if result["warm"] <= WARM_TARGET and result["warm_changed"] == 0 else "NOT met"
    lines = [
        BEGIN,
        "## Three hosts (`make lab-cluster`)",
        "",
        f"Written by `make bench-cluster` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC "
        f"in {seconds:.0f} s, "
        "on the machine above (" + "; ".join(machine_facts()[:2]) + "). Three test hosts of the bench's own "
        "(scripts/cluster.py: a network namespace and a Docker Engine each, the registry on node1), "
        "`inventories/cluster` and the shipped defaults. Cold: empty engines, so node1 builds every image "
        "(the debootstrap base and the Go builder included; the wheelhouse was there) and pushes it to the "
        "registry; node2 then pulls every image by itself (timed), and the deploy has node3 pull during "
        "it. Warm: `make lab-cluster` again. Target for warm: at most 90 s and changed=0.",
        "",
        "| run | wall time | tasks changed |",
        "| --- | --- | --- |",
        f"| cold: hosts up | {result['hosts_up']:.1f} s | |",
        f"| cold: build.yml (of which the push) | {result['build']:.0f} s ({result['push']:.1f} s) | |",
        f"| cold: node2 pulls {result['pulled']} images ({mib(result['pulled_bytes'])}) | {result['pull']:.1f} s | |",
        f"| cold: deploy.yml | {result['deploy']:.0f} s | |",
        f"| cold, in all | {result['cold']:.0f} s | {result['cold_changed']} |",
        f"| warm | {result['warm']:.0f} s ({met}) | {result['warm_changed']} |",
        "",
        "Memory at rest (resident, summed over processes): each host's own processes (dockerd, containerd, "
        "the shims; node1's registry) and its containers.",
        "",
        "| host | engine and its processes | containers |",
        "| --- | --- | --- |",
    ]
    for name, node in sorted(memory["nodes"].items()):
        lines.append(f"| {name} | {mib(node['engine'])} | {mib(node['containers'])} |")
    lines += [f"| all three | {mib(engines)} | {mib(containers)} |", "",
              "| service (all its tasks) | resident |", "| --- | --- |"]
    for service, used in sorted(memory["services"].items()):
        lines.append(f"| `{service}` | {mib(used)} |")
    lines += ["", f"The whole cluster at rest: {mib(engines + containers)}.", ""]
    lines += loss_lines(result["losses"])
    replace = result["replace"]
    lines += ["", "### The cores replaced across the nodes", "",
              f"`ansible-playbook -i inventories/cluster playbooks/replace.yml -e service=vcore`, in the same run, "
              f"under {LOSS_RATE:.0f} calls/s through node1's NBI: node1 builds a new image (a revision label of "
              "the run), pushes it once, and the three cores are replaced one task at a time, start-first, "
              f"each node pulling the image. {replace['tasks']} task(s) replaced; the playbook took "
              f"{replace['seconds']:.0f} s (the rollout {_seconds(replace['rollout'])}). Calls: "
              f"{replace['sent']:,}, failed: {replace['failed']}"
              + (" (" + "; ".join(f"{n} × `{e}`" for e, n in replace["errors"].items()) + ")" if replace["errors"]
                 else "") + ". Target: 0 failed.", END]
    return lines


def _seconds(value) -> str:
    return "never" if value is None else f"{value:.2f} s"


def loss_lines(losses: list[dict]) -> list[str]:
    """The node-loss table: one row per fault as tests/support/node_loss.py measured it."""
    how = {"cut": "links cut", "kill": "dockerd SIGKILL"}
    lines = [
        "### A node lost",
        "",
        f"`python -m tests.support.node_loss`, in the same run: under {LOSS_RATE:.0f} calls/s (CreateDevice and "
        f"GetVoltha in turn, one channel) through an NBI on a surviving node, a node is lost for {LOSS_HOLD:.0f} s "
        "(its link cut, or its dockerd killed with SIGKILL while its containers run on) and then returns (link "
        "up, dockerd started again). Times from the fault; the return's from the return. \"lost\" names the "
        "node's cores and, marked +envoyd, its envoyd task. \"Swarm steady\": from when the swarm then kept a "
        "leader and every node Ready for 15 s; in brackets, how long it answered without a leader (a manager "
        "back with a higher Raft term unseats the leader; swarmkit's Raft has no pre-vote). \"Every surviving "
        "envoyd without them\": when the envoyd tasks of the other nodes had applied that assignment (their "
        "/status).",
        "",
        "| fault | lost | calls failed (CreateDevice / GetVoltha) | last failed call ended | reads failed after 1 s "
        "| assignment without its cores | every surviving envoyd without them | swarm marks it down "
        "| back: swarm ready | back: Consul 3 voters "
        "| back: assignment of 3 cores | back: swarm steady (its leader unseated for) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for loss in losses:
        lost = ", ".join(loss["victim_cores"]) or "no core"
        if loss.get("victim_envoyd"):
            lost += " +envoyd"
        fault = how[loss["how"]] + (" (Consul's leader)" if loss.get("victim_consul_leader") else "")
        last = _seconds(loss["last_failure_end"]) if loss["failed"] else "none failed"
        lines.append(
            f"| {fault} | {loss['victim']}: {lost} | {loss['failed']} of {loss['sent']} ({loss['failed_creates']} / "
            f"{loss['failed_reads']}) | {last} | {loss['failed_reads_after_1s']} "
            f"| {_seconds(loss.get('assignment_without_victim')) if loss['victim_cores'] else 'no core lost'} "
            f"| {_seconds(loss.get('envoyd_without_victim')) if loss['victim_cores'] else 'no core lost'} "
            f"| {_seconds(loss.get('swarm_down'))} | {_seconds(loss['back_swarm_ready'])} "
            f"| {_seconds(loss['back_consul_voters'])} | {_seconds(loss['back_assignment_cores'])} "
            f"| {_seconds(loss['back_swarm_steady'])} ({loss['swarm_leaderless']:.1f} s) |")
    errors: dict[str, int] = {}
    for loss in losses:
        for error, count in loss["errors"].items():
            errors[error] = errors.get(error, 0) + count
    if errors:
        lines += ["", "The failed calls' statuses, over all faults: " + "; ".join(
            f"{count} × `{error}`" for error, count in sorted(errors.items(), key=lambda item: -item[1])) + "."]
    spans = [f"{how[loss['how']]}, {loss['victim']}: " + "; ".join(
        f"{span['count']} × `{status}` from {span['from']:.2f} s to {span['until']:.2f} s"
        for status, span in loss["failure_spans"].items()) for loss in losses if loss.get("failure_spans")]
    if spans:
        lines += ["", "When they failed (from the first such call's start to the last one's end, since the "
                  "fault): " + " | ".join(spans) + "."]
    return lines


def write_section(path: Path, lines: list[str]) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = "\n".join(lines) + "\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def kept_section(path: Path) -> str:
    """The section as it stands in ``path`` (for make bench, which rewrites everything else)."""
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        return text[text.index(BEGIN):text.index(END) + len(END)] + "\n"
    return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--settle", type=float, default=30.0, help="seconds at rest before memory is read")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = measure(args.settle)
    write_section(Path(args.output), section(result, time.monotonic() - started))
    log(f"cold {result['cold']:.0f} s, warm {result['warm']:.0f} s (changed={result['warm_changed']}); "
        f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
