#!/usr/bin/env python3
"""What bench/hostile.py, bench/push.py and bench/scale.py share (imported, not run).

The sidecar of the bench dataset, a mariadb client kept open, a keep-alive HTTP client,
the tracker's /metrics, trackers (and the other processes of a run) started in their own
directories and stopped at exit, the figures of a run (Report) and their table and
logfmt lines, the command line every one of them takes, wrk with bench/announce.lua, and
the start and end of a run (watchdog, SIGTERM, summary.txt). Messages go to stderr
prefixed with PROG, which the script sets. Standard library only.
"""

import argparse
import atexit
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probe  # noqa: E402  (wait_pending)

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
READY = b"Ready and accepting new connections on"
STARTUP_TIMEOUT = 120
STOP_TIMEOUT = 60
DRAIN_CAP = 60
WRK_TIMEOUT = "5s"
PROG = "bench"  # the message prefix: the script sets its own


def say(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


class ScenarioError(Exception):
    """A failure of the shared code or of a hostile.py scenario that its message tells
    (hostile.py prints no traceback for it)."""


class BenchError(Exception):
    """A failure push.py or scale.py reports without a traceback (failed_with)."""


# --------------------------------------------------------------------- data --
class Dataset:
    """The sidecar of bench/dataset.py: client prefixes, passkeys, info hashes."""

    def __init__(self, path):
        self.clients, self.passkeys, self.hashes = [], [], []
        lists = {"[clients]": self.clients, "[users]": self.passkeys, "[torrents]": self.hashes}
        with open(path, encoding="ascii") as f:
            if f.readline().strip() != "chihaya-bench-dataset 1":
                sys.exit(f"{PROG}: {path} is not a bench/dataset.py sidecar")
            f.readline()
            target = None
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("["):
                    target = lists.get(line)
                elif target is not None:
                    target.append(line)
        if len(self.passkeys) < 100 or len(self.hashes) < 100 or not self.clients:
            sys.exit(f"{PROG}: the dataset needs at least 100 users and 100 torrents")

    def passkey(self, uid):
        return self.passkeys[uid - 1]

    def info_hash(self, tid):
        """The info_hash of torrent tid, percent-escaped for a query string."""
        return urllib.parse.quote_from_bytes(bytes.fromhex(self.hashes[tid - 1]), safe="")


class Mysql:
    """One mariadb client process kept open; query() returns rows of strings."""

    END = "__bench_end__"

    def __init__(self, argv, log_path):
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            argv + ["-N", "-B", "-n", "--force"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )

    def query(self, sql):
        self.proc.stdin.write(sql.strip().rstrip(";") + f";\nSELECT '{self.END}';\n")
        self.proc.stdin.flush()
        rows = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise ScenarioError("the mariadb client exited")
            line = line.rstrip("\n")
            if line == self.END:
                return rows
            rows.append(line.split("\t"))

    def value(self, sql):
        rows = self.query(sql)
        return rows[0][0] if rows and rows[0] else None

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        self._log.close()


# --------------------------------------------------------------------- HTTP --
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
CONN_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.I)
FAILURE = re.compile(rb"14:failure reason(\d+):")


def http_request(path, host, headers=()):
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")


def parse_response(buf, at_eof=False):
    """(status, head, body, keep_alive) of the first complete response in buf (which
    loses it), or None. Without Content-Length the body runs to the close."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end])
    m = CONTENT_LENGTH.search(head)
    if m:
        total = end + 4 + int(m.group(1))
        if len(buf) < total:
            return None
    elif at_eof:
        total = len(buf)
    else:
        return None
    body = bytes(buf[end + 4 : total])
    del buf[:total]
    try:
        status = int(head[9:12])
    except ValueError:
        status = 0
    return status, head, body, bool(m) and not CONN_CLOSE.search(head)


def failure_reason(body):
    m = FAILURE.search(body)
    if not m:
        return None
    start = m.end()
    return body[start : start + int(m.group(1))].decode("utf-8", "replace")


class HttpConn:
    """A blocking keep-alive HTTP/1.1 connection, reopened when the server closes it."""

    def __init__(self, addr, timeout=10.0):
        self.addr = addr
        self.host = f"{addr[0]}:{addr[1]}"
        self.timeout = timeout
        self.sock = None
        self.buf = bytearray()

    def _open(self):
        self.sock = socket.create_connection(self.addr, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf.clear()

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock = None

    def get(self, path, headers=()):
        """(status, body) of GET path; one retry when a reused connection was closed."""
        data = http_request(path, self.host, headers)
        for attempt in (0, 1):
            reused = self.sock is not None
            if not reused:
                self._open()
            try:
                self.sock.sendall(data)
                status, _, body, keep = self._read()
            except (ConnectionError, EOFError):
                self.close()
                if reused and attempt == 0:
                    continue
                raise
            if not keep:
                self.close()
            return status, body
        raise AssertionError("unreachable")

    def _read(self):
        while True:
            r = parse_response(self.buf)
            if r:
                return r
            chunk = self.sock.recv(262144)
            if not chunk:
                r = parse_response(self.buf, at_eof=True)
                if r:
                    return r
                raise EOFError("connection closed before a response")
            self.buf += chunk


# ------------------------------------------------------------------ metrics --
SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            try:
                value = float(m.group(3))
            except ValueError:
                continue
            out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), value))
    return out


def msum(samples, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for n, lab, v in samples
               if n == name and all(lab.get(k) == x for k, x in labels.items()))


# ------------------------------------------------------------- processes --
RUNNING = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Child:
    """A process of the run (a tracker, haproxy) logging to its own file; stop_all()
    stops it at exit. `what` names it in messages."""

    what = "process"

    def spawn(self, argv, log_path, **popen):
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, **popen)
        RUNNING.append(self)

    @property
    def pid(self):
        return self.proc.pid

    def log_bytes(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def terminate(self, timeout):
        """SIGTERM, wait (SIGKILL after timeout); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"{self.what} pid {self.pid} still running {timeout} s after SIGTERM, killing it")
                self.proc.kill()
                self.proc.wait()
        if self in RUNNING:
            RUNNING.remove(self)
        self._log.close()
        return self.proc.returncode


class Tracker(Child):
    """A chihaya process with its own directory, config, log, cache and spill file."""

    what = "tracker"

    def __init__(self, h, name, config=None, dsn="default", drain_timeout=10, umask=-1):
        self.h = h
        self.dir = os.path.join(h.run_dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.addr = ("127.0.0.1", self.port)
        cfg = {"addr": f"127.0.0.1:{self.port}", "admin_token": h.token, "log_flushes": False}
        cfg.update(config or {})
        self.config_path = os.path.join(self.dir, "config.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)
        self.cache_path = os.path.join(self.dir, "peer-cache.bin")
        self.spill_path = os.path.join(self.dir, "accounting-spill.jsonl")
        self.journal_path = os.path.join(self.dir, "journal")
        env = dict(os.environ)
        env.pop("DB_DSN", None)
        if dsn == "default":
            dsn = h.args.dsn
        if dsn:
            env["DB_DSN"] = dsn
        self.t0 = time.monotonic()
        self.spawn(
            [h.args.binary, "--config", self.config_path, "--peer-cache", self.cache_path,
             "--spill", self.spill_path, "--journal", self.journal_path,
             "--drain-timeout", str(drain_timeout)],
            os.path.join(self.dir, "tracker.log"), cwd=self.dir, env=env, umask=umask)

    def last_log_line(self):
        lines = self.log_bytes().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else ""

    def wait_ready(self, timeout):
        """True when the Ready line shows, False when the process exits or time is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY in self.log_bytes():
                return True
            if self.proc.poll() is not None:
                return READY in self.log_bytes()
            time.sleep(0.02)
        return False

    def start(self):
        if not self.wait_ready(STARTUP_TIMEOUT):
            rc = self.proc.poll()
            raise ScenarioError(f"the tracker did not start (exit {rc}): {self.last_log_line()}")
        say(f"tracker pid {self.pid} on {self.addr[0]}:{self.port} ready after "
            f"{time.monotonic() - self.t0:.1f} s")
        return self

    def metrics(self):
        conn = HttpConn(self.addr)
        try:
            status, body = conn.get("/metrics", [("Authorization", f"Bearer {self.h.token}")])
        finally:
            conn.close()
        if status != 200:
            raise ScenarioError(f"/metrics answered {status}")
        return parse_metrics(body.decode("utf-8", "replace"))

    def wait_written(self):
        """Seconds until nothing is pending (chihaya_pending_rows 0), or "timeout" after
        DRAIN_CAP seconds."""
        return probe.wait_pending(f"http://127.0.0.1:{self.port}/metrics", self.h.token,
                                  DRAIN_CAP, 0.05, time.monotonic())

    def settle_log(self, quiet=0.3, cap=5.0):
        """(bytes, lines) of the log once it stopped growing for `quiet` seconds."""
        deadline = time.monotonic() + cap
        last, since = None, time.monotonic()
        while True:
            data = self.log_bytes()
            now = time.monotonic()
            if len(data) != last:
                last, since = len(data), now
            elif now - since >= quiet or now >= deadline:
                return len(data), data.count(b"\n")
            time.sleep(0.05)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait (SIGKILL after timeout); returns (exit code, seconds)."""
        t0 = time.monotonic()
        rc = self.terminate(timeout)
        return rc, time.monotonic() - t0


def stop_all():
    for t in list(RUNNING):
        try:
            t.stop()
        except Exception as e:  # noqa: BLE001 - best effort at exit
            say(f"stopping {t.what} pid {t.pid}: {e}")


# ------------------------------------------------------------------ results --
class Report:
    """The figures of one scenario: key (machine line), label and shown value (table)."""

    def __init__(self, scenario):
        self.scenario = scenario
        self.items = []

    def put(self, key, value, label, shown=None):
        self.items.append((key, value, label, str(value) if shown is None else shown))


def logfmt(value):
    s = "" if value is None else str(value)
    return json.dumps(s) if (not s or re.search(r'[\s"=\\]', s)) else s


class Harness:
    """The sidecar, the mariadb client and the trackers of a run; token_prefix starts
    the trackers' admin_token."""

    def __init__(self, args, token_prefix):
        self.args = args
        self.run_dir = args.run_dir
        self.data = Dataset(args.sidecar)
        self.token = token_prefix + secrets.token_hex(12)
        client = [args.mysql, "--no-defaults", "--connect-timeout=3", "-u", args.db_user]
        if args.db_socket:
            client += ["--protocol=socket", f"--socket={args.db_socket}"]
        else:
            client += ["--protocol=tcp", "-h", args.db_host, "-P", str(args.db_port)]
        self.mysql_argv = client + [args.db_name]
        self.db = self.mysql()

    def mysql(self):
        return Mysql(self.mysql_argv, os.path.join(self.run_dir, "mariadb-client.log"))

    def tracker(self, name, **kw):
        return Tracker(self, name, **kw)

    def reset_accounting(self):
        """Every scenario starts from the dataset's accounting state."""
        self.db.query(
            "UPDATE users_main SET Uploaded = 0, Downloaded = 0, rawup = 0, rawdl = 0"
            " WHERE Uploaded <> 0 OR Downloaded <> 0 OR rawup <> 0 OR rawdl <> 0;"
            " TRUNCATE transfer_history; TRUNCATE transfer_ips; TRUNCATE transfer_ips6")

    def proxied_dsn(self, port):
        auth, _, rest = self.args.dsn.rpartition("@")
        return f"{auth}@tcp(127.0.0.1:{port}){rest[rest.index(')') + 1:]}"

    def upstream(self):
        if self.args.db_socket:
            return ("unix", self.args.db_socket)
        return ("tcp", self.args.db_host, self.args.db_port)


# ------------------------------------------------------------------- output --
def ratio(a, b):
    try:
        return f"{float(a) / float(b):.2f}"
    except (TypeError, ValueError, ZeroDivisionError):
        return ""


def table(reports, header, first):
    """The reports as a table under header: `first` (the reports' name) / figure / value."""
    rows = [(r.scenario, label, shown) for r in reports for _, _, label, shown in r.items if label]
    w1 = max([len(first)] + [len(a) for a, _, _ in rows])
    w2 = max([len("figure")] + [len(b) for _, b, _ in rows])
    out = [header, f"{first:<{w1}}  {'figure':<{w2}}  value", f"{'-' * w1}  {'-' * w2}  -----"]
    last = None
    for a, b, c in rows:
        out.append(f"{a if a != last else '':<{w1}}  {b:<{w2}}  {c}")
        last = a
    return "\n".join(out)


def machine_line(tag, field, name, items):
    """`TAG field=name key=value ...` of items (key, value, ...), values in logfmt."""
    return f"{tag} " + " ".join([f"{field}={name}"] + [f"{k}={logfmt(v)}" for k, v, *_ in items])


def summary(reports, header, tag, field):
    """The table of the reports under header, `field` heading their column, then the
    machine line of each (`TAG field=<name> ...`)."""
    return table(reports, header, field) + "\n" + "\n".join(
        machine_line(tag, field, r.scenario, r.items) for r in reports)


def failed_with(e):
    """Says that the run failed with e (and its traceback unless a BenchError); returns
    the message."""
    failed = f"{type(e).__name__}: {e}"
    say(f"FAILED: {failed}")
    if not isinstance(e, BenchError):
        traceback.print_exc()
    return failed


# ---------------------------------------------------------------------- run --
def arg_parser(doc, timeout):
    """The arguments every bench script takes: the tracker, the run directory, the
    dataset, the database; --timeout (the watchdog) defaults to timeout seconds."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--sidecar", required=True)
    ap.add_argument("--dsn", required=True, help="DB_DSN of the bench database")
    ap.add_argument("--mysql", default="mariadb", help="the mariadb (or mysql) client")
    ap.add_argument("--db-user", default="root")
    ap.add_argument("--db-name", default="chihaya_bench")
    ap.add_argument("--db-host", default="127.0.0.1")
    ap.add_argument("--db-port", type=int, default=3306)
    ap.add_argument("--db-socket", default="")
    ap.add_argument("--timeout", type=float, default=timeout, help="give up after this many seconds")
    return ap


def add_load_args(ap):
    """The arguments of the scripts that load the tracker with wrk (run_wrk)."""
    ap.add_argument("--mariadb-pid", default="", help="the local mariadbd, for its CPU")
    ap.add_argument("--duration", type=int, default=15, help="seconds of each measured wrk run")
    ap.add_argument("--peers", type=int, default=200000, help="simulated peers")
    ap.add_argument("--conns", type=int, default=64, help="wrk connections")
    ap.add_argument("--seed", type=int, default=1, help="peer population seed")
    ap.add_argument("--wrk", default="wrk")


def run_wrk(args, label, port, seconds, mode):
    """wrk -t1 with bench/announce.lua (mode=populate or run) against 127.0.0.1:port,
    its output in DIR/wrk-<label>.log; the BENCH line as a dict plus wrk's CPU seconds
    (wrk_cpu_s)."""
    cmd = [args.wrk, "-t1", f"-c{args.conns}", f"-d{seconds}s", "--timeout", WRK_TIMEOUT,
           "-s", os.path.join(BENCH_DIR, "announce.lua"), f"http://127.0.0.1:{port}",
           "--", f"dataset={args.sidecar}", f"peers={args.peers}", f"seed={args.seed}", f"mode={mode}"]
    log_path = os.path.join(args.run_dir, f"wrk-{label}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"wrk ({label}) exited {proc.returncode}, see {log_path}")
    with open(log_path, encoding="utf-8", errors="replace") as f:
        lines = [line for line in f if line.startswith("BENCH ")]
    if not lines:
        raise BenchError(f"no result from wrk ({label}), see {log_path}")
    out = dict(w.split("=", 1) for w in lines[-1].split()[1:] if "=" in w)
    out["wrk_cpu_s"] = usage.ru_utime + usage.ru_stime
    return out


def version_of(cmd):
    """The first line cmd (e.g. [binary, "-V"]) prints, or "?"."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.strip().splitlines() or ["?"])[0]


def give_up(seconds):
    """The watchdog: whatever hangs, the trackers are stopped and the run ends."""
    say(f"still running after {seconds:.0f} s: giving up")
    stop_all()
    os._exit(124)


def begin(args):
    """The run directory; what runs is stopped at exit (also on SIGTERM), and the
    watchdog ends the run after args.timeout seconds."""
    os.makedirs(args.run_dir, exist_ok=True)
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    watchdog = threading.Timer(args.timeout, give_up, [args.timeout])
    watchdog.daemon = True
    watchdog.start()


def finish(args, text):
    """The summary on stdout and in DIR/summary.txt."""
    print(text, flush=True)
    with open(os.path.join(args.run_dir, "summary.txt"), "w") as f:
        f.write(text + "\n")
    say(f"full output in {os.path.relpath(args.run_dir)}")
