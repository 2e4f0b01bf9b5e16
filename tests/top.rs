//! `edgehook top` in a real terminal: tmux (80×24, like an ssh session) runs it against a
//! real daemon whose backlog drains at a set rate; the test reads the screen with
//! `capture-pane`, presses keys with `send-keys`, and checks after every way out that the
//! terminal is back (main screen, `icanon echo`).

use std::time::Duration;

use crate::util::delivery::{pending, Endpoint, Upstream};
use crate::util::tmux::Tmux;
use crate::util::{run_cli, Builder, TestDaemon};

/// Events queued while the endpoint is paused.
const BACKLOG: usize = 300;
/// `rate_limit` of the endpoint: the backlog drains over seconds, so the screen moves.
const RATE: u32 = 40;
/// `edgehook top` in the pane; afterwards the shell prints its exit status and whether
/// the terminal is back in canonical mode with echo, then waits.
fn top_command(d: &TestDaemon) -> String {
    format!(
        "{} top --admin-socket {}; rc=$?; echo \"top exited $rc; tty $(stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' ')tty-end\"; sleep 600",
        env!("CARGO_BIN_EXE_edgehook"),
        d.dir().join("admin.sock").display()
    )
}

/// The number in the PENDING column of endpoint `e`'s row.
fn pending_on_screen(screen: &str) -> Option<u64> {
    let row = screen
        .lines()
        .find(|l| l.trim_start_matches('>').starts_with("e "))?;
    row.split_whitespace().nth(2)?.parse().ok()
}

fn assert_restored(tmux: &Tmux, exit: &str) -> String {
    let screen = tmux.wait_screen("the shell after top", |s| s.contains("tty-end"));
    assert!(screen.contains(&format!("top exited {exit};")), "{screen}");
    assert!(
        screen.contains("tty icanon echo tty-end"),
        "terminal not back in canonical mode with echo:\n{screen}"
    );
    assert!(!tmux.alternate_screen(), "still on the alternate screen");
    screen
}

#[test]
fn top_shows_a_draining_backlog_and_its_keys_act() {
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let d = b
        .toml(
            &Endpoint::new("e", &up.url("/hook"), &ca)
                .key(&format!("rate_limit = \"{RATE}/s\""))
                .toml(),
        )
        .start();
    let admin = d.dir().join("admin.sock");
    let admin = admin.to_str().unwrap();
    let (code, _, err) = run_cli(&["pause", "e", "--admin-socket", admin], None);
    assert_eq!(code, 0, "{err}");
    let batch: String = (0..BACKLOG)
        .map(|i| format!("{{\"type\":\"Test.top\",\"id\":\"top-{i}\",\"data\":{{}}}}\n"))
        .collect();
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_eq!(r.status, 202, "{r:?}");

    let Some(tmux) = Tmux::start(d.dir(), &top_command(&d)) else {
        return;
    };
    // Waiting for the whole screen: a capture may catch the first frame half drawn.
    let needles = [
        "paused",
        "ENDPOINT",
        "DELIV/S",
        "P99",
        "delivered/s",
        "failed/s",
        "q quit",
    ];
    let screen = tmux.wait_screen("the paused backlog", |s| {
        needles.iter().all(|n| s.contains(n)) && pending_on_screen(s) == Some(BACKLOG as u64)
    });
    assert!(tmux.alternate_screen());
    assert!(
        screen.lines().all(|l| l.chars().count() <= 80),
        "wider than 80 columns:\n{screen}"
    );

    // `r` resumes the selected (only) endpoint; the backlog drains on screen.
    tmux.keys("r");
    let first = tmux.wait_screen("the backlog draining", |s| {
        s.contains("resumed: e") && pending_on_screen(s).is_some_and(|n| n < BACKLOG as u64)
    });
    let first_pending = pending_on_screen(&first).unwrap();
    let later = tmux.wait_screen("fewer pending and a delivery rate", |s| {
        pending_on_screen(s).is_some_and(|n| n + RATE as u64 / 2 < first_pending)
            && delivery_rate(s).is_some_and(|r| r > 0.0)
    });
    assert!(later.contains("online"), "{later}");

    // `p` pauses it again: the number stops.
    tmux.keys("p");
    let paused = tmux.wait_screen("the endpoint paused", |s| s.contains("paused: e"));
    let held = pending(&d);
    assert!(
        held > 0,
        "the backlog was paused before it drained:\n{paused}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pending(&d), held, "deliveries continued after `p`");

    tmux.keys("q");
    assert_restored(&tmux, "0");
}

/// The DELIV/S column of endpoint `e`'s row.
fn delivery_rate(screen: &str) -> Option<f64> {
    let row = screen
        .lines()
        .find(|l| l.trim_start_matches('>').starts_with("e "))?;
    let cols: Vec<&str> = row.split_whitespace().collect();
    // ENDPOINT STATE PENDING INFL DELIV/S …
    cols.get(4)?.parse().ok()
}

#[test]
fn top_restores_the_terminal_on_ctrl_c_and_when_the_daemon_goes() {
    let mut d = TestDaemon::start();
    let Some(tmux) = Tmux::start(d.dir(), &top_command(&d)) else {
        return;
    };
    tmux.wait_screen("the endpoints", |s| s.contains("spark"));
    tmux.keys("C-c");
    assert_restored(&tmux, "0");
    drop(tmux);

    let tmux = Tmux::start(d.dir(), &top_command(&d)).unwrap();
    tmux.wait_screen("the endpoints", |s| s.contains("spark"));
    d.kill9();
    tmux.wait_screen("the lost daemon", |s| s.contains("retrying"));
    let screen = assert_restored(&tmux, "1");
    assert!(
        screen.contains("edgehook: top stopped: no answer for 5s: cannot reach edgehook at"),
        "{screen}"
    );
}

#[test]
fn top_refuses_without_a_terminal() {
    let d = TestDaemon::start();
    let admin = d.dir().join("admin.sock");
    let (code, out, err) = run_cli(&["top", "--admin-socket", admin.to_str().unwrap()], None);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.contains("needs a terminal") && err.contains("edgehook status --json"),
        "{err}"
    );
}
