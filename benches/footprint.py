#!/usr/bin/env python3
"""Footprint of one edgehook binary, for BENCHMARKS.md ("Footprint").

    benches/footprint.py BINARY [--strip STRIP] [--seconds 60] [--starts 20] [--per-event N]

BINARY may be an ARM build: the kernel runs it through qemu-user (binfmt, see
packaging/cross.sh; set QEMU_LD_PREFIX to its sysroot). It measures:

- size: the binary stripped with STRIP (default `strip`), in bytes and MB;
- start to READY: spawn until the READY=1 datagram on NOTIFY_SOCKET, for a fresh state
  directory (the queue is created) and for an existing empty queue; median of --starts;
- idle RSS: VmRSS of the daemon with one endpoint, 5 s after an event was delivered;
- idle wake-ups: the growth of voluntary + nonvoluntary context switches summed over
  /proc/PID/task/*/status across --seconds, per second, once with an online endpoint
  (an HTTP receiver on loopback that took one event) and once with an offline one (a
  refused port, one event queued; measured from --offline-after seconds into the outage,
  when the head is probed on a backoff of a minute or more: the probes of the first
  minute, at 1, 2, 4 … s, are real deadlines and counted apart), and once more online with
  the systemd watchdog on as the shipped unit sets it (WatchdogSec=3min: WATCHDOG_USEC).
  Threads are listed with their own counts, so a wake-up can be traced to its thread;
- with --per-event N: instructions per event, counted by valgrind's callgrind (exact and
  independent of the machine's load, unlike CPU time): a daemon that takes N events one
  by one over HTTP and delivers each to the loopback receiver, minus one that takes none,
  divided by N. For comparing builds (opt-level, features), not for absolute speed.
"""

import argparse
import http.server
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

READY_TIMEOUT = 30.0


def stripped_size(binary, strip):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "edgehook")
        subprocess.run([strip, "-o", out, binary], check=True)
        return os.path.getsize(out)


class Daemon:
    """edgehook run in DIR with one endpoint at URL; start() returns seconds to READY=1."""

    def __init__(self, binary, directory, url, watchdog_usec=None, wrapper=()):
        self.binary, self.dir, self.watchdog_usec = binary, directory, watchdog_usec
        self.wrapper = list(wrapper)
        self.config = os.path.join(directory, "edgehook.toml")
        with open(self.config, "w") as f:
            f.write(
                f'[daemon]\nstate_dir = "{directory}/state"\n'
                f'admin_socket = "{directory}/admin.sock"\n'
                f'[ingest]\nsocket = "{directory}/edgehook.sock"\n'
                f'[[endpoint]]\nname = "one"\nurl = "{url}"\nevents = ["*"]\n'
                "allow_plain_http = true\n"
            )
        os.chmod(self.config, 0o600)
        self.proc = None

    def start(self):
        notify = os.path.join(self.dir, "notify.sock")
        if os.path.exists(notify):
            os.unlink(notify)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify)
        env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_USEC", "LISTEN_FDS")}
        env["NOTIFY_SOCKET"] = notify
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
        log = open(os.path.join(self.dir, "log"), "ab")
        began = time.monotonic()
        self.proc = subprocess.Popen(
            [*self.wrapper, self.binary, "run", "--config", self.config],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        sock.settimeout(READY_TIMEOUT)
        try:
            while True:
                msg = sock.recv(4096).decode()
                if "READY=1" in msg.split("\n"):
                    return time.monotonic() - began
        finally:
            sock.close()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=300)

    def send(self, event_type):
        body = f'{{"type":"{event_type}","data":{{"n":1}}}}'.encode()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(os.path.join(self.dir, "edgehook.sock"))
        s.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: edgehook\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
        s.close()
        assert reply.startswith(b"HTTP/1.1 202"), reply

    def tasks(self):
        """{tid: (name, voluntary + nonvoluntary context switches)}"""
        out = {}
        base = f"/proc/{self.proc.pid}/task"
        for tid in os.listdir(base):
            fields = {}
            try:
                with open(f"{base}/{tid}/status") as f:
                    for line in f:
                        key, _, value = line.partition(":")
                        fields[key] = value.strip()
            except FileNotFoundError:
                continue  # the thread ended meanwhile
            switches = int(fields["voluntary_ctxt_switches"]) + int(
                fields["nonvoluntary_ctxt_switches"]
            )
            out[tid] = (fields["Name"], switches)
        return out

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")


def wakeups(daemon, seconds):
    before = daemon.tasks()
    time.sleep(seconds)
    after = daemon.tasks()
    per_thread = []
    total = 0
    for tid, (name, count) in sorted(after.items()):
        grew = count - before.get(tid, (name, 0))[1]
        total += grew
        per_thread.append(f"{name}/{tid}:{grew}")
    return total / seconds, len(after), per_thread


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers 200 and keeps the connection open, as receivers do (HTTP/1.1 keep-alive):
    the daemon's idle connection pool is part of what is measured."""

    protocol_version = "HTTP/1.1"
    received = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        Receiver.received += 1
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def instructions(binary, url, events):
    """Instructions executed by a daemon that took `events` events and delivered them."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        d = Daemon(binary, tmp, url,
                   wrapper=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
        d.start()
        try:
            got = Receiver.received
            for _ in range(events):
                d.send("footprint.cpu")
            wait_until("the deliveries", lambda: Receiver.received >= got + events, 600)
        finally:
            d.stop()
        with open(out) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    raise RuntimeError(f"no total in {out}")


def wait_until(what, condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"footprint: timed out waiting for {what}")
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--strip", default="strip")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--starts", type=int, default=20)
    ap.add_argument("--offline-after", type=float, default=120)
    ap.add_argument("--per-event", type=int, metavar="N",
                    help="also count instructions per event over N events (callgrind)")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)

    size = stripped_size(binary, args.strip)
    print(f"stripped size: {size} bytes ({size / 1e6:.2f} MB, {size / 2**20:.2f} MiB)")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    online_url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    with socket.socket() as s:  # a port nobody listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        offline_url = f"http://127.0.0.1:{s.getsockname()[1]}/hook"

    if args.per_event:
        idle = instructions(binary, online_url, 0)
        busy = instructions(binary, online_url, args.per_event)
        print(f"instructions per event (callgrind, {args.per_event} events, "
              f"one per request, delivered over plain HTTP): {(busy - idle) / args.per_event:.0f}")

    fresh, existing = [], []
    for _ in range(args.starts):
        with tempfile.TemporaryDirectory() as tmp:
            d = Daemon(binary, tmp, online_url)
            fresh.append(d.start())
            d.stop()
            existing.append(d.start())
            d.stop()
    ms = lambda xs: f"median {statistics.median(xs) * 1e3:.1f} ms, max {max(xs) * 1e3:.1f} ms"
    print(f"start to READY, new queue: {ms(fresh)} ({args.starts} starts)")
    print(f"start to READY, existing empty queue: {ms(existing)} ({args.starts} starts)")

    runs = (
        ("online", online_url, None),
        (f"offline (from {args.offline_after:.0f} s into the outage)", offline_url, None),
        ("online, WatchdogSec=3min", online_url, 180_000_000),
        ("online, WatchdogSec=30s", online_url, 30_000_000),
    )
    for label, url, watchdog_usec in runs:
        with tempfile.TemporaryDirectory() as tmp:
            d = Daemon(binary, tmp, url, watchdog_usec)
            d.start()
            try:
                got = Receiver.received
                d.send("footprint.test")
                if url == online_url:
                    wait_until("the delivery", lambda: Receiver.received > got)
                    time.sleep(5)
                else:
                    first, _, _ = wakeups(d, args.offline_after)
                    print(f"first {args.offline_after:.0f} s of the outage (probes on the backoff): "
                          f"{first:.3f} wake-ups/s")
                rss = d.rss_kib()
                rate, threads, per_thread = wakeups(d, args.seconds)
                print(f"idle, {label} endpoint: RSS {rss} KiB ({rss / 1024:.1f} MiB), "
                      f"{rate:.3f} wake-ups/s over {args.seconds:.0f} s, {threads} threads")
                print(f"  per thread: {' '.join(per_thread)}")
            finally:
                d.stop()
    server.shutdown()


if __name__ == "__main__":
    main()
