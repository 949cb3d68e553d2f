//! CPU figures for the benchmark examples (`bench_db`, `bench_reads`): a process's
//! CPU from `/proc`, this process's own, and a wait until MariaDB is idle. Each
//! example uses what it needs of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

pub type Error = Box<dyn std::error::Error>;

/// The server counts as idle after a window with at most one tick of CPU.
const QUIET_WINDOW: Duration = Duration::from_millis(250);
const QUIET_CAP: Duration = Duration::from_secs(10);

/// utime + stime of a process, in clock ticks.
pub fn process_ticks(pid: u32) -> Result<u64, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').ok_or("bad /proc stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64, Error> { Ok(fields[n - 3].parse()?) };
    Ok(field(14)? + field(15)?)
}

/// Busy and total ticks of the whole host (first line of /proc/stat).
pub fn host_ticks() -> Result<(u64, u64), Error> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().ok_or("empty /proc/stat")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let total: u64 = values.iter().sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// This process's user + system CPU time (all threads), at microsecond resolution.
pub fn own_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Waits until mariadbd has used at most one tick in a window (or the cap passed);
/// returns how long it waited.
pub async fn wait_quiet(pid: u32) -> Result<Duration, Error> {
    let started = Instant::now();
    let mut before = process_ticks(pid)?;
    loop {
        tokio::time::sleep(QUIET_WINDOW).await;
        let now = process_ticks(pid)?;
        if now - before <= 1 || started.elapsed() >= QUIET_CAP {
            return Ok(started.elapsed());
        }
        before = now;
    }
}
