//! The systemd unit of `contrib/systemd/`: `systemd-analyze verify` accepts it (with this
//! build's `chihaya` as its `ExecStart`) and `systemd-analyze security` rates its sandbox
//! OK, the sysusers snippet makes the user it runs as, its stop timeout outlasts the
//! shutdown drain, and the tracker started as the unit starts it — its command line, the
//! state directory as working directory, its umask — writes only inside that directory
//! and makes no system call, socket or memory mapping the unit's sandbox refuses (traced
//! with strace).
//!
//! No systemd runs here (it is not PID 1 in a container): the sandbox itself is not
//! applied, only checked against what the tracker does. `systemd-analyze` and
//! `systemd-sysusers` come from Debian's `systemd` package, `strace` from `strace`; `make
//! test` installs them when it runs as root (`scripts/ensure-clients.sh`). Without them
//! the tests that need them say so and pass — unless `CI` is set, where they fail.

mod common;

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::{Process, ANY_PORT};
use common::*;

const UNIT: &str = "contrib/systemd/chihaya.service";
const SYSUSERS: &str = "contrib/systemd/chihaya.sysusers";
const WAIT: Duration = Duration::from_secs(30);
/// What `TimeoutStopSec=` must leave after `--drain-timeout`: the drain's deadline
/// covers the in-flight requests and the database writes, not the rest of the stop
/// (the peer cache write may end after it, then the journal is closed).
const STOP_MARGIN_SECS: u64 = 15;

/// Whether `program` is there ([`tools::present_or_skip`]).
fn have(program: &str, package: &str) -> bool {
    tools::present_or_skip("service_unit", &[program], &format!("package {package}"))
}

/// The unit file as systemd reads it: `(section, key, value)` in file order.
struct Unit {
    text: String,
    entries: Vec<(String, String, String)>,
}

impl Unit {
    fn read() -> Unit {
        let path = tools::repo_path(UNIT);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut section = String::new();
        let mut entries = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            assert!(
                !line.ends_with('\\'),
                "{UNIT}: no continued lines here: {line}"
            );
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{UNIT}: not KEY=VALUE: {line}"));
            entries.push((section.clone(), key.trim().into(), value.trim().into()));
        }
        Unit { text, entries }
    }

    /// Every value given to `key` in `[Service]`, in order (list settings add up).
    fn all(&self, key: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(section, k, _)| section == "Service" && k == key)
            .map(|(_, _, value)| value.as_str())
            .collect()
    }

    /// A single-valued `[Service]` setting: the last assignment wins, as in systemd.
    fn service(&self, key: &str) -> &str {
        self.all(key)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("{UNIT}: no {key}= in [Service]"))
    }

    /// The words of `ExecStart=` (the unit quotes nothing).
    fn exec_start(&self) -> Vec<&str> {
        let line = self.service("ExecStart");
        assert!(
            !line.contains(['"', '\'', '\\', '$', '%']),
            "{UNIT}: ExecStart= is read here as plain words: {line}"
        );
        line.split_whitespace().collect()
    }

    /// The value `ExecStart=` gives `flag` (`--flag VALUE` or `--flag=VALUE`).
    fn flag(&self, flag: &str) -> Option<String> {
        let words = self.exec_start();
        words.iter().enumerate().find_map(|(i, word)| {
            if *word == flag {
                words.get(i + 1).map(|value| value.to_string())
            } else {
                word.strip_prefix(flag)
                    .and_then(|rest| rest.strip_prefix('='))
                    .map(str::to_owned)
            }
        })
    }

    /// `ExecStart=` with this build's binary for the program and `config` for the
    /// `--config` file; everything else as the unit says.
    fn command_line(&self, config: &Path) -> Vec<String> {
        let words = self.exec_start();
        assert!(
            words[0].starts_with('/') && words[0].ends_with("/chihaya"),
            "{UNIT}: ExecStart= runs {}, not an installed chihaya",
            words[0]
        );
        let mut out = vec![env!("CARGO_BIN_EXE_chihaya").to_owned()];
        let mut rest = words[1..].iter();
        let mut replaced = false;
        while let Some(word) = rest.next() {
            if *word == "--config" {
                rest.next().expect("--config without a value");
                out.extend(["--config".to_owned(), config.display().to_string()]);
                replaced = true;
            } else {
                assert!(!word.starts_with("--config="), "use `--config PATH`");
                out.push(word.to_string());
            }
        }
        assert!(replaced, "{UNIT}: ExecStart= names no --config file");
        out
    }

    /// A copy of the unit, `chihaya.service` in `dir`, whose `ExecStart=` runs this
    /// build's binary on `dir/config.json` (which it writes): what `systemd-analyze
    /// verify` needs to find the program.
    fn install_in(&self, dir: &Path, extra_service_lines: &str) -> PathBuf {
        let config = dir.join("config.json");
        std::fs::write(&config, "{}").unwrap();
        let words = self.command_line(&config);
        assert!(
            !words.iter().any(|w| w.contains(char::is_whitespace)),
            "a path with spaces: {words:?}"
        );
        let exec_start = format!("ExecStart={}", words.join(" "));
        let mut text = String::new();
        for line in self.text.lines() {
            if line.trim_start().starts_with("ExecStart=") {
                text.push_str(&exec_start);
            } else {
                text.push_str(line);
            }
            text.push('\n');
            if line.trim() == "[Service]" {
                text.push_str(extra_service_lines);
            }
        }
        let path = dir.join("chihaya.service");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// `systemd-analyze verify` on one unit file: whether it exited 0, and its output.
/// `--recursive-errors=no`: only this unit counts, not the host's units it names
/// (mariadb.service, network-online.target), which may or may not exist here.
fn verify(unit: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--recursive-errors=no"])
        .arg(unit)
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    if !have("systemd-analyze", "systemd") {
        return;
    }
    let unit = Unit::read();
    let dir = TempDir::new("unit-verify");
    let (ok, output) = verify(&unit.install_in(&dir.0, ""));
    // Every unknown key, bad value, unknown syscall group or address family is a line
    // of output, though the exit status stays 0: the unit must produce none.
    assert!(
        ok && output.trim().is_empty(),
        "systemd-analyze verify on {UNIT} (exit ok: {ok}):\n{output}"
    );

    // The check above would see a mistake: the same unit with a misspelt key and a bad
    // value is still "ok", and each mistake is a line naming the file.
    let broken_dir = TempDir::new("unit-verify-broken");
    let broken = unit.install_in(
        &broken_dir.0,
        "TimeoutStopSecs=90\nRestrictAddressFamilies=AF_NOPE\n",
    );
    let (_, output) = verify(&broken);
    for mistake in ["TimeoutStopSecs", "AF_NOPE"] {
        assert!(
            output
                .lines()
                .any(|line| line.contains("chihaya.service:") && line.contains(mistake)),
            "systemd-analyze verify did not report {mistake}:\n{output}"
        );
    }

    // And the program must exist: verify checks the binary of ExecStart=.
    let missing_dir = TempDir::new("unit-verify-missing");
    let missing = unit.install_in(&missing_dir.0, "");
    let text = std::fs::read_to_string(&missing).unwrap().replace(
        env!("CARGO_BIN_EXE_chihaya"),
        &format!("{}-missing", env!("CARGO_BIN_EXE_chihaya")),
    );
    std::fs::write(&missing, text).unwrap();
    let (ok, output) = verify(&missing);
    assert!(
        !ok && output.contains("-missing"),
        "a missing ExecStart binary went unnoticed:\n{output}"
    );
}

/// The most `systemd-analyze security` may rate the unit's exposure (0 to 10; up to
/// 2 is "OK"): losing a sandbox setting shows here.
const MAX_EXPOSURE: f64 = 2.0;

#[test]
fn systemd_analyze_security_rates_the_sandbox_ok() {
    if !have("systemd-analyze", "systemd") {
        return;
    }
    let dir = TempDir::new("unit-security");
    let copy = Unit::read().install_in(&dir.0, "");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&copy)
        .output()
        .expect("run systemd-analyze security");
    let report = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for chihaya.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in\n{report}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}:\n{report}"
    );
}

#[test]
fn sysusers_snippet_makes_the_user_the_unit_runs_as() {
    if !have("systemd-sysusers", "systemd") {
        return;
    }
    let unit = Unit::read();
    let root = TempDir::new("unit-sysusers");
    std::fs::create_dir_all(root.0.join("etc")).unwrap();
    let snippet = tools::repo_path(SYSUSERS);
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.0.display()))
        .arg(&snippet)
        .output()
        .expect("run systemd-sysusers");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Complaints about the snippet name it (`<path>:<line>: ...`).
    assert!(
        out.status.success() && !stderr.contains(&snippet.display().to_string()),
        "systemd-sysusers {SYSUSERS}:\n{stderr}"
    );

    let passwd = std::fs::read_to_string(root.0.join("etc/passwd")).unwrap();
    let group = std::fs::read_to_string(root.0.join("etc/group")).unwrap();
    let user = unit.service("User");
    let fields: Vec<&str> = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields[0] == user)
        .unwrap_or_else(|| panic!("no user {user} in\n{passwd}"));
    let [_, _, uid, gid, _, home, shell] = fields[..] else {
        panic!("passwd line {fields:?}");
    };
    let uid: u32 = uid.parse().unwrap();
    assert!(
        uid > 0 && uid < 1000,
        "{user} is not a system user: uid {uid}"
    );
    // The user's home is the unit's state directory: %S is /var/lib for system units.
    assert_eq!(home, format!("/var/lib/{}", unit.service("StateDirectory")));
    assert!(
        shell.ends_with("/nologin"),
        "{user} has a login shell: {shell}"
    );
    let group_name = unit.service("Group");
    assert!(
        group
            .lines()
            .any(|line| line.starts_with(&format!("{group_name}:x:{gid}:"))),
        "no group {group_name} with gid {gid} in\n{group}"
    );
}

/// A systemd time span in seconds: `90`, `90s`, `2min`, `1min 30s`, `infinity`.
fn seconds(span: &str) -> u64 {
    if span == "infinity" {
        return u64::MAX;
    }
    span.split_whitespace()
        .map(|part| {
            let digits = part.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let number: u64 = digits
                .parse()
                .unwrap_or_else(|_| panic!("time span {span:?}"));
            match &part[digits.len()..] {
                "" | "s" | "sec" => number,
                "m" | "min" => number * 60,
                "h" => number * 3600,
                unit => panic!("time span {span:?}: unit {unit:?} not handled here"),
            }
        })
        .sum()
}

/// The `--drain-timeout` default that `chihaya --help` states.
fn default_drain_timeout() -> u64 {
    let out = Command::new(env!("CARGO_BIN_EXE_chihaya"))
        .arg("--help")
        .output()
        .expect("chihaya --help");
    let help = String::from_utf8_lossy(&out.stdout);
    let line = help
        .lines()
        .find(|line| line.trim_start().starts_with("--drain-timeout"))
        .unwrap_or_else(|| panic!("no --drain-timeout in\n{help}"));
    let default = line
        .split("[default: ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("no default in {line:?}"));
    default.parse().unwrap()
}

#[test]
fn stop_timeout_outlasts_the_drain() {
    let unit = Unit::read();
    let stop = seconds(unit.service("TimeoutStopSec"));
    // SIGTERM (or SIGINT) starts the drain; any other signal ends the tracker without it.
    assert!(
        matches!(unit.service("KillSignal"), "SIGTERM" | "SIGINT"),
        "KillSignal={}",
        unit.service("KillSignal")
    );
    // Both the value the unit passes and the default it falls back to if an operator
    // removes the flag must fit.
    let mut drains = vec![("the default of chihaya --help", default_drain_timeout())];
    if let Some(value) = unit.flag("--drain-timeout") {
        drains.push(("--drain-timeout in ExecStart=", value.parse().unwrap()));
    }
    for (what, drain) in drains {
        assert!(
            stop >= drain + STOP_MARGIN_SECS,
            "TimeoutStopSec={stop} leaves less than {STOP_MARGIN_SECS} s after {what} \
             ({drain} s): systemd would SIGKILL the tracker in the middle of its stop"
        );
    }
}

/// The system calls the unit's `SystemCallFilter=` allows, expanded with
/// `systemd-analyze syscall-filter` (groups name other groups).
fn allowed_syscalls(unit: &Unit) -> BTreeSet<String> {
    fn expand(name: &str, out: &mut BTreeSet<String>, seen: &mut BTreeSet<String>) {
        if !name.starts_with('@') {
            out.insert(name.to_owned());
            return;
        }
        if !seen.insert(name.to_owned()) {
            return;
        }
        let listing = Command::new("systemd-analyze")
            .args(["syscall-filter", "--no-pager", name])
            .output()
            .expect("systemd-analyze syscall-filter");
        assert!(listing.status.success(), "unknown group {name}");
        // The group's name, then its members indented; comments start with '#'.
        for line in String::from_utf8_lossy(&listing.stdout).lines().skip(1) {
            let member = line.trim();
            if !member.is_empty() && !member.starts_with('#') {
                expand(member, out, seen);
            }
        }
    }
    // Assignments apply in order: an allow list adds, a `~` list takes away (each word
    // may carry `:ERRNO`). A first `~` list would start from every call: not used here.
    let mut allowed = BTreeSet::new();
    for (i, value) in unit.all("SystemCallFilter").iter().enumerate() {
        let (deny, words) = match value.strip_prefix('~') {
            Some(words) => (true, words),
            None => (false, *value),
        };
        assert!(
            !(deny && i == 0),
            "{UNIT}: SystemCallFilter= starts with a deny list"
        );
        for word in words.split_whitespace() {
            let name = word.split(':').next().unwrap_or(word);
            let mut group = BTreeSet::new();
            expand(name, &mut group, &mut BTreeSet::new());
            if deny {
                allowed.retain(|call| !group.contains(call));
            } else {
                allowed.extend(group);
            }
        }
    }
    assert!(
        !allowed.is_empty(),
        "{UNIT}: no SystemCallFilter= allow list"
    );
    allowed
}

/// One line of `strace -f -y` output: the system call's name, and its arguments
/// when the line starts the call (not for `<... name resumed>` lines).
fn syscall_of(line: &str) -> Option<(&str, Option<&str>)> {
    let (_pid, rest) = line.split_once(' ')?;
    let rest = rest.trim_start();
    if let Some(resumed) = rest.strip_prefix("<... ") {
        return Some((resumed.split(' ').next()?, None));
    }
    let (name, args) = rest.split_once('(')?;
    name.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        .then_some((name, Some(args)))
}

/// The paths a call's arguments name, resolved: against the directory strace shows
/// for a descriptor argument (`AT_FDCWD</dir>, "name"`), else against `cwd`.
fn paths_in(args: &str, cwd: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut rest = args;
    let mut before = String::new();
    while let Some(open) = rest.find('"') {
        before.push_str(&rest[..open]);
        let body = &rest[open + 1..];
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else { break };
        let name = Path::new(&body[..end]);
        let trimmed = before.trim_end().trim_end_matches(',');
        let base = match trimmed.strip_suffix('>').and_then(|t| t.rsplit_once('<')) {
            Some((_, dir)) => PathBuf::from(dir),
            None => cwd.to_path_buf(),
        };
        paths.push(base.join(name));
        before = format!("\"{}\"", &body[..end]);
        rest = &body[end + 1..];
    }
    paths
}

/// Calls that change the file system at the paths they name (opens only when they
/// write or create).
const WRITING: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "mkdir",
    "mkdirat",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "rmdir",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "truncate",
    "chmod",
    "fchmodat",
    "chown",
    "lchown",
    "fchownat",
    "mknod",
    "mknodat",
    "utimensat",
    "setxattr",
    "lsetxattr",
    "removexattr",
    "lremovexattr",
];

/// What the trace of the tracker shows that the unit would not allow.
fn sandbox_breaches(trace: &str, state: &Path, unit: &Unit) -> (Vec<String>, BTreeSet<String>) {
    let allowed = allowed_syscalls(unit);
    let families: Vec<&str> = unit
        .all("RestrictAddressFamilies")
        .iter()
        .flat_map(|value| value.split_whitespace())
        .collect();
    let mut breaches = Vec::new();
    let mut called = BTreeSet::new();
    for line in trace.lines() {
        let Some((name, args)) = syscall_of(line) else {
            continue;
        };
        called.insert(name.to_owned());
        let Some(args) = args else { continue };
        let writes = match name {
            "open" | "openat" | "openat2" => ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
                .iter()
                .any(|flag| args.contains(flag)),
            _ => WRITING.contains(&name),
        };
        if writes {
            for path in paths_in(args, state) {
                let inside = path.starts_with(state)
                    && !path.components().any(|c| c == Component::ParentDir);
                if !inside {
                    breaches.push(format!(
                        "writes {} outside the state directory (ProtectSystem=strict): {line}",
                        path.display()
                    ));
                }
            }
        }
        if matches!(name, "socket" | "socketpair") {
            let family = args.split(',').next().unwrap_or("").trim();
            if !families.contains(&family) {
                breaches.push(format!(
                    "{family} is not in RestrictAddressFamilies=: {line}"
                ));
            }
        }
        let exec = args.contains("PROT_EXEC");
        if (matches!(name, "mmap" | "mmap2") && exec && args.contains("PROT_WRITE"))
            || (matches!(name, "mprotect" | "pkey_mprotect") && exec)
        {
            breaches.push(format!("refused by MemoryDenyWriteExecute=: {line}"));
        }
        if matches!(name, "sched_setscheduler" | "sched_setattr")
            && ["SCHED_FIFO", "SCHED_RR", "SCHED_DEADLINE"]
                .iter()
                .any(|policy| args.contains(policy))
        {
            breaches.push(format!("refused by RestrictRealtime=: {line}"));
        }
        if matches!(name, "chdir" | "fchdir") {
            breaches.push(format!(
                "leaves its WorkingDirectory= (this check resolves paths against it): {line}"
            ));
        }
    }
    for name in &called {
        if !allowed.contains(name) {
            breaches.push(format!("system call {name} is not in SystemCallFilter="));
        }
    }
    (breaches, called)
}

/// The tracker strace runs, killed if the test ends before it exits: strace (killed
/// by [`Process`]'s drop) would leave it running, detached.
struct Tracee(Option<u32>);

impl Tracee {
    /// The child of process `strace` that runs this build's `chihaya`, once it does
    /// (strace forks short-lived children of its own first, to probe ptrace).
    fn of(strace: u32) -> Tracee {
        let path = format!("/proc/{strace}/task/{strace}/children");
        let binary = Path::new(env!("CARGO_BIN_EXE_chihaya"));
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let children = std::fs::read_to_string(&path).unwrap_or_default();
            for pid in children.split_whitespace() {
                let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
                if exe.is_ok_and(|exe| exe == binary) {
                    return Tracee(Some(pid.parse().expect("a pid")));
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "strace did not start {}",
                binary.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.0.expect("running").to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} {pid}");
    }

    /// It exited (strace did, which it does only after its tracee).
    fn exited(&mut self) {
        self.0 = None;
    }
}

impl Drop for Tracee {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // Not `signal`: no second panic while the test unwinds.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_as_the_unit_runs_it_stays_inside_the_sandbox() {
    if !have("strace", "strace") || !have("systemd-analyze", "systemd") {
        return;
    }
    let unit = Unit::read();
    // Relative state paths (the defaults of --peer-cache, --spill, --journal and the
    // recorder's events/) land in the state directory only through this.
    let state_name = unit.service("StateDirectory");
    assert_eq!(
        unit.service("WorkingDirectory"),
        format!("%S/{state_name}"),
        "the working directory is the state directory"
    );
    let umask = u32::from_str_radix(unit.service("UMask"), 8).expect("UMask= in octal");

    let db = TestDb::new().await;
    let root = TempDir::new("unit-run");
    let state = root.0.join("var/lib").join(state_name);
    let etc = root.0.join("etc/chihaya");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&etc).unwrap();
    let config = etc.join("config.json");
    std::fs::write(
        &config,
        format!(r#"{{"addr": "{ANY_PORT}", "record": true}}"#),
    )
    .unwrap();
    let trace = root.0.join("trace");

    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-y", "-o"])
        .arg(&trace)
        .arg("--")
        .args(unit.command_line(&config))
        .current_dir(&state)
        .env("DB_DSN", db.dsn());
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: umask is async-signal-safe and changes nothing but the child.
        unsafe {
            command.pre_exec(move || {
                libc::umask(umask as libc::mode_t);
                Ok(())
            });
        }
    }
    let mut strace = Process::spawn(command);
    let mut tracker = Tracee::of(strace.id());
    let addr = strace.wait_ready(WAIT);
    let announce = Announce::new(PASSKEY_1, HASH_3, "a", 50);
    let response = get(addr, &announce.target(), &[]).await;
    assert_eq!(response.status, 200);
    assert!(
        !response.text().contains("failure reason"),
        "{}",
        response.text()
    );
    tracker.signal("TERM");
    let exit = strace.wait(WAIT);
    tracker.exited();
    let log = strace.log_text();
    assert_eq!(exit.code(), Some(0), "exit {exit:?}; log:\n{log}");
    assert!(log.contains("Shutdown complete"), "{log}");

    // The state files are in the state directory, none readable by others (UMask=).
    assert!(
        state.join("peer-cache.bin").is_file(),
        "no peer cache; log:\n{log}"
    );
    assert!(state.join("journal").is_dir(), "no journal; log:\n{log}");
    let events: Vec<PathBuf> = std::fs::read_dir(state.join("events"))
        .expect("events/")
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(
        events.iter().any(|file| {
            file.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events_")
                && std::fs::metadata(file).unwrap().len() > 0
        }),
        "no recorded announce in {events:?}"
    );
    let mut pending = vec![state.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(
                mode & 0o007,
                0,
                "{} is {mode:o}: readable by others",
                path.display()
            );
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    let in_etc: Vec<_> = std::fs::read_dir(&etc).unwrap().collect();
    assert_eq!(in_etc.len(), 1, "the tracker wrote beside its config");

    let trace = std::fs::read_to_string(&trace).expect("strace output");
    let (breaches, called) = sandbox_breaches(&trace, &state, &unit);
    assert!(
        breaches.is_empty(),
        "the unit's sandbox would refuse:\n{}",
        breaches.join("\n")
    );
    // The checks saw the tracker's work: it wrote files, made sockets, and lowered its
    // background threads' priority (allowed: @system-service has setpriority).
    for name in ["openat", "rename", "socket", "setpriority", "flock"] {
        assert!(called.contains(name), "no {name} in the trace: {called:?}");
    }
}
