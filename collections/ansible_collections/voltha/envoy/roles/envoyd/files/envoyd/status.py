# Copyright (c) voltha.envoy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""envoyd's status server: /healthz, /status and /metrics over HTTP, on a thread of its own."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ansible_collections.voltha.envoy.plugins.module_utils._consul.connection import split_address


class StatusServer:
    """/healthz, /status, /metrics and the serving Envoy's /envoy/stats/prometheus on a small HTTP server thread."""

    def __init__(self, address, daemon):
        host, port = split_address(address, default_port=8080)[1:]
        outer = daemon

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server API)
                if self.path == "/healthz":
                    ok = outer.healthy()
                    self._send(200 if ok else 503, outer.health_text() if ok else "not serving a validated config\n")
                elif self.path in ("/status", "/status?brief=1"):
                    # brief=1: without the cores and Envoy's view of each (a /clusters dump of Envoy and
                    # megabytes of JSON at 10,000 cores), for who asks often.
                    report = outer.status_report(brief=self.path != "/status")
                    self._send(200, json.dumps(report, indent=2) + "\n", "application/json")
                elif self.path == "/metrics":
                    outer.healthy()  # envoyd_up is worked out when it is asked for
                    body, content_type = outer.metrics.exposition()
                    self._send(200, body, content_type)
                elif self.path == "/envoy/stats/prometheus":
                    # The serving Envoy's own metrics; its admin API itself stays on loopback.
                    try:
                        self._send(200, outer.envoy_admin("/stats/prometheus"), "text/plain; version=0.0.4")
                    except Exception as err:  # Envoy starting or gone: say so, do not crash the server
                        self._send(503, "envoy's metrics are not available: %s\n" % err)
                else:
                    self._send(404, "not found\n")

            def _send(self, code, body, content_type="text/plain"):
                data = body if isinstance(body, bytes) else body.encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        # No periodic wake-ups while idle: stop() wakes the loop with a connection of its own.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 3600},
                                       name="status", daemon=True)

    @property
    def address(self):
        host, port = self.server.server_address[:2]
        return "%s:%d" % (host, port)

    def start(self):
        self.thread.start()

    def stop(self):
        stopper = threading.Thread(target=self.server.shutdown)
        stopper.start()
        while stopper.is_alive():
            try:
                socket.create_connection(self.server.server_address[:2], timeout=1).close()
            except OSError:
                pass
            stopper.join(0.05)
        self.server.server_close()
