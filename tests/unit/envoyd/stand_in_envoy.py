"""A stand-in for Envoy in the supervisor's tests (test_supervisor.py runs it as the Envoy binary).

It takes Envoy's flags, serves an admin API on a loopback port it writes to --admin-address-path,
records its arguments (argv.<epoch>) and the admin POSTs it gets (posted) beside that file, and
behaves as the first word of its config file says: serve, exit-at-start, never-ready, or
die-when-ready (SIGSEGV a second after it is live). SIGTERM ends it with status 0.
"""

import argparse
import http.server
import os
import signal
import sys
import threading


def main():
    parser = argparse.ArgumentParser(allow_abbrev=False)  # --base-id is not --base-id-path
    parser.add_argument("-c", dest="config")
    parser.add_argument("--restart-epoch", type=int, default=0)
    parser.add_argument("--admin-address-path")
    parser.add_argument("--base-id-path")
    args, _others = parser.parse_known_args()
    with open(args.config) as handle:
        behaviour = handle.read().split()[0]
    run_dir = os.path.dirname(args.admin_address_path)
    with open(os.path.join(run_dir, "argv.%d" % args.restart_epoch), "w") as handle:
        handle.write(" ".join(sys.argv[1:]))
    if behaviour == "exit-at-start":
        sys.exit(1)
    if args.base_id_path:
        with open(args.base_id_path, "w") as handle:
            handle.write("7")

    class Admin(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, body):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path != "/ready":  # any other page: which Envoy answered what
                self._answer(("epoch %d: %s" % (args.restart_epoch, self.path)).encode())
                return
            self._answer(b"PRE_INITIALIZING" if behaviour == "never-ready" else b"LIVE")

        def do_POST(self):  # noqa: N802
            with open(os.path.join(run_dir, "posted"), "a") as handle:
                handle.write(self.path + "\n")
            self._answer(b"OK")

    server = http.server.HTTPServer(("127.0.0.1", 0), Admin)
    signal.signal(signal.SIGTERM, lambda *_args: os._exit(0))
    if behaviour == "die-when-ready":
        threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGSEGV)).start()
    with open(args.admin_address_path, "w") as handle:
        handle.write("127.0.0.1:%d" % server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
