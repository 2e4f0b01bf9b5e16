//! At least once across a crash (SPEC §5): the daemon is SIGKILLed while it delivers and
//! while a client keeps sending; after a restart every event it answered 202 reaches every
//! endpoint, and only deliveries that were in flight at the kill arrive twice.

use std::collections::HashMap;
use std::sync::mpsc;

use crate::util::delivery::{pending, wait_db, Endpoint, Upstream};
use crate::util::{client, Builder};

/// Requests the receiver must have seen before the kill: deliveries are under way.
const BEFORE_KILL: usize = 60;
/// `concurrency` of each endpoint: the most deliveries in flight, so the most that a
/// kill can leave sent but not recorded.
const CONCURRENCY: usize = 4;

#[test]
fn sigkill_mid_delivery_loses_nothing_and_repeats_little() {
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let endpoint = |name: &str| {
        Endpoint::new(name, &up.url(&format!("/{name}")), &ca)
            .key(&format!("concurrency = {CONCURRENCY}"))
            .toml()
    };
    let mut d = b.toml(&endpoint("a")).toml(&endpoint("b")).start();

    let (acked_tx, acked_rx) = mpsc::channel::<String>();
    let socket = d.socket().to_path_buf();
    let sender = std::thread::spawn(move || {
        client::post_until_killed(
            &socket,
            "kill",
            |n| format!("{{\"n\":{n}}}"),
            |id| acked_tx.send(id).is_ok(),
        );
    });

    up.wait_for(BEFORE_KILL);
    d.kill9();
    sender.join().expect("the sender thread");
    let acked: Vec<String> = acked_rx.try_iter().collect();
    let before_restart = up.receiver.requests().len();

    d.restart();
    wait_db(&d, "every delivery to be done after the restart", |d| {
        pending(d) == 0
    });
    let got = up.receiver.requests();
    let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
    for r in &got {
        let id = r.header("webhook-id").expect("webhook-id");
        *counts.entry((r.path_and_query.as_str(), id)).or_insert(0) += 1;
    }
    for path in ["/a", "/b"] {
        let lost: Vec<&String> = acked
            .iter()
            .filter(|id| !counts.contains_key(&(path, id.as_str())))
            .collect();
        assert!(
            lost.is_empty(),
            "{path}: accepted but never delivered: {lost:?}"
        );
        let repeats: usize = counts
            .iter()
            .filter(|((p, _), _)| *p == path)
            .map(|(_, n)| n - 1)
            .sum();
        eprintln!(
            "crash: {} accepted, {before_restart} requests before the kill, {} after; {path}: {repeats} repeated",
            acked.len(),
            got.len() - before_restart
        );
        assert!(
            repeats <= CONCURRENCY,
            "{path}: {repeats} deliveries repeated; only the {CONCURRENCY} in flight may be"
        );
    }
}
