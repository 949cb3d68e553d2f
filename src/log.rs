//! Log output: one stderr line per event, `YYYY/MM/DD HH:MM:SS [L] message`, in UTC,
//! with `L` one of `I`, `W`, `E` (and `D` for debug builds' extra detail).

use std::fmt;
use std::time::Duration;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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
/// operator. Calling it again is harmless.
pub fn init() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("chihaya", Level::INFO)
        .with_default(Level::WARN);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(LineFormat)
        .with_filter(filter);
    if tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).is_ok() {
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
    fn durations() {
        assert_eq!(fmt_duration(Duration::from_nanos(850)), "850ns");
        assert_eq!(fmt_duration(Duration::from_nanos(12_500)), "12.5µs");
        assert_eq!(fmt_duration(Duration::from_micros(3_204)), "3.204ms");
        assert_eq!(fmt_duration(Duration::from_secs(2)), "2s");
        assert_eq!(fmt_duration(Duration::from_millis(1_500)), "1.5s");
    }
}
