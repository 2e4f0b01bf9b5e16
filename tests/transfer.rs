//! Air-gapped transfer (SPEC §12): `export` at a site whose endpoint cannot be reached,
//! `import` at a connected site with a real HTTPS receiver, `receipt apply` back at the
//! first; refusals of cut, flipped, foreign and misdirected files; export under load.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::delivery::{count_by_id, ids, wait_db, Endpoint, Upstream};
use crate::util::{run_cli, Builder, TestDaemon};

/// The `[transfer] key` both sites share (32 bytes, base64).
const KEY: &str = "q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k=";

/// A relay with `[transfer] key = key` and one endpoint `spark` at `url`.
fn site(key: &str, url: &str, up: &Upstream) -> TestDaemon {
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    b.toml(&format!("[transfer]\nkey = {key:?}\n"))
        .toml(&Endpoint::new("spark", url, &ca).toml())
        .start()
}

/// An air-gapped site: its endpoint's URL is the discard port (connection refused).
fn air_gapped(up: &Upstream) -> TestDaemon {
    site(KEY, "https://127.0.0.1:9/hook", up)
}

/// `edgehook ARGS… --admin-socket <d's>`: (exit code, stdout, stderr).
fn cli(d: &TestDaemon, args: &[&str]) -> (i32, String, String) {
    let socket = d.dir().join("admin.sock");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--admin-socket", socket.to_str().expect("utf-8 path")]);
    run_cli(&all, None)
}

/// Run a transfer command with `--json`, expecting success; its JSON summary.
fn ok_json(d: &TestDaemon, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = cli(d, &all);
    assert_eq!(code, 0, "{args:?} failed: {err}\n{}", d.log());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn export(d: &TestDaemon, out: &Path) -> Value {
    ok_json(d, &["export", "--out", out.to_str().unwrap()])
}

fn import(d: &TestDaemon, bundle: &Path, receipt: &Path) -> Value {
    ok_json(
        d,
        &[
            "import",
            bundle.to_str().unwrap(),
            "--receipt-out",
            receipt.to_str().unwrap(),
        ],
    )
}

/// The failure message of a command expected to fail (exit 1).
fn refused(d: &TestDaemon, args: &[&str]) -> String {
    let (code, out, err) = cli(d, args);
    assert_eq!(code, 1, "{args:?} should fail; stdout {out}");
    err
}

/// Post `ids` as `Test.air` events with a fixed timestamp, one batch.
fn post(d: &TestDaemon, ids: &[String], data: &dyn Fn(usize) -> String) {
    let batch: String = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                r#"{{"type":"Test.air","id":"{id}","timestamp":"2020-01-02T03:04:05Z","data":{}}}"#,
                data(i)
            ) + "\n"
        })
        .collect();
    let r = d.post("/v1/events", "application/x-ndjson", batch.as_bytes());
    assert_eq!(r.status, 202, "{r:?}");
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

/// Event ids with a delivery in `state` at `d`.
fn ids_in_state(d: &TestDaemon, state: i64) -> BTreeSet<String> {
    let db = d.db();
    let mut stmt = db
        .prepare(
            "SELECT e.id FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.state = ?1",
        )
        .unwrap();
    let ids = stmt
        .query_map([state], |r| r.get(0))
        .unwrap()
        .collect::<Result<BTreeSet<String>, _>>()
        .unwrap();
    ids
}

fn deliveries(d: &TestDaemon) -> i64 {
    d.query_i64("SELECT COUNT(*) FROM deliveries", [])
}

fn file(d: &TestDaemon, name: &str) -> PathBuf {
    d.dir().join(name)
}

#[test]
fn round_trip_delivers_each_event_once_with_its_id_and_timestamp() {
    let up = Upstream::start();
    let a = air_gapped(&up);
    let b = site(KEY, &up.url("/hook"), &up);
    let sent = names("air", 50);
    post(&a, &sent, &|i| format!(r#"{{"n":{i}}}"#));

    let bundle = file(&a, "stick.bundle");
    let s = export(&a, &bundle);
    assert_eq!(s["deliveries"], 50, "{s}");
    // Still queued at A, marked exported, and not sent from A.
    assert_eq!(ids_in_state(&a, 3), sent.iter().cloned().collect());
    let (_, status, _) = cli(&a, &["status"]);
    assert!(
        status.contains("spark: 50 exported, awaiting receipt"),
        "{status}"
    );

    let receipt = file(&b, "stick.receipt");
    let s = import(&b, &bundle, &receipt);
    assert_eq!(
        (s["queued"].as_u64(), s["already"].as_u64()),
        (Some(50), Some(0)),
        "{s}"
    );
    let got = up.wait_for(50);
    assert_eq!(
        ids(&got).into_iter().collect::<BTreeSet<_>>(),
        sent.iter().cloned().collect()
    );
    for r in &got {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["timestamp"], "2020-01-02T03:04:05Z", "{body}");
        assert_eq!(body["type"], "Test.air");
    }
    wait_db(&b, "B's queue drained", |d| deliveries(d) == 0);

    // Importing the same bundle again queues nothing and writes the same receipt.
    let again = file(&b, "again.receipt");
    let s = import(&b, &bundle, &again);
    assert_eq!(
        (s["queued"].as_u64(), s["already"].as_u64()),
        (Some(0), Some(50)),
        "{s}"
    );
    assert_eq!(deliveries(&b), 0, "a second import queued something");
    assert!(count_by_id(&up.receiver.requests())
        .values()
        .all(|n| *n == 1));

    // Back at A: the receipt removes exactly those deliveries; a second apply finds none.
    let r = ok_json(&a, &["receipt", "apply", receipt.to_str().unwrap()]);
    assert_eq!(
        (r["removed"].as_u64(), r["missing"].as_u64()),
        (Some(50), Some(0)),
        "{r}"
    );
    assert_eq!(deliveries(&a), 0);
    assert_eq!(a.query_i64("SELECT COUNT(*) FROM events", []), 0);
    let r = ok_json(&a, &["receipt", "apply", again.to_str().unwrap()]);
    assert_eq!(
        (r["removed"].as_u64(), r["missing"].as_u64()),
        (Some(0), Some(50)),
        "{r}"
    );
}

#[test]
fn cut_flipped_and_foreign_bundles_are_refused_whole() {
    let up = Upstream::start();
    let a = air_gapped(&up);
    let b = site(KEY, "https://127.0.0.1:9/hook", &up);
    // Data that does not compress away, so the bundle spans many chunks of a few KiB.
    let sent = names("cut", 150);
    post(&a, &sent, &|i| {
        let noise: String = (0..40)
            .map(|k| format!("{:08x}", (i as u64 * 2654435761 + k * 40503) % 4294967291))
            .collect();
        format!(r#"{{"noise":"{noise}"}}"#)
    });
    let bundle = file(&a, "b.bundle");
    export(&a, &bundle);
    let bytes = std::fs::read(&bundle).unwrap();
    assert!(bytes.len() > 20_000, "bundle is {} bytes", bytes.len());

    let probe = file(&b, "probe.bundle");
    let try_import = |content: &[u8]| -> String {
        std::fs::write(&probe, content).unwrap();
        let err = refused(&b, &["import", probe.to_str().unwrap()]);
        assert!(err.contains("refused, nothing of it was applied"), "{err}");
        assert_eq!(deliveries(&b), 0, "a refused bundle queued something");
        err
    };
    for cut in (0..bytes.len()).step_by(2048) {
        let err = try_import(&bytes[..cut]);
        assert!(
            err.contains("truncated") || err.contains("not an edgehook bundle"),
            "cut at {cut}: {err}"
        );
    }
    for at in (0..bytes.len()).step_by(3001).chain([bytes.len() - 1]) {
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        try_import(&bad);
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"\n");
    assert!(try_import(&longer).contains("unexpected bytes after the final chunk"));

    // Another key: nothing can be read.
    let other = site(
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "https://127.0.0.1:9/hook",
        &up,
    );
    let err = refused(&other, &["import", bundle.to_str().unwrap()]);
    assert!(err.contains("[transfer] key"), "{err}");
    // A bundle is not a receipt, and is not imported where it came from.
    let err = refused(&a, &["receipt", "apply", bundle.to_str().unwrap()]);
    assert!(err.contains("this is a bundle, not a receipt"), "{err}");
    let err = refused(&a, &["import", bundle.to_str().unwrap()]);
    assert!(err.contains("exported by this relay"), "{err}");
    // The intact bundle still imports.
    assert_eq!(import(&b, &bundle, &file(&b, "r"))["queued"], 150);
}

#[test]
fn receipt_for_another_site_or_tampered_is_refused() {
    let up = Upstream::start();
    let a = air_gapped(&up);
    let c = air_gapped(&up);
    let b = site(KEY, "https://127.0.0.1:9/hook", &up);
    post(&a, &names("a", 5), &|_| "{}".into());
    post(&c, &names("c", 5), &|_| "{}".into());
    let bundle = file(&a, "a.bundle");
    export(&a, &bundle);
    export(&c, &file(&c, "c.bundle"));
    let receipt = file(&b, "a.receipt");
    import(&b, &bundle, &receipt);

    let err = refused(&c, &["receipt", "apply", receipt.to_str().unwrap()]);
    assert!(
        err.contains("receipt refused, nothing of it was applied"),
        "{err}"
    );
    assert!(
        err.contains("apply it at the site that exported the bundle"),
        "{err}"
    );
    assert_eq!(ids_in_state(&c, 3).len(), 5, "C lost deliveries");

    let mut bad = std::fs::read(&receipt).unwrap();
    let last = bad.len() - 3;
    bad[last] ^= 0x40;
    let tampered = file(&a, "tampered.receipt");
    std::fs::write(&tampered, &bad).unwrap();
    let err = refused(&a, &["receipt", "apply", tampered.to_str().unwrap()]);
    assert!(err.contains("authenticat"), "{err}");
    assert_eq!(ids_in_state(&a, 3).len(), 5, "A applied a tampered receipt");
}

#[test]
fn export_while_events_arrive_misses_nothing() {
    let up = Upstream::start();
    let a = air_gapped(&up);
    let b = site(KEY, "https://127.0.0.1:9/hook", &up);
    let early = names("early", 3000);
    post(&a, &early, &|_| "{}".into());
    let late = names("late", 2000);
    let bundle = file(&a, "a.bundle");
    let exported = std::thread::scope(|s| {
        let poster = s.spawn(|| {
            for chunk in late.chunks(50) {
                post(&a, chunk, &|_| "{}".into());
            }
        });
        let summary = export(&a, &bundle);
        poster.join().unwrap();
        summary
    });
    let all: BTreeSet<String> = early.iter().chain(&late).cloned().collect();
    let marked = ids_in_state(&a, 3);
    let unmarked = ids_in_state(&a, 0);
    assert_eq!(exported["deliveries"].as_u64(), Some(marked.len() as u64));
    assert!(marked.is_disjoint(&unmarked));
    assert_eq!(
        marked.union(&unmarked).cloned().collect::<BTreeSet<_>>(),
        all
    );
    assert!(early.iter().all(|id| marked.contains(id)));

    // The bundle holds exactly the marked ones.
    let receipt = file(&b, "a.receipt");
    import(&b, &bundle, &receipt);
    assert_eq!(ids_in_state(&b, 0), marked);
    ok_json(&a, &["receipt", "apply", receipt.to_str().unwrap()]);
    assert_eq!(ids_in_state(&a, 3).len(), 0);
    assert_eq!(ids_in_state(&a, 0), unmarked);

    // The next export carries the rest.
    let second = file(&a, "second.bundle");
    export(&a, &second);
    import(&b, &second, &file(&b, "second.receipt"));
    assert_eq!(ids_in_state(&b, 0), all);
}

#[test]
fn lost_bundle_is_carried_again_by_the_next_export() {
    let up = Upstream::start();
    let a = air_gapped(&up);
    let b = site(KEY, &up.url("/hook"), &up);
    let first = names("first", 20);
    post(&a, &first, &|_| "{}".into());
    let lost = file(&a, "lost.bundle");
    assert_eq!(export(&a, &lost)["deliveries"], 20);
    let kept = std::fs::read(&lost).unwrap();
    std::fs::remove_file(&lost).unwrap();
    let second = names("second", 5);
    post(&a, &second, &|_| "{}".into());

    let bundle = file(&a, "next.bundle");
    assert_eq!(export(&a, &bundle)["deliveries"], 25);
    let receipt = file(&b, "next.receipt");
    assert_eq!(import(&b, &bundle, &receipt)["queued"], 25);
    let got = up.wait_for(25);
    let counts = count_by_id(&got);
    assert_eq!(counts.len(), 25);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    let r = ok_json(&a, &["receipt", "apply", receipt.to_str().unwrap()]);
    assert_eq!(r["removed"], 25);
    assert_eq!(deliveries(&a), 0);

    // The lost stick turns up after all: importing it queues nothing new.
    std::fs::write(&lost, kept).unwrap();
    let s = import(&b, &lost, &file(&b, "lost.receipt"));
    assert_eq!(
        (s["queued"].as_u64(), s["already"].as_u64()),
        (Some(0), Some(20)),
        "{s}"
    );
}

#[test]
fn transfer_without_a_key_says_how_to_set_one() {
    let d = Builder::new().toml(crate::util::ENDPOINTS).start();
    let out = d.dir().join("x.bundle");
    let err = refused(&d, &["export", "--out", out.to_str().unwrap()]);
    assert!(err.contains("no [transfer] key"), "{err}");
    assert!(!out.exists());
}

#[test]
fn air_gap_demo_tours_the_round_trip() {
    let (code, out, err) = run_cli(&["demo", "--air-gap"], None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("Summary: 2 events from site A delivered by site B in 2 requests (2 signatures verified); 0 left at A, 0 at B"),
        "{out}"
    );
}

#[test]
fn exported_deliveries_are_not_sent_even_when_the_endpoint_answers() {
    let up = Upstream::start();
    let a = site(KEY, &up.url("/hook"), &up);
    let (code, _, err) = cli(&a, &["pause", "spark"]);
    assert_eq!(code, 0, "{err}");
    let carried = names("carried", 10);
    post(&a, &carried, &|_| "{}".into());
    assert_eq!(export(&a, &file(&a, "a.bundle"))["deliveries"], 10);
    let (code, _, err) = cli(&a, &["resume", "spark"]);
    assert_eq!(code, 0, "{err}");
    // A newer event is due after the exported ones; once it arrives, the worker has
    // passed them by, and none of them was sent.
    post(&a, &names("after", 1), &|_| "{}".into());
    let got = up.wait_for(1);
    assert_eq!(ids(&got), ["after-0000"]);
    wait_db(&a, "the new event delivered", |d| {
        ids_in_state(d, 0).is_empty()
    });
    assert_eq!(ids(&up.receiver.requests()), ["after-0000"]);
    assert_eq!(ids_in_state(&a, 3).len(), 10);
}
