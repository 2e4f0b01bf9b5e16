//! `POST /v1/import`: a bundle from an air-gapped site, queued here; the answer is the
//! receipt that names what was taken.
//!
//! The bundle is spooled, then verified whole: every chunk authenticated, every line
//! read, its origin not this relay, every endpoint it names configured here. Only then
//! are its deliveries queued, in pages on the store's writer, each (origin, event id,
//! endpoint) at most once ever, for the endpoint of that name in this config (its URL,
//! auth, signing, and `order_key` computed here). The event keeps its id, type,
//! timestamp, data and attempts; the delivery is new here (created and due now). The
//! receipt is written as pages commit and sent only when all are in, so a receipt exists
//! only for deliveries this relay holds durably.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::sync::Arc;

use chacha20poly1305::Key;
use hyper::body::Incoming;
use hyper::Response;
use serde_json::json;
use tokio::runtime::Handle;
use tracing::info;

use super::format::Kind;
use super::records::{Delivery, Header, Line, Reader, Receipted, Site, Writer};
use super::routes::{blocking, file_body, key, refused, site, spool, streamed, unexpected, Body};
use crate::config::Config;
use crate::ingest::route::order_key;
use crate::reply::ApiError;
use crate::runtime::Runtime;
use crate::store::transfer::{Done, Incoming as Queued, Op};
use crate::store::Store;

/// Deliveries per writer call.
const PAGE: usize = 1000;

/// What a verified bundle holds.
struct Verified {
    header: Header,
    /// Deliveries per endpoint.
    endpoints: BTreeMap<String, u64>,
    total: u64,
}

pub(super) async fn run(rt: &Arc<Runtime>, body: Incoming) -> Result<Response<Body>, ApiError> {
    let config = rt.config.load();
    let key = key(&config)?;
    let me = site(rt).await?;
    let spooled = spool(body, &config.daemon.state_dir).await?;
    let path = spooled.path().to_path_buf();
    let verified = blocking(move || verify(&path, &key)).await?;
    check(&verified, &me, &config)?;

    let receipt = tempfile::Builder::new()
        .prefix(".receipt-")
        .tempfile_in(&config.daemon.state_dir)
        .map_err(|e| ApiError::unavailable(format!("cannot write the receipt: {e}")))?;
    let (store, handle) = (rt.store.clone(), Handle::current());
    let (bundle, receipt_file) = (spooled.path().to_path_buf(), receipt.reopen());
    let receipt_file = receipt_file
        .map_err(|e| ApiError::unavailable(format!("cannot write the receipt: {e}")))?;
    let header = Header {
        importer: Some(me),
        endpoints: Vec::new(),
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        ..verified.header.clone()
    };
    let total = verified.total;
    let (queued, already) = blocking(move || {
        apply(
            &store,
            &handle,
            &key,
            &config,
            &bundle,
            &header,
            receipt_file,
            total,
        )
    })
    .await?;
    drop(spooled);
    info!(
        bundle = %verified.header.bundle, origin = %verified.header.origin,
        queued, already, "Imported a bundle; its receipt goes back to the origin."
    );
    let summary = json!({
        "bundle": verified.header.bundle,
        "origin": verified.header.origin,
        "deliveries": verified.total,
        "queued": queued,
        "already": already,
        "endpoints": verified.endpoints,
    });
    let file = tokio::fs::File::from_std(
        receipt
            .reopen()
            .map_err(|e| ApiError::unavailable(format!("cannot read the receipt: {e}")))?,
    );
    let body = file_body(file, |_| (), move || drop(receipt));
    Ok(streamed(body, &summary))
}

/// Read the whole bundle once: authenticated, complete, well formed.
fn verify(path: &std::path::Path, key: &Key) -> Result<Verified, ApiError> {
    let file = File::open(path).map_err(|e| refused("bundle", e))?;
    let (header, mut reader) =
        Reader::open(BufReader::new(file), key, Kind::Bundle).map_err(|e| refused("bundle", e))?;
    let mut endpoints = BTreeMap::new();
    let mut total = 0;
    while let Some(line) = reader.next_line().map_err(|e| refused("bundle", e))? {
        match line {
            Line::Delivery(d) => {
                *endpoints.entry(d.endpoint).or_insert(0) += 1;
                total += 1;
            }
            other => {
                return Err(refused(
                    "bundle",
                    format!("it holds a {other:?} line, which only receipts have"),
                ))
            }
        }
    }
    Ok(Verified {
        header,
        endpoints,
        total,
    })
}

/// Refuse a bundle this relay should not take: its own, or one for endpoints it lacks.
fn check(v: &Verified, me: &Site, config: &Config) -> Result<(), ApiError> {
    if v.header.origin.id == me.id {
        return Err(refused(
            "bundle",
            format!(
                "it was exported by this relay ({me}); import it at the connected relay instead"
            ),
        ));
    }
    let missing: Vec<String> = v
        .endpoints
        .iter()
        .filter(|(name, _)| config.endpoint(name).is_none())
        .map(|(name, n)| format!("{name:?} ({n} deliveries)"))
        .collect();
    if !missing.is_empty() {
        return Err(refused(
            "bundle",
            format!(
                "it carries deliveries for endpoint(s) {}, which {} does not configure; \
                 add an [[endpoint]] of that name (with this site's URL, auth and signing) and import again",
                missing.join(", "),
                config.path.display()
            ),
        ));
    }
    Ok(())
}

/// Queue the verified bundle page by page, writing the receipt as pages commit.
/// Returns (queued, already queued before).
#[allow(clippy::too_many_arguments)]
fn apply(
    store: &Store,
    handle: &Handle,
    key: &Key,
    config: &Config,
    bundle: &std::path::Path,
    header: &Header,
    receipt: File,
    total: u64,
) -> Result<(u64, u64), ApiError> {
    let io_err = |e: io::Error| ApiError::unavailable(format!("writing the receipt: {e}"));
    let file = File::open(bundle).map_err(|e| refused("bundle", e))?;
    let (_, mut reader) =
        Reader::open(BufReader::new(file), key, Kind::Bundle).map_err(|e| refused("bundle", e))?;
    let mut out =
        Writer::new(BufWriter::new(receipt), key, Kind::Receipt, header).map_err(io_err)?;
    let (mut queued, mut already) = (0u64, 0u64);
    let mut page: Vec<Delivery> = Vec::with_capacity(PAGE);
    loop {
        let line = reader.next_line().map_err(|e| refused("bundle", e))?;
        let end = line.is_none();
        if let Some(Line::Delivery(d)) = line {
            page.push(d);
            if page.len() < PAGE {
                continue;
            }
        }
        if !page.is_empty() {
            let deliveries = page.iter().map(|d| queued_here(d, config)).collect();
            let op = Op::Import {
                origin: header.origin.id.clone(),
                deliveries,
            };
            match handle.block_on(store.transfer(op))? {
                Done::Imported {
                    queued: q,
                    already: a,
                    full,
                } => {
                    queued += q;
                    already += a;
                    if full {
                        return Err(ApiError::new(
                            507,
                            "queue_full",
                            format!(
                                "the queue is full (queue.max_bytes) after {} of {total} deliveries; no receipt was written. \
                                 Import the same bundle again once the queue has drained: deliveries already queued are not queued twice",
                                queued + already
                            ),
                        ));
                    }
                }
                other => return Err(unexpected(other)),
            }
            for d in page.drain(..) {
                out.push(&Line::Receipted(Receipted {
                    seq: d.seq,
                    endpoint: d.endpoint,
                    id: d.id,
                }))
                .map_err(io_err)?;
            }
        }
        if end {
            break;
        }
    }
    let receipt = out.finish().map_err(io_err)?;
    receipt
        .into_inner()
        .map_err(|e| io_err(e.into_error()))?
        .sync_all()
        .map_err(io_err)?;
    Ok((queued, already))
}

/// A bundle delivery as this relay queues it: for its endpoint of that name.
fn queued_here(d: &Delivery, config: &Config) -> Queued {
    let order_key = config
        .endpoint(&d.endpoint)
        .and_then(|e| e.order_key.as_deref())
        .map(|pointer| {
            let data = serde_json::from_str::<serde_json::Value>(&d.data).ok();
            order_key(pointer, data.as_ref())
        });
    Queued {
        endpoint: d.endpoint.clone(),
        event_id: d.id.clone(),
        event_type: d.event_type.clone(),
        timestamp: d.timestamp.clone(),
        data: d.data.clone().into_bytes(),
        attempts: d.attempts,
        order_key,
    }
}
