#!/usr/bin/env python3
"""What a hostile member with a valid passkey can do to the tracker (`make bench-hostile`).

    bench/hostile.py --binary PATH --run-dir DIR --sidecar FILE --dsn DSN
                     --mysql CLIENT --db-user U --db-name DB
                     (--db-host H --db-port P | --db-socket S) [--only NAME,...]

bench/hostile.sh (the make target) builds the tracker or takes BENCH_BINARY, makes sure
the `chihaya_bench` dataset is loaded, and calls this. Each scenario runs against a
freshly started tracker (its own directory DIR/<scenario>/ holding config.json,
tracker.log = stdout and stderr, peer-cache.bin, accounting-spill.jsonl, journal/; `addr` on a
free 127.0.0.1 port, `admin_token` set, `log_flushes` false, DB_DSN to the bench
database), after the accounting columns of the bench database were reset (users'
transfer to 0, transfer_history / transfer_ips / transfer_ips6 emptied), so every run
starts from the same rows. Trackers are stopped at exit, also on error or Ctrl-C.
Clients are raw-socket keep-alive HTTP/1.1 (a flood multiplexes several connections
over one selector); latencies are send-to-last-byte, Python overhead included.

Scenarios and what they report:

overflow     intervals.flush 3. A victim announces every 0.5 s on its own torrent,
             uploaded +1 MiB each time; a poller reads its users_main.rawup (and its
             transfer_history.uploaded) every 100 ms; lag = time from an announce until
             the row shows at least its bytes. After 3 s the attacker (another user and
             torrent) announces a new peer with uploaded=0 then uploaded=2^64-1, waits
             one flush (3 s), does it again with a second peer_id; the victim goes on for
             90 s. Reports: victim lag max / p50 (users_main and transfer_history),
             chihaya_flush_retries_total{reason="data"}, chihaya_spilled_rows_total,
             whether the spill file holds an attacker row after SIGTERM (drain 10 s),
             the attacker's rawup / Uploaded afterwards.
peer_flood   one passkey announces peer_ids -TR2940-%012d (n = 0, 1, ...) on one
             torrent, left=1000, over 8 connections for 20 s. Reports: sent / OK /
             failure answers and the distinct reasons, `incomplete` of the last answer,
             chihaya_peers, tracker VmRSS before / after, the flooder's p50 over its last
             1000 announces vs the p50 of 1000 announces of one fresh peer on an idle
             torrent measured before.
port1_flood  the same with port=1 up to 50,000 peers (or 30 s); another member's p50 over
             1000 leecher announces (numwant 50) on that torrent before and after.
metrics_cpu  50,000 peers over the catalogue (a Python fill, the same for every binary),
             then 8 connections on /{passkey}/metrics for 5 s, then on /metrics with the
             bearer token for 5 s. Reports answers (200 / other), tracker CPU (utime +
             stime over exactly each window) and CPU ms per answer.
log_flood    one sequential client sends `GARBAGE\\r\\n\\r\\n` on a new connection and
             reads until close, for 2 s. Reports requests and the stderr bytes / lines
             added.
file_modes   tracker under umask 022 with `record` on and the database behind a TCP proxy
             in this script; one announce, then the proxy is cut (listener closed,
             connections shut: every write fails), SIGTERM with --drain-timeout 2.
             Reports the octal modes of peer-cache.bin, accounting-spill.jsonl, events/
             and its files.
bad_port     DB_DSN unset, config `database` {"username":"root","database":<db>,"addr":
             "127.0.0.1:99999"}, then "127.0.0.1:33x6"; waits up to 10 s for the Ready
             line. Reports for each: started, or the exit code and last stderr line.
oversized    announces whose query strings are 8193, 60000, 65600 and 100000 bytes long
             (padded with an unused key). Reports status, first 60 bytes of the body,
             stderr lines added.

Output: progress on stderr; at the end a table and one `HOSTILE scenario=<name>
key=value ...` line per scenario on stdout (logfmt: a value with spaces is a JSON
string), also written to DIR/summary.txt. Exit status 1 when a scenario failed to run.
"""

import bisect
import collections
import json
import os
import re
import selectors
import socket
import statistics
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import probe  # noqa: E402  (cpu_seconds, rss_mb)
from common import (  # noqa: E402
    Harness, HttpConn, Report, ScenarioError, failure_reason, http_request, msum,
    parse_response, say, stop_all,
)

common.PROG = "hostile"
MIB = 1 << 20
U64_MAX = (1 << 64) - 1
FLOOD_CONNS = 8
SCENARIOS = [
    "overflow",
    "peer_flood",
    "port1_flood",
    "metrics_cpu",
    "log_flood",
    "file_modes",
    "bad_port",
    "oversized",
]


# --------------------------------------------------------------------- HTTP --
INCOMPLETE = re.compile(rb"10:incompletei(\d+)e")


def incomplete(body):
    m = INCOMPLETE.search(body)
    return int(m.group(1)) if m else None


class _FloodConn:
    __slots__ = ("sock", "buf", "tag", "t0", "waiting")

    def __init__(self, sock):
        self.sock, self.buf, self.tag, self.t0, self.waiting = sock, bytearray(), None, 0.0, False


def flood(addr, conns, next_request, on_answer, deadline):
    """Requests over `conns` keep-alive connections, each sending its next request as
    soon as the previous answer is in, until next_request() returns None or the
    monotonic deadline passes (requests then in flight are abandoned).
    next_request() -> (tag, bytes); on_answer(tag, status, body, latency_s).
    Returns (sent, answered, socket_errors)."""
    sel = selectors.DefaultSelector()
    sent = answered = errors = 0
    exhausted = False
    busy = set()

    def issue(c):
        nonlocal sent, exhausted
        req = None if exhausted else next_request()
        if req is None:
            exhausted = True
            busy.discard(c)
            return
        c.tag, data = req
        c.waiting = True
        c.t0 = time.perf_counter()
        c.sock.sendall(data)
        sent += 1
        busy.add(c)

    def open_conn():
        s = socket.create_connection(addr, timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(None)
        c = _FloodConn(s)
        sel.register(s, selectors.EVENT_READ, c)
        return c

    def drop(c):
        busy.discard(c)
        sel.unregister(c.sock)
        c.sock.close()

    def deliver(c, r):
        nonlocal answered
        status, _, body, keep = r
        answered += 1
        on_answer(c.tag, status, body, time.perf_counter() - c.t0)
        c.waiting = False
        if not keep:
            drop(c)
            c = open_conn()
        issue(c)

    try:
        for _ in range(conns):
            if time.monotonic() >= deadline:
                break
            issue(open_conn())
        while busy:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(timeout=min(left, 0.25)):
                c = key.data
                if c not in busy:
                    continue
                try:
                    chunk = c.sock.recv(262144)
                except OSError:
                    chunk = b""
                if not chunk:  # closed by the server: an answer to the close, or lost
                    r = parse_response(c.buf, at_eof=True)
                    drop(c)
                    if r:
                        answered += 1
                        on_answer(c.tag, r[0], r[2], time.perf_counter() - c.t0)
                    else:
                        errors += 1
                    if time.monotonic() < deadline:
                        issue(open_conn())
                    continue
                c.buf += chunk
                while c in busy and c.waiting:
                    r = parse_response(c.buf)
                    if not r:
                        break
                    deliver(c, r)
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()
    return sent, answered, errors


def sequential(conn, paths):
    """Latencies (s) and answers (status, body) of GET each path, one after another."""
    lat, answers = [], []
    for path in paths:
        t0 = time.perf_counter()
        answers.append(conn.get(path))
        lat.append(time.perf_counter() - t0)
    return lat, answers


def announce_path(passkey, info_hash, peer_id, port=51413, uploaded=0, downloaded=0,
                  left=0, event=None, numwant=None, pad=""):
    q = (f"info_hash={info_hash}&peer_id={peer_id}&port={port}&uploaded={uploaded}"
         f"&downloaded={downloaded}&left={left}&compact=1")
    if event:
        q += f"&event={event}"
    if numwant is not None:
        q += f"&numwant={numwant}"
    return f"/{passkey}/announce?{q}{pad}"


def p50_ms(latencies):
    return round(statistics.median(latencies) * 1000, 3) if latencies else None


class Proxy:
    """A TCP proxy to the database; cut() closes it for good (every write then fails)."""

    def __init__(self, upstream):
        self.upstream = upstream  # ("tcp", host, port) or ("unix", path)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.cut_flag = threading.Event()
        self.lock = threading.Lock()
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _connect_upstream(self):
        if self.upstream[0] == "unix":
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.upstream[1])
            return s
        return socket.create_connection(self.upstream[1:], timeout=5)

    def _accept(self):
        while not self.cut_flag.is_set():
            try:
                c, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                u = self._connect_upstream()
            except OSError:
                c.close()
                continue
            c.settimeout(None)
            u.settimeout(None)
            with self.lock:
                if self.cut_flag.is_set():
                    c.close()
                    u.close()
                    return
                self.socks += [c, u]
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.cut_flag.set()
        self.listener.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


# ---------------------------------------------------------------- scenarios --
class Poller(threading.Thread):
    """Runs `sql` (one row of integers) every `period` s; keeps (query time, values)."""

    def __init__(self, h, sql, period=0.1):
        super().__init__(daemon=True)
        self.db, self.sql, self.period = h.mysql(), sql, period
        self.samples = []
        self.stop_event = threading.Event()
        self.error = None

    def run(self):
        t0 = time.monotonic()
        k = 0
        try:
            while not self.stop_event.is_set():
                t = time.monotonic()
                row = self.db.query(self.sql)[0]
                self.samples.append((t, [int(x) if x not in ("NULL", "") else -1 for x in row]))
                k += 1
                self.stop_event.wait(max(0.0, t0 + k * self.period - time.monotonic()))
        except Exception as e:  # noqa: BLE001 - reported by the scenario
            self.error = e
        finally:
            self.db.close()

    def latest(self):
        return self.samples[-1][1] if self.samples else None


class Victim(threading.Thread):
    """Announces every `period` s, uploaded growing by 1 MiB; keeps (send time, k)."""

    def __init__(self, addr, path_of, period=0.5):
        super().__init__(daemon=True)
        self.conn, self.path_of, self.period = HttpConn(addr), path_of, period
        self.sent = []  # (monotonic send time, k) of the answered, successful announces
        self.failed = collections.Counter()
        self.stop_event = threading.Event()
        self.first = threading.Event()
        self.error = None

    def run(self):
        t0 = time.monotonic()
        k = 0
        try:
            while not self.stop_event.is_set():
                t = time.monotonic()
                status, body = self.conn.get(self.path_of(k))
                reason = failure_reason(body)
                if status == 200 and reason is None:
                    self.sent.append((t, k))
                else:
                    self.failed[reason or f"HTTP {status}"] += 1
                self.first.set()
                k += 1
                self.stop_event.wait(max(0.0, t0 + k * self.period - time.monotonic()))
        except Exception as e:  # noqa: BLE001 - reported by the scenario
            self.error = e
            self.first.set()
        finally:
            self.conn.close()


def lag_stats(sent, samples, col, target_of, since=None):
    """Lags (s) from each announce to the first poll after it showing its bytes, and
    how many never showed (their lag counted to the last poll)."""
    times = [t for t, _ in samples]
    lags, unresolved = [], 0
    for t_send, k in sent:
        if k == 0 or (since is not None and t_send < since):
            continue
        target = target_of(k)
        lag = None
        for t, values in samples[bisect.bisect_left(times, t_send):]:
            if values[col] >= target:
                lag = t - t_send
                break
        if lag is None:
            unresolved += 1
            lag = (times[-1] - t_send) if times else 0.0
        lags.append(lag)
    return lags, unresolved


def fmt_lag(lags, unresolved, key, rep, label):
    if not lags:
        rep.put(key + "_max_s", "", label + " max / p50", "n/a")
        return
    mx, p50 = max(lags), statistics.median(lags)
    more = ">" if unresolved else ""
    rep.put(key + "_max_s", f"{mx:.2f}", label + " max / p50",
            f"{more}{mx:.2f} s / {p50:.2f} s" + (f" ({unresolved} never shown)" if unresolved else ""))
    rep.items.append((key + "_p50_s", f"{p50:.2f}", None, None))
    rep.items.append((key + "_unresolved", unresolved, None, None))


def scenario_overflow(h, rep):
    victim, attacker = 11, 12  # user IDs; each announces on the torrent with its ID
    d = h.data
    h.reset_accounting()
    t = h.tracker("overflow", config={"intervals": {"flush": 3}}, drain_timeout=10).start()
    base = int(h.db.value(f"SELECT rawup FROM users_main WHERE ID = {victim}"))
    poller = Poller(h, f"SELECT (SELECT rawup FROM users_main WHERE ID = {victim}),"
                       f" IFNULL((SELECT uploaded FROM transfer_history"
                       f" WHERE uid = {victim} AND fid = {victim}), -1)")
    vpk, vhash = d.passkey(victim), d.info_hash(victim)

    def victim_path(k):
        return announce_path(vpk, vhash, "-qB5020-victim000001", uploaded=k * MIB,
                             event="started" if k == 0 else None)

    vt = Victim(t.addr, victim_path)
    poller.start()
    vt.start()
    if not vt.first.wait(10) or vt.error:
        raise ScenarioError(f"the victim's first announce failed: {vt.error}")
    time.sleep(3)  # the victim's lag before the attack
    attack_t0 = time.monotonic()
    conn = HttpConn(t.addr)
    apk, ahash = d.passkey(attacker), d.info_hash(attacker)
    answers = []
    for i, peer in enumerate(("-TR2940-attacker0001", "-TR2940-attacker0002")):
        if i:
            time.sleep(3)  # one flush (intervals.flush)
        for up, ev in ((0, "started"), (U64_MAX, None)):
            status, body = conn.get(announce_path(apk, ahash, peer, uploaded=up, event=ev))
            reason = failure_reason(body)
            answers.append(reason if reason else "ok" if status == 200 else f"HTTP {status}")
    conn.close()
    say(f"attacker's announces answered: {', '.join(answers)}; victim runs 90 s more")
    end = time.monotonic() + 90
    while time.monotonic() < end and vt.is_alive():
        vt.stop_event.wait(min(1.0, end - time.monotonic()))
    vt.stop_event.set()
    vt.join(10)
    if vt.error:
        raise ScenarioError(f"victim: {vt.error}")
    last_k = vt.sent[-1][1] if vt.sent else 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and poller.error is None:
        v = poller.latest()
        if v and v[0] >= base + last_k * MIB and v[1] >= last_k * MIB:
            break
        time.sleep(0.05)
    poller.stop_event.set()
    poller.join(10)
    if poller.error:
        raise ScenarioError(f"poller: {poller.error}")
    m = t.metrics()
    retries = msum(m, "chihaya_flush_retries_total", reason="data")
    retry_types = sorted({lab.get("type") for n, lab, v in m
                          if n == "chihaya_flush_retries_total" and lab.get("reason") == "data" and v})
    spilled = msum(m, "chihaya_spilled_rows_total")
    rc, secs = t.stop()
    spill_rows = read_spill(t.spill_path)
    mine = [r for r in spill_rows if r.get("uid") == attacker
            or (r.get("kind") == "users" and r.get("id") == attacker)]
    row = h.db.query(f"SELECT rawup, Uploaded FROM users_main WHERE ID = {attacker}")[0]

    lags, unresolved = lag_stats(vt.sent, poller.samples, 0, lambda k: base + k * MIB)
    fmt_lag(lags, unresolved, "lag_users", rep, "victim users_main lag")
    pre, _ = lag_stats([s for s in vt.sent if s[0] < attack_t0], poller.samples, 0,
                       lambda k: base + k * MIB)
    rep.put("lag_users_pre_attack_max_s", f"{max(pre):.2f}" if pre else "",
            "  (before the attack: max)", f"{max(pre):.2f} s" if pre else "n/a")
    lags, unresolved = lag_stats(vt.sent, poller.samples, 1, lambda k: k * MIB)
    fmt_lag(lags, unresolved, "lag_history", rep, "victim transfer_history lag")
    rep.put("victim_announces", len(vt.sent), "victim announces OK",
            f"{len(vt.sent)}" + (f" (refused: {dict(vt.failed)})" if vt.failed else ""))
    rep.put("attacker_answers", "|".join(answers), "attacker's 4 answers", ", ".join(answers))
    rep.put("retries_data", int(retries), "flush retries reason=data",
            f"{int(retries)}" + (f" ({', '.join(retry_types)})" if retry_types else ""))
    rep.put("spilled_rows", int(spilled), "spilled rows (metric, before stop)")
    rep.put("spill_file_rows", len(spill_rows), "spill file rows after SIGTERM")
    kinds = ",".join(sorted({r.get("kind", "?") for r in mine}))
    rep.put("spill_has_attacker", "yes" if mine else "no", "spill file has attacker row",
            f"yes ({kinds})" if mine else "no")
    rep.put("attacker_rawup", row[0], "attacker rawup")
    rep.put("attacker_uploaded", row[1], "attacker Uploaded")
    rep.put("stop_s", f"{secs:.1f}", "shutdown after SIGTERM", f"{secs:.1f} s, exit {rc}")


def read_spill(path):
    rows = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    rows.append({"kind": "unparsable"})
    except FileNotFoundError:
        pass
    return rows


def peer_flood(h, t, uid, tid, port, limit, seconds):
    """One passkey announcing new peer_ids on one torrent over 8 connections."""
    pk, ih = h.data.passkey(uid), h.data.info_hash(tid)
    host = f"127.0.0.1:{t.port}"
    counter = iter(range(limit))
    st = {"ok": 0, "fail": collections.Counter(), "non200": collections.Counter(),
          "incomplete": None, "lat": collections.deque(maxlen=1000)}

    def next_request():
        n = next(counter, None)
        if n is None:
            return None
        return n, http_request(announce_path(pk, ih, f"-TR2940-{n:012d}", port=port,
                                             left=1000, event="started"), host)

    def on_answer(_n, status, body, lat):
        st["lat"].append(lat)
        if status != 200:
            st["non200"][status] += 1
            return
        reason = failure_reason(body)
        if reason is not None:
            st["fail"][re.sub(r"\s*\(.*", "", reason)] += 1
        else:
            st["ok"] += 1
        inc = incomplete(body)
        if inc is not None:
            st["incomplete"] = inc

    t0 = time.monotonic()
    sent, answered, errors = flood(t.addr, FLOOD_CONNS, next_request, on_answer, t0 + seconds)
    st.update(sent=sent, answered=answered, errors=errors, secs=time.monotonic() - t0)
    return st


def put_flood(rep, st):
    rep.put("sent", st["sent"], "announces sent / answered",
            f"{st['sent']} / {st['answered']} in {st['secs']:.1f} s "
            f"({st['answered'] / st['secs']:.0f}/s), socket errors {st['errors']}")
    rep.items.append(("answered", st["answered"], None, None))
    rep.items.append(("socket_errors", st["errors"], None, None))
    nfail = sum(st["fail"].values())
    rep.put("ok", st["ok"], "answered OK / with failure reason", f"{st['ok']} / {nfail}")
    rep.items.append(("failures", nfail, None, None))
    reasons = "; ".join(f"{r} x{c}" for r, c in st["fail"].most_common()) or "none"
    rep.put("reasons", reasons if st["fail"] else "", "failure reasons", reasons)
    if st["non200"]:
        rep.put("non200", sum(st["non200"].values()), "non-200 answers", dict(st["non200"]))


def scenario_peer_flood(h, rep):
    uid, tid, idle_tid = 21, 21, 22
    h.reset_accounting()
    t = h.tracker("peer_flood").start()
    conn = HttpConn(t.addr)
    pk = h.data.passkey(uid)
    ih = h.data.info_hash(idle_tid)
    idle, _ = sequential(conn, (announce_path(pk, ih, "-qB5020-idle00000001", left=1000,
                                              event="started" if i == 0 else None)
                                for i in range(1000)))
    conn.close()
    rss0 = probe.rss_mb(t.pid)
    st = peer_flood(h, t, uid, tid, 51413, 10**9, 20)
    peers = msum(t.metrics(), "chihaya_peers")
    rss1 = probe.rss_mb(t.pid)
    t.stop()
    put_flood(rep, st)
    rep.put("last_incomplete", st["incomplete"], "incomplete in the last answer")
    rep.put("peers", int(peers), "chihaya_peers at the end")
    rep.put("rss_before_mb", f"{rss0:.1f}", "tracker RSS before / after",
            f"{rss0:.1f} MB / {rss1:.1f} MB")
    rep.items.append(("rss_after_mb", f"{rss1:.1f}", None, None))
    fl, il = p50_ms(list(st["lat"])), p50_ms(idle)
    rep.put("flood_p50_ms", fl, "p50: flooder's last 1000 / idle peer",
            f"{fl} ms / {il} ms (×{fl / il:.1f})" if fl and il else f"{fl} / {il}")
    rep.items.append(("idle_p50_ms", il, None, None))


def scenario_port1_flood(h, rep):
    uid, tid, member = 31, 31, 32
    h.reset_accounting()
    t = h.tracker("port1_flood").start()
    pk, ih = h.data.passkey(member), h.data.info_hash(tid)

    def member_run(first):
        conn = HttpConn(t.addr)
        lat, answers = sequential(conn, (
            announce_path(pk, ih, "-DE2110-member000001", left=5000, numwant=50,
                          event="started" if first and i == 0 else None)
            for i in range(1000)))
        conn.close()
        bad = sum(1 for s, b in answers if s != 200 or failure_reason(b) is not None)
        return lat, bad

    before, bad0 = member_run(True)
    st = peer_flood(h, t, uid, tid, 1, 50_000, 30)
    peers = msum(t.metrics(), "chihaya_peers")
    after, bad1 = member_run(False)
    t.stop()
    put_flood(rep, st)
    rep.put("accepted", st["ok"], "port-1 peers accepted", f"{st['ok']} (chihaya_peers {int(peers)})")
    rep.items.append(("peers", int(peers), None, None))
    b, a = p50_ms(before), p50_ms(after)
    ratio = f"{a / b:.2f}" if a and b else ""
    rep.put("member_p50_before_ms", b, "member p50 before / after / ratio",
            f"{b} ms / {a} ms / ×{ratio}" + (f" (refused {bad0}/{bad1})" if bad0 or bad1 else ""))
    rep.items.append(("member_p50_after_ms", a, None, None))
    rep.items.append(("ratio", ratio, None, None))


def fill(h, t, n):
    """n peers over the catalogue: peer k is user k mod U + 1 on torrent 7919k+13 mod T,
    a seeder when k is a multiple of 3; the same peers for every binary."""
    d = h.data
    users, torrents = len(d.passkeys), len(d.hashes)
    host = f"127.0.0.1:{t.port}"
    counter = iter(range(n))
    st = {"ok": 0}

    def next_request():
        k = next(counter, None)
        if k is None:
            return None
        client = d.clients[k % len(d.clients)]
        path = announce_path(d.passkeys[k % users], d.info_hash((7919 * k + 13) % torrents + 1),
                             f"{client}{k:012d}", port=1024 + k % 60000,
                             left=0 if k % 3 == 0 else 1_000_000, event="started", numwant=0)
        return k, http_request(path, host)

    def on_answer(_k, status, body, _lat):
        if status == 200 and failure_reason(body) is None:
            st["ok"] += 1

    t0 = time.monotonic()
    sent, answered, _ = flood(t.addr, FLOOD_CONNS, next_request, on_answer, t0 + 180)
    say(f"fill: {st['ok']} of {n} announces OK in {time.monotonic() - t0:.1f} s")
    return st["ok"]


def metrics_window(t, path, headers, seconds):
    host = f"127.0.0.1:{t.port}"
    req = http_request(path, host, headers)
    codes = collections.Counter()

    def on_answer(_tag, status, _body, _lat):
        codes[status] += 1

    cpu0 = probe.cpu_seconds(t.pid)
    t0 = time.monotonic()
    flood(t.addr, FLOOD_CONNS, lambda: (None, req), on_answer, t0 + seconds)
    cpu1 = probe.cpu_seconds(t.pid)
    return codes, cpu1 - cpu0, time.monotonic() - t0


def scenario_metrics_cpu(h, rep):
    h.reset_accounting()
    t = h.tracker("metrics_cpu").start()
    filled = fill(h, t, 50_000)
    peers = msum(t.metrics(), "chihaya_peers")
    rep.put("peers", int(peers), "peers after the fill", f"{int(peers)} ({filled} fill announces OK)")
    for key, label, path, headers in (
        ("passkey", "/{passkey}/metrics", f"/{h.data.passkey(41)}/metrics", ()),
        ("admin", "/metrics + bearer", "/metrics", [("Authorization", f"Bearer {h.token}")]),
    ):
        codes, cpu, secs = metrics_window(t, path, headers, 5)
        ok = codes.get(200, 0)
        other = sum(codes.values()) - ok
        per = f"{cpu * 1000 / ok:.2f}" if ok else ""
        rep.put(f"{key}_ok", ok, f"{label}: answers 200 / other, CPU",
                f"{ok} / {other} in {secs:.1f} s, CPU {cpu:.2f} s = {per} ms per answer")
        rep.items.append((f"{key}_other", other, None, None))
        rep.items.append((f"{key}_cpu_s", f"{cpu:.2f}", None, None))
        rep.items.append((f"{key}_cpu_ms_per_req", per, None, None))
    t.stop()


def scenario_log_flood(h, rep):
    t = h.tracker("log_flood").start()
    b0, l0 = t.settle_log()
    before = t.log_bytes()
    sent, replies = 0, collections.Counter()
    end = time.monotonic() + 2
    while time.monotonic() < end:
        with socket.create_connection(t.addr, timeout=2) as s:
            s.sendall(b"GARBAGE\r\n\r\n")
            sent += 1
            got = bytearray()
            try:
                while chunk := s.recv(65536):
                    got += chunk
            except OSError:
                pass
            replies[bytes(got.split(b"\r\n", 1)[0]).decode("latin-1") or "(nothing)"] += 1
    b1, l1 = t.settle_log()
    added = t.log_bytes()[len(before):].decode("utf-8", "replace").splitlines()
    t.stop()
    rep.put("requests", sent, "GARBAGE requests in 2 s")
    rep.put("replies", "|".join(replies), "replies", "; ".join(f"{r} x{c}" for r, c in replies.items()))
    rep.put("stderr_bytes", b1 - b0, "stderr bytes / lines added", f"{b1 - b0} / {l1 - l0}")
    rep.items.append(("stderr_lines", l1 - l0, None, None))
    if added:
        rep.put("first_line", added[0][:120], "first line added", added[0][:120])


def mode_of(path):
    try:
        return f"{os.stat(path).st_mode & 0o7777:04o}"
    except FileNotFoundError:
        return "missing"


def scenario_file_modes(h, rep):
    uid = 51
    h.reset_accounting()
    proxy = Proxy(h.upstream())
    try:
        t = h.tracker("file_modes", config={"record": True}, dsn=h.proxied_dsn(proxy.port),
                      drain_timeout=2, umask=0o022)
        t.start()
        conn = HttpConn(t.addr)
        pk, ih = h.data.passkey(uid), h.data.info_hash(uid)
        conn.get(announce_path(pk, ih, "-qB5020-filemode0001", event="started"))
        proxy.cut()
        pending = msum(t.metrics(), "chihaya_pending_rows")
        if not pending:  # flushed in the instant before the cut: give it one more row
            conn.get(announce_path(pk, ih, "-qB5020-filemode0001", uploaded=MIB))
            pending = msum(t.metrics(), "chihaya_pending_rows")
        conn.close()
        rc, secs = t.stop()
    finally:
        proxy.cut()
    rows = read_spill(t.spill_path)
    rep.put("pending_at_sigterm", int(pending), "rows pending at SIGTERM (db cut)")
    rep.put("spill_rows", len(rows), "spill file rows")
    rep.put("stop_s", f"{secs:.1f}", "shutdown after SIGTERM (drain 2 s)", f"{secs:.1f} s, exit {rc}")
    rep.put("peer_cache", mode_of(t.cache_path), "mode peer-cache.bin")
    rep.put("spill", mode_of(t.spill_path), "mode accounting-spill.jsonl")
    events = os.path.join(t.dir, "events")
    rep.put("events_dir", mode_of(events), "mode events/")
    files = sorted(os.listdir(events)) if os.path.isdir(events) else []
    modes = sorted({mode_of(os.path.join(events, f)) for f in files})
    rep.put("events_files", ",".join(modes) or "none", "mode events/ files",
            f"{','.join(modes) or 'none'} ({len(files)} files)")


def scenario_bad_port(h, rep):
    for i, addr in enumerate(("127.0.0.1:99999", "127.0.0.1:33x6")):
        t = h.tracker(f"bad_port-{i + 1}", dsn=None, config={
            "database": {"username": "root", "database": h.args.db_name, "addr": addr}})
        ready = t.wait_ready(10)
        rc = t.proc.poll()
        line = t.last_log_line()
        if ready:
            outcome = f"started after {time.monotonic() - t.t0:.1f} s"
            value = "started"
        elif rc is not None:
            outcome = f"exit {rc}: {line}"
            value = f"exit{rc}"
        else:
            outcome = f"neither ready nor exited after 10 s: {line}"
            value = "hung"
        t.stop()
        rep.put(f"addr{i + 1}", value, f"addr {addr}", outcome)
        rep.items.append((f"addr{i + 1}_last_line", line, None, None))


def scenario_oversized(h, rep):
    uid = 61
    t = h.tracker("oversized").start()
    pk, ih = h.data.passkey(uid), h.data.info_hash(uid)
    for n in (8193, 60000, 65600, 100000):
        base = announce_path(pk, ih, "-qB5020-oversize0001").split("?", 1)[1]
        pad = "&zpad=" + "x" * (n - len(base) - 6)
        query = base + pad
        assert len(query) == n
        _, l0 = t.settle_log(quiet=0.1)
        log0 = t.log_bytes()
        conn = HttpConn(t.addr)
        try:
            status, body = conn.get(f"/{pk}/announce?{query}")
            shown = body[:60].decode("latin-1")
        except (OSError, EOFError) as e:
            status, shown = "none", f"({type(e).__name__}: {e})"
        conn.close()
        _, l1 = t.settle_log(quiet=0.2)
        added = t.log_bytes()[len(log0):].decode("utf-8", "replace").splitlines()
        note = f"; first: {added[0][:100]}" if added else ""
        rep.put(f"q{n}_status", status, f"query {n} B",
                f"HTTP {status} {shown!r}, stderr +{l1 - l0} lines{note}")
        rep.items.append((f"q{n}_body", shown, None, None))
        rep.items.append((f"q{n}_stderr_lines", l1 - l0, None, None))
    t.stop()


RUNNERS = {name: globals()[f"scenario_{name}"] for name in SCENARIOS}


# --------------------------------------------------------------------- main --
def parse_args():
    ap = common.arg_parser(__doc__, 900)
    ap.add_argument("--only", default="", help="comma-separated scenarios (default all)")
    args = ap.parse_args()
    args.scenarios = [s for s in args.only.split(",") if s] or SCENARIOS
    unknown = [s for s in args.scenarios if s not in RUNNERS]
    if unknown:
        ap.error(f"unknown scenario {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    return args


def main():
    args = parse_args()
    common.begin(args)
    h = Harness(args, "hostile-")
    version = common.version_of([args.binary, "-V"])
    header = f"bench-hostile: {args.binary} ({version})"
    say(header)
    reports, failed = [], []
    t_all = time.monotonic()
    try:
        for name in args.scenarios:
            rep = Report(name)
            t0 = time.monotonic()
            say(f"--- {name}")
            try:
                RUNNERS[name](h, rep)
            except Exception as e:  # noqa: BLE001 - report it, go on with the next one
                say(f"{name} FAILED: {type(e).__name__}: {e}")
                if not isinstance(e, ScenarioError):
                    traceback.print_exc()
                rep.put("error", f"{type(e).__name__}: {e}", "FAILED")
                failed.append(name)
            finally:
                stop_all()
            secs = time.monotonic() - t0
            rep.put("seconds", f"{secs:.1f}", "scenario time", f"{secs:.1f} s")
            reports.append(rep)
            say(f"--- {name} done in {secs:.1f} s")
            say(common.machine_line("HOSTILE", "scenario", rep.scenario, rep.items))
    except KeyboardInterrupt:
        say("interrupted")
        stop_all()
        return 130
    finally:
        h.db.close()
    common.finish(args, common.summary(reports, f"{header}, total {time.monotonic() - t_all:.0f} s",
                                       "HOSTILE", "scenario"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
