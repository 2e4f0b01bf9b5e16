//! The operator commands (`status`, `endpoints`, `dead`, `wake`, `pause`, `resume`,
//! `reload`, `metrics`): one request to the admin socket each, printed as a table (or
//! the daemon's JSON with `--json`). Errors become one line on stderr and exit 1 (main).
//! `dead retry|purge` read the daemon's per-batch progress stream and `reload` waits
//! behind a spinner; both show on stderr only when it is a terminal (`crate::progress`).
//!
//! The socket is `--admin-socket`, else `daemon.admin_socket` read from the config file
//! (only that key, so a user who cannot read the secrets it references still finds the
//! socket), else the default: see [`crate::config::socket`].

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write as _};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use http_body_util::BodyExt;
use indicatif::ProgressBar;
use serde_json::{json, Value};

use super::dead;
use super::render::{age, cell, shorten, size, state_color, truncate, Color, Style, Table};
use crate::cli::{AdminArgs, DeadAction, DeadArgs, DeadSelect, EndpointArg, ReadArgs, WakeArgs};
use crate::config::socket::{self, Located, SocketKey};
use crate::progress;
use crate::store::clock::format_step;

/// Longest the CLI waits for an answer; a reload may take a while (it builds TLS clients).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest last-error text shown in a table cell (`--json` has all of it).
const ERROR_WIDTH: usize = 60;

/// `edgehook status`.
pub async fn status(args: ReadArgs) -> anyhow::Result<()> {
    let v = Client::new(&args.admin)?.get("/v1/status").await?;
    if args.json {
        return print_json(&v);
    }
    print!("{}", format_status(&v, Style::detect()));
    Ok(())
}

/// `edgehook endpoints`.
pub async fn endpoints(args: ReadArgs) -> anyhow::Result<()> {
    let v = Client::new(&args.admin)?.get("/v1/endpoints").await?;
    if args.json {
        return print_json(&v);
    }
    print!("{}", format_endpoints(&v, Style::detect()));
    Ok(())
}

/// `edgehook dead list|retry|purge`.
pub async fn dead(args: DeadArgs) -> anyhow::Result<()> {
    match args.action {
        DeadAction::List(a) => {
            let client = Client::new(&a.select.admin)?;
            let v = client.get(&list_path(&a.select, a.limit)).await?;
            if a.json {
                return print_json(&v);
            }
            print!("{}", format_dead(&v, Style::detect()));
            Ok(())
        }
        DeadAction::Retry(s) => {
            let client = Client::new(&s.admin)?;
            let n = client.dead_batches(&s, DeadOp::Retry).await?;
            println!(
                "retried {n} dead letter(s){}: queued again as new, attempts reset",
                of_endpoint(&s)
            );
            Ok(())
        }
        DeadAction::Purge(p) => {
            let s = &p.select;
            let client = Client::new(&s.admin)?;
            if !p.yes {
                if !std::io::stdin().is_terminal() {
                    bail!("dead purge deletes dead letters for good; pass --yes to confirm (stdin is not a terminal, so edgehook cannot ask)");
                }
                let total = client.get(&list_path(s, 0)).await?["total"]
                    .as_u64()
                    .unwrap_or(0);
                if total == 0 {
                    println!("no dead letters match{}; nothing to purge", of_endpoint(s));
                    return Ok(());
                }
                if !confirm(&format!(
                    "Purge {total} dead letter(s){}? They are deleted for good. [y/N] ",
                    of_endpoint(s)
                ))? {
                    bail!("purge cancelled; nothing was deleted");
                }
            }
            let n = client.dead_batches(s, DeadOp::Purge).await?;
            println!("purged {n} dead letter(s){}", of_endpoint(s));
            Ok(())
        }
    }
}

/// `edgehook wake [ENDPOINT]`.
pub async fn wake(args: WakeArgs) -> anyhow::Result<()> {
    let v = Client::new(&args.admin)?
        .post("/v1/wake", json!({"endpoint": args.endpoint}))
        .await?;
    let woken = v["woken"].as_array().cloned().unwrap_or_default();
    if woken.is_empty() {
        println!("no endpoint is running; nothing to wake");
    }
    for w in woken {
        let name = w["endpoint"].as_str().unwrap_or("?");
        match w["state"].as_str().unwrap_or("?") {
            "offline" => println!("{name}: offline, probing now"),
            state => println!("{name}: {state}, nothing to wake"),
        }
    }
    Ok(())
}

/// `edgehook pause ENDPOINT`.
pub async fn pause(args: EndpointArg) -> anyhow::Result<()> {
    let v = Client::new(&args.admin)?
        .post("/v1/pause", json!({"endpoint": args.endpoint}))
        .await?;
    println!(
        "paused {}: deliveries held, events keep queueing ({} pending); `edgehook resume {}` releases them",
        args.endpoint,
        v["pending"].as_u64().unwrap_or(0),
        args.endpoint
    );
    Ok(())
}

/// `edgehook resume ENDPOINT`.
pub async fn resume(args: EndpointArg) -> anyhow::Result<()> {
    let v = Client::new(&args.admin)?
        .post("/v1/resume", json!({"endpoint": args.endpoint}))
        .await?;
    let was = v["was"].as_str().unwrap_or("not held");
    println!(
        "resumed {} (was {was}); {} pending deliveries drain now",
        args.endpoint,
        v["pending"].as_u64().unwrap_or(0)
    );
    Ok(())
}

/// `edgehook reload`.
pub async fn reload(args: AdminArgs) -> anyhow::Result<()> {
    let client = Client::new(&args)?;
    // A reload waits for the workers it replaces to finish their attempts (up to
    // daemon.shutdown_timeout), so it may take seconds.
    let spinner = progress::spinner("reloading edgehook");
    let answer = client.call("POST", "/v1/reload", None).await;
    spinner.finish_and_clear();
    let (status, body) = answer?;
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    if status == 200 {
        println!("{}", v["message"].as_str().unwrap_or("reloaded"));
        return Ok(());
    }
    if v["error"]["code"] == "reload_failed" {
        bail!(
            "reload refused; the previous configuration keeps running:\n{}",
            v["error"]["message"].as_str().unwrap_or("")
        );
    }
    Err(reply_error(status, &body))
}

/// `edgehook metrics`.
pub async fn metrics(args: AdminArgs) -> anyhow::Result<()> {
    let client = Client::new(&args)?;
    let (status, body) = client.call("GET", "/metrics", None).await?;
    if status != 200 {
        return Err(reply_error(status, &body));
    }
    std::io::stdout()
        .write_all(&body)
        .context("writing to stdout")?;
    Ok(())
}

// ----- talking to the daemon -----

/// A connection target for admin requests (one connection per request).
pub(crate) struct Client {
    socket: Located,
}

impl Client {
    pub(crate) fn new(args: &AdminArgs) -> anyhow::Result<Client> {
        Ok(Client {
            socket: socket::locate(
                SocketKey::Admin,
                args.admin_socket.as_deref(),
                args.config.config.as_deref(),
            )?,
        })
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, bytes::Bytes)> {
        let shown = &self.socket;
        let (content_type, bytes) = match body {
            Some(b) => (Some("application/json"), b.to_string().into_bytes()),
            None => (None, Vec::new()),
        };
        let request =
            crate::uds_client::request(&self.socket.path, method, path, content_type, bytes);
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Err(_) => bail!(
                "edgehook at {shown} did not answer within {}s; see its log (journalctl -u edgehook)",
                REQUEST_TIMEOUT.as_secs()
            ),
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(err)) => Err(unreachable(&self.socket, &err)),
        }
    }

    /// Retry or purge the dead letters `s` selects, in the daemon's bounded batches, with
    /// a progress bar on a terminal when there is more than one batch (`admin/dead.rs`
    /// streams a line per batch); the finished bar stays, showing the count and time.
    /// Returns how many it changed; none of the given ids matching is an error.
    async fn dead_batches(&self, s: &DeadSelect, op: DeadOp) -> anyhow::Result<u64> {
        let (path, key, label) = match op {
            DeadOp::Retry => ("/v1/dead/retry", "retried", "retrying dead letters"),
            DeadOp::Purge => ("/v1/dead/purge", "purged", "purging dead letters"),
        };
        let req = hyper::Request::post(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .header("accept", dead::NDJSON)
            .body(http_body_util::Full::new(bytes::Bytes::from(
                select_body(s).to_string(),
            )))?;
        let resp = crate::uds_client::send(&self.socket.path, req)
            .await
            .map_err(|e| unreachable(&self.socket, &e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp.into_body().collect().await?.to_bytes();
            return Err(reply_error(status, &body));
        }
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        let mut bar: Option<ProgressBar> = None;
        loop {
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let v: Value = serde_json::from_slice(&line).with_context(|| {
                    format!(
                        "the daemon's progress line is not JSON: {}",
                        String::from_utf8_lossy(&line)
                    )
                })?;
                if let Some(n) = v[key].as_u64() {
                    if let Some(bar) = &bar {
                        bar.finish();
                    }
                    if n == 0 && !s.ids.is_empty() {
                        bail!(
                            "no dead letter matches {}{}",
                            s.ids.join(", "),
                            of_endpoint(s)
                        );
                    }
                    return Ok(n);
                }
                if v.get("error").is_some() {
                    if let Some(bar) = &bar {
                        bar.abandon();
                    }
                    return Err(reply_error(status, &line));
                }
                let (done, total) = (
                    v["done"].as_u64().unwrap_or(0),
                    v["total"].as_u64().unwrap_or(0),
                );
                // One batch is over in milliseconds: a bar only for more.
                if total > dead::BATCH as u64 {
                    bar.get_or_insert_with(|| progress::count(total, label))
                        .set_position(done);
                }
            }
            let frame = match tokio::time::timeout(REQUEST_TIMEOUT, body.frame()).await {
                Err(_) => bail!(
                    "edgehook at {} stopped answering for {}s; see its log (journalctl -u edgehook)",
                    self.socket,
                    REQUEST_TIMEOUT.as_secs()
                ),
                Ok(None) => bail!(
                    "edgehook at {} broke off before the result; see its log (journalctl -u edgehook)",
                    self.socket
                ),
                Ok(Some(frame)) => frame.context("reading the daemon's answer")?,
            };
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
            }
        }
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.json("GET", path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.json("POST", path, Some(body)).await
    }

    async fn json(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, reply) = self.call(method, path, body).await?;
        if !(200..300).contains(&status) {
            return Err(reply_error(status, &reply));
        }
        serde_json::from_slice(&reply).with_context(|| {
            format!(
                "the daemon's answer to {method} {path} is not JSON: {}",
                truncate(&String::from_utf8_lossy(&reply), 200)
            )
        })
    }
}

/// A connection failure, worded for the operator.
pub(crate) fn unreachable(shown: &Located, err: &anyhow::Error) -> anyhow::Error {
    use std::io::ErrorKind;
    match crate::config::socket::io_kind(err) {
        Some(ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            anyhow!("cannot reach edgehook at {shown}: is it running?")
        }
        Some(ErrorKind::PermissionDenied) => anyhow!(
            "cannot reach edgehook at {shown}: permission denied; the admin socket is for root, \
             the edgehook user and daemon.admin_group (try sudo)"
        ),
        _ => anyhow!("cannot reach edgehook at {shown}: {err:#}"),
    }
}

/// The `{"error":{"message"}}` of a non-2xx answer as an error.
pub(crate) fn reply_error(status: u16, body: &[u8]) -> anyhow::Error {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    match v["error"]["message"].as_str() {
        Some(message) => anyhow!("{message}"),
        None => anyhow!(
            "the daemon answered {status}: {}",
            truncate(&String::from_utf8_lossy(body), 200)
        ),
    }
}

fn list_path(s: &DeadSelect, limit: usize) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(e) = &s.endpoint {
        q.append_pair("endpoint", e);
    }
    for id in &s.ids {
        q.append_pair("id", id);
    }
    q.append_pair("limit", &limit.to_string());
    format!("/v1/dead?{}", q.finish())
}

/// Which batched dead-letter operation.
#[derive(Clone, Copy)]
enum DeadOp {
    Retry,
    Purge,
}

fn select_body(s: &DeadSelect) -> Value {
    json!({"endpoint": s.endpoint, "ids": s.ids})
}

fn of_endpoint(s: &DeadSelect) -> String {
    s.endpoint
        .as_ref()
        .map(|e| format!(" of endpoint {e}"))
        .unwrap_or_default()
}

pub(super) fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question}");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

// ----- human output -----

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn num(v: &Value) -> String {
    v.as_u64()
        .map(|n| n.to_string())
        .unwrap_or_else(|| "-".into())
}

fn age_of(v: &Value) -> String {
    v.as_u64().map(age).unwrap_or_else(|| "-".into())
}

/// `offline, probe in 12s` / `online` / `paused` …
fn state_text(e: &Value) -> String {
    let state = str_of(&e["state"]);
    match (state, e["next_probe_in_secs"].as_u64()) {
        ("offline", Some(secs)) => format!("offline, probe in {}", age(secs)),
        _ => state.to_string(),
    }
}

/// The status line about the wall clock, when it looks unset or has stepped.
fn clock_line(c: &Value, style: Style) -> Option<String> {
    if c["unset"].as_bool() == Some(true) {
        let unset = format!(
            "looks unset: {} is before this edgehook was built ({})",
            str_of(&c["now"]),
            str_of(&c["built_at"])
        );
        return Some(format!(
            "{}; set it (NTP, RTC). Queue schedules and ages follow elapsed time meanwhile",
            style.paint(&unset, Some(Color::Red))
        ));
    }
    let step = &c["last_step"];
    let secs = step["secs"].as_i64()?;
    Some(format!(
        "stepped by {} at {}; queue schedules and ages follow elapsed time",
        style.paint(&format_step(secs * 1000), Some(Color::Yellow)),
        str_of(&step["at"])
    ))
}

fn format_status(v: &Value, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} (pid {}), up {}",
        style.paint(
            &format!("edgehook {}", str_of(&v["version"])),
            Some(Color::Bold)
        ),
        num(&v["pid"]),
        age_of(&v["uptime_secs"])
    );
    let _ = writeln!(out, "config   {}", str_of(&v["config"]["path"]));
    let r = &v["reloads"];
    let mut reloads = format!("{} ok, {} failed", num(&r["ok"]), num(&r["failed"]));
    match r["last_ok_at"].as_str() {
        Some(at) => {
            let _ = write!(reloads, "; last good reload {at}");
        }
        None => {
            let _ = write!(reloads, "; config as loaded at start");
        }
    }
    let _ = writeln!(out, "reloads  {reloads}");
    if let Some(err) = r["last_error"].as_str() {
        let first = err.lines().next().unwrap_or("");
        let more = err.lines().count().saturating_sub(1);
        let more = if more > 0 {
            format!(" (+{more} more line(s); see --json)")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "         {} {first}{more}",
            style.paint("last reload failed:", Some(Color::Red))
        );
    }
    let restart: Vec<&str> = r["restart_needed"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !restart.is_empty() {
        let _ = writeln!(
            out,
            "         {} {} changed; restart edgehook to apply (the start values hold until then)",
            style.paint("restart needed:", Some(Color::Yellow)),
            restart.join(", ")
        );
    }
    let q = &v["queue"];
    let (bytes, max) = (
        q["bytes"].as_u64().unwrap_or(0),
        q["max_bytes"].as_u64().unwrap_or(0),
    );
    let percent = if max > 0 {
        bytes as f64 * 100.0 / max as f64
    } else {
        0.0
    };
    let usage = format!("{} of {} ({percent:.1}%)", size(bytes), size(max));
    let usage = style.paint(&usage, (percent >= 90.0).then_some(Color::Red));
    let _ = writeln!(
        out,
        "queue    {usage}; {} pending, {} dead",
        num(&q["pending"]),
        num(&q["dead"])
    );
    if let Some(line) = clock_line(&v["clock"], style) {
        let _ = writeln!(out, "clock    {line}");
    }
    let endpoints = v["endpoints"].as_array().cloned().unwrap_or_default();
    if endpoints.is_empty() {
        let _ = writeln!(out, "\nno endpoints configured");
        return out;
    }
    let mut t = Table::new(&[
        "ENDPOINT",
        "STATE",
        "PENDING",
        "IN FLIGHT",
        "DEAD",
        "OLDEST",
        "LAST ERROR",
    ]);
    let mut notes = Vec::new();
    for e in &endpoints {
        let name = str_of(&e["name"]).to_string();
        let state = str_of(&e["state"]);
        t.row(vec![
            cell(name.clone()),
            (state_text(e), state_color(state)),
            cell(num(&e["pending"])),
            cell(num(&e["in_flight"])),
            (
                num(&e["dead"]),
                (e["dead"].as_u64().unwrap_or(0) > 0).then_some(Color::Red),
            ),
            cell(age_of(&e["oldest_pending_age_secs"])),
            cell(match e["last_error"].as_str() {
                Some(err) => shorten(err, ERROR_WIDTH),
                None if state == "orphaned" => "not in the config; re-add it or purge".into(),
                None => "-".into(),
            }),
        ]);
        if state == "orphaned" {
            notes.push(format!(
                "{name}: not in the config; its {} pending and {} dead deliveries wait for it to return. `edgehook purge --endpoint {name}` deletes them",
                num(&e["pending"]),
                num(&e["dead"])
            ));
        }
        if let Some(n) = e["exported"].as_u64().filter(|n| *n > 0) {
            notes.push(format!(
                "{name}: {n} exported, awaiting receipt (not sent from here; `edgehook receipt apply FILE` removes them)"
            ));
        }
        if let Some(skew) = e["clock_skew_secs"].as_i64() {
            let dir = if skew > 0 { "ahead of" } else { "behind" };
            notes.push(format!(
                "clock skew: {name}'s upstream clock is {} {dir} this host; receivers may reject webhook-timestamp (check NTP)",
                age(skew.unsigned_abs())
            ));
        }
    }
    out.push('\n');
    out.push_str(&t.render(style));
    for note in notes {
        let _ = writeln!(out, "{}", style.paint(&note, Some(Color::Yellow)));
    }
    out
}

fn format_endpoints(v: &Value, style: Style) -> String {
    let endpoints = v["endpoints"].as_array().cloned().unwrap_or_default();
    if endpoints.is_empty() {
        return "no endpoints configured\n".into();
    }
    let mut t = Table::new(&["NAME", "URL", "STATE", "PENDING", "DEAD", "OLDEST"]);
    for e in &endpoints {
        let state = str_of(&e["state"]);
        t.row(vec![
            cell(str_of(&e["name"])),
            cell(str_of(&e["url"])),
            (state_text(e), state_color(state)),
            cell(num(&e["pending"])),
            cell(num(&e["dead"])),
            cell(age_of(&e["oldest_pending_age_secs"])),
        ]);
    }
    t.render(style)
}

fn format_dead(v: &Value, style: Style) -> String {
    let dead = v["dead"].as_array().cloned().unwrap_or_default();
    let total = v["total"].as_u64().unwrap_or(0);
    if dead.is_empty() {
        return "no dead letters\n".into();
    }
    let mut t = Table::new(&[
        "EVENT ID",
        "ENDPOINT",
        "TYPE",
        "ATTEMPTS",
        "STATUS",
        "DIED",
        "REASON",
        "LAST ERROR",
    ]);
    for d in &dead {
        t.row(vec![
            cell(str_of(&d["event_id"])),
            cell(str_of(&d["endpoint"])),
            cell(str_of(&d["type"])),
            cell(num(&d["attempts"])),
            cell(num(&d["last_status"])),
            cell(str_of(&d["updated_at"])),
            (str_of(&d["dead_reason"]).to_string(), Some(Color::Red)),
            cell(shorten(str_of(&d["last_error"]), ERROR_WIDTH)),
        ]);
    }
    let mut out = t.render(style);
    if total > dead.len() as u64 {
        let _ = writeln!(
            out,
            "showing {} of {total}; use --limit or --endpoint to see others",
            dead.len()
        );
    }
    let _ = writeln!(
        out,
        "{}",
        style.paint(
            "`edgehook dead retry [ID…]` queues them again; `edgehook dead purge [ID…]` deletes them",
            Some(Color::Dim)
        )
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_queue_endpoints_and_reload_error() {
        let v = json!({
            "version": "0.1.0", "pid": 42, "uptime_secs": 3725,
            "config": {"path": "/etc/edgehook/edgehook.toml"},
            "reloads": {"ok": 2, "failed": 1, "last_ok_at": "2025-01-01T00:00:00Z",
                        "last_error": "edgehook.toml:3:1: unknown field `x`\nsecond",
                        "restart_needed": ["ingest.max_connections"]},
            "queue": {"bytes": 2048, "max_bytes": 1073741824, "pending": 3, "dead": 1},
            "endpoints": [
                {"name": "spark", "state": "offline", "next_probe_in_secs": 12, "pending": 2,
                 "in_flight": 0, "dead": 1, "oldest_pending_age_secs": 300,
                 "last_error": "connection refused", "clock_skew_secs": -420},
                {"name": "ship", "state": "paused", "pending": 5, "exported": 4, "in_flight": 0,
                 "dead": 0, "oldest_pending_age_secs": 60, "last_error": null},
                {"name": "old", "state": "orphaned", "pending": 1, "in_flight": null,
                 "dead": 0, "oldest_pending_age_secs": 90000, "last_error": null},
            ],
        });
        let text = format_status(&v, Style::plain());
        for needle in [
            "edgehook 0.1.0 (pid 42), up 1h02m",
            "config   /etc/edgehook/edgehook.toml",
            "reloads  2 ok, 1 failed; last good reload 2025-01-01T00:00:00Z",
            "last reload failed: edgehook.toml:3:1: unknown field `x` (+1 more line(s); see --json)",
            "restart needed: ingest.max_connections changed; restart edgehook to apply",
            "queue    2.0 KiB of 1.0 GiB (0.0%); 3 pending, 1 dead",
            "ENDPOINT  STATE                  PENDING  IN FLIGHT  DEAD  OLDEST  LAST ERROR",
            "spark     offline, probe in 12s  2",
            "old       orphaned",
            "1d1h",
            "spark's upstream clock is 7m00s behind this host",
            "ship: 4 exported, awaiting receipt",
            "old: not in the config; its 1 pending and 0 dead deliveries wait for it to return. `edgehook purge --endpoint old` deletes them",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(
            !text.contains("clock    "),
            "a good clock is not mentioned:\n{text}"
        );
    }

    #[test]
    fn status_reports_an_unset_or_stepped_clock() {
        let status = |clock: Value| {
            let v =
                json!({"config": {}, "reloads": {}, "queue": {}, "endpoints": [], "clock": clock});
            format_status(&v, Style::plain())
        };
        let text = status(json!({"now": "1970-01-01T00:00:10Z", "unset": true,
            "built_at": "2026-12-04T18:00:00Z", "stepped_secs": 0, "last_step": null}));
        assert!(
            text.contains("clock    looks unset: 1970-01-01T00:00:10Z is before this edgehook was built (2026-12-04T18:00:00Z); set it (NTP, RTC)"),
            "{text}"
        );
        let text = status(json!({"now": "2026-12-06T18:00:00Z", "unset": false,
            "built_at": "2026-12-04T18:00:00Z", "stepped_secs": 172_800,
            "last_step": {"at": "2026-12-06T17:00:00Z", "secs": 172_800}}));
        assert!(
            text.contains("clock    stepped by +2d 00:00:00 at 2026-12-06T17:00:00Z; queue schedules and ages follow elapsed time"),
            "{text}"
        );
    }
}
