"""Does the cluster answer for every device, whichever core is asked?

python -m voltha_core_sim.device_check NBI [--create N] [--expect ID,...] [--each-core NAME:PORT]
                                           [--lifecycle] [--within SECONDS]

Creates N devices through NBI (and/or takes the ids given with --expect), then checks, until every
check passes or --within seconds have passed: each of --lists ListDevices through NBI lists every one
of them exactly once, GetDevice through NBI finds each, and so does every core behind NAME (all its
addresses, e.g. tasks.vcore:50556 in a swarm). With --lifecycle each device is then enabled,
disabled, enabled, rebooted and deleted through NBI, its states checked after each step. Prints one
JSON document; exit status 1 with the first difference on stderr.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections import Counter

import grpc
from voltha_protos import common_pb2

from .nbi_client import NbiClient, add_tls_arguments, tls_of

ADMIN, OPER, CONNECT = common_pb2.AdminState, common_pb2.OperStatus, common_pb2.ConnectStatus
STEPS = (("enable", (ADMIN.ENABLED, OPER.ACTIVE, CONNECT.REACHABLE)),
         ("disable", (ADMIN.DISABLED, OPER.UNKNOWN, CONNECT.REACHABLE)),
         ("enable", (ADMIN.ENABLED, OPER.ACTIVE, CONNECT.REACHABLE)),
         ("reboot", (ADMIN.ENABLED, OPER.ACTIVE, CONNECT.REACHABLE)))


class CheckFailed(Exception):
    pass


def addresses(name_port: str) -> list[str]:
    """Every address NAME resolves to, as HOST:PORT."""
    name, port = name_port.rsplit(":", 1)
    found = sorted({info[4][0] for info in socket.getaddrinfo(name, int(port), type=socket.SOCK_STREAM)})
    return [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in found]


def listing(client: NbiClient, ids: list[str], where: str) -> str:
    """Check one ListDevices; the core that answered."""
    devices, core = client.list_devices()
    counts = Counter(d.id for d in devices.items)
    twice = sorted(i for i, n in counts.items() if n > 1)
    missing = [i for i in ids if i not in counts]
    if twice or missing:
        raise CheckFailed(f"ListDevices through {where} (core {core}): {len(missing)} of {len(ids)} device(s) "
                          f"missing (e.g. {missing[:3]}), listed twice: {twice[:3]}")
    return core


def reading(client: NbiClient, ids: list[str], where: str) -> None:
    for device_id in ids:
        try:
            device = client.get_device(device_id)[0]
        except grpc.RpcError as err:
            raise CheckFailed(f"GetDevice {device_id} through {where}: {err.code().name}: {err.details()}") from None
        if device.id != device_id:
            raise CheckFailed(f"GetDevice {device_id} through {where} answered device {device.id}")


def check_once(nbi: NbiClient, nbi_address: str, cores: dict[str, NbiClient], ids: list[str], lists: int) -> dict:
    listers = Counter(listing(nbi, ids, nbi_address) for _call in range(lists))
    reading(nbi, ids, nbi_address)
    for address, client in cores.items():
        listing(client, ids, f"core {address}")
        reading(client, ids, f"core {address}")
    return dict(listers)


def lifecycle(nbi: NbiClient, ids: list[str]) -> None:
    for device_id in ids:
        for verb, wanted in STEPS:
            nbi.change(verb, device_id)
            device, core = nbi.get_device(device_id)
            got = (device.admin_state, device.oper_status, device.connect_status)
            if got != wanted:
                raise CheckFailed(f"{device_id} after {verb}: states {got}, wanted {wanted} (read from core {core})")
        nbi.change("delete", device_id)
        try:
            nbi.get_device(device_id)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.NOT_FOUND:
                raise
        else:
            raise CheckFailed(f"{device_id} is still found after DeleteDevice")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voltha_core_sim.device_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("nbi", help="HOST:PORT of the NBI")
    parser.add_argument("--create", type=int, default=0, help="devices to create first (type simulated_olt)")
    parser.add_argument("--expect", default="", help="ids of devices that must be there, comma-separated")
    parser.add_argument("--each-core", help="NAME:PORT resolving to every core, each asked directly")
    parser.add_argument("--lists", type=int, default=9, help="ListDevices calls through NBI (default %(default)s)")
    parser.add_argument("--lifecycle", action="store_true", help="then enable, disable, reboot and delete each")
    parser.add_argument("--within", type=float, default=5.0,
                        help="seconds the checks may take to pass (default %(default)s)")
    add_tls_arguments(parser)
    args = parser.parse_args(argv)
    nbi = NbiClient(args.nbi, tls_of(args))
    cores: dict[str, NbiClient] = {}
    started = time.monotonic()
    try:
        created = [nbi.create("simulated_olt", f"10.{n // 250}.{n % 250}.1:9191")[0].id for n in range(args.create)]
        ids = created + [i for i in args.expect.split(",") if i]
        if args.each_core:
            cores = {address: NbiClient(address) for address in addresses(args.each_core)}
        deadline = started + args.within
        while True:
            try:
                listers = check_once(nbi, args.nbi, cores, ids, args.lists)
                break
            except (CheckFailed, grpc.RpcError) as err:
                if time.monotonic() > deadline:
                    raise CheckFailed(str(err) if isinstance(err, CheckFailed) else
                                      f"{err.code().name}: {err.details()}") from None
                time.sleep(0.1)
        whole = time.monotonic() - started
        if args.lifecycle:
            lifecycle(nbi, ids)
    except (CheckFailed, grpc.RpcError) as err:
        text = str(err) if isinstance(err, CheckFailed) else f"{err.code().name}: {err.details()}"
        print(f"device check: {text}", file=sys.stderr)
        return 1
    finally:
        for client in [nbi, *cores.values()]:
            client.close()
    print(json.dumps({"created": created, "devices": len(ids), "listed_by": listers, "cores": sorted(cores),
                      "whole_after": round(whole, 3), "lifecycle": len(ids) if args.lifecycle else 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
