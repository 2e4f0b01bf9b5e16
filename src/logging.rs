//! Where log lines go and in which shape (SPEC §9); what they say follows vector's rules
//! (STYLE.md).
//!
//! [`init`] runs first in `main`, before the config is read, with the `auto` choice: the
//! journal when stderr is connected to it (`JOURNAL_STREAM`), human text on stderr
//! otherwise. Once the config is loaded (and after each reload) [`set_format`] applies
//! `daemon.log_format`. The output layer sits behind a `reload` layer, so switching swaps
//! only that layer; the filter (`EDGEHOOK_LOG`, an `EnvFilter` directive, default `info`)
//! stays.
//!
//! In the journal every event field becomes a journal field of the same name in upper case
//! (`event_id` → `EVENT_ID`, `endpoint` → `ENDPOINT`, `status` → `STATUS`), without
//! `tracing-journald`'s default `F_` prefix, so `journalctl -u edgehook ENDPOINT=spark` works.
//!
//! `repeats.rs`: log a repeated identical failure once, then a summary a minute (SPEC §12).

pub mod repeats;

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use crate::config::LogFormat;
use crate::systemd;

type Output = Box<dyn Layer<Registry> + Send + Sync>;

/// The output layer's reload handle and what it writes to now; set by [`init`].
static OUTPUT: OnceLock<(reload::Handle<Output, Registry>, Mutex<Sink>)> = OnceLock::new();

/// The output a format resolves to here and now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Journal,
    Text,
    Json,
}

/// `auto` is the journal exactly when stderr is connected to it.
fn resolve(format: LogFormat, stderr_is_journal: bool) -> Sink {
    match format {
        LogFormat::Auto if stderr_is_journal => Sink::Journal,
        LogFormat::Auto | LogFormat::Text => Sink::Text,
        LogFormat::Journald => Sink::Journal,
        LogFormat::Json => Sink::Json,
    }
}

/// Install the global subscriber with `log_format = "auto"`. Does nothing if one is
/// already installed.
pub fn init() {
    let filter = EnvFilter::try_from_env("EDGEHOOK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (output, sink, fallback) = output(LogFormat::Auto);
    let (layer, handle) = reload::Layer::new(output);
    if tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init()
        .is_ok()
    {
        let _ = OUTPUT.set((handle, Mutex::new(sink)));
        if let Some(err) = fallback {
            tracing::warn!(error = %err, "Cannot reach journald; logging text to stderr.");
        }
    }
}

/// Switch the output to `format` (`daemon.log_format`); a no-op when that is the current
/// output or [`init`] did not install the subscriber.
pub fn set_format(format: LogFormat) {
    let Some((handle, current)) = OUTPUT.get() else {
        return;
    };
    let mut current = current.lock().unwrap_or_else(|p| p.into_inner());
    if *current == resolve(format, systemd::stderr_is_journal()) {
        return;
    }
    let (output, sink, fallback) = output(format);
    if *current != sink && handle.reload(output).is_ok() {
        *current = sink;
    }
    drop(current);
    if let Some(err) = fallback {
        tracing::warn!(error = %err, "daemon.log_format = \"journald\" but journald cannot be reached; logging text to stderr.");
    }
}

/// The output layer for `format`, where it writes, and the error that made a journal
/// output fall back to text.
fn output(format: LogFormat) -> (Output, Sink, Option<std::io::Error>) {
    let text = || {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed()
    };
    match resolve(format, systemd::stderr_is_journal()) {
        Sink::Text => (text(), Sink::Text, None),
        Sink::Json => (
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(std::io::stderr)
                .boxed(),
            Sink::Json,
            None,
        ),
        Sink::Journal => match tracing_journald::layer() {
            Ok(journal) => (
                journal
                    .with_field_prefix(None)
                    .with_syslog_identifier("edgehook".to_string())
                    .boxed(),
                Sink::Journal,
                None,
            ),
            Err(err) => (text(), Sink::Text, Some(err)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_means_journal_only_when_stderr_is_the_journal() {
        assert_eq!(resolve(LogFormat::Auto, true), Sink::Journal);
        assert_eq!(resolve(LogFormat::Auto, false), Sink::Text);
        assert_eq!(resolve(LogFormat::Text, true), Sink::Text);
        assert_eq!(resolve(LogFormat::Json, true), Sink::Json);
        assert_eq!(resolve(LogFormat::Journald, false), Sink::Journal);
    }
}
