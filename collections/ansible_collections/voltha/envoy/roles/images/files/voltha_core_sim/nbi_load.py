"""A steady, paced gRPC load on the NBI, counting every call that failed.

python -m voltha_core_sim.nbi_load ADDRESS [--rate 200] [--duration 60] [--stop-file PATH] [--output FILE]

CreateDevice and GetVoltha alternate on one channel, at --rate calls per second, for --duration
seconds or until --stop-file exists. The result (calls sent, ok, failed, errors by kind, which cores
answered, and the first failed calls with their UTC start time, so they can be laid beside logs) is
printed as JSON, and written to --output too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime

FAILURES_KEPT = 50


def run(address: str, rate: float, duration: float, stop_file: str | None = None, keep_calls: bool = False,
        tls=None) -> dict:
    """The load's counts and its first FAILURES_KEPT failed calls ("failures": start in UTC, seconds,
    method, error); with keep_calls also "calls", every call as (start, seconds, core or None, error
    code or None, method), start on time.monotonic()'s clock."""
    from google.protobuf import empty_pb2
    from voltha_protos import device_pb2, voltha_pb2_grpc

    from .nbi_client import core_of, nbi_channel

    channel = nbi_channel(address, tls)
    stub = voltha_pb2_grpc.VolthaServiceStub(channel)
    lock = threading.Lock()
    counts = {"ok": 0, "failed": 0}
    errors: dict[str, int] = {}
    cores: dict[str, int] = {}
    calls: list[tuple] = []
    failures: list[dict] = []
    wall_offset = time.time() - time.monotonic()
    pending = threading.Semaphore(1000)

    def done(future, create, started):
        pending.release()
        seconds = time.monotonic() - started
        method = "CreateDevice" if create else "GetVoltha"
        err = future.exception()
        key = None
        with lock:
            if err is None:
                counts["ok"] += 1
                core = core_of(future)
                cores[core] = cores.get(core, 0) + 1
            else:
                core = None
                counts["failed"] += 1
                key = f"{err.code().name}: {err.details()}"[:200]
                errors[key] = errors.get(key, 0) + 1
                if len(failures) < FAILURES_KEPT:
                    at = datetime.fromtimestamp(started + wall_offset, UTC)
                    failures.append({"at": at.isoformat(timespec="milliseconds"), "seconds": round(seconds, 4),
                                     "method": method, "error": key})
            if keep_calls:
                calls.append((started, seconds, core, err.code().name if err else None, method, key))

    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < duration and not (stop_file and os.path.exists(stop_file)):
        due = int((time.monotonic() - start) * rate) + 1
        while sent < due:
            pending.acquire()
            create = sent % 2 == 0
            started = time.monotonic()
            if create:
                future = stub.CreateDevice.future(device_pb2.Device(type="simulated_olt"), timeout=10)
            else:
                future = stub.GetVoltha.future(empty_pb2.Empty(), timeout=10)
            future.add_done_callback(lambda f, c=create, t=started: done(f, c, t))
            sent += 1
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    for _slot in range(1000):
        pending.acquire()
    elapsed = time.monotonic() - start
    channel.close()
    result = {"sent": sent, "ok": counts["ok"], "failed": counts["failed"], "errors": errors, "cores": cores,
              "failures": sorted(failures, key=lambda failure: failure["at"]),
              "seconds": elapsed, "rate": sent / elapsed if elapsed else 0.0}
    if keep_calls:
        result["calls"] = sorted(calls)
    return result


def main(argv=None) -> int:
    from .nbi_client import add_tls_arguments, tls_of

    parser = argparse.ArgumentParser(prog="python -m voltha_core_sim.nbi_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address", help="HOST:PORT of the NBI")
    parser.add_argument("--rate", type=float, default=200.0, help="calls per second (default %(default)s)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds at most (default %(default)s)")
    parser.add_argument("--stop-file", help="stop as soon as this file exists")
    parser.add_argument("--output", help="also write the JSON result here")
    add_tls_arguments(parser)
    args = parser.parse_args(argv)
    result = run(args.address, args.rate, args.duration, args.stop_file, tls=tls_of(args))
    text = json.dumps(result)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
