"""Tiny plain-HTTP webhook receiver for tests/systemd/run.sh, run inside the container.

Usage: receiver.py PORT LOG. Appends one JSON line per POST to LOG (path, lower-cased
headers, body) and answers 200, except the first request for each webhook-id on /flaky,
which gets 503 (so edgehook logs a retry with its structured fields). GET answers 200
"ok" (readiness probe).
"""

import http.server
import json
import sys
import threading

PORT = int(sys.argv[1])
LOG = sys.argv[2]
lock = threading.Lock()
seen_flaky = set()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status = 200
        with lock:
            if self.path == "/flaky" and headers.get("webhook-id") not in seen_flaky:
                seen_flaky.add(headers.get("webhook-id"))
                status = 503
            with open(LOG, "a", encoding="utf-8") as f:
                record = {"path": self.path, "status": status, "headers": headers,
                          "body": body.decode("utf-8", "replace")}
                f.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
