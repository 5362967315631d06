"""python -m voltha_core_sim --core-id ID [--host H] [--port P]: run one simulated core until SIGTERM."""

import argparse
import signal
import sys
import threading

from .server import CoreServer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="voltha_core_sim", description=__doc__)
    parser.add_argument("--core-id", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50556)
    args = parser.parse_args(argv)
    server = CoreServer(args.core_id, args.host, args.port).start()
    print(f"core {args.core_id} serving on {server.address}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop(grace=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
