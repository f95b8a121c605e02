"""A STAND-IN for a platform service that cannot be built here, written by openi-tasks.

Listens on every port that the service's manifest gives it in the environment (SERVER_PORT for
rest-server and webportal, LAUNCHER_WEBSERVER_PORT for frameworklauncher, GF_SERVER_HTTP_PORT for
Grafana) and answers 200 on every path, with a body and a header that say it is a stand-in.
"""

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_VARIABLES = ("SERVER_PORT", "LAUNCHER_WEBSERVER_PORT", "GF_SERVER_HTTP_PORT")


class StandIn(BaseHTTPRequestHandler):
    def do_GET(self):
        port = self.server.server_address[1]
        body = f"openi-tasks STAND-IN (not the real service) on port {port}: {self.command} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("X-Openi-Stand-In", str(port))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_GET


def main():
    ports = sorted({int(os.environ[name]) for name in PORT_VARIABLES if os.environ.get(name, "").isdigit()})
    if not ports:
        raise SystemExit(f"stand-in: none of {', '.join(PORT_VARIABLES)} is set")
    servers = [ThreadingHTTPServer(("", port), StandIn) for port in ports]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"openi-tasks STAND-IN serving on port(s) {', '.join(map(str, ports))}", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
