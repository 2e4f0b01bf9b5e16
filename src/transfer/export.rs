//! `POST /v1/export`: the pending deliveries of some endpoints, streamed out as a bundle.
//!
//! The export is bounded by the highest delivery row when it starts: rows queued during
//! the export stay queued as usual and go in the next bundle. Pages of [`PAGE`] rows are
//! read and marked exported by the store's writer, between other commits, so the bundle
//! holds exactly what was marked, and ingest keeps running. A failed export (the client
//! went away, storage failed) aborts the stream, so the CLI keeps no file; rows it had
//! marked stay queued and go in the next bundle.

use std::collections::BTreeSet;
use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use bytes::Bytes;
use chacha20poly1305::Key;
use http_body_util::channel::{Channel, Sender};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::Response;
use serde::Deserialize;
use serde_json::json;
use tokio::runtime::Handle;
use tracing::{info, warn};

use super::format::Kind;
use super::records::{Delivery, Header, Line, Writer};
use super::routes::{key, site, streamed, unexpected, Body};
use crate::reply::ApiError;
use crate::runtime::Runtime;
use crate::store::transfer::{Done, Op};
use crate::store::{Store, STATE_EXPORTED, STATE_PENDING};

/// Deliveries per writer call.
const PAGE: usize = 1000;
/// Largest export request body (a list of endpoint names).
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExportRequest {
    #[serde(default)]
    endpoints: Vec<String>,
}

pub(super) async fn run(rt: &Arc<Runtime>, body: Incoming) -> Result<Response<Body>, ApiError> {
    let config = rt.config.load();
    let key = key(&config)?;
    let request = Limited::new(body, MAX_REQUEST)
        .collect()
        .await
        .map_err(|e| ApiError::new(400, "invalid_request", format!("request body: {e}")))?
        .to_bytes();
    let request: ExportRequest = if request.iter().all(u8::is_ascii_whitespace) {
        ExportRequest::default()
    } else {
        serde_json::from_slice(&request)
            .map_err(|e| ApiError::new(400, "invalid_request", format!("request body: {e}")))?
    };
    let queued: BTreeSet<String> = rt
        .store
        .counts()
        .await?
        .into_iter()
        .map(|c| c.endpoint)
        .collect();
    let endpoints: Vec<String> = if request.endpoints.is_empty() {
        config
            .endpoints
            .iter()
            .map(|e| e.name.to_string())
            .collect()
    } else {
        for name in &request.endpoints {
            if config.endpoint(name).is_none() && !queued.contains(name) {
                return Err(ApiError::new(
                    404,
                    "not_found",
                    format!(
                        "no endpoint named {name:?} in {} and nothing queued for it",
                        config.path.display()
                    ),
                ));
            }
        }
        request.endpoints
    };
    let origin = site(rt).await?;
    let names = serde_json::to_string(&endpoints).unwrap_or_default();
    let (upto, count) = rt
        .store
        .read_admin(move |c| {
            let upto: i64 =
                c.query_row("SELECT COALESCE(MAX(seq), 0) FROM deliveries", [], |r| {
                    r.get(0)
                })?;
            let count: i64 = c.query_row(
                &format!(
                    "SELECT COUNT(*) FROM deliveries WHERE seq <= ?1
                       AND state IN ({STATE_PENDING}, {STATE_EXPORTED})
                       AND endpoint IN (SELECT value FROM json_each(?2))"
                ),
                rusqlite::params![upto, names],
                |r| r.get(0),
            )?;
            Ok((upto, count as u64))
        })
        .await?;
    let header = Header {
        bundle: format!("bundle_{}", ulid::Ulid::new()),
        origin,
        importer: None,
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        endpoints,
    };
    let summary = json!({
        "bundle": header.bundle,
        "origin": header.origin,
        "endpoints": header.endpoints,
        "deliveries": count,
    });
    let (sender, body) = Channel::<Bytes, io::Error>::new(4);
    let store = rt.store.clone();
    let handle = Handle::current();
    tokio::task::spawn_blocking(move || produce(store, handle, key, header, upto, sender));
    Ok(streamed(body.boxed(), &summary))
}

/// Write the bundle into `sender`; on failure abort the stream so the client keeps nothing.
fn produce(
    store: Store,
    handle: Handle,
    key: Key,
    header: Header,
    upto: i64,
    mut sender: Sender<Bytes, io::Error>,
) {
    let bundle = header.bundle.clone();
    let out = BufWriter::with_capacity(
        64 * 1024,
        ChannelWriter {
            sender: &mut sender,
            handle: &handle,
        },
    );
    match write(&store, &handle, &key, &header, upto, out) {
        Ok(n) => {
            info!(bundle = %bundle, deliveries = n, "Exported a bundle; its deliveries wait for a receipt.")
        }
        Err(err) => {
            warn!(bundle = %bundle, error = %err, "Export stopped; its file is incomplete and will be refused. Deliveries stay queued.");
            sender.abort(err);
        }
    }
}

fn write(
    store: &Store,
    handle: &Handle,
    key: &Key,
    header: &Header,
    upto: i64,
    out: impl Write,
) -> io::Result<u64> {
    let mut w = Writer::new(out, key, Kind::Bundle, header)?;
    let (mut after, mut n) = (0, 0);
    loop {
        let op = Op::Export {
            endpoints: header.endpoints.clone(),
            after,
            upto,
            limit: PAGE,
        };
        let rows = match handle.block_on(store.transfer(op)) {
            Ok(Done::Exported(rows)) => rows,
            Ok(other) => return Err(io::Error::other(unexpected(other).message)),
            Err(e) => return Err(io::Error::other(e)),
        };
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in rows {
            w.push(&Line::Delivery(Delivery {
                seq: row.seq,
                endpoint: row.endpoint,
                id: row.event_id,
                event_type: row.event_type,
                timestamp: row.timestamp,
                data: String::from_utf8(row.data).map_err(io::Error::other)?,
                attempts: row.attempts,
                created_at: row.created_at,
            }))?;
            n += 1;
        }
    }
    w.finish()?.flush()?;
    Ok(n)
}

/// The response body as a [`Write`] for the blocking export thread.
struct ChannelWriter<'a> {
    sender: &'a mut Sender<Bytes, io::Error>,
    handle: &'a Handle,
}

impl Write for ChannelWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.handle
            .block_on(self.sender.send_data(Bytes::copy_from_slice(data)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
