//! The admin API's routes. JSON in and out; errors are `{"error":{"code","message"}}` as
//! on the ingest socket.
//!
//! | route | body / query | answer |
//! |---|---|---|
//! | `GET /v1/status` | | version, pid, uptime, config, reloads, queue, received, `endpoints` (with `durations`) |
//! | `GET /v1/endpoints` | | `{"endpoints":[…]}` (configured, then orphaned) |
//! | `GET /v1/dead` | `?endpoint=E&id=X&id=Y&limit=N` | `{"total":N,"dead":[…]}` |
//! | `POST /v1/dead/retry` | `{"endpoint"?,"ids"?}` | `{"retried":N}`, or NDJSON progress (`dead.rs`) |
//! | `POST /v1/dead/purge` | `{"endpoint"?,"ids"?}` | `{"purged":N}`, or NDJSON progress (`dead.rs`) |
//! | `POST /v1/wake` | `{"endpoint"?}` | `{"woken":[{"endpoint","state"}]}` |
//! | `POST /v1/pause` | `{"endpoint"}` | `{"endpoint","state":"paused","pending":N}` |
//! | `POST /v1/resume` | `{"endpoint"}` | `{"endpoint","state","was"}` |
//! | `POST /v1/purge` | `{"endpoint","force"?}` | `{"endpoint","purged":N,"queue_bytes":B}` (`purge.rs`) |
//! | `POST /v1/reload` | | `{"message"}`, or 422 `reload_failed` with the validation error |
//! | `GET /metrics` | | Prometheus text (also the only route on `metrics_listen`) |
//! | `POST /v1/export`, `/v1/import`, `/v1/receipt` | | air-gapped transfer, streamed (`crate::transfer::routes`) |

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{dead, Ctx};
use crate::config::watch::{Reload, Trigger};
use crate::config::{Config, WhenFull};
use crate::deliver::status::{Control, Shown, State, Status};
use crate::metrics;
use crate::reply::{error, json, not_allowed, ApiError};
use crate::store::admin::{DeadFilter, EndpointCounts};
use crate::store::{clock, now_ms, Hold};
use crate::transfer;

/// Answer bodies: JSON whole, transfer bundles and receipts streamed.
pub(super) type Body = transfer::routes::Body;
type Reply = Response<Full<Bytes>>;

/// Largest request body: a list of event ids to retry or purge.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Time a body gets to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a reload may take before the caller is told to look at the log.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Most dead letters one `GET /v1/dead` returns, whatever `limit` asks.
const MAX_LIST: usize = 10_000;
/// Dead letters listed when no `limit` is given.
const DEFAULT_LIST: usize = 100;

/// Answer one request; `metrics_only` for the `metrics_listen` TCP port. The transfer
/// routes (`edgehook export`, `import`, `receipt apply`) live in `crate::transfer`.
pub(super) async fn handle(
    req: Request<Incoming>,
    ctx: &Ctx,
    metrics_only: bool,
) -> Response<Body> {
    if !metrics_only && transfer::routes::is_transfer(req.uri().path()) {
        return transfer::routes::handle(req, &ctx.runtime).await;
    }
    if !metrics_only && req.method() == Method::POST {
        match req.uri().path() {
            "/v1/dead/retry" => return dead::route(ctx, req, dead::Op::Retry).await,
            "/v1/dead/purge" => return dead::route(ctx, req, dead::Op::Purge).await,
            _ => {}
        }
    }
    transfer::routes::boxed(route(req, ctx, metrics_only).await)
}

async fn route(req: Request<Incoming>, ctx: &Ctx, metrics_only: bool) -> Reply {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let result = match (&method, path.as_str()) {
        (&Method::GET, "/metrics") => Ok(metrics(ctx).await),
        (_, "/metrics") => return not_allowed("GET"),
        _ if metrics_only => Err(ApiError::new(
            404,
            "not_found",
            format!("no such resource {path:?}; this port serves GET /metrics only"),
        )),
        (&Method::GET, "/v1/status") => status(ctx).await.map(ok),
        (&Method::GET, "/v1/endpoints") => endpoints(ctx).await.map(ok),
        (&Method::GET, "/v1/dead") => dead_list(ctx, req.uri().query()).await.map(ok),
        (&Method::POST, "/v1/wake") => match body(req).await {
            Ok(b) => wake(ctx, b).map(ok),
            Err(e) => Err(e),
        },
        (&Method::POST, "/v1/pause") => match body(req).await {
            Ok(b) => hold(ctx, b, true).await.map(ok),
            Err(e) => Err(e),
        },
        (&Method::POST, "/v1/resume") => match body(req).await {
            Ok(b) => hold(ctx, b, false).await.map(ok),
            Err(e) => Err(e),
        },
        (&Method::POST, "/v1/reload") => reload(ctx).await.map(ok),
        (&Method::POST, "/v1/purge") => match body(req).await {
            Ok(b) => super::purge::route(ctx, b).await.map(ok),
            Err(e) => Err(e),
        },
        (_, "/v1/status" | "/v1/endpoints" | "/v1/dead") => return not_allowed("GET"),
        (
            _,
            "/v1/dead/retry" | "/v1/dead/purge" | "/v1/wake" | "/v1/pause" | "/v1/resume"
            | "/v1/reload" | "/v1/purge",
        ) => return not_allowed("POST"),
        _ => Err(ApiError::new(
            404,
            "not_found",
            format!("no such resource {path:?}; see GET /v1/status"),
        )),
    };
    result.unwrap_or_else(|e| error(&e))
}

/// 403 for a peer the admin socket does not serve.
pub(super) fn forbidden(message: String) -> Response<Body> {
    transfer::routes::boxed(error(&ApiError::new(403, "forbidden", message)))
}

// ----- routes -----

async fn status(ctx: &Ctx) -> Result<Value, ApiError> {
    let rt = &ctx.runtime;
    let config = rt.config.load();
    let counts = rt.store.counts().await?;
    let rows = endpoint_rows(ctx, &config, &counts).await?;
    let reloads = rt.reloads();
    let uptime = SystemTime::now()
        .duration_since(rt.started)
        .unwrap_or_default();
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "started_at": rfc3339(rt.started),
        "uptime_secs": uptime.as_secs(),
        "config": {"path": config.path, "endpoints": config.endpoints.len()},
        "reloads": {
            "ok": reloads.succeeded,
            "failed": reloads.failed,
            "last_ok_at": reloads.last_ok_at.map(rfc3339),
            "last_error": reloads.last_error,
            "restart_needed": rt.restart_keys(),
        },
        "queue": {
            "path": rt.store.path(),
            "bytes": rt.store.queue_bytes(),
            "max_bytes": config.queue.max_bytes,
            "when_full": match config.queue.when_full {
                WhenFull::Reject => "reject",
                WhenFull::DropOldest => "drop_oldest",
            },
            "pending": counts.iter().map(|c| c.pending).sum::<u64>(),
            "exported": counts.iter().map(|c| c.exported).sum::<u64>(),
            "dead": counts.iter().map(|c| c.dead).sum::<u64>(),
        },
        "clock": clock_json(&rt.store.clock().await?),
        "received": received_json(rt.received.get()),
        "endpoints": rows,
    }))
}

/// Events handed to ingest since the daemon started (`edgehook top`'s ingest rate).
fn received_json((accepted, duplicate, rejected): (u64, u64, u64)) -> Value {
    json!({"accepted": accepted, "duplicate": duplicate, "rejected": rejected})
}

async fn endpoints(ctx: &Ctx) -> Result<Value, ApiError> {
    let config = ctx.runtime.config.load();
    let counts = ctx.runtime.store.counts().await?;
    Ok(json!({"endpoints": endpoint_rows(ctx, &config, &counts).await?}))
}

/// One JSON object per configured endpoint, then one per orphaned endpoint (rows queued
/// for a name the config no longer has).
async fn endpoint_rows(
    ctx: &Ctx,
    config: &Config,
    counts: &[EndpointCounts],
) -> Result<Vec<Value>, ApiError> {
    let now = now_ms();
    let handles = ctx.runtime.endpoints.load_full();
    let holds: HashMap<String, Hold> = ctx.runtime.store.holds().await?.into_iter().collect();
    let by_name: HashMap<&str, &EndpointCounts> =
        counts.iter().map(|c| (c.endpoint.as_str(), c)).collect();
    let mut rows = Vec::new();
    for endpoint in &config.endpoints {
        let handle = handles.iter().find(|h| *h.name == *endpoint.name);
        let status = handle.map(|h| h.status());
        let state = match &status {
            Some(s) => s.state.shown(),
            // Between a reload's stop and start, or a worker that could not start.
            None => holds
                .get(&*endpoint.name)
                .map_or(Shown::Stopped, |h| Shown::from(*h)),
        };
        let mut row = queue_json(&endpoint.name, state, by_name.get(&*endpoint.name), now);
        row["url"] = json!(endpoint.url.to_string());
        if let (Some(s), Some(h)) = (&status, handle) {
            worker_json(&mut row, s);
            row["durations"] = durations_json(&h.durations());
        }
        rows.push(row);
    }
    for c in counts {
        if config.endpoint(&c.endpoint).is_none() {
            rows.push(queue_json(&c.endpoint, Shown::Orphaned, Some(&c), now));
        }
    }
    Ok(rows)
}

fn queue_json(name: &str, state: Shown, counts: Option<&&EndpointCounts>, now: i64) -> Value {
    let oldest = counts.and_then(|c| c.oldest_pending_at);
    json!({
        "name": name,
        "url": null,
        "state": state,
        "pending": counts.map_or(0, |c| c.pending),
        "exported": counts.map_or(0, |c| c.exported),
        "dead": counts.map_or(0, |c| c.dead),
        "oldest_pending_at": oldest.map(rfc3339_ms),
        "oldest_pending_age_secs": oldest.map(|at| (now - at).max(0) / 1000),
        "in_flight": null,
    })
}

/// The delivery-duration histogram since the worker started: upper bounds in seconds
/// and cumulative counts, the last one for `+Inf` (`edgehook top`'s percentiles).
fn durations_json(h: &metrics::HistogramSnapshot) -> Value {
    let mut total = 0;
    let mut cumulative: Vec<u64> = h
        .buckets
        .iter()
        .map(|(_, n)| {
            total += n;
            total
        })
        .collect();
    cumulative.push(h.count);
    let le: Vec<f64> = h.buckets.iter().map(|(le, _)| *le).collect();
    json!({"le": le, "cumulative": cumulative, "sum_secs": h.sum_secs})
}

fn worker_json(row: &mut Value, s: &Status) {
    let (since, next) = match &s.state {
        State::Offline { since, next_probe } => (Some(*since), Some(*next_probe)),
        _ => (None, None),
    };
    let patch = json!({
        "offline_since": since.map(rfc3339),
        "next_probe_at": next.map(rfc3339),
        "next_probe_in_secs": next.map(|n| n.duration_since(SystemTime::now()).unwrap_or_default().as_secs()),
        "in_flight": s.in_flight,
        "concurrency_limit": s.concurrency_limit,
        "last_error": s.last_error,
        "last_error_at": s.last_error_at.map(rfc3339),
        "last_success_at": s.last_success_at.map(rfc3339),
        "clock_skew_secs": s.clock_skew_secs,
        "since_start": {"delivered": s.delivered, "retried": s.retried, "dead": s.dead},
    });
    if let (Some(row), Value::Object(patch)) = (row.as_object_mut(), patch) {
        row.extend(patch);
    }
}

async fn dead_list(ctx: &Ctx, query: Option<&str>) -> Result<Value, ApiError> {
    let mut filter = DeadFilter::default();
    let mut limit = DEFAULT_LIST;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "endpoint" => filter.endpoint = Some(v.into_owned()),
            "id" => filter.ids.push(v.into_owned()),
            "limit" => {
                limit = v.parse().map_err(|_| {
                    ApiError::new(
                        400,
                        "invalid_request",
                        format!("limit {v:?} is not a number"),
                    )
                })?
            }
            other => {
                return Err(ApiError::new(
                    400,
                    "invalid_request",
                    format!("unknown query parameter {other:?}; use endpoint, id, limit"),
                ))
            }
        }
    }
    let (rows, total) = ctx
        .runtime
        .store
        .dead_letters(filter, limit.min(MAX_LIST))
        .await?;
    let dead: Vec<Value> = rows
        .into_iter()
        .map(|d| {
            json!({
                "event_id": d.event_id,
                "type": d.event_type,
                "endpoint": d.endpoint,
                "attempts": d.attempts,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "dead_reason": d.dead_reason,
                "updated_at": d.updated_at.map(rfc3339_ms),
                "created_at": rfc3339_ms(d.created_at),
            })
        })
        .collect();
    Ok(json!({"total": total, "dead": dead}))
}

/// `{"endpoint"?}` (wake) or `{"endpoint"}` (pause, resume).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Target {
    endpoint: Option<String>,
}

fn wake(ctx: &Ctx, body: Bytes) -> Result<Value, ApiError> {
    let t: Target = parse(&body)?;
    let config = ctx.runtime.config.load();
    if let Some(name) = &t.endpoint {
        known(&config, name)?;
    }
    let handles = ctx.runtime.endpoints.load_full();
    let woken: Vec<Value> = handles
        .iter()
        .filter(|h| t.endpoint.as_ref().is_none_or(|n| *n == h.name))
        .filter(|h| h.send(Control::Wake))
        .map(|h| json!({"endpoint": h.name, "state": h.status().state.shown()}))
        .collect();
    Ok(json!({"woken": woken}))
}

async fn hold(ctx: &Ctx, body: Bytes, pause: bool) -> Result<Value, ApiError> {
    let t: Target = parse(&body)?;
    let verb = if pause { "pause" } else { "resume" };
    let name = t.endpoint.ok_or_else(|| {
        ApiError::new(
            400,
            "invalid_request",
            format!("{verb} needs {{\"endpoint\": NAME}}"),
        )
    })?;
    let config = ctx.runtime.config.load();
    known(&config, &name)?;
    let rt = &ctx.runtime;
    let was = rt
        .store
        .holds()
        .await?
        .into_iter()
        .find(|(e, _)| *e == name)
        .map(|(_, s)| s);
    let handle = rt
        .endpoints
        .load_full()
        .iter()
        .find(|h| h.name == name)
        .cloned();
    let hold = pause.then_some(Hold::Paused);
    rt.store.set_hold(&name, hold).await?;
    // The hold is stored first: a worker (re)started from here on reads it.
    if let Some(h) = handle {
        h.send(Control::Hold(hold));
    }
    let pending = rt
        .store
        .counts()
        .await?
        .into_iter()
        .find(|c| c.endpoint == name)
        .map_or(0, |c| c.pending);
    Ok(json!({
        "endpoint": name,
        "state": if pause { "paused" } else { "resumed" },
        "was": was,
        "pending": pending,
    }))
}

async fn reload(ctx: &Ctx) -> Result<Value, ApiError> {
    let (tx, rx) = oneshot::channel();
    let request = Reload {
        trigger: Trigger::Admin,
        reply: Some(tx),
    };
    let gone = || ApiError::unavailable("edgehook is shutting down; the reload was not applied");
    ctx.runtime
        .reload_tx
        .send(request)
        .await
        .map_err(|_| gone())?;
    match tokio::time::timeout(RELOAD_TIMEOUT, rx).await {
        Err(_) => Err(ApiError::new(
            504,
            "timeout",
            format!(
                "the reload did not finish within {}s; see the daemon's log",
                RELOAD_TIMEOUT.as_secs()
            ),
        )),
        Ok(Err(_)) => Err(gone()),
        Ok(Ok(Ok(message))) => Ok(json!({"message": message})),
        Ok(Ok(Err(message))) => Err(ApiError::new(422, "reload_failed", message)),
    }
}

async fn metrics(ctx: &Ctx) -> Reply {
    match snapshot(ctx).await {
        Ok(s) => {
            let mut r = Response::new(Full::new(Bytes::from(metrics::render(s))));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            r
        }
        Err(e) => error(&e),
    }
}

/// Everything a scrape shows, read now.
async fn snapshot(ctx: &Ctx) -> Result<metrics::Snapshot, ApiError> {
    let rt = &ctx.runtime;
    let config = rt.config.load();
    let counts = rt.store.counts().await?;
    let handles = rt.endpoints.load_full();
    let reloads = rt.reloads();
    let now = now_ms();
    let by_name: HashMap<&str, &EndpointCounts> =
        counts.iter().map(|c| (c.endpoint.as_str(), c)).collect();
    let mut names: Vec<&str> = config.endpoints.iter().map(|e| &*e.name).collect();
    names.extend(
        counts
            .iter()
            .map(|c| c.endpoint.as_str())
            .filter(|n| config.endpoint(n).is_none()),
    );
    let endpoints = names
        .into_iter()
        .map(|name| {
            let c = by_name.get(name);
            let worker = handles.iter().find(|h| h.name == name).map(|h| {
                let s = h.status();
                metrics::WorkerSnapshot {
                    up: s.state == State::Online,
                    delivered: s.delivered,
                    retried: s.retried,
                    dead: s.dead,
                    duration: h.durations(),
                }
            });
            metrics::EndpointSnapshot {
                name: name.to_string(),
                pending: c.map_or(0, |c| c.pending),
                dead: c.map_or(0, |c| c.dead),
                oldest_pending_age_secs: c
                    .and_then(|c| c.oldest_pending_at)
                    .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0),
                worker,
            }
        })
        .collect();
    Ok(metrics::Snapshot {
        version: env!("CARGO_PKG_VERSION").to_string(),
        received: rt.received.get(),
        events_dropped: rt.store.dropped(),
        reloads_ok: reloads.succeeded,
        reloads_failed: reloads.failed,
        queue_bytes: rt.store.queue_bytes(),
        queue_max_bytes: config.queue.max_bytes,
        endpoints,
    })
}

// ----- helpers -----

fn known(config: &Config, name: &str) -> Result<(), ApiError> {
    if config.endpoint(name).is_some() {
        return Ok(());
    }
    let names: Vec<&str> = config.endpoints.iter().map(|e| &*e.name).collect();
    Err(ApiError::new(
        404,
        "not_found",
        format!(
            "no endpoint named {name:?} in {} (endpoints: {})",
            config.path.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ),
    ))
}

pub(super) async fn body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Err(_) => Err(ApiError::new(
            408,
            "timeout",
            "the request body did not arrive in time",
        )),
        Ok(Err(err)) => Err(ApiError::new(
            413,
            "too_large",
            format!("reading the request body failed: {err}"),
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// A JSON request body; empty means `{}`.
pub(super) fn parse<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "invalid_request",
            format!(
                "request body: {e} (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A stored (queue) time as wall-clock RFC 3339, corrected by the clock steps since start.
fn rfc3339_ms(ms: i64) -> String {
    rfc3339_wall(clock::wall_of(ms))
}

fn rfc3339_wall(ms: i64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

/// The wall clock against elapsed time (`store/clock.rs`).
fn clock_json(c: &clock::Report) -> Value {
    json!({
        "now": rfc3339_wall(c.wall_ms),
        "unset": c.unset,
        "built_at": rfc3339_wall(c.built_ms),
        "stepped_secs": c.stepped_ms / 1000,
        "last_step": c.last_step.map(|s| json!({
            "at": rfc3339_wall(s.at_ms),
            "secs": s.size_ms / 1000,
        })),
    })
}

fn ok(body: Value) -> Reply {
    json(200, &body)
}
