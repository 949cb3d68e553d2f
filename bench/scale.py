#!/usr/bin/env python3
"""Trackers behind HAProxy, sharded by info_hash (`make bench-scale`).

    bench/scale.py --binary PATH --run-dir DIR --sidecar FILE --dsn DSN --haproxy-cfg CFG
                   --mysql CLIENT --db-user U --db-name DB
                   (--db-host H --db-port P | --db-socket S) [--mariadb-pid PID]
                   [--haproxy HAPROXY] [--duration D] [--peers P] [--conns C] [--seed S]
                   [--wrk WRK]

bench/scale.sh (the make target) builds the tracker or takes BENCH_BINARY, makes sure
the `chihaya_bench` dataset is loaded (100,000 torrents by default) and haproxy is
installed, and calls this. Three phases, one after the other, each from scratch: the
accounting columns of the bench database reset as bench/hostile.py does, fresh
trackers in DIR/<phase>/<instance>/ (config `addr` on a free 127.0.0.1 port,
`admin_token`, `log_flushes` false, `"instance": "a"` or `"b"`, `"proxy": "X-Real-IP"`;
DB_DSN to the bench database; peer cache, spill file and journal there; stdout and
stderr in tracker.log), every tracker loading the whole dataset:

1. direct: one tracker "a"; wrk talks to it.
2. haproxy_1: the same, with HAProxy in front (one `server` line); wrk talks to HAProxy.
3. haproxy_2: trackers "a" and "b" behind HAProxy; wrk talks to HAProxy, which sends
   each announce to one of them by a consistent hash of its info_hash.

HAProxy runs CFG (contrib/haproxy/chihaya.cfg) with only these changes, written to
DIR/<phase>/haproxy/haproxy.cfg: `bind :80` listens on a free 127.0.0.1 port instead;
the `server` lines keep their form (`server a ADDR id 1 ...`) with ADDR the trackers'
ports, and the line of an instance the phase does not run is left out; `chroot`,
`user` and `group` are dropped unless this runs as root and the directory, user and
group exist. It runs in the foreground (`haproxy -db -f FILE`, log in haproxy.log);
when it cannot raise its file descriptor limit to the file's `maxconn` (a container
without CAP_SYS_RESOURCE), it is started again with `-n N`, N what the limit allows,
and the summary says so. It is started once the trackers are ready, and the phase
waits until GET /check through it answers 200.

In each phase: the fill (every one of P simulated peers announces once, wrk with
bench/announce.lua mode=populate, sent where the phase's load goes), then the pending
accounting rows of every tracker written, then the measured run (wrk -t1 -cC -dD
--timeout 5s, mode=run). Over exactly that run: utime + stime (/proc) of every tracker,
of haproxy and of the local mariadbd, wrk's own CPU, the host's busy CPU (/proc/stat),
and per tracker the growth of chihaya_announce_duration_seconds_count (announces it
answered; /metrics with the admin token, asked of each tracker directly). Then
haproxy and the trackers are stopped (SIGTERM).

Output: progress on stderr; at the end a table (one column per phase), the ratios,
and one `SCALE section=<name> key=value ...` line per section on stdout (logfmt),
also written to DIR/summary.txt. Exit status 1 when a phase failed to run or a check
failed: a fill announce or a run announce that was not a success, a HAProxy server
reported DOWN, a tracker of phase 3 that answered no announce of the run.
"""

import grp
import os
import pwd
import re
import resource
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import probe  # noqa: E402  (cpu_seconds, host_busy_seconds)
from common import BenchError, ratio, say  # noqa: E402

common.PROG = "bench-scale"
HAPROXY_READY_TIMEOUT = 15
HAPROXY_STOP_TIMEOUT = 10
ANNOUNCES = "chihaya_announce_duration_seconds_count"
# Each phase: key, column title, instances, HAProxy in front.
PHASES = [
    ("direct", "direct → a", ["a"], False),
    ("haproxy_1", "HAProxy → a", ["a"], True),
    ("haproxy_2", "HAProxy → a, b", ["a", "b"], True),
]
FD_ALERT = "Cannot raise FD limit"


# ------------------------------------------------------------------ haproxy --
def privileges_usable(text):
    """Whether the global chroot / user / group lines of the config can be kept: we
    run as root and the directory, the user and the group exist."""
    if os.geteuid() != 0:
        return False
    for line in text.splitlines():
        words = line.split()
        try:
            if words[:1] == ["chroot"] and not os.path.isdir(words[1]):
                return False
            if words[:1] == ["user"]:
                pwd.getpwnam(words[1])
            if words[:1] == ["group"]:
                grp.getgrnam(words[1])
        except (IndexError, KeyError):
            return False
    return True


def rewrite_cfg(text, port, servers, keep_privileges):
    """The config with `bind :80` on 127.0.0.1:port and the `server NAME ADDR ...`
    lines of the names in servers ({name: port}) pointed at 127.0.0.1:port; the
    server lines of other names are left out, and unless keep_privileges the
    global chroot / user / group lines. Anything else stays as it is."""
    out, binds, seen = [], 0, set()
    section = None
    for line in text.splitlines():
        words = line.split()
        if words and not words[0].startswith("#") and not line[:1].isspace():
            section = words[0]
        indent = line[: len(line) - len(line.lstrip())]
        if not words or words[0].startswith("#"):
            out.append(line)
        elif words[0] == "bind":
            if words[1:2] != [":80"]:
                raise BenchError(f"unexpected bind line in the HAProxy config: {line.strip()!r}")
            binds += 1
            out.append(indent + " ".join(["bind", f"127.0.0.1:{port}"] + words[2:]))
        elif words[0] == "server":
            if len(words) < 3:
                raise BenchError(f"unexpected server line in the HAProxy config: {line.strip()!r}")
            name = words[1]
            if name in servers:
                seen.add(name)
                out.append(indent + " ".join(["server", name, f"127.0.0.1:{servers[name]}"] + words[3:]))
        elif section == "global" and words[0] in ("chroot", "user", "group") and not keep_privileges:
            continue
        else:
            out.append(line)
    if binds != 1:
        raise BenchError(f"the HAProxy config has {binds} `bind :80` lines, not one")
    missing = sorted(set(servers) - seen)
    if missing:
        raise BenchError(f"the HAProxy config has no `server` line for {', '.join(missing)}")
    head = ("# Written by bench/scale.py from contrib/haproxy/chihaya.cfg: `bind :80` and the\n"
            "# server lines rewritten" + ("" if keep_privileges else ", chroot / user / group dropped")
            + ".\n")
    return head + "\n".join(out) + "\n"


def global_maxconn(text):
    section = None
    for line in text.splitlines():
        words = line.split()
        if words and not words[0].startswith("#") and not line[:1].isspace():
            section = words[0]
        elif section == "global" and words[:1] == ["maxconn"] and len(words) > 1:
            return int(words[1])
    return None


class HAProxy(common.Child):
    """haproxy -db -f FILE in its own directory; stopped at exit like the trackers."""

    what = "haproxy"

    def __init__(self, bench, phase, servers):
        self.b = bench
        self.dir = os.path.join(bench.args.run_dir, phase, "haproxy")
        os.makedirs(self.dir, exist_ok=True)
        self.port = common.free_port()
        self.cfg_path = os.path.join(self.dir, "haproxy.cfg")
        with open(self.cfg_path, "w") as f:
            f.write(rewrite_cfg(bench.cfg_text, self.port, servers, bench.keep_privileges))
        os.chmod(self.cfg_path, 0o644)  # readable once haproxy dropped root
        self.log_path = os.path.join(self.dir, "haproxy.log")
        self.proc = None

    def _spawn(self):
        cmd = [self.b.args.haproxy, "-db"]
        if self.b.maxconn_override:
            cmd += ["-n", str(self.b.maxconn_override)]
        cmd += ["-f", self.cfg_path]
        self.spawn(cmd, self.log_path, cwd=self.dir)

    def log_text(self):
        return self.log_bytes().decode("utf-8", "replace")

    def start(self):
        t0 = time.monotonic()
        self._spawn()
        while True:
            if self.proc.poll() is not None:
                self.stop()
                text = self.log_text()
                if FD_ALERT in text and not self.b.maxconn_override:
                    # The file's maxconn needs more file descriptors than we may open.
                    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                    self.b.maxconn_override = max(256, (hard - 1000) // 2)
                    say(f"haproxy cannot raise its file descriptor limit (hard limit {hard}) to the "
                        f"config's maxconn {self.b.maxconn}: starting it with -n {self.b.maxconn_override}")
                    with open(self.log_path, "ab") as f:
                        f.write(f"--- started again with -n {self.b.maxconn_override}\n".encode())
                    return self.start()
                last = text.strip().splitlines()[-1:] or ["(nothing)"]
                raise BenchError(f"haproxy exited {self.proc.returncode}: {last[0]} (see {self.log_path})")
            try:
                conn = common.HttpConn(("127.0.0.1", self.port), timeout=1.0)
                try:
                    status, _ = conn.get("/check")
                finally:
                    conn.close()
                if status == 200:
                    break
            except (OSError, EOFError):
                pass
            if time.monotonic() - t0 > HAPROXY_READY_TIMEOUT:
                raise BenchError(f"GET /check through haproxy did not answer 200 within "
                                 f"{HAPROXY_READY_TIMEOUT} s (see {self.log_path})")
            time.sleep(0.02)
        say(f"haproxy pid {self.pid} on 127.0.0.1:{self.port} answers /check after "
            f"{time.monotonic() - t0:.2f} s")
        return self

    def down_lines(self):
        return [line for line in self.log_text().splitlines() if " is DOWN" in line]

    def stop(self, timeout=HAPROXY_STOP_TIMEOUT):
        """SIGTERM (with -db: stop now), wait (SIGKILL after timeout); returns the exit code."""
        return self.terminate(timeout)


# -------------------------------------------------------------------- bench --
class Bench:
    def __init__(self, args):
        self.args = args
        self.h = common.Harness(args, "bench-scale-admin-")  # the sidecar, the mariadb client, trackers
        with open(args.haproxy_cfg) as f:
            self.cfg_text = f.read()
        self.keep_privileges = privileges_usable(self.cfg_text)
        self.maxconn = global_maxconn(self.cfg_text)
        self.maxconn_override = None
        self.mariadb_pid = args.mariadb_pid or None
        self.failed_checks = []

    def phase(self, key, names, proxied):
        """One phase from scratch; returns its figures (a dict)."""
        a = self.args
        r = {"key": key, "names": names, "proxied": proxied}
        say(f"--- {key}: {'HAProxy → ' if proxied else 'direct → '}{', '.join(names)}")
        self.h.reset_accounting()
        trackers = {}
        hp = None
        try:
            t0 = time.monotonic()
            for n in names:  # all started before any is waited for: they load side by side
                trackers[n] = self.h.tracker(f"{key}/{n}", config={"instance": n, "proxy": "X-Real-IP"})
            for t in trackers.values():
                t.start()
            r["startup_s"] = time.monotonic() - t0
            if proxied:
                hp = HAProxy(self, key, {n: t.port for n, t in trackers.items()})
                hp.start()
                port = hp.port
            else:
                port = trackers[names[0]].port

            # The fill.
            t0 = time.monotonic()
            f = common.run_wrk(a, f"{key}-populate", port, 60 + a.peers // 1000, "populate")
            r["fill_s"] = time.monotonic() - t0
            r["fill_ok"] = int(f.get("ok", 0))
            r["peers"] = {n: int(common.msum(t.metrics(), "chihaya_peers")) for n, t in trackers.items()}
            say(f"fill: {f.get('ok')} of {a.peers} announces OK, failures {f.get('failures')}, in "
                f"{r['fill_s']:.1f} s; peers held: "
                + ", ".join(f"{n} {p}" for n, p in r["peers"].items()))
            if r["fill_ok"] != a.peers:
                self.failed_checks.append(f"{key}: {r['fill_ok']} of {a.peers} fill announces OK")
            for n, t in trackers.items():
                say(f"accounting rows of the fill written by {n} after {t.wait_written()} s")

            # The measured run.
            before = {n: common.msum(t.metrics(), ANNOUNCES) for n, t in trackers.items()}
            pids = {f"tracker_{n}": t.pid for n, t in trackers.items()}
            if hp:
                pids["haproxy"] = hp.pid
            if self.mariadb_pid:
                pids["mariadb"] = self.mariadb_pid
            cpu0 = {k: probe.cpu_seconds(p) for k, p in pids.items()}
            host0, w0 = probe.host_busy_seconds(), time.monotonic()
            w = common.run_wrk(a, f"{key}-run", port, a.duration, "run")
            r["wall_s"] = time.monotonic() - w0
            host1 = probe.host_busy_seconds()
            cpu1 = {k: probe.cpu_seconds(p) for k, p in pids.items()}
            r["cpu_s"] = {k: (cpu1[k] - cpu0[k] if cpu0[k] is not None and cpu1[k] is not None else None)
                          for k in pids}
            r["host_cpu_s"] = host1 - host0
            r["wrk"] = w
            after = {n: common.msum(t.metrics(), ANNOUNCES) for n, t in trackers.items()}
            r["announces"] = {n: int(after[n] - before[n]) for n in names}
            say(f"{key}: {float(w['rps']):.0f} announces/s, p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms, "
                f"failures {w['failures']}, non200 {w['non200']}; announces answered: "
                + ", ".join(f"{n} {c}" for n, c in r["announces"].items()))
            bad = int(w["failures"]) + int(w["non200"]) + int(w["sock_errors"])
            if bad:
                self.failed_checks.append(
                    f"{key}: failures {w['failures']}, non200 {w['non200']}, socket errors {w['sock_errors']}")
            if len(names) > 1:
                for n, c in r["announces"].items():
                    if c <= 0:
                        self.failed_checks.append(f"{key}: tracker {n} answered no announce of the run")
            if hp:
                down = hp.down_lines()
                if down:
                    self.failed_checks.append(f"{key}: HAProxy reported a server DOWN: {down[0]}")
        finally:
            if hp is not None and hp.proc is not None:
                hp.stop()
            r["stop"] = {}
            for n, t in trackers.items():
                rc, secs = t.stop()
                r["stop"][n] = (rc, secs)
                if rc != 0:
                    self.failed_checks.append(f"{key}: tracker {n} exited {rc} after SIGTERM")
        return r


# ------------------------------------------------------------------- output --
def us(cpu_s, n):
    return None if cpu_s is None or not n else cpu_s * 1e6 / n


def fmt(x, digits=1):
    return "–" if x is None else f"{x:.{digits}f}"


def mfmt(x, digits=1):
    """fmt for the machine lines: empty when unknown."""
    return "" if x is None else f"{x:.{digits}f}"


def figures(r, ncpu):
    """(table rows, machine items) of one phase."""
    w = r["wrk"]
    n = int(w["requests"]) or 0
    wall = r["wall_s"]
    cpu = r["cpu_s"]
    names = r["names"]
    tracker_cpu = {x: cpu.get(f"tracker_{x}") for x in names}
    hp_cpu = cpu.get("haproxy")
    db_cpu = cpu.get("mariadb")
    all_trackers = sum(v for v in tracker_cpu.values() if v is not None)
    servers = all_trackers + (hp_cpu or 0) + (db_cpu or 0)
    known = w["wrk_cpu_s"] + servers
    total_ann = sum(r["announces"].values())
    items = [("rps", f"{float(w['rps']):.0f}"), ("requests", n),
             ("p50_ms", w["p50_ms"]), ("p99_ms", w["p99_ms"]), ("p999_ms", w["p999_ms"]),
             ("max_ms", w["max_ms"]), ("failures", w["failures"]), ("non200", w["non200"]),
             ("sock_errors", w["sock_errors"])]
    rows = {
        "rps": f"{float(w['rps']):.0f}",
        "lat": f"{float(w['p50_ms']):.2f} / {float(w['p99_ms']):.2f}",
        "bad": f"{w['failures']} / {w['non200']} / {w['sock_errors']}",
    }
    for x in ("a", "b"):
        if x in names:
            per = us(tracker_cpu[x], n)
            own = us(tracker_cpu[x], r["announces"][x])
            rows[f"cpu_{x}"] = f"{fmt(per)} / {fmt(own)}"
            items += [(f"tracker_{x}_cpu_s", mfmt(tracker_cpu[x], 3)), (f"tracker_{x}_cpu_us", mfmt(per)),
                      (f"tracker_{x}_cpu_us_per_own", mfmt(own))]
        else:
            rows[f"cpu_{x}"] = "–"
    hp_us = us(hp_cpu, n)
    rows["cpu_haproxy"] = fmt(hp_us)
    if r["proxied"]:
        items += [("haproxy_cpu_s", mfmt(hp_cpu, 3)), ("haproxy_cpu_us_per_request", mfmt(hp_us))]
    rows["cpu_db"] = fmt(us(db_cpu, n))
    items += [("mariadb_cpu_s", mfmt(db_cpu, 3)), ("mariadb_cpu_us", mfmt(us(db_cpu, n)))]
    rows["cpu_trackers"] = fmt(us(all_trackers, n))
    rows["cpu_servers"] = fmt(us(servers, n))
    items += [("trackers_cpu_us", mfmt(us(all_trackers, n))), ("servers_cpu_us", mfmt(us(servers, n)))]
    busy = 100 * r["host_cpu_s"] / wall / ncpu
    rows["host"] = f"{busy:.0f} %"
    rows["cores"] = " / ".join([f"{w['wrk_cpu_s'] / wall:.2f}", f"{all_trackers / wall:.2f}",
                                fmt(None if hp_cpu is None else hp_cpu / wall, 2),
                                fmt(None if db_cpu is None else db_cpu / wall, 2),
                                f"{(r['host_cpu_s'] - known) / wall:.2f}"])
    items += [("host_busy_pct", f"{busy:.0f}"), ("wall_s", f"{wall:.2f}"),
              ("wrk_cpu_s", f"{w['wrk_cpu_s']:.3f}"), ("host_cpu_s", f"{r['host_cpu_s']:.3f}"),
              ("rest_cores", f"{(r['host_cpu_s'] - known) / wall:.2f}")]
    rows["peers"] = " / ".join(str(r["peers"][x]) for x in names)
    rows["announces"] = " / ".join(
        f"{r['announces'][x]}" + (f" ({100 * r['announces'][x] / total_ann:.1f} %)" if len(names) > 1 and total_ann else "")
        for x in names)
    for x in names:
        items += [(f"peers_{x}", r["peers"][x]), (f"announces_{x}", r["announces"][x])]
        if total_ann:
            items.append((f"share_{x}_pct", f"{100 * r['announces'][x] / total_ann:.1f}"))
    rows["fill"] = f"{r['fill_ok']} OK, {r['fill_s']:.1f} s"
    rows["stop"] = " / ".join(f"{secs:.1f} s" for _, secs in r["stop"].values())
    items += [("fill_ok", r["fill_ok"]), ("fill_s", f"{r['fill_s']:.1f}"),
              ("startup_s", f"{r['startup_s']:.1f}")]
    return rows, items


ROWS = [
    ("rps", "announces/s"),
    ("lat", "latency p50 / p99 (ms)"),
    ("bad", "failures / non200 / socket errors"),
    ("cpu_a", "tracker a CPU µs per announce: all / its own"),
    ("cpu_b", "tracker b CPU µs per announce: all / its own"),
    ("cpu_haproxy", "haproxy CPU µs per request"),
    ("cpu_db", "MariaDB CPU µs per announce"),
    ("cpu_trackers", "trackers' CPU µs per announce"),
    ("cpu_servers", "trackers + haproxy + MariaDB µs/announce"),
    ("host", "host busy"),
    ("cores", "cores: wrk / trackers / haproxy / DB / rest"),
    ("peers", "peers after the fill (a / b)"),
    ("announces", "announces answered in the run (a / b)"),
    ("fill", "fill"),
    ("stop", "tracker shutdown (a / b)"),
]


def render(header, results, ratio_lines, notes):
    ncpu = os.cpu_count() or 1
    cols = []
    for key, title, _, _ in PHASES:
        r = results.get(key)
        cols.append((title, figures(r, ncpu)[0] if r and "wrk" in r else {}))
    w0 = max(len(label) for _, label in ROWS)
    widths = [max([len(title)] + [len(c.get(k, "–")) for k, _ in ROWS]) for title, c in cols]
    out = [header, "",
           "  ".join([f"{'':<{w0}}"] + [f"{t:>{w}}" for (t, _), w in zip(cols, widths)]),
           "  ".join(["-" * w0] + ["-" * w for w in widths])]
    for k, label in ROWS:
        out.append("  ".join([f"{label:<{w0}}"] + [f"{c.get(k, '–'):>{w}}" for (_, c), w in zip(cols, widths)]))
    out += [""] + ratio_lines + [""] + notes
    return "\n".join(out)


def parse_args():
    ap = common.arg_parser(__doc__, 1800)
    ap.add_argument("--haproxy-cfg", required=True, help="contrib/haproxy/chihaya.cfg")
    ap.add_argument("--haproxy", default="haproxy")
    common.add_load_args(ap)
    args = ap.parse_args()
    if args.duration < 1 or args.peers < 1 or args.conns < 1:
        ap.error("--duration, --peers and --conns must be positive")
    return args


def main():
    args = parse_args()
    common.begin(args)
    t_all = time.monotonic()
    b = Bench(args)
    version = common.version_of([args.binary, "-V"])
    hp_version = common.version_of([args.haproxy, "-v"])
    m = re.search(r"version (\S+)", hp_version)
    hp_version = m.group(1) if m else hp_version
    ncpu = os.cpu_count() or 1
    header = (f"bench-scale: {args.binary} ({version}); haproxy {hp_version}; "
              f"{len(b.h.data.passkeys)} users, {len(b.h.data.hashes)} torrents, {args.peers} peers; "
              f"wrk 1 thread, {args.conns} connections, {args.duration} s per run; {ncpu} CPUs")
    say(header.split(": ", 1)[1])
    results, failed = {}, None
    try:
        for key, _, names, proxied in PHASES:
            results[key] = b.phase(key, names, proxied)
    except KeyboardInterrupt:
        say("interrupted")
        common.stop_all()
        return 130
    except Exception as e:  # noqa: BLE001 - report it, stop what runs
        failed = common.failed_with(e)
        common.stop_all()
    finally:
        b.h.db.close()

    sections = []
    for key, _, _, _ in PHASES:
        r = results.get(key)
        if r and "wrk" in r:
            sections.append((key, figures(r, ncpu)[1]))

    def per_announce(r):
        n = int(r["wrk"]["requests"]) or 1
        return sum(v for v in r["cpu_s"].values() if v is not None) * 1e6 / n

    ratio_lines, ratio_items = [], []
    for num, den, what in (("haproxy_1", "direct", "HAProxy → a / direct → a"),
                           ("haproxy_2", "haproxy_1", "HAProxy → a, b / HAProxy → a")):
        rn, rd = results.get(num), results.get(den)
        if not (rn and rd and "wrk" in rn and "wrk" in rd):
            continue
        wn, wd = rn["wrk"], rd["wrk"]
        r_rps = ratio(wn["rps"], wd["rps"])
        r50, r99 = ratio(wn["p50_ms"], wd["p50_ms"]), ratio(wn["p99_ms"], wd["p99_ms"])
        r_cpu = ratio(per_announce(rn), per_announce(rd))
        ratio_lines.append(f"{what}: announces/s ×{r_rps}, p50 ×{r50}, p99 ×{r99}, "
                           f"CPU of trackers + haproxy + MariaDB per announce ×{r_cpu}")
        ratio_items += [(f"{num}_vs_{den}_rps", r_rps), (f"{num}_vs_{den}_p50", r50),
                        (f"{num}_vs_{den}_p99", r99), (f"{num}_vs_{den}_servers_cpu", r_cpu)]
    if ratio_items:
        sections.append(("ratios", ratio_items))

    notes = []
    if b.maxconn_override:
        notes.append(f"haproxy ran with -n {b.maxconn_override} (the config's maxconn {b.maxconn} needs more "
                     f"file descriptors than the hard limit {resource.getrlimit(resource.RLIMIT_NOFILE)[1]})")
    notes.append("haproxy config: contrib/haproxy/chihaya.cfg with bind and server lines rewritten"
                 + ("" if b.keep_privileges else ", chroot / user / group dropped (not root)")
                 + f"; see {os.path.relpath(args.run_dir)}/<phase>/haproxy/haproxy.cfg")
    if ncpu <= 2:
        notes.append(f"on {ncpu} CPUs a second tracker adds no CPU: HAProxy → a, b measures HAProxy's "
                     "cost and the split, not headroom")
    if failed:
        notes.append(f"FAILED: {failed}")
    for c in b.failed_checks:
        say(f"CHECK FAILED: {c}")
    checks = "ok" if not b.failed_checks and not failed else "; ".join(
        ([failed] if failed else []) + b.failed_checks)
    notes.append("checks: " + ("all passed" if checks == "ok" else "FAILED: " + checks))
    run_items = [("binary", args.binary), ("version", version), ("haproxy", hp_version),
                 ("haproxy_maxconn_override", b.maxconn_override or ""),
                 ("haproxy_privileges_kept", int(b.keep_privileges)),
                 ("users", len(b.h.data.passkeys)), ("torrents", len(b.h.data.hashes)),
                 ("peers", args.peers), ("conns", args.conns), ("duration_s", args.duration),
                 ("cpus", ncpu), ("total_s", f"{time.monotonic() - t_all:.0f}"), ("checks", checks)]
    sections.append(("run", run_items))
    text = render(f"{header}; total {time.monotonic() - t_all:.0f} s", results, ratio_lines, notes)
    text += "\n\n" + "\n".join(common.machine_line("SCALE", "section", name, items)
                                for name, items in sections)
    common.finish(args, text)
    return 1 if failed or b.failed_checks else 0


if __name__ == "__main__":
    sys.exit(main())
