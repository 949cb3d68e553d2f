#!/usr/bin/env python3
"""What the push API costs and gives (`make bench-push`).

    bench/push.py --binary PATH --run-dir DIR --sidecar FILE --dsn DSN
                  --mysql CLIENT --db-user U --db-name DB
                  (--db-host H --db-port P | --db-socket S) [--mariadb-pid PID]
                  [--iterations N] [--duration D] [--push-rate R] [--push-batch B]
                  [--peers P] [--conns C] [--seed S] [--wrk WRK]

bench/push.sh (the make target) builds the tracker or takes BENCH_BINARY, makes sure
the `chihaya_bench` dataset is loaded (1,000,000 torrents by default), and calls this.
One tracker is started in DIR/tracker/ (config with `addr` on a free 127.0.0.1 port,
`admin_token`, `push_token`, `log_flushes` false and
`intervals.database_reload_with_push` 86400, so no reload runs during the bench;
DB_DSN to the bench database; peer cache, spill file and journal in that directory;
stdout and stderr in tracker.log), after the accounting columns of the bench database
were reset as bench/hostile.py does. It is stopped at exit, also on error or Ctrl-C.

In this order, on that one tracker:

1. fill: every one of P simulated peers announces once (wrk, bench/announce.lua
   mode=populate), as in `make bench`.
2. announces alone: wrk -t1 -cC -dD --timeout 5s -s bench/announce.lua (mode=run),
   nothing else. Before it, and before 3, 4 and 5, the accounting rows the previous
   step left are written (until chihaya_pending_rows is 0).
3. announces + pushes: the same wrk run again while a thread of this script POSTs
   /push on one keep-alive connection: B `update_torrent` operations per request
   (each a new torrent: a random info_hash, an id above the catalogue's), at R
   operations per second (request n is due at start + n * B / R; one that is late
   goes at once; R = 0: each as soon as the previous answer is in). The loop starts
   right before wrk and stops when wrk ends.
4. announces after the pushes: the same wrk run once more, nothing else. The torrents
   pushed in 3 stay laid over the catalogue (no reload), so it tells a slowdown in 3
   that the push requests cause (gone here) from one of the overlay (still here) or
   from drift over the runs.
5. push to next announce: N times, on two keep-alive connections (one for /push, one
   for announces): push one `update_torrent` of a new torrent (a random info_hash,
   not in the catalogue; an id above the catalogue's and above those of 3),
   then at once announce on it (user i mod U + 1, an approved client's peer_id,
   left=0, event=started) and require a success (the body starts with
   `d8:complete`). Before the push, the first 10 of them announce once and must get
   `This torrent does not exist`. A first announce that fails is counted and
   repeated (every 1 ms, up to 2 s) until it succeeds. Timed: the push's round trip,
   the announce's, and from sending the push to the successful announce's last byte.

Output: progress on stderr; at the end a table and one `PUSH section=<name>
key=value ...` line per section on stdout (logfmt), also written to DIR/summary.txt.
Exit status 1 when a step failed to run or a check failed (a first announce after a
push that was not a success, a sanity announce that succeeded, a refused push).
"""

import gc
import http.client
import json
import math
import os
import secrets
import socket
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import probe  # noqa: E402  (cpu_seconds, host_busy_seconds)
from common import BenchError, ratio, say  # noqa: E402

common.PROG = "bench-push"
SANITY = 10  # announces that must fail before their push
RELOAD_WITH_PUSH = 86400
RETRY_FOR = 2.0  # seconds a failed first announce after a push is repeated
MISSING = b"This torrent does not exist"


def pct(values, p):
    """The p-th percentile (nearest rank) of values, or None."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def ms(x, digits=3):
    return "" if x is None else f"{x * 1000:.{digits}f}"


def dist(values):
    """p50 / p99 / max of latencies in seconds, as ms strings."""
    return ms(pct(values, 50)), ms(pct(values, 99)), ms(max(values) if values else None)


class Bench:
    def __init__(self, args):
        self.args = args
        self.h = common.Harness(args, "bench-push-admin-")  # the sidecar, the mariadb client, trackers
        self.push_token = "bench-push-" + secrets.token_hex(16)
        self.data = self.h.data
        self.users = len(self.data.passkeys)
        self.torrents = len(self.data.hashes)
        self.next_id = self.torrents  # ids of pushed torrents: above the catalogue's
        self.id_lock = threading.Lock()
        self.tracker = None
        self.failed_checks = []
        self.mariadb_pid = args.mariadb_pid or None

    # ------------------------------------------------------------ pushes --
    def new_torrent(self):
        """(id, info_hash hex) of a torrent the catalogue does not have."""
        with self.id_lock:
            self.next_id += 1
            tid = self.next_id
        return tid, secrets.token_hex(20)

    @staticmethod
    def update_torrent(tid, info_hash):
        return {"op": "update_torrent", "id": tid, "info_hash": info_hash,
                "group_id": 1, "type": "anime"}

    def push(self, conn, ops):
        """POST /push; (status, body)."""
        body = json.dumps(ops if len(ops) != 1 else ops[0], separators=(",", ":"))
        conn.request("POST", "/push", body=body, headers={
            "Authorization": f"Bearer {self.push_token}",
            "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()

    def conn(self):
        c = http.client.HTTPConnection("127.0.0.1", self.tracker.port, timeout=10)
        c.connect()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return c

    def announce_path(self, uid, info_hash_hex, peer_id):
        ih = urllib.parse.quote_from_bytes(bytes.fromhex(info_hash_hex), safe="")
        return (f"/{self.data.passkey(uid)}/announce?info_hash={ih}&peer_id={peer_id}"
                f"&port=51413&uploaded=0&downloaded=0&left=0&event=started&compact=1")

    @staticmethod
    def get(conn, path):
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()

    # --------------------------------------------------------------- wrk --
    def wrk(self, label, seconds, mode):
        """common.run_wrk against the tracker."""
        return common.run_wrk(self.args, label, self.tracker.port, seconds, mode)

    def drain(self, what):
        say(f"accounting rows of the {what} written after {self.tracker.wait_written()} s")

    # ------------------------------------------------------------ phases --
    def start(self, rep):
        t = self.h.tracker("tracker", config={
            "push_token": self.push_token,
            "intervals": {"database_reload_with_push": RELOAD_WITH_PUSH}})
        self.tracker = t.start()
        startup = time.monotonic() - t.t0
        m = t.metrics()
        self.reloads0 = common.msum(m, "chihaya_reload_seconds_count", type="torrents")
        self.pushed0 = common.msum(m, "chihaya_push_operations_total", op="update_torrent")
        rep.put("startup_s", f"{startup:.1f}", "tracker start-up (Ready line)", f"{startup:.1f} s")

    def fill(self, rep):
        t0 = time.monotonic()
        r = self.wrk("populate", 60 + self.args.peers // 1000, "populate")
        peers = common.msum(self.tracker.metrics(), "chihaya_peers")
        secs = time.monotonic() - t0
        say(f"fill: {r.get('answered')} of {self.args.peers} announces answered, ok {r.get('ok')}, "
            f"failures {r.get('failures')}, in {secs:.1f} s; tracker holds {int(peers)} peers")
        rep.put("peers", int(peers), "peers after the fill",
                f"{int(peers)} ({r.get('ok')} of {self.args.peers} fill announces OK, {secs:.1f} s)")

    def load(self, label, pushes):
        """One measured wrk run, with a push loop beside it when pushes; returns figures."""
        a = self.args
        self.drain("previous step")
        loop = PushLoop(self, a.push_rate, a.push_batch) if pushes else None
        pid = self.tracker.pid
        cpu0 = probe.cpu_seconds(pid)
        db0 = probe.cpu_seconds(self.mariadb_pid) if self.mariadb_pid else None
        host0, w0 = probe.host_busy_seconds(), time.monotonic()
        if loop:
            loop.start()
        try:
            r = self.wrk(label, a.duration, "run")
        finally:
            if loop:
                loop.stop_event.set()
                loop.join()
        wall = time.monotonic() - w0
        host1, cpu1 = probe.host_busy_seconds(), probe.cpu_seconds(pid)
        db1 = probe.cpu_seconds(self.mariadb_pid) if self.mariadb_pid else None
        r["wall_s"] = wall
        r["tracker_cpu_s"] = cpu1 - cpu0
        r["mariadb_cpu_s"] = db1 - db0 if db0 is not None and db1 is not None else None
        r["host_cpu_s"] = host1 - host0
        r["push"] = loop
        if loop and loop.error:
            raise BenchError(f"push loop: {loop.error}")
        say(f"{label}: {float(r['rps']):.0f} announces/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
            f"failures {r['failures']}, non200 {r['non200']}"
            + (f"; {loop.ops / loop.seconds:.0f} push ops/s, refused {loop.refused}" if loop else ""))
        if loop and loop.refused:
            self.failed_checks.append(f"{loop.refused} pushes refused during the load")
        return r

    def host_line(self, r):
        wall = r["wall_s"]
        push_cpu = r["push"].cpu_s if r["push"] else 0.0
        db = r["mariadb_cpu_s"]
        known = r["wrk_cpu_s"] + r["tracker_cpu_s"] + (db or 0) + push_cpu
        ncpu = os.cpu_count() or 1
        return (f"{100 * r['host_cpu_s'] / wall / ncpu:.0f} % of {ncpu} CPUs: wrk {r['wrk_cpu_s'] / wall:.2f}, "
                f"tracker {r['tracker_cpu_s'] / wall:.2f}, "
                f"MariaDB {'n/a' if db is None else f'{db / wall:.2f}'}, "
                f"push client {push_cpu / wall:.2f}, rest {(r['host_cpu_s'] - known) / wall:.2f} cores")

    def put_load(self, rep, r):
        rps = float(r["rps"])
        n = int(r["requests"]) or 1
        rep.put("rps", f"{rps:.0f}", "announces/s")
        rep.put("p50_ms", r["p50_ms"], "announce latency p50 / p99 / p99.9 / max",
                f"{float(r['p50_ms']):.2f} / {float(r['p99_ms']):.2f} / "
                f"{float(r['p999_ms']):.1f} / {float(r['max_ms']):.1f} ms")
        rep.items.append(("p99_ms", r["p99_ms"], None, None))
        rep.items.append(("p999_ms", r["p999_ms"], None, None))
        rep.items.append(("max_ms", r["max_ms"], None, None))
        bad = f"failures {r['failures']}  non200 {r['non200']}  socket errors {r['sock_errors']}"
        rep.put("failures", r["failures"], "announce failures", bad)
        rep.items.append(("non200", r["non200"], None, None))
        rep.items.append(("sock_errors", r["sock_errors"], None, None))
        cpu_us = r["tracker_cpu_s"] * 1e6 / n
        rep.put("tracker_cpu_us", f"{cpu_us:.1f}", "tracker CPU per announce", f"{cpu_us:.1f} µs")
        rep.put("host", self.host_line(r), "host")

    def next_announce(self, rep):
        a = self.args
        pc, ac = self.conn(), self.conn()
        rtt, total, ann = [], [], []
        sanity_ok = sanity_bad = 0
        first_failed = never = 0
        reasons = {}
        gc.disable()
        try:
            for i in range(a.iterations):
                tid, ih = self.new_torrent()
                uid = i % self.users + 1
                client = self.data.clients[i % len(self.data.clients)]
                path = self.announce_path(uid, ih, f"{client}{i:012d}")
                if i < SANITY:
                    status, body = self.get(ac, path)
                    if status == 200 and MISSING in body:
                        sanity_ok += 1
                    else:
                        sanity_bad += 1
                        say(f"sanity: announce before the push answered {status} {body[:80]!r}")
                op = self.update_torrent(tid, ih)
                t0 = time.perf_counter()
                status, body = self.push(pc, [op])
                t1 = time.perf_counter()
                if status != 200 or body != b'{"applied":1}':
                    raise BenchError(f"push answered {status} {body[:200]!r}")
                status, body = self.get(ac, path)
                t2 = time.perf_counter()
                if not (status == 200 and body.startswith(b"d8:complete")):
                    first_failed += 1
                    why = common.failure_reason(body) or f"HTTP {status}"
                    reasons[why] = reasons.get(why, 0) + 1
                    while time.perf_counter() - t1 < RETRY_FOR:
                        time.sleep(0.001)
                        status, body = self.get(ac, path)
                        t2 = time.perf_counter()
                        if status == 200 and body.startswith(b"d8:complete"):
                            break
                    else:
                        never += 1
                        continue
                rtt.append(t1 - t0)
                total.append(t2 - t0)
                ann.append(t2 - t1)
        finally:
            gc.enable()
            pc.close()
            ac.close()
        n = a.iterations
        for key, label, values in (("push_rtt", "push round trip", rtt),
                                   ("push_to_announce", "push sent → announce OK", total),
                                   ("announce", "the announce after it", ann)):
            p50, p99, mx = dist(values)
            rep.put(f"{key}_p50_ms", p50, f"{label} p50 / p99 / max", f"{p50} / {p99} / {mx} ms")
            rep.items.append((f"{key}_p99_ms", p99, None, None))
            rep.items.append((f"{key}_max_ms", mx, None, None))
        shown = f"{n - first_failed} of {n}"
        if first_failed:
            shown += (f" (FAILED: {first_failed} refused: "
                      + "; ".join(f"{r} x{c}" for r, c in reasons.items())
                      + f"; {never} still refused after {RETRY_FOR:.0f} s)")
            self.failed_checks.append(f"{first_failed} first announces after a push were refused")
        rep.put("first_ok", n - first_failed, "first announce after the push succeeds", shown)
        rep.items.append(("first_failed", first_failed, None, None))
        rep.items.append(("never_ok", never, None, None))
        checked = min(SANITY, n)
        rep.put("sanity_ok", sanity_ok, 'announce before the push: "This torrent does not exist"',
                f"{sanity_ok} of {checked}" + (" (FAILED)" if sanity_bad else ""))
        if sanity_bad:
            self.failed_checks.append(f"{sanity_bad} announces before their push did not say {MISSING.decode()}")
        say(f"push → announce: {n} iterations, p50 {ms(pct(total, 50))} ms, p99 {ms(pct(total, 99))} ms, "
            f"first announce refused {first_failed}")

    def checks(self, rep, pushed_ops):
        m = self.tracker.metrics()
        reloads = common.msum(m, "chihaya_reload_seconds_count", type="torrents") - self.reloads0
        counted = common.msum(m, "chihaya_push_operations_total", op="update_torrent") - self.pushed0
        refused = common.msum(m, "chihaya_push_refused_total")
        rep.put("reloads", int(reloads), "torrent reloads during the bench (want 0)")
        rep.put("pushed_ops", int(counted), "update_torrent operations the tracker counted",
                f"{int(counted)} (this script sent {pushed_ops})")
        rep.put("push_refused", int(refused), "pushes refused (chihaya_push_refused_total)")
        if reloads:
            self.failed_checks.append(f"{int(reloads)} torrent reloads during the bench")
        if int(counted) != pushed_ops:
            self.failed_checks.append(f"the tracker counted {int(counted)} pushed operations, not {pushed_ops}")


class PushLoop(threading.Thread):
    """update_torrent pushes of new torrents, `batch` per request, at `rate` operations
    per second (0: as fast as answers come back), until stop_event."""

    def __init__(self, bench, rate, batch):
        super().__init__(daemon=True)
        self.bench, self.rate, self.batch = bench, rate, batch
        self.stop_event = threading.Event()
        self.lat, self.ops, self.requests, self.refused, self.late = [], 0, 0, 0, 0
        self.seconds, self.cpu_s, self.error = 0.0, 0.0, None

    def run(self):
        b = self.bench
        c0 = time.thread_time()
        t_start = time.perf_counter()
        try:
            conn = b.conn()
            n = 0
            while not self.stop_event.is_set():
                if self.rate > 0:
                    wait = t_start + n * self.batch / self.rate - time.perf_counter()
                    if wait > 0:
                        if self.stop_event.wait(wait):
                            break
                    elif wait < -0.1:
                        self.late += 1
                ops = [b.update_torrent(*b.new_torrent()) for _ in range(self.batch)]
                t0 = time.perf_counter()
                status, body = b.push(conn, ops)
                self.lat.append(time.perf_counter() - t0)
                self.requests += 1
                n += 1
                if status == 200 and body == f'{{"applied":{self.batch}}}'.encode():
                    self.ops += self.batch
                else:
                    self.refused += 1
            conn.close()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = f"{type(e).__name__}: {e}"
        self.seconds = time.perf_counter() - t_start
        self.cpu_s = time.thread_time() - c0


def parse_args():
    ap = common.arg_parser(__doc__, 1800)
    common.add_load_args(ap)
    ap.add_argument("--iterations", type=int, default=2000, help="push → announce iterations")
    ap.add_argument("--push-rate", type=float, default=200,
                    help="push operations per second during the load (0: as fast as answered)")
    ap.add_argument("--push-batch", type=int, default=10, help="operations per push request")
    args = ap.parse_args()
    if args.iterations < 1 or args.duration < 1 or args.push_batch < 1 or args.push_rate < 0:
        ap.error("--iterations, --duration and --push-batch must be positive, --push-rate >= 0")
    if args.push_batch > 10000:
        ap.error("--push-batch: the push API takes at most 10,000 operations per request")
    return args


def main():
    args = parse_args()
    common.begin(args)
    t_all = time.monotonic()
    say(f"reading the sidecar {args.sidecar}")
    b = Bench(args)
    gc.freeze()  # the sidecar's million strings: out of the collector's way
    version = common.version_of([args.binary, "-V"])
    rate = (f"{args.push_rate:g} ops/s" if args.push_rate > 0 else "as fast as answered")
    header = (f"bench-push: {args.binary} ({version}); {b.users} users, {b.torrents} torrents, "
              f"{args.peers} peers; wrk 1 thread, {args.conns} connections, {args.duration} s per run; "
              f"pushes during the load: {rate} in batches of {args.push_batch}")
    say(header.split(": ", 1)[1])
    tracker_rep = common.Report("tracker")
    alone, both = common.Report("announces_alone"), common.Report("announces_with_pushes")
    after = common.Report("announces_after_pushes")
    cmp_rep, nxt = common.Report("ratios"), common.Report("push_to_announce")
    failed = None
    pushed_ops = 0
    try:
        b.h.reset_accounting()
        b.start(tracker_rep)
        b.fill(tracker_rep)
        ra = b.load("alone", pushes=False)
        rb = b.load("with-pushes", pushes=True)
        rc_ = b.load("after", pushes=False)
        loop = rb["push"]
        pushed_ops += loop.ops
        b.drain("load")
        b.next_announce(nxt)
        pushed_ops += args.iterations
        b.checks(tracker_rep, pushed_ops)
        tracker_rep.put("version", version, "tracker", f"{args.binary} ({version})")
        b.put_load(alone, ra)
        b.put_load(both, rb)
        b.put_load(after, rc_)
        p50, p99, mx = dist(loop.lat)
        both.put("push_ops_per_s", f"{loop.ops / loop.seconds:.0f}", "push operations/s achieved",
                 f"{loop.ops / loop.seconds:.0f} ({loop.ops} in {loop.requests} requests over "
                 f"{loop.seconds:.1f} s; refused {loop.refused}; more than 100 ms late {loop.late})")
        both.items.append(("push_requests", loop.requests, None, None))
        both.items.append(("push_refused", loop.refused, None, None))
        both.put("push_rtt_p50_ms", p50, "push round trip p50 / p99 / max", f"{p50} / {p99} / {mx} ms")
        both.items.append(("push_rtt_p99_ms", p99, None, None))
        both.items.append(("push_rtt_max_ms", mx, None, None))
        for key, r, what in (("with", rb, "with pushes"), ("after", rc_, "after the pushes")):
            r_rps = ratio(r["rps"], ra["rps"])
            r50, r99 = ratio(r["p50_ms"], ra["p50_ms"]), ratio(r["p99_ms"], ra["p99_ms"])
            r_cpu = ratio(r["tracker_cpu_s"] / max(1, int(r["requests"])),
                          ra["tracker_cpu_s"] / max(1, int(ra["requests"])))
            cmp_rep.put(f"{key}_rps_ratio", r_rps,
                        f"{what} / alone: announces/s, p50, p99, tracker CPU per announce",
                        f"×{r_rps}  ×{r50}  ×{r99}  ×{r_cpu}")
            cmp_rep.items.append((f"{key}_p50_ratio", r50, None, None))
            cmp_rep.items.append((f"{key}_p99_ratio", r99, None, None))
            cmp_rep.items.append((f"{key}_cpu_ratio", r_cpu, None, None))
    except KeyboardInterrupt:
        say("interrupted")
        common.stop_all()
        return 130
    except Exception as e:  # noqa: BLE001 - report it, stop the tracker
        failed = common.failed_with(e)
    finally:
        if b.tracker is not None:
            rc, secs = b.tracker.stop()
            tracker_rep.put("stop_s", f"{secs:.1f}", "tracker shutdown after SIGTERM",
                            f"{secs:.1f} s, exit {rc}")
        b.h.db.close()
    if failed:
        tracker_rep.put("error", failed, "FAILED")
    for c in b.failed_checks:
        say(f"CHECK FAILED: {c}")
    tracker_rep.put("checks", "ok" if not b.failed_checks else "; ".join(b.failed_checks),
                    "checks", "all passed" if not b.failed_checks else "FAILED: " + "; ".join(b.failed_checks))
    reports = [r for r in (nxt, alone, both, after, cmp_rep, tracker_rep) if r.items]
    common.finish(args, common.summary(reports, f"{header}; total {time.monotonic() - t_all:.0f} s",
                                       "PUSH", "section"))
    return 1 if failed or b.failed_checks else 0


if __name__ == "__main__":
    sys.exit(main())
