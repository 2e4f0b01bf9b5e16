//! `edgehook top` (SPEC §12): a full-screen live view over the admin socket, in the habit
//! of `htop` and `vector top`.
//!
//! - `model.rs`: rates, sparkline history and latency percentiles from successive
//!   `GET /v1/status` answers (pure).
//! - `view.rs`: the screen (ratatui), 80×24 and up.
//! - this file: the terminal and the loop: read the status once a second, redraw, and
//!   act on keys (`p` pause, `r` resume, `w` wake the selected endpoint).
//!
//! The terminal is restored (raw mode off, main screen, cursor shown) on every way out:
//! `q`/Esc/Ctrl-C, SIGINT/SIGTERM/SIGHUP, an error, a panic (ratatui's hook), and a daemon
//! that stays unreachable for [`GIVE_UP`] — the reason is then printed on the restored
//! screen. The loop runs on a blocking thread (crossterm's key polling blocks); admin
//! requests go through the async runtime's handle.

mod model;
mod view;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use serde_json::json;
use tokio::runtime::Handle;

use crate::admin::client::Client;
use crate::cli::AdminArgs;
use model::{Model, Status};

/// How often the status is read (the sparklines have one point per read).
const REFRESH: Duration = Duration::from_secs(1);
/// A daemon unreachable for this long ends `top` with the reason.
const GIVE_UP: Duration = Duration::from_secs(5);

/// `edgehook top`.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!(
            "edgehook top draws a live screen and needs a terminal, but stdout is not one; \
             for scripts and pipes use `edgehook status --json`"
        );
    }
    let client = Client::new(&args)?;
    // The first read before the screen switches: a daemon that is not there is reported
    // as by every other command.
    let first = Status::from_json(&client.get("/v1/status").await?);
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone())?;
    let handle = Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut terminal = Terminal::enter()?;
        Top::new(client, handle, stop, first).run(&mut terminal)
    })
    .await
    .context("the top thread failed")?
}

/// Set `stop` on SIGINT, SIGTERM or SIGHUP so the loop restores the terminal and exits.
fn watch_signals(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut signals = [
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
        signal(SignalKind::hangup())?,
    ];
    tokio::spawn(async move {
        let [a, b, c] = &mut signals;
        tokio::select! {
            _ = a.recv() => {}
            _ = b.recv() => {}
            _ = c.recv() => {}
        }
        stop.store(true, Ordering::Relaxed);
    });
    Ok(())
}

/// The terminal in raw mode on the alternate screen; dropping it restores the terminal.
struct Terminal(ratatui::DefaultTerminal);

impl Terminal {
    fn enter() -> anyhow::Result<Terminal> {
        // try_init also installs a panic hook that restores the terminal first.
        let terminal = ratatui::try_init().context("cannot set up the terminal")?;
        Ok(Terminal(terminal))
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

struct Top {
    client: Client,
    handle: Handle,
    stop: Arc<AtomicBool>,
    model: Model,
    selected: usize,
    /// The last action's result (or the connection problem) and whether it is a problem.
    message: Option<(String, bool)>,
    /// Since when the daemon has been unreachable.
    unreachable_since: Option<Instant>,
}

impl Top {
    fn new(client: Client, handle: Handle, stop: Arc<AtomicBool>, first: Status) -> Top {
        let mut model = Model::default();
        model.update(first, Instant::now());
        Top {
            client,
            handle,
            stop,
            model,
            selected: 0,
            message: None,
            unreachable_since: None,
        }
    }

    fn run(mut self, terminal: &mut Terminal) -> anyhow::Result<()> {
        let mut next_read = Instant::now() + REFRESH;
        loop {
            terminal
                .0
                .draw(|frame| {
                    view::draw(
                        frame,
                        &view::Screen {
                            model: &self.model,
                            selected: self.selected,
                            message: self.message.as_ref().map(|(m, p)| (m.as_str(), *p)),
                        },
                    )
                })
                .context("drawing the screen")?;
            // Keys until the next read, checking for a signal every 100 ms.
            while Instant::now() < next_read {
                if self.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let wait = next_read
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100));
                if event::poll(wait).context("reading the terminal")? {
                    match event::read().context("reading the terminal")? {
                        Event::Key(k) if k.kind != KeyEventKind::Release => {
                            let ctrl_c = k.modifiers.contains(KeyModifiers::CONTROL)
                                && k.code == KeyCode::Char('c');
                            if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                                return Ok(());
                            }
                            self.key(k.code);
                            break;
                        }
                        Event::Resize(..) => break,
                        _ => {}
                    }
                }
            }
            if Instant::now() >= next_read {
                self.read()?;
                next_read = Instant::now() + REFRESH;
            }
        }
    }

    /// Read the status; give up when the daemon has been gone for [`GIVE_UP`].
    fn read(&mut self) -> anyhow::Result<()> {
        match self.handle.block_on(self.client.get("/v1/status")) {
            Ok(v) => {
                self.model.update(Status::from_json(&v), Instant::now());
                self.selected = self
                    .selected
                    .min(self.model.status.endpoints.len().saturating_sub(1));
                if self.unreachable_since.take().is_some() {
                    self.message = None;
                }
            }
            Err(err) => {
                let since = *self.unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= GIVE_UP {
                    return Err(
                        err.context(format!("top stopped: no answer for {}s", GIVE_UP.as_secs()))
                    );
                }
                self.message = Some((format!("no answer, retrying: {err:#}"), true));
            }
        }
        Ok(())
    }

    fn key(&mut self, code: KeyCode) {
        let count = self.model.status.endpoints.len();
        match code {
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(count.saturating_sub(1))
            }
            KeyCode::Char('p') => self.act("pause"),
            KeyCode::Char('r') => self.act("resume"),
            KeyCode::Char('w') => self.act("wake"),
            _ => {}
        }
    }

    /// Pause, resume or wake the selected endpoint; the answer goes to the footer.
    fn act(&mut self, verb: &str) {
        let Some(name) = self
            .model
            .status
            .endpoints
            .get(self.selected)
            .map(|e| e.name.clone())
        else {
            return;
        };
        let path = format!("/v1/{verb}");
        let answer = self
            .handle
            .block_on(self.client.post(&path, json!({"endpoint": name})));
        self.message = Some(match answer {
            Ok(_) => (format!("{}: {name}", past(verb)), false),
            Err(err) => (format!("{verb} {name}: {err:#}"), true),
        });
        // Show the new state at once.
        let _ = self.read();
    }
}

fn past(verb: &str) -> &str {
    match verb {
        "pause" => "paused",
        "resume" => "resumed",
        _ => "woken",
    }
}
