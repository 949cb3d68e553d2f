//! Log output: one stderr line per event, `YYYY/MM/DD HH:MM:SS [L] message`, in UTC,
//! with `L` one of `I`, `W`, `E` (and `D` for debug builds' extra detail).
//!
//! Anything a client can cause at will must not cost a log line each time, or one
//! client floods the log: the HTTP layer's complaints about unparsable requests are
//! counted ([`client_errors`]) and summed up in at most one line a minute, and other
//! modules throttle their own client-caused lines with a [`Throttle`].

use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The crate whose events are what clients cause: actix-http logs a line for every
/// request it cannot parse (`stream error: request parse error: ...`).
const CLIENT_ERROR_TARGET: &str = "actix_http";

/// Events of [`CLIENT_ERROR_TARGET`] since start, for `chihaya_client_errors_total`.
static CLIENT_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Requests the HTTP layer refused as unparsable (or connections it dropped for a
/// client's error) since the process started.
pub fn client_errors() -> u64 {
    CLIENT_ERRORS.load(Ordering::Relaxed)
}

/// Lets a repeated event through at most once per period, counting the ones held back.
pub struct Throttle {
    every: Duration,
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    last_line: Option<Instant>,
    /// Events since the last line, the next line's included.
    since: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            state: Mutex::new(ThrottleState::default()),
        }
    }

    /// Counts one event at `now`; when a line is due, returns how many events it
    /// stands for (this one and those held back since the previous line).
    pub fn hit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.since = state.since.saturating_add(1);
        let due = state
            .last_line
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if !due {
            return None;
        }
        state.last_line = Some(now);
        Some(std::mem::take(&mut state.since))
    }
}

/// Counts the HTTP layer's client errors and writes one summary line at most a minute.
struct ClientErrors {
    throttle: Throttle,
}

/// The `message` field of an event, as text.
struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            use fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for ClientErrors {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        CLIENT_ERRORS.fetch_add(1, Ordering::Relaxed);
        let Some(count) = self.throttle.hit(Instant::now()) else {
            return;
        };
        let mut latest = String::new();
        event.record(&mut Message(&mut latest));
        let line = format!(
            "{} [W] {} client errors since the last report (latest: {})\n",
            chrono::Utc::now().format("%Y/%m/%d %H:%M:%S"),
            count,
            latest
        );
        // One write call, so the line is not interleaved with others.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => 'E',
            Level::WARN => 'W',
            Level::INFO => 'I',
            _ => 'D',
        };
        write!(
            writer,
            "{} [{}] ",
            chrono::Utc::now().format("%Y/%m/%d %H:%M:%S"),
            level
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Installs the stderr logger for the process: our own events from info up, other
/// crates' (actix, sqlx) only from warnings up, as their info lines are noise to an
/// operator; actix-http's per-request complaints only as the throttled summary of
/// [`ClientErrors`]. Calling it again is harmless.
pub fn init() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("chihaya", Level::INFO)
        .with_target(CLIENT_ERROR_TARGET, LevelFilter::OFF)
        .with_default(Level::WARN);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(LineFormat)
        .with_filter(filter);
    let client_errors = ClientErrors {
        throttle: Throttle::new(Duration::from_secs(60)),
    }
    .with_filter(
        tracing_subscriber::filter::Targets::new().with_target(CLIENT_ERROR_TARGET, Level::WARN),
    );
    let subscriber = tracing_subscriber::registry()
        .with(layer)
        .with(client_errors);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        // Panics become log lines too; the HTTP layer turns a handler's panic into a 500.
        std::panic::set_hook(Box::new(|info| tracing::error!("panic: {}", info)));
    }
}

/// A duration the way operators read them in logs: `850ns`, `12.5µs`, `3.2ms`, `1.5s`, `2s`.
pub fn fmt_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    let (value, unit) = match nanos {
        0..=999 => return format!("{nanos}ns"),
        1_000..=999_999 => (nanos as f64 / 1e3, "µs"),
        1_000_000..=999_999_999 => (nanos as f64 / 1e6, "ms"),
        _ => (d.as_secs_f64(), "s"),
    };
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_one_line_a_period_through_with_the_count() {
        let throttle = Throttle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(throttle.hit(t0), Some(1));
        for n in 1..100 {
            assert_eq!(throttle.hit(t0 + Duration::from_millis(n)), None);
        }
        // The next line, a minute after the last, stands for the 99 held back and itself.
        assert_eq!(throttle.hit(t0 + Duration::from_secs(60)), Some(100));
        assert_eq!(throttle.hit(t0 + Duration::from_secs(61)), None);
        assert_eq!(throttle.hit(t0 + Duration::from_secs(125)), Some(2));
    }

    #[test]
    fn durations() {
        assert_eq!(fmt_duration(Duration::from_nanos(850)), "850ns");
        assert_eq!(fmt_duration(Duration::from_nanos(12_500)), "12.5µs");
        assert_eq!(fmt_duration(Duration::from_micros(3_204)), "3.204ms");
        assert_eq!(fmt_duration(Duration::from_secs(2)), "2s");
        assert_eq!(fmt_duration(Duration::from_millis(1_500)), "1.5s");
    }
}
