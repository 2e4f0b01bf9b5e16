//! `POST /v1/receipt`: back at the exporting site, remove exactly the deliveries a receipt
//! names. The receipt is verified whole first (authenticated, complete, and written for
//! this relay's site); each entry removes the delivery row with that seq only if its
//! endpoint and event id match too, so a stale or repeated receipt removes nothing else.

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use chacha20poly1305::Key;
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::runtime::Handle;
use tracing::info;

use super::format::Kind;
use super::records::{Header, Line, Reader, Receipted};
use super::routes::{blocking, key, refused, site, spool, unexpected};
use crate::reply::ApiError;
use crate::runtime::Runtime;
use crate::store::transfer::{self, Done, Op};
use crate::store::Store;

/// Entries per writer call.
const PAGE: usize = 1000;

pub(super) async fn run(rt: &Arc<Runtime>, body: Incoming) -> Result<Value, ApiError> {
    let config = rt.config.load();
    let key = key(&config)?;
    let me = site(rt).await?;
    let spooled = spool(body, &config.daemon.state_dir).await?;
    let path = spooled.path().to_path_buf();
    let header = blocking(move || verify(&path, &key)).await?;
    if header.origin.id != me.id {
        return Err(refused(
            "receipt",
            format!(
                "it is for site {} (bundle {}), and this relay is site {me}; apply it at the site that exported the bundle",
                header.origin, header.bundle
            ),
        ));
    }
    let (store, handle) = (rt.store.clone(), Handle::current());
    let path = spooled.path().to_path_buf();
    let (removed, missing) = blocking(move || apply(&store, &handle, &key, &path)).await?;
    drop(spooled);
    info!(
        bundle = %header.bundle,
        importer = %header.importer.as_ref().map(ToString::to_string).unwrap_or_default(),
        removed, missing,
        "Applied a receipt; the deliveries it names are removed."
    );
    Ok(json!({
        "bundle": header.bundle,
        "importer": header.importer,
        "removed": removed,
        "missing": missing,
    }))
}

fn verify(path: &std::path::Path, key: &Key) -> Result<Header, ApiError> {
    let file = File::open(path).map_err(|e| refused("receipt", e))?;
    let (header, mut reader) = Reader::open(BufReader::new(file), key, Kind::Receipt)
        .map_err(|e| refused("receipt", e))?;
    while let Some(line) = reader.next_line().map_err(|e| refused("receipt", e))? {
        if !matches!(line, Line::Receipted(_)) {
            return Err(refused(
                "receipt",
                "it holds deliveries, which only bundles have",
            ));
        }
    }
    Ok(header)
}

/// Remove the named deliveries page by page. Returns (removed, missing).
fn apply(
    store: &Store,
    handle: &Handle,
    key: &Key,
    path: &std::path::Path,
) -> Result<(u64, u64), ApiError> {
    let file = File::open(path).map_err(|e| refused("receipt", e))?;
    let (_, mut reader) = Reader::open(BufReader::new(file), key, Kind::Receipt)
        .map_err(|e| refused("receipt", e))?;
    let (mut removed, mut missing) = (0, 0);
    let mut page = Vec::with_capacity(PAGE);
    loop {
        let line = reader.next_line().map_err(|e| refused("receipt", e))?;
        let end = line.is_none();
        if let Some(Line::Receipted(Receipted { seq, endpoint, id })) = line {
            page.push(transfer::Receipted {
                seq,
                endpoint,
                event_id: id,
            });
            if page.len() < PAGE {
                continue;
            }
        }
        if !page.is_empty() {
            let entries = std::mem::take(&mut page);
            match handle.block_on(store.transfer(Op::Receipt { entries }))? {
                Done::Removed {
                    removed: r,
                    missing: m,
                } => {
                    removed += r;
                    missing += m;
                }
                other => return Err(unexpected(other)),
            }
        }
        if end {
            return Ok((removed, missing));
        }
    }
}
