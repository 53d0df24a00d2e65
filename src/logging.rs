//! Logging: human-readable lines on stderr only (stdout belongs to `oci`), filtered by `RUST_LOG`,
//! else `--debug`, else `--log-level` / INI `log_level` (Python names like `WARNING` accepted),
//! else warnings only. Secrets never reach a log call (they are `SecretString`, whose Debug is
//! redacted), so no output filter is needed; each line passes [`crate::terminal::safe`].

use std::io::IsTerminal;
use tracing::Level;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

fn use_colour(stderr_is_terminal: bool, no_color: bool) -> bool {
    stderr_is_terminal && !no_color
}

/// Maps a Python-style or Rust-style level name to a tracing directive for woci's own crate.
pub(crate) fn directive(level: &str) -> Option<String> {
    let l = match level.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "critical" | "fatal" => "error",
        "off" | "none" => "off",
        _ => return None,
    };
    Some(format!("woci={l}"))
}

/// Whether `text` is new to this process, for a warning given once per process (a daemon meets
/// the same missing folder at every renewal).
pub(crate) fn first_time(text: &str) -> bool {
    static SEEN: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    SEEN.lock().unwrap_or_else(|p| p.into_inner()).insert(text.to_owned())
}

/// Warns `text` unless this process already did ([`first_time`]).
pub(crate) fn warn_once(text: &str) {
    if first_time(text) {
        tracing::warn!("{text}");
    }
}

/// Installs the subscriber. Call once, early. `daemon`: every line starts with the time and
/// `woci-daemon[pid]:` instead of `woci:`, as the daemon's own log lines do.
pub(crate) fn init(log_level: Option<&str>, debug: bool, rust_log: Option<&str>, no_color: bool, daemon: bool) {
    DAEMON.store(daemon, std::sync::atomic::Ordering::Relaxed);
    let filter = match rust_log.filter(|s| !s.is_empty()) {
        Some(f) => EnvFilter::try_new(f).unwrap_or_else(|_| EnvFilter::new("woci=warn")),
        None if debug => EnvFilter::new("woci=debug"),
        None => EnvFilter::new(log_level.and_then(directive).unwrap_or_else(|| "woci=warn".into())),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A stderr nobody reads any more (a closed SSH session, `2>&1 | head`) must not end woci:
        // tracing's own report of the failed write would panic in `eprintln!`.
        .log_internal_errors(false)
        // Colours only on a terminal and unless NO_COLOR (no-color.org): CI logs and files stay plain.
        .with_ansi(use_colour(std::io::stderr().is_terminal(), no_color))
        .event_format(WociLine { daemon })
        .try_init();
}

/// Whether lines carry the daemon's prefix ([`init`]).
static DAEMON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints `text` (already safe for a terminal) as a line of woci's own at every log level, with
/// the prefix log lines have: `woci: `, or the daemon's time and `woci-daemon[pid]: ` in its log.
pub(crate) fn say(text: &str) {
    let mut line = String::new();
    let _ = write_prefix(&mut line, DAEMON.load(std::sync::atomic::Ordering::Relaxed));
    crate::terminal::say(&(line + text));
}

fn write_prefix(w: &mut impl std::fmt::Write, daemon: bool) -> std::fmt::Result {
    // The daemon's prefix names woci already.
    match daemon {
        true => {
            let now = crate::clock::Clock::unix(&crate::clock::SystemClock);
            write!(w, "{} woci-daemon[{}]: ", crate::clock::fmt_utc(now), std::process::id())
        }
        false => write!(w, "woci: "),
    }
}

/// One line per event, like every other line woci prints: `woci: warning: …`, `woci: error: …`,
/// `woci: …` (info), `woci: debug: …`, then the event's fields as `(key=value, …)`.
struct WociLine {
    daemon: bool,
}

impl<S, N> FormatEvent<S, N> for WociLine
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            Level::INFO => "",
            Level::DEBUG => "debug: ",
            Level::TRACE => "trace: ",
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        write_prefix(&mut w, self.daemon)?;
        // Messages and fields may quote a server, a token or a file: one line, nothing a terminal acts on.
        write!(w, "{level}{}", crate::terminal::safe(&fields.message))?;
        if !fields.rest.is_empty() {
            write!(w, " ({})", crate::terminal::safe(&fields.rest.join(", ")))?;
        }
        writeln!(w)
    }
}

/// The message and the other fields of an event, as text (never a secret: see the module doc).
#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<String>,
}

impl Fields {
    fn record(&mut self, field: &tracing::field::Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            name => self.rest.push(format!("{name}={value}")),
        }
    }
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, false));
        assert!(!use_colour(false, false));
        assert!(!use_colour(true, true));
    }

    /// What `event` prints through [`WociLine`].
    fn line(daemon: bool, event: impl FnOnce()) -> String {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Sink(sink.clone()))
            .with_ansi(false)
            .event_format(WociLine { daemon })
            .finish();
        tracing::subscriber::with_default(subscriber, event);
        let out = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        out
    }

    #[test]
    fn daemon_lines_carry_the_time_and_pid_like_its_own() {
        let out = line(true, || tracing::warn!("retrying"));
        let (time, rest) = out.split_once(' ').unwrap();
        assert!(time.len() == 20 && time.ends_with('Z'), "{out}");
        assert_eq!(rest, format!("woci-daemon[{}]: warning: retrying\n", std::process::id()));
    }

    #[test]
    fn log_lines_escape_what_a_terminal_acts_on() {
        let out = line(false, || {
            let server = "bad\u{1b}[2J\u{202e}x\nwoci: error: fake";
            tracing::warn!(host = server, "the server said {server}");
        });
        assert_eq!(
            out,
            "woci: warning: the server said bad\\x1b[2J\\u{202e}x\\nwoci: error: fake (host=bad\\x1b[2J\\u{202e}x\\nwoci: error: fake)\n"
        );
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn python_level_names() {
        assert_eq!(directive("WARNING").as_deref(), Some("woci=warn"));
        assert_eq!(directive("Info").as_deref(), Some("woci=info"));
        assert_eq!(directive("CRITICAL").as_deref(), Some("woci=error"));
        assert_eq!(directive("loud"), None);
    }
}
