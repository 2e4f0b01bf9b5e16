//! Progress display for the long CLI operations (`export`, `import`, `receipt apply`,
//! `dead retry`, `dead purge`, `reload`): an indicatif bar or spinner on stderr when
//! stderr is a terminal, and a hidden one otherwise, so that piped or redirected output
//! stays exactly the summary lines scripts parse.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How often a shown bar redraws on its own (elapsed time, spinner) between updates.
const TICK: Duration = Duration::from_millis(200);

/// A bar counting bytes out of `len`, or a byte-counting spinner when the size is unknown.
pub fn bytes(len: Option<u64>) -> ProgressBar {
    match len {
        Some(n) => shown(ProgressBar::new(n), BYTES),
        None => shown(ProgressBar::new_spinner(), BYTES_UNKNOWN),
    }
}

/// A bar counting items (e.g. dead letters) out of `len`, labelled `msg`.
pub fn count(len: u64, msg: &str) -> ProgressBar {
    let bar = shown(ProgressBar::new(len), COUNT);
    bar.set_message(msg.to_string());
    bar
}

/// A spinner with the time spent so far, labelled `msg`, for a wait of unknown length.
pub fn spinner(msg: &str) -> ProgressBar {
    let bar = shown(ProgressBar::new_spinner(), SPINNER);
    bar.set_message(msg.to_string());
    bar
}

/// Turn `bar` (of [`bytes`]) into a [`spinner`] once its part is done and a wait begins.
pub fn to_spinner(bar: &ProgressBar, msg: &str) {
    bar.set_style(style(SPINNER));
    bar.set_message(msg.to_string());
}

const BYTES: &str = "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}";
const BYTES_UNKNOWN: &str = "{spinner} {msg}: {bytes} {bytes_per_sec}";
const COUNT: &str = "{msg} [{bar:30}] {pos}/{len} ({elapsed})";
const SPINNER: &str = "{spinner} {msg} ({elapsed})";

/// `bar` styled by `template` and ticking, if stderr is a terminal; else a hidden bar.
fn shown(bar: ProgressBar, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = bar.with_style(style(template));
    bar.enable_steady_tick(TICK);
    bar
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        for t in [BYTES, BYTES_UNKNOWN, COUNT, SPINNER] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }
}
