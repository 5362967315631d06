"""Is the cluster whole? The assignment names exactly the running cores, and CreateDevice through
each NBI reaches each of them.

python -m voltha_core_sim.cluster_check NBI [NBI...] --cores ID[,ID...] [--consul HOST:PORT]
    [--assignment-key KEY] [--consul-servers N]

Exit status 0 when all holds; 1 with one line on stderr saying what differs (cores the assignment
lacks or names though they do not run, cores no call through an NBI reached, calls that failed, a
Consul without its N Raft peers or a leader); 2 on bad usage. Several NBIs (one per node of a
cluster): each must answer GetVoltha and reach every core. Without --consul only the calls are
checked. A green answer from one core proves little: a stale entry in the assignment can point at an
address another core has taken, so the cores that answer are compared with the cores that run, by id.
"""

from __future__ import annotations

import argparse
import json
import sys


def consul_reader(consul: str, timeout: float):
    """A BlockingReader of Consul at HOST:PORT or URL, with the token and TLS of the environment."""
    from ansible_collections.voltha.envoy.plugins.module_utils._consul.blocking import BlockingReader
    from ansible_collections.voltha.envoy.plugins.module_utils._consul.connection import (
        ConsulSettings,
        settings_from_environment,
        split_address,
    )

    kwargs = settings_from_environment()
    scheme, host, port = split_address(consul)
    kwargs.update(host=host, port=port, timeout=timeout)
    if scheme:
        kwargs["scheme"] = scheme
    return BlockingReader(ConsulSettings(**kwargs))


def assignment_ids(consul: str, key: str, timeout: float) -> list[str]:
    """The ids of the cores the stored assignment names (once each, however many stores each serves),
    parsed as envoyd parses it; [] when the key is missing."""
    from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import (
        distinct_cores,
        parse_assignment,
    )
    from ansible_collections.voltha.envoy.plugins.module_utils._consul.blocking import kv_reading

    reader = consul_reader(consul, timeout)
    try:
        value = kv_reading(reader, key).value
    finally:
        reader.close()
    return [] if value is None else [core.id for core in distinct_cores(parse_assignment(value))]


def raft_state(consul: str, timeout: float) -> tuple[list[str], str]:
    """(the Raft peers, the leader) that Consul at ``consul`` reports (/v1/status/peers and /leader)."""
    reader = consul_reader(consul, timeout)
    try:
        return reader.get("/v1/status/peers").value or [], reader.get("/v1/status/leader").value or ""
    finally:
        reader.close()


def raft_differences(peers: list[str], leader: str, servers: int) -> list[str]:
    found = []
    if len(peers) != servers:
        found.append(f"Consul reports {len(peers)} Raft peer(s), not {servers}: {sorted(peers)}")
    if not leader:
        found.append("Consul reports no Raft leader")
    return found


def reached(nbi: str, wanted: set[str], calls: int, timeout: float,
            at_least: int = 0, tls=None) -> tuple[dict[str, int], list[str]]:
    """A GetVoltha call, then CreateDevice calls until every wanted core answered, at least
    ``at_least`` and at most ``calls`` of them (round-robin reaches every routed core, wanted or not,
    in two turns): (answers by core, errors)."""
    import grpc

    from .nbi_client import NbiClient

    client = NbiClient(nbi, tls)
    answers: dict[str, int] = {}
    errors: list[str] = []
    try:
        try:
            client.get_voltha(timeout)
        except grpc.RpcError as err:
            errors.append(f"GetVoltha: {err.code().name}: {err.details()}")
        for _call in range(calls):
            try:
                core = client.create_device(timeout)
            except grpc.RpcError as err:
                errors.append(f"{err.code().name}: {err.details()}")
                continue
            answers[core] = answers.get(core, 0) + 1
            if wanted <= set(answers) and _call + 1 >= at_least:
                break
    finally:
        client.close()
    return answers, errors


def differences(running: set[str], assigned: list[str] | None, answers: dict[str, int], errors: list[str]) -> list[str]:
    """What is wrong, in words; [] when the cluster is whole."""
    return assignment_differences(running, assigned) + answer_differences(running, answers, errors)


def assignment_differences(running: set[str], assigned: list[str] | None) -> list[str]:
    found = []
    if assigned is not None:
        if set(assigned) - running:
            found.append(f"the assignment names cores that do not run: {sorted(set(assigned) - running)}")
        if running - set(assigned):
            found.append(f"the assignment lacks running cores: {sorted(running - set(assigned))}")
    return found


def answer_differences(running: set[str], answers: dict[str, int], errors: list[str]) -> list[str]:
    found = []
    if running - set(answers):
        found.append(f"no CreateDevice reached {sorted(running - set(answers))} (answers: {answers})")
    if set(answers) - running:
        found.append(f"cores that should not run answered: {sorted(set(answers) - running)}")
    if errors:
        found.append(f"{len(errors)} call(s) failed, e.g. {errors[0]}")
    return found


def main(argv=None) -> int:
    from .nbi_client import add_tls_arguments, tls_of

    parser = argparse.ArgumentParser(prog="python -m voltha_core_sim.cluster_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("nbi", nargs="+", help="HOST:PORT of the NBI (several: each must reach every core)")
    parser.add_argument("--cores", required=True, help="ids of the cores that run, comma-separated")
    parser.add_argument("--consul", help="HOST:PORT or URL of Consul, to compare the assignment too")
    parser.add_argument("--assignment-key", default="service/voltha/data/core/assignment")
    parser.add_argument("--consul-servers", type=int, default=0,
                        help="with --consul: the Raft peers Consul must report, and a leader (default: not checked)")
    parser.add_argument("--calls", type=int, default=0, help="CreateDevice calls at most (default: 4 per core)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per call (default %(default)s)")
    add_tls_arguments(parser)
    args = parser.parse_args(argv)
    running = {core for core in args.cores.split(",") if core}
    if not running:
        parser.error("--cores names no core")
    assigned = None
    found = []
    if args.consul:
        try:
            assigned = assignment_ids(args.consul, args.assignment_key, args.timeout)
            found += assignment_differences(running, assigned)
            if args.consul_servers:
                found += raft_differences(*raft_state(args.consul, args.timeout), args.consul_servers)
        except Exception as err:  # any failure to read or parse: say which
            print(f"cluster check: cannot read {args.assignment_key} from {args.consul}: "
                  f"{type(err).__name__}: {err}", file=sys.stderr)
            return 1
    routed = running | set(assigned or ())
    answers = {}
    for nbi in args.nbi:
        answers[nbi], errors = reached(nbi, running, max(args.calls or 4 * len(routed), 2 * len(routed)),
                                       args.timeout, at_least=2 * len(routed), tls=tls_of(args))
        found += [f"{nbi}: {what}" if len(args.nbi) > 1 else what
                  for what in answer_differences(running, answers[nbi], errors)]
    if found:
        print("cluster check: " + "; ".join(found), file=sys.stderr)
        return 1
    print(json.dumps({"cores": sorted(running), "assigned": assigned,
                      "answers": answers[args.nbi[0]] if len(args.nbi) == 1 else answers}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
