"""Is the cluster whole? The assignment names exactly the running cores, and CreateDevice through
the NBI reaches each of them.

python -m voltha_core_sim.cluster_check NBI --cores ID[,ID...] [--consul HOST:PORT] [--assignment-key KEY]

Exit status 0 when both hold; 1 with one line on stderr saying what differs (cores the assignment
lacks or names though they do not run, cores no call reached, calls that failed); 2 on bad usage.
Without --consul only the calls are checked. A green answer from one core proves little: a stale
entry in the assignment can point at an address another core has taken, so the cores that answer
are compared with the cores that run, by id.
"""

from __future__ import annotations

import argparse
import json
import sys


def assignment_ids(consul: str, key: str, timeout: float) -> list[str]:
    """The ids of the cores the stored assignment names (once each, however many stores each serves),
    parsed as envoyd parses it; [] when the key is missing."""
    from ansible_collections.voltha.envoy.plugins.module_utils._assignment.model import (
        distinct_cores,
        parse_assignment,
    )
    from ansible_collections.voltha.envoy.plugins.module_utils._consul.blocking import BlockingReader, kv_reading
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
    reader = BlockingReader(ConsulSettings(**kwargs))
    try:
        value = kv_reading(reader, key).value
    finally:
        reader.close()
    return [] if value is None else [core.id for core in distinct_cores(parse_assignment(value))]


def reached(nbi: str, wanted: set[str], calls: int, timeout: float,
            at_least: int = 0, tls=None) -> tuple[dict[str, int], list[str]]:
    """CreateDevice calls until every wanted core answered, at least ``at_least`` and at most ``calls``
    of them (round-robin reaches every routed core, wanted or not, in two turns): (answers by core,
    errors)."""
    import grpc

    from .nbi_client import NbiClient

    client = NbiClient(nbi, tls)
    answers: dict[str, int] = {}
    errors: list[str] = []
    try:
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
    found = []
    if assigned is not None:
        if set(assigned) - running:
            found.append(f"the assignment names cores that do not run: {sorted(set(assigned) - running)}")
        if running - set(assigned):
            found.append(f"the assignment lacks running cores: {sorted(running - set(assigned))}")
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
    parser.add_argument("nbi", help="HOST:PORT of the NBI")
    parser.add_argument("--cores", required=True, help="ids of the cores that run, comma-separated")
    parser.add_argument("--consul", help="HOST:PORT or URL of Consul, to compare the assignment too")
    parser.add_argument("--assignment-key", default="service/voltha/data/core/assignment")
    parser.add_argument("--calls", type=int, default=0, help="CreateDevice calls at most (default: 4 per core)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per call (default %(default)s)")
    add_tls_arguments(parser)
    args = parser.parse_args(argv)
    running = {core for core in args.cores.split(",") if core}
    if not running:
        parser.error("--cores names no core")
    assigned = None
    if args.consul:
        try:
            assigned = assignment_ids(args.consul, args.assignment_key, args.timeout)
        except Exception as err:  # any failure to read or parse: say which
            print(f"cluster check: cannot read {args.assignment_key} from {args.consul}: "
                  f"{type(err).__name__}: {err}", file=sys.stderr)
            return 1
    routed = running | set(assigned or ())
    answers, errors = reached(args.nbi, running, max(args.calls or 4 * len(routed), 2 * len(routed)), args.timeout,
                              at_least=2 * len(routed), tls=tls_of(args))
    found = differences(running, assigned, answers, errors)
    if found:
        print("cluster check: " + "; ".join(found), file=sys.stderr)
        return 1
    print(json.dumps({"cores": sorted(running), "assigned": assigned, "answers": answers}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
