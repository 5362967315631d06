"""python -m voltha_core_sim --core-id ID [--host H] [--port P] [--consul-addr HOST:PORT ...]: run one core.

Without --consul-addr the core only serves gRPC. With it, the core also registers itself in Consul
with a gRPC health check, takes part in the leader election (a session tied to that check, and a
lock key), and, while it is the leader, writes the assignment key: which core serves each core
store. Its devices are kept in its core store (its --prefix) in Consul's KV, under the assignment
key's directory. SIGTERM writes out its devices and deregisters it (its stores then move to other
cores) before the gRPC server stops.

On SIGTERM the core keeps serving until Envoy sends it nothing more: its health service answers
NOT_SERVING, and the gRPC server stops only once no call has arrived for --drain-quiet seconds
(within --drain-time). gRPC's stop ends a call that has arrived but is not yet in a handler with
CANCELLED, which no proxy may retry, so stopping while calls still arrive would fail them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time

from ansible_collections.voltha.envoy.plugins.module_utils._common.log_queue import QueuedLog

from .server import CoreServer

WILDCARDS = ("", "0.0.0.0", "::", "[::]")
HOSTNAME = "@hostname"


def build_parser() -> argparse.ArgumentParser:
    from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import DEFAULT_KEY

    from .election import DEFAULT_LOCK_KEY
    from .registration import DEFAULT_SERVICE_NAME

    parser = argparse.ArgumentParser(prog="voltha_core_sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--core-id", default=os.environ.get("VOLTHA_CORE_ID"),
                        help="the core's id (default: VOLTHA_CORE_ID, e.g. set per swarm task slot)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=50556, help="gRPC port; 0 picks a free one (default %(default)s)")
    consul = parser.add_argument_group("Consul (all optional; nothing below is used without --consul-addr)")
    consul.add_argument("--consul-addr", help="HOST:PORT or URL of the local Consul agent")
    consul.add_argument("--advertise-host",
                        help="address registered in Consul and the assignment (default --host); "
                             f"{HOSTNAME} is the address this host's name resolves to (a container's own address)")
    consul.add_argument("--service-name", default=DEFAULT_SERVICE_NAME, help="default %(default)s")
    consul.add_argument("--prefix", help="the core's home store: its key in the assignment and the start of its "
                                         "device ids (default: the core id)")
    consul.add_argument("--store-root", help="the KV directory of the core stores (default: the assignment "
                                             "key's directory)")
    consul.add_argument("--assignment-key", default=DEFAULT_KEY, help="default %(default)s")
    consul.add_argument("--lock-key", default=DEFAULT_LOCK_KEY, help="default %(default)s")
    consul.add_argument("--check-interval", default="1s", help="gRPC health check interval (default %(default)s)")
    consul.add_argument("--deregister-after", default="1m",
                        help="Consul removes a core critical this long (Consul's minimum is 1m; default %(default)s)")
    consul.add_argument("--consul-wait", default="10s", help="blocking query wait (default %(default)s)")
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="serve Prometheus metrics on --host at this port (default: none)")
    parser.add_argument("--drain-time", type=float, default=5.0,
                        help="on SIGTERM, seconds at most to keep serving until Envoy sends no more calls here "
                             "(health checks answered NOT_SERVING, the assignment without this core) "
                             "(default %(default)s)")
    parser.add_argument("--drain-quiet", type=float, default=0.5,
                        help="on SIGTERM, stop only once no call has arrived for this many seconds, within "
                             "--drain-time (default %(default)s)")
    parser.add_argument("--grace", type=float, default=2.0,
                        help="on SIGTERM, seconds calls in flight get to finish (default %(default)s)")
    return parser


def membership_config(args, port: int):
    """MembershipConfig and ConsulSettings from the parsed arguments; raises ValueError on bad values."""
    from ansible_collections.voltha.envoy.plugins.module_utils._common import durations
    from ansible_collections.voltha.envoy.plugins.module_utils._consul.connection import (
        ConsulSettings,
        settings_from_environment,
        split_address,
    )

    from .membership import MembershipConfig

    advertise = args.advertise_host or args.host
    if advertise == HOSTNAME:
        try:
            advertise = socket.gethostbyname(socket.gethostname())
        except OSError as err:
            raise ValueError(f"--advertise-host {HOSTNAME}: the host name {socket.gethostname()!r} does not "
                             f"resolve: {err}") from None
    if advertise in WILDCARDS:
        raise ValueError(f"--host {args.host!r} listens on every address: give --advertise-host, the address "
                         "Consul and Envoy reach this core at")
    # As Consul takes them (Go durations), whatever form they were given in; --consul-wait 0 is Consul's default.
    check_interval, deregister_after, consul_wait = (
        durations.go_duration(durations.seconds(value, what))
        for value, what in ((args.check_interval, "--check-interval"), (args.deregister_after, "--deregister-after"),
                            (args.consul_wait, "--consul-wait")))
    for value, what in ((check_interval, "--check-interval"), (deregister_after, "--deregister-after")):
        if value == "0s":
            raise ValueError(f"{what} must be more than 0")
    kwargs = settings_from_environment()
    scheme, host, consul_port = split_address(args.consul_addr)
    kwargs.update(host=host, port=consul_port, timeout=5.0)
    if scheme:
        kwargs["scheme"] = scheme
    settings = ConsulSettings(**kwargs)
    from .devices import check_prefix

    check_prefix(args.prefix or args.core_id)
    config = MembershipConfig(core_id=args.core_id, host=advertise, port=port, prefix=args.prefix or args.core_id,
                              store_root=args.store_root,
                              service_name=args.service_name, assignment_key=args.assignment_key,
                              lock_key=args.lock_key, check_interval=check_interval,
                              deregister_after=deregister_after, wait=consul_wait)
    return config, settings


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.core_id:
        parser.error("--core-id (or VOLTHA_CORE_ID) is required")
    # Logging never blocks the thread that logs, even when nothing reads stderr (see log_queue).
    log_writer = QueuedLog(sys.stderr, logging.INFO, f"%(asctime)s core={args.core_id} %(levelname)s %(message)s")
    try:
        return _serve(args, parser)
    finally:
        log_writer.stop()


def _serve(args, parser) -> int:
    membership = None
    if args.consul_addr:
        try:
            config, settings = membership_config(args, args.port)
        except ValueError as err:
            parser.error(str(err))
    metrics = None
    if args.metrics_port:
        from .metrics import CoreMetrics

        metrics = CoreMetrics(args.core_id)
    stores = None
    if args.consul_addr:
        from .core_store import CoreStores, data_root

        root = data_root(config.assignment_key) if args.store_root is None else args.store_root
        stores = CoreStores(args.core_id, config.prefix, root, settings)
    server = CoreServer(args.core_id, args.host, args.port, interceptors=[metrics.interceptor()] if metrics else (),
                        stores=stores, advertise=config.host if args.consul_addr else None).start()
    print(f"core {args.core_id} serving on {server.address}", flush=True)
    if metrics:
        metrics.servicer = server.servicer
        metrics.serve(args.host, args.metrics_port)
        print(f"core {args.core_id} metrics on {args.host}:{args.metrics_port}/metrics", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    if args.consul_addr:
        from .membership import CoreMembership

        config.port = server.port  # --port 0 picked a free one
        membership = CoreMembership(config, settings, on_assignment=server.servicer.set_assignment)
        if metrics:
            metrics.membership = membership
        server.serve_health(membership.instance)  # before registering: the first check must pass
        membership.start()
    done.wait()
    # Keep serving until Envoy no longer sends calls here (its health checks see NOT_SERVING, the
    # assignment drops this core): a rolling update loses none.
    drain_until = time.monotonic() + args.drain_time
    server.drain()
    if membership is not None:
        server.servicer.stores.flush(2.0)  # every device in Consul before our stores move
        membership.stop()
        membership.wait_unassigned(max(0.0, drain_until - time.monotonic()))
    if not server.wait_quiet(args.drain_quiet, max(0.0, drain_until - time.monotonic())):
        print(f"core {args.core_id}: calls still arrived after --drain-time {args.drain_time:g}s; stopping",
              flush=True)
    server.stop(grace=args.grace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
