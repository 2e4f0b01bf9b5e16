#!/usr/bin/env python3
"""Issue 14's throughput table in one command, for a quiet machine.

Builds the throughput bench once, then runs issue 14's rig (`EDGEHOOK_BENCH=nginx`: Debian's
nginx; `EDGEHOOK_BENCH=builtin`: the built-in receiver) `--runs` times each (default 3):
100 000 events of 213 bytes over the line socket (defaults, and concurrency 32) and over
HTTP from 64 clients, signed, fsync per ack. Prints every run's rows, then one table of
medians (events/s, CPU ms per 1 000 events, bytes written per event, peak RSS) against
the goals. Needs `apt-get install nginx openssl` for the nginx rig.

    benches/quiet_window.py [--runs 3] [--events 100000] [--rigs nginx,builtin]

Events/s mean something only on a quiet machine: the load average is printed before and
after, and a warning when it was above 1 before the runs (afterwards it includes the
runs themselves: the daemon, the receiver and the load generator keep 2 cores busy).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys

ROW = re.compile(
    r"^(?P<name>.+?)\s+(?P<events>\d+)\s+(?P<secs>[\d.]+)\s+(?P<evps>\d+)\s+(?P<cpu>[\d.]+)"
    r"\s+(?P<written>\d+) B\s+(?P<rss>[\d.]+) MiB\s*(?P<receiver>.*)$"
)
GOALS = {
    "lines, defaults": "≥ 45 000 events/s, ≤ 25 ms CPU/1k, ≤ 24 MiB",
    "http 64 clients, defaults": "≥ 30 000 events/s",
}


def build(root):
    out = subprocess.run(
        ["cargo", "bench", "--bench", "throughput", "--no-run", "--message-format", "json"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout
    exe = None
    for line in out.splitlines():
        if '"executable":"' in line and "throughput" in line:
            exe = re.search(r'"executable":"([^"]+)"', line).group(1)
    if not exe:
        sys.exit("cargo did not report the throughput bench executable")
    return exe


def run(exe, rig, events, root):
    env = dict(os.environ, EDGEHOOK_BENCH=rig, EDGEHOOK_BENCH_EVENTS=str(events))
    text = subprocess.run([exe], cwd=root, env=env, check=True, capture_output=True,
                          text=True).stdout
    print(text, end="", flush=True)
    rows = {}
    for line in text.splitlines():
        m = ROW.match(line)
        if m and m["name"] != "scenario":
            rows[m["name"].strip()] = m
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rigs", default="nginx,builtin")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    exe = build(root)
    results = {}  # name -> list of matches
    for rig in args.rigs.split(","):
        for i in range(args.runs):
            print(f"--- {rig}, run {i + 1} of {args.runs}", flush=True)
            for name, m in run(exe, rig, args.events, root).items():
                results.setdefault(name, []).append(m)
    load_after = os.getloadavg()
    print(f"\nload average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    if load_before[0] > 1.0:
        print("WARNING: the machine was not quiet (load average above 1): events/s are not comparable")
    print(f"\nMedians of {args.runs} runs, {args.events} events each:\n")
    print("| scenario | runs | events/s (each) | events/s median | CPU ms/1k | written/event | peak RSS | goal |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    for name, ms in results.items():
        med = lambda k: statistics.median(float(m[k]) for m in ms)
        each = ", ".join(m["evps"] for m in ms)
        goal = next((g for k, g in GOALS.items() if name.startswith(k)), "")
        print(f"| {name} | {len(ms)} | {each} | {med('evps'):.0f} | {med('cpu'):.1f} | "
              f"{med('written'):.0f} B | {med('rss'):.1f} MiB | {goal} |")


if __name__ == "__main__":
    main()
