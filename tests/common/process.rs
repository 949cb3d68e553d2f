//! The `chihaya` binary as a child process: its log lines as they come, signals, exit.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn chihaya() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chihaya"));
    command.env_remove("DB_DSN");
    command
}

/// What a test's config puts in `addr`: port 0, the system picks one; the test reads
/// it from the Ready line ([`Process::wait_ready`]).
pub const ANY_PORT: &str = "127.0.0.1:0";

/// The start of the line a tracker logs once it serves, before the address it bound.
pub const READY: &str = "Ready and accepting new connections on ";

/// The address a Ready line names.
pub fn ready_addr(line: &str) -> Option<SocketAddr> {
    let at = line.find(READY)? + READY.len();
    line[at..].trim().parse().ok()
}

/// Rewrites `addr` in the config file at `path` to `bound`: a tracker restarted with it
/// serves where the clients of the previous run connect.
pub fn pin_addr(path: &Path, bound: SocketAddr) {
    let text = std::fs::read_to_string(path).expect("read the config");
    let pinned = text.replace(
        &format!("\"addr\": \"{ANY_PORT}\""),
        &format!("\"addr\": \"{bound}\""),
    );
    std::fs::write(path, pinned).expect("write the config");
}

pub struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stderr line read so far.
    pub log: Vec<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    /// Starts `chihaya --config <config> args...` with `DB_DSN` = `dsn`.
    pub fn start(config: &Path, dsn: &str, args: &[&str]) -> Process {
        Process::start_with(config, dsn, args, |_| {})
    }

    /// The same, under `umask` (the files it creates get modes as an operator's
    /// would).
    pub fn start_with_umask(config: &Path, dsn: &str, args: &[&str], umask: u32) -> Process {
        use std::os::unix::process::CommandExt;
        Process::start_with(config, dsn, args, move |command| {
            // SAFETY: umask is async-signal-safe and touches nothing but the child.
            unsafe {
                command.pre_exec(move || {
                    libc::umask(umask as libc::mode_t);
                    Ok(())
                });
            }
        })
    }

    /// Starts with `prepare` applied to the command first (umask, working directory).
    pub fn start_with(
        config: &Path,
        dsn: &str,
        args: &[&str],
        prepare: impl FnOnce(&mut Command),
    ) -> Process {
        let mut command = chihaya();
        prepare(&mut command);
        // The journal goes beside the config (the test's own directory), never into
        // the working directory shared by every test.
        if !args.contains(&"--journal") {
            let dir = config.parent().unwrap_or(Path::new(".")).join("journal");
            command.arg("--journal").arg(dir);
        }
        command
            .arg("--config")
            .arg(config)
            .args(args)
            .env("DB_DSN", dsn);
        Process::spawn(command)
    }

    /// Starts `command` as it is (a tracker started some other way, or a program
    /// that runs one), reading its stderr.
    pub fn spawn(mut command: Command) -> Process {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chihaya");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Process {
            child,
            lines,
            log: Vec::new(),
            reader: Some(reader),
        }
    }

    /// Reads log lines until one contains `text` (panics after `within`).
    pub fn wait_for(&mut self, text: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {text:?} within {within:?}; log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Waits for the Ready line (panics after `within`) and returns the address it
    /// names: the one the tracker bound.
    pub fn wait_ready(&mut self, within: Duration) -> SocketAddr {
        let line = self.wait_for(READY, within);
        ready_addr(&line).unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    /// Like [`Process::wait_for`], but `None` instead of a panic when no such line
    /// comes within `within` or the process closes its stderr (it exited).
    pub fn try_wait_for(&mut self, text: &str, within: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            self.log.push(line.clone());
            if line.contains(text) {
                return Some(line);
            }
        }
    }

    /// Takes every line already written into `log`, so that the next
    /// [`Process::wait_for`] only sees lines written from now on.
    pub fn skip_written_lines(&mut self) {
        self.log.extend(self.lines.try_iter());
    }

    /// The process id of the child.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL (nothing is flushed, nothing is written), then the exit status; the log
    /// is complete afterwards.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for the killed chihaya");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.log.extend(self.lines.try_iter());
        status
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the exit (panics after `within`) and collects the rest of the log.
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                self.log.extend(self.lines.try_iter());
                return status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "chihaya did not exit within {within:?}; log:\n{}",
                    self.log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status and the whole log, waited for off the async
    /// workers (a test's proxy or tracker tasks keep running meanwhile).
    pub async fn terminate(self, within: Duration) -> (ExitStatus, String) {
        self.stop_with("TERM", within).await
    }

    /// The same with another signal (`INT`).
    pub async fn stop_with(mut self, signal: &str, within: Duration) -> (ExitStatus, String) {
        self.signal(signal);
        tokio::task::spawn_blocking(move || (self.wait(within), self.log_text()))
            .await
            .expect("waiting for chihaya")
    }

    pub fn log_text(&self) -> String {
        self.log.join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
