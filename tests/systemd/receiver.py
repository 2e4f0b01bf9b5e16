"""Tiny plain-HTTP webhook receiver for tests/systemd/run.sh, run inside the container.

Usage: receiver.py PORT LOG. Appends one JSON line per POST to LOG (path, lower-cased
headers, body, status) and answers 200, except for the first request of each webhook-id
on two paths: /flaky gets 503 (so edgehook logs a retry with its structured fields), and
/slow is logged as "held" and answered only after a minute (an in-flight delivery for the
shutdown test). GET answers 200 "ok" (readiness probe).
"""

import http.server
import json
import sys
import threading
import time

PORT = int(sys.argv[1])
LOG = sys.argv[2]
lock = threading.Lock()
seen = set()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status = 200
        with lock:
            first = (self.path, headers.get("webhook-id")) not in seen
            seen.add((self.path, headers.get("webhook-id")))
            if first and self.path == "/flaky":
                status = 503
            if first and self.path == "/slow":
                status = "held"
            with open(LOG, "a", encoding="utf-8") as f:
                record = {"path": self.path, "status": status, "headers": headers,
                          "body": body.decode("utf-8", "replace")}
                f.write(json.dumps(record) + "\n")
        if status == "held":
            time.sleep(60)
            status = 200
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
