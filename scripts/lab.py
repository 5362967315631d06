"""The local lab as processes on this machine: Consul, three simulated cores, envoyd with Envoy.

    python scripts/lab.py up      start everything, make a smoke call
    python scripts/lab.py down    stop what `up` started (by the PIDs it recorded)
    python scripts/lab.py status  show what runs

Ports (all on 127.0.0.1 except the NBI): Consul HTTP 8500 (and 8800-8802 inside), cores
50556-50558, the NBI 50555 on 0.0.0.0, Envoy admin 8001, envoyd status 8080; --port-offset N moves
them all. State, logs and PIDs are in .state/lab/ (--state DIR). --no-envoyd leaves envoyd out, for
scenarios that install it themselves.

The cores behave as in the stack: registered in Consul, their leader writes the assignment, each
keeps its core store in Consul's KV, and any core answers for any device. With --static-assignment
they run without Consul and this script writes the assignment once, for scenarios that drive the
assignment themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIM_DIR = REPO / "collections/ansible_collections/voltha/envoy/roles/images/files"  # the core simulator
STATE = Path(os.environ.get("STATE_DIR", REPO / ".state")) / "lab"
PYTHON = REPO / ".venv" / "bin" / "python"
CONSUL_BIN = Path(os.environ.get("STATE_DIR", REPO / ".state")) / "bin" / "consul"
CONSUL_PORT, NBI_PORT, ADMIN_PORT, STATUS_PORT = 8500, 50555, 8001, 8080
CORE_PORTS = (50556, 50557, 50558)
KEY = "service/voltha/data/core/assignment"


def configure(args) -> None:
    """Apply --state and --port-offset to the module's settings."""
    global STATE, CONSUL_PORT, NBI_PORT, ADMIN_PORT, STATUS_PORT, CORE_PORTS
    if args.state:
        STATE = Path(args.state).resolve()
    o = args.port_offset
    CONSUL_PORT, NBI_PORT, ADMIN_PORT, STATUS_PORT = 8500 + o, 50555 + o, 8001 + o, 8080 + o
    CORE_PORTS = tuple(p + o for p in (50556, 50557, 50558))


def env() -> dict:
    result = dict(os.environ)
    envoyd_package = REPO / "collections/ansible_collections/voltha/envoy/roles/envoyd/files"
    result["PYTHONPATH"] = os.pathsep.join([str(REPO / "collections"), str(envoyd_package), str(SIM_DIR)])
    return result


def pids() -> dict[str, int]:
    path = STATE / "pids.json"
    return json.loads(path.read_text()) if path.exists() else {}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def start(name: str, argv: list[str], started: dict[str, int]) -> None:
    log = open(STATE / f"{name}.log", "ab")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env(), cwd=STATE)
    started[name] = proc.pid
    (STATE / "pids.json").write_text(json.dumps(started, indent=1))


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def wait(what: str, check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"lab: {what} did not come up within {timeout:.0f}s; see the logs in {STATE}")


def assigned() -> dict:
    """The stored assignment, {} while it is missing or Consul does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{CONSUL_PORT}/v1/kv/{KEY}?raw", timeout=2) as answer:
            return json.loads(answer.read())
    except (OSError, ValueError):
        return {}


def up(with_envoyd: bool = True, static_assignment: bool = False) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    started = {name: pid for name, pid in pids().items() if alive(pid)}
    wanted = {"consul", *(f"vcore{i}" for i in range(1, len(CORE_PORTS) + 1))} | ({"envoyd"} if with_envoyd else set())
    if set(started) == wanted:
        print("lab: already up")
        return smoke() if with_envoyd else 0
    down(quiet=True)
    started = {}
    t0 = time.monotonic()
    internal = CONSUL_PORT + 300  # server and serf ports, moved with the offset so two labs can run
    ports = {"http": CONSUL_PORT, "server": internal, "serf_lan": internal + 1, "serf_wan": internal + 2,
             "dns": -1, "grpc": -1}
    (STATE / "consul.json").write_text(json.dumps({"ports": ports, "disable_update_check": True,
                                                   "log_level": "warn"}))
    start("consul", [str(CONSUL_BIN), "agent", "-dev",
                     "-bind", "127.0.0.1", "-client", "127.0.0.1", "-config-file", str(STATE / "consul.json")], started)
    wait("Consul", lambda: http_ok(f"http://127.0.0.1:{CONSUL_PORT}/v1/status/leader"))
    assignment = {}
    for i, port in enumerate(CORE_PORTS, 1):
        argv = [str(PYTHON), "-m", "voltha_core_sim", "--core-id", f"core-{i}", "--port", str(port)]
        if not static_assignment:
            argv += ["--consul-addr", f"127.0.0.1:{CONSUL_PORT}", "--prefix", f"vcore{i}", "--drain-time", "2"]
        start(f"vcore{i}", argv, started)
        assignment[f"vcore{i}"] = {"id": f"core-{i}", "host": "127.0.0.1", "port": port}
    if static_assignment:
        req = urllib.request.Request(f"http://127.0.0.1:{CONSUL_PORT}/v1/kv/{KEY}",
                                     data=json.dumps(assignment).encode(), method="PUT")
        urllib.request.urlopen(req, timeout=5).read()
    else:
        wait("the cores' assignment", lambda: assigned() == assignment)
    if not with_envoyd:
        print(f"lab: Consul 127.0.0.1:{CONSUL_PORT} and cores {', '.join(f'127.0.0.1:{p}' for p in CORE_PORTS)} "
              f"up in {time.monotonic() - t0:.1f}s")
        return 0
    start("envoyd", [str(PYTHON), "-m", "envoyd", "--consul-addr", f"127.0.0.1:{CONSUL_PORT}",
                     "--config-dir", str(STATE / "envoyd"), "--status-addr", f"127.0.0.1:{STATUS_PORT}",
                     "--var", f"listen_port={NBI_PORT}", "--var", f"admin_port={ADMIN_PORT}",
                     "--var", f"access_log_path={STATE / 'access.log'}", "--drain-time", "1s"], started)
    wait("envoyd", lambda: http_ok(f"http://127.0.0.1:{STATUS_PORT}/healthz"))
    print(f"lab: up in {time.monotonic() - t0:.1f}s: Consul 127.0.0.1:{CONSUL_PORT}, cores "
          f"{', '.join(f'127.0.0.1:{p}' for p in CORE_PORTS)}, NBI 0.0.0.0:{NBI_PORT} (Envoy admin "
          f"127.0.0.1:{ADMIN_PORT}, envoyd status http://127.0.0.1:{STATUS_PORT}/status)")
    return smoke()


def smoke() -> int:
    from voltha_core_sim.nbi_client import NbiClient

    client = NbiClient(f"127.0.0.1:{NBI_PORT}")
    try:
        answers = [client.create_device() for _ in range(3)]
    finally:
        client.close()
    print(f"lab: CreateDevice through Envoy answered by {', '.join(answers)}")
    print("lab: stop it with `make lab-down`")
    return 0


def down(quiet: bool = False) -> int:
    recorded = pids()
    for pid in recorded.values():
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for pid in recorded.values():
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    (STATE / "pids.json").unlink(missing_ok=True)
    if not quiet:
        print(f"lab: stopped {len(recorded)} processes" if recorded else "lab: nothing was running")
    return 0


def status() -> int:
    for name, pid in pids().items():
        print(f"{name:8} pid {pid:7} {'running' if alive(pid) else 'gone'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="lab.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="up", choices=["up", "down", "status"])
    parser.add_argument("--state", help="directory for logs and PIDs (default: .state/lab)")
    parser.add_argument("--port-offset", type=int, default=0, help="added to every port")
    parser.add_argument("--no-envoyd", action="store_true", help="start Consul and the cores only")
    parser.add_argument("--static-assignment", action="store_true",
                        help="cores without Consul; write the assignment once instead of their leader")
    args = parser.parse_args()
    configure(args)
    if args.command == "up":
        return up(with_envoyd=not args.no_envoyd, static_assignment=args.static_assignment)
    return down() if args.command == "down" else status()


if __name__ == "__main__":
    sys.exit(main())
