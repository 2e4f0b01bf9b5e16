//! Where log lines go and in which shape (SPEC §9); what they say follows vector's rules
//! (STYLE.md).
//!
//! [`init`] runs first in `main`, before the config is read, with the `auto` choice: the
//! journal when stderr is connected to it (`JOURNAL_STREAM`), human text on stderr
//! otherwise. Once the config is loaded (and after each reload) [`set_format`] applies
//! `daemon.log_format`. The output layer sits behind a `reload` layer, so switching swaps
//! only that layer; the filter ([`filter`]: `EDGEHOOK_LOG`, default `info`) stays.
//!
//! In the journal every event field becomes a journal field of the same name in upper case
//! (`event_id` → `EVENT_ID`, `endpoint` → `ENDPOINT`, `status` → `STATUS`), without
//! `tracing-journald`'s default `F_` prefix, so `journalctl -u edgehook ENDPOINT=spark` works.
//!
//! `repeats.rs`: log a repeated identical failure once, then a summary a minute (SPEC §12).

pub mod repeats;

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Layer, Registry};

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
    let (filter, bad_filter) = filter(std::env::var("EDGEHOOK_LOG").ok().as_deref());
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
        if let Some(err) = bad_filter {
            tracing::warn!(error = %err, "EDGEHOOK_LOG is not a filter (LEVEL or TARGET=LEVEL, comma-separated); logging at info.");
        }
    }
}

/// The log filter `EDGEHOOK_LOG` asks for: comma-separated `LEVEL` and `TARGET=LEVEL`
/// directives (`info,edgehook::deliver=debug`); `info` when unset or when it does not
/// parse (the error is returned to be logged). A `Targets` filter rather than an
/// `EnvFilter`: it needs no regex engine, half a megabyte of the binary (BENCHMARKS.md,
/// "Footprint"), and span or field directives are no use for a daemon's logs.
fn filter(env: Option<&str>) -> (Targets, Option<String>) {
    let info = || Targets::new().with_default(tracing::Level::INFO);
    match env.map(str::trim).filter(|s| !s.is_empty()) {
        None => (info(), None),
        Some(directives) => match directives.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(err) => (info(), Some(format!("{directives:?}: {err}"))),
        },
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

    #[test]
    fn the_filter_takes_levels_per_target_and_falls_back_to_info() {
        use tracing::Level;
        let on = |env, target, level| filter(env).0.would_enable(target, &level);
        assert!(on(None, "edgehook", Level::INFO) && !on(None, "edgehook", Level::DEBUG));
        assert!(on(Some("  "), "hyper", Level::INFO) && !on(Some(" "), "hyper", Level::DEBUG));
        let env = Some("warn,edgehook::deliver=debug");
        assert!(on(env, "edgehook::deliver::worker", Level::DEBUG));
        assert!(
            !on(env, "edgehook::store", Level::INFO) && on(env, "edgehook::store", Level::WARN)
        );
        let (targets, err) = filter(Some("edgehook=loud"));
        assert!(targets.would_enable("edgehook", &Level::INFO));
        assert!(err.unwrap().contains("edgehook=loud"));
    }
}
