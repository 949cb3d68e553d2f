#!/usr/bin/env python3
"""Small measuring helpers for bench/run.sh (Python 3 standard library only).

    probe.py free-port
        print a TCP port on 127.0.0.1 that is free right now
    probe.py wait-alive URL --since T0 [--pid PID] [--timeout S]
        poll URL (every 10 ms) until it answers 200; print the seconds since T0
        (a Unix time with fraction, e.g. bash's $EPOCHREALTIME); exit 1 if PID
        dies or S seconds pass
    probe.py measure --log FILE [--pid NAME=PID ...] [--metrics URL --token T
                     [--delta NAME=SERIES ...]] -- COMMAND...
        run COMMAND (stdout and stderr to FILE) and print, as name=value lines,
        its wall time and CPU seconds, the busy CPU seconds of the whole host
        (all CPUs, /proc/stat) meanwhile, and for each NAME=PID the CPU seconds
        (utime + stime from /proc) spent during the command and the VmRSS in MB
        right after it. With --metrics: how much each SERIES grew during the
        command, and then drain_s, as `pending` below, timed from the moment
        COMMAND ended. Exits with COMMAND's status
    probe.py pending URL TOKEN [--cap S] [--interval S]
        poll the Prometheus text at URL (Authorization: Bearer TOKEN) until the
        chihaya_pending_rows samples add up to 0; print the seconds waited, or
        "timeout" after S seconds (default 60)
    probe.py metric URL TOKEN NAME
        print the sum of the samples of metric NAME (any labels), or the value
        of one series when NAME includes its labels: 'name{type="torrents"}'
"""

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Loopback only: never go through an http_proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url, token=None, timeout=2.0):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with OPENER.open(req, timeout=timeout) as resp:
        return resp.status, resp.read()


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def io_counters(pid):
    """The name -> value lines of /proc/PID/io (wchar, write_bytes, ...), or {}."""
    try:
        with open(f"/proc/{pid}/io") as f:
            return {k: int(v) for k, _, v in (line.partition(":") for line in f) if v.strip()}
    except (OSError, ValueError):
        return {}


def host_busy_seconds():
    """CPU seconds the whole host spent not idle (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def metric_sum(text, name):
    """Sum of the samples of NAME (any labels), or of the one series NAME{...}; None
    when the tracker exports no such series (an older build)."""
    ends = (" ",) if "{" in name else ("{", " ")
    total = None
    for line in text.decode("utf-8", "replace").splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ends:
            total = (total or 0.0) + float(line.rsplit(None, 1)[1])
    return total


def growth(before, after):
    """AFTER - BEFORE as printed in name=value lines: empty when either is missing."""
    if before is None or after is None:
        return ""
    grew = after - before
    return int(grew) if grew == int(grew) else grew


def cmd_free_port(_args):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def cmd_wait_alive(args):
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        try:
            status, _ = get(args.url, timeout=1.0)
            if status == 200:
                print(f"{time.time() - args.since:.3f}")
                return 0
        except (OSError, urllib.error.URLError):
            pass
        if args.pid and not os.path.exists(f"/proc/{args.pid}"):
            print(f"probe: process {args.pid} exited before {args.url} answered", file=sys.stderr)
            return 1
        time.sleep(0.01)
    print(f"probe: {args.url} did not answer within {args.timeout:.0f} s", file=sys.stderr)
    return 1


def cmd_measure(args):
    pids = {}
    for item in args.pid or []:
        name, _, pid = item.partition("=")
        if pid:
            pids[name] = pid
    deltas = dict(item.partition("=")[::2] for item in args.delta or [])

    def series():
        _, body = get(args.metrics, args.token)
        return {name: metric_sum(body, s) for name, s in deltas.items()}

    counts = series() if deltas else {}
    io_before = {name: io_counters(pid) for name, pid in pids.items()}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    host_before = host_busy_seconds()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    t0 = time.monotonic()
    with open(args.log, "wb") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    ended = time.monotonic()
    host_after = host_busy_seconds()
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    io_after = {name: io_counters(pid) for name, pid in pids.items()}
    rss = {name: rss_mb(pid) for name, pid in pids.items()}
    if deltas:
        for name, value in series().items():
            print(f"{name}={growth(counts[name], value)}")
    if args.metrics:
        print(f"drain_s={wait_pending(args.metrics, args.token, args.drain_cap, 0.05, ended)}")
        # The database's bill includes the writes of the drain: the same deltas and
        # CPU counted again once nothing is pending (suffix _total).
        if deltas:
            for name, value in series().items():
                print(f"{name}_total={growth(counts[name], value)}")
        for name, pid in pids.items():
            drained = cpu_seconds(pid)
            if before[name] is None or drained is None:
                print(f"{name}_cpu_total_s=")
            else:
                print(f"{name}_cpu_total_s={drained - before[name]:.3f}")
    print(f"wall_s={ended - t0:.3f}")
    print(f"cmd_cpu_s={usage.ru_utime + usage.ru_stime:.3f}")
    print(f"host_cpu_s={host_after - host_before:.3f}")
    print(f"host_cpus={os.cpu_count()}")
    for name, pid in pids.items():
        if before[name] is None or after[name] is None:
            print(f"{name}_cpu_s=")
        else:
            print(f"{name}_cpu_s={after[name] - before[name]:.3f}")
        print(f"{name}_rss_mb={'' if rss[name] is None else f'{rss[name]:.1f}'}")
        for field in ("write_bytes", "wchar"):
            a, b = io_before[name].get(field), io_after[name].get(field)
            print(f"{name}_{field}={'' if a is None or b is None else b - a}")
    return os.waitstatus_to_exitcode(status)


def wait_pending(url, token, cap, interval, t0):
    """Seconds from t0 (monotonic) until no chihaya_pending_rows, or "timeout"."""
    while True:
        try:
            _, body = get(url, token)
            if metric_sum(body, "chihaya_pending_rows") == 0:
                return f"{time.monotonic() - t0:.2f}"
        except (OSError, urllib.error.URLError) as e:
            print(f"probe: {url}: {e}", file=sys.stderr)
        if time.monotonic() - t0 >= cap:
            return "timeout"
        time.sleep(interval)


def cmd_pending(args):
    print(wait_pending(args.url, args.token, args.cap, args.interval, time.monotonic()))


def cmd_metric(args):
    _, body = get(args.url, args.token)
    value = metric_sum(body, args.name)
    if value is None:
        print("n/a")
    else:
        print(int(value) if value == int(value) else value)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("free-port").set_defaults(fn=cmd_free_port)

    p = sub.add_parser("wait-alive")
    p.add_argument("url")
    p.add_argument("--since", type=float, required=True)
    p.add_argument("--pid")
    p.add_argument("--timeout", type=float, default=120)
    p.set_defaults(fn=cmd_wait_alive)

    p = sub.add_parser("measure")
    p.add_argument("--log", required=True)
    p.add_argument("--pid", action="append", metavar="NAME=PID")
    p.add_argument("--metrics", metavar="URL")
    p.add_argument("--token")
    p.add_argument("--delta", action="append", metavar="NAME=SERIES")
    p.add_argument("--drain-cap", type=float, default=60)
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_measure)

    p = sub.add_parser("pending")
    p.add_argument("url")
    p.add_argument("token")
    p.add_argument("--cap", type=float, default=60)
    p.add_argument("--interval", type=float, default=0.05)
    p.set_defaults(fn=cmd_pending)

    p = sub.add_parser("metric")
    p.add_argument("url")
    p.add_argument("token")
    p.add_argument("name")
    p.set_defaults(fn=cmd_metric)

    args = ap.parse_args()
    try:
        sys.exit(args.fn(args) or 0)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
