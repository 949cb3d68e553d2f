//! The Debian programs some tests run themselves (the BitTorrent clients, prometheus,
//! haproxy, the systemd tools): where they are, and what a test does without them.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

/// A line on the real stderr, past the test harness's capture, prefixed with the
/// test's name: whether a test ran, and with what, belongs in every `make test` log.
pub fn say(test: &str, line: &str) {
    let _ = writeln!(std::io::stderr(), "{test}: {line}");
}

/// `program` on PATH, or in /usr/sbin or /usr/local/sbin, where Debian puts daemons
/// (not on a user's PATH).
pub fn find(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// Whether every one of `programs` is there. Without one, `test` is skipped and says
/// so (naming `packages`, the Debian packages that `make test` installs when run as
/// root), except with `CI` set: there a missing tool is a broken set-up, and the test
/// fails.
pub fn present_or_skip(test: &str, programs: &[&str], packages: &str) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|program| find(program).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let needed = format!(
        "{} needed (Debian {packages}; `make test` installs them when run as root)",
        missing.join(", ")
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set and a tool is missing: {needed}"
    );
    say(test, &format!("SKIPPED: {needed}"));
    false
}

/// An address on 127.0.0.1 that was free a moment ago, for a program that takes an
/// address or a port to listen on rather than a socket (the tracker binds port 0 and
/// says which it got; these do not, so a small race remains).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
}

/// A file of this repository.
pub fn repo_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}
