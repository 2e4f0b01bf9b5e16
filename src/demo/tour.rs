//! `edgehook demo`: a one-command tour with real parts only — the real daemon (in this
//! process), its real Unix socket and SQLite queue in a temp dir, real TLS to the
//! built-in HTTPS receiver (CA generated on the fly, trusted via `tls.ca_file`), which
//! verifies every Standard Webhooks signature. It sends seed-style events, takes the
//! receiver down, sends more (they queue), brings it back and shows the backlog drain.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use tokio::sync::oneshot;

use super::pki;
use super::receiver::{Receiver, Recorded};
use crate::store::{STATE_EXPORTED, STATE_PENDING};
use crate::{config, daemon, uds_client};

/// The signing secret the demo endpoints use and the receiver verifies (demo only).
pub(super) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Longest the demo waits for deliveries before it calls the run a failure.
pub(super) const WAIT: Duration = Duration::from_secs(15);

pub async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("edgehook-demo-")
        .tempdir()?;
    let pki = pki::generate()?;
    let mut receiver = Receiver::start(&pki).await?;
    receiver.verify_with(SECRET);
    let ca = pki.write_ca(dir.path())?;
    let config_path = dir.path().join("edgehook.toml");
    std::fs::write(&config_path, config_text(dir.path(), &ca, &receiver))?;
    std::fs::set_permissions(
        &config_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    let config = config::load(&config_path)?;
    let socket = config.ingest.socket.clone();
    let db = config.queue_db();

    say(&format!(
        "edgehook demo — everything lives in {}",
        dir.path().display()
    ));
    say(&format!(
        "  receiver  {} (HTTPS, private CA, verifies webhook-signature)",
        receiver.url("/")
    ));
    say(&format!("  socket    {}", socket.display()));
    say(&format!("  queue     {}", db.display()));

    let daemon = start(config).await?;

    say("\n1. Link up: three events through the socket");
    for (t, data) in seeds(0) {
        send(&socket, t, data).await?;
    }
    let got = receiver.wait_for(3, WAIT).await?;
    show(&got[..3]);
    drained(&db).await?;

    say("\n2. Link down: receiver stopped, three more events accepted and queued");
    receiver.stop().await;
    for (t, data) in seeds(1) {
        send(&socket, t, data).await?;
    }
    say(&format!(
        "   queued on disk: {} deliveries pending",
        pending(&db)?
    ));

    say("\n3. Link back: the endpoint is probed, comes online and drains its backlog");
    let back = Instant::now();
    receiver.restart().await?;
    drained(&db).await?;
    let got = receiver.requests();
    show(&got[3..]);
    say(&format!(
        "   drained in {:.1}s",
        back.elapsed().as_secs_f64()
    ));

    daemon.stop().await?;
    let bad = got.iter().filter(|r| r.signature_ok != Some(true)).count();
    let mut ids: Vec<&str> = got.iter().filter_map(|r| r.header("webhook-id")).collect();
    ids.sort_unstable();
    ids.dedup();
    say(&format!(
        "\nSummary: 6 events accepted, {} distinct events received in {} requests, {} signatures verified, {} pending, {:.1}s in all.",
        ids.len(),
        got.len(),
        got.len() - bad,
        pending(&db)?,
        started.elapsed().as_secs_f64()
    ));
    if ids.len() != 6 {
        bail!(
            "expected 6 distinct events at the receiver, got {}",
            ids.len()
        );
    }
    if bad > 0 {
        bail!("{bad} deliveries failed signature verification");
    }
    Ok(())
}

/// A daemon running in this process until [`Running::stop`].
pub(super) struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// Run the daemon with `config` in this process; returns once it is ready.
pub(super) async fn start(config: config::Config) -> anyhow::Result<Running> {
    let (stop, stop_rx) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(daemon::run(
        config,
        async {
            let _ = stop_rx.await;
        },
        move || {
            let _ = ready_tx.send(());
        },
    ));
    if ready_rx.await.is_err() {
        return Err(task
            .await?
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("daemon stopped")));
    }
    Ok(Running { stop, task })
}

fn config_text(dir: &Path, ca: &Path, receiver: &Receiver) -> String {
    let dir = dir.display();
    let spark = endpoint(
        "spark",
        &receiver.url("/spark"),
        r#"["UploadProduct", "PublishEngine"]"#,
        "[endpoint.auth]\ntype = \"api-key\"\nvalue = \"demo-api-key\"\n",
        ca,
    );
    let webex = endpoint(
        "webex",
        &receiver.url("/webex"),
        r#"["messages.*"]"#,
        "",
        ca,
    );
    format!(
        r#"[daemon]
state_dir = "{dir}/state"
admin_socket = "{dir}/admin.sock"
shutdown_timeout = "2s"

[ingest]
socket = "{dir}/edgehook.sock"
{spark}{webex}"#
    )
}

/// One demo `[[endpoint]]`: signed, short retries (so the outage drains fast), our CA.
pub(super) fn endpoint(name: &str, url: &str, events: &str, extra: &str, ca: &Path) -> String {
    format!(
        r#"
[[endpoint]]
name = "{name}"
url = "{url}"
events = {events}
{extra}[endpoint.signing]
scheme = "standard-webhooks"
secret = "{SECRET}"
[endpoint.retry]
initial = "200ms"
max = "1s"
[endpoint.tls]
ca_file = "{ca}"
"#,
        ca = ca.display()
    )
}

/// Seed-style events (Coherent Spark, Cisco Webex) for round `n`.
pub(super) fn seeds(n: u32) -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "UploadProduct",
            json!({"UserAction": "Upload", "FolderName": format!("pricing-{n}"), "Tenant": "acme"}),
        ),
        (
            "PublishEngine",
            json!({"ServiceName": format!("quote-{n}"), "Version": "1.0.3"}),
        ),
        (
            "messages.created",
            json!({"roomId": "Y2lzY29zcGFyazovL3VzL1JPT00v", "personEmail": "ops@example.com", "n": n}),
        ),
    ]
}

pub(super) async fn send(
    socket: &Path,
    event_type: &str,
    data: serde_json::Value,
) -> anyhow::Result<()> {
    let body = serde_json::to_vec(&json!({"type": event_type, "data": data}))?;
    let (status, reply) =
        uds_client::request(socket, "POST", "/v1/events", Some("application/json"), body).await?;
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap_or_default();
    if status != 202 {
        bail!("sending {event_type} failed with {status}: {reply}");
    }
    say(&format!(
        "   → {event_type:<17} accepted as {} for {}",
        reply["id"].as_str().unwrap_or("?"),
        reply["endpoints"]
    ));
    Ok(())
}

pub(super) fn show(requests: &[Recorded]) {
    for r in requests {
        say(&format!(
            "   ← {:<7} {:<17} {} attempt {} signature {} {}",
            r.path_and_query,
            r.header("edgehook-event-type").unwrap_or("?"),
            r.header("webhook-id").unwrap_or("?"),
            r.header("edgehook-attempt").unwrap_or("?"),
            if r.signature_ok == Some(true) {
                "verified"
            } else {
                "INVALID"
            },
            r.http_version,
        ));
    }
}

/// Wait until the daemon has recorded every delivery as done (nothing pending on disk).
pub(super) async fn drained(db: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    while pending(db)? > 0 {
        if Instant::now() > deadline {
            bail!("deliveries still pending after {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub(super) fn pending(db: &Path) -> anyhow::Result<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", db.display()))?;
    Ok(conn.query_row(
        &format!(
            "SELECT COUNT(*) FROM deliveries WHERE state IN ({STATE_PENDING}, {STATE_EXPORTED})"
        ),
        [],
        |r| r.get(0),
    )?)
}

pub(super) fn say(line: &str) {
    println!("{line}");
}
