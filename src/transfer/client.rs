//! The CLI side of air-gapped transfer: `edgehook export`, `import`, `receipt apply`.
//!
//! Each streams a file to or from the daemon's admin socket (the daemon holds the key and
//! does the queue work). Files are written as `NAME.partial`, checked to be complete (the
//! sealed framing ends with its final chunk), synced, then renamed into place, so a file
//! by the final name is never a cut-off one. A progress bar shows on a terminal (stderr);
//! otherwise the commands print one summary line, or JSON with `--json`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use indicatif::ProgressBar;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::format::{check_complete, Kind};
use super::routes::{file_body, SUMMARY_HEADER};
use crate::admin::client::{reply_error, unreachable};
use crate::cli::AdminArgs;
use crate::cli::{ExportArgs, ImportArgs, ReceiptAction, ReceiptArgs};
use crate::config::socket::{self, Located, SocketKey};
use crate::progress;

type ReqBody = BoxBody<Bytes, std::io::Error>;

/// `edgehook export`.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let socket = admin_socket(&args.admin)?;
    let body = json!({"endpoints": args.endpoints}).to_string();
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed();
    let bar = progress::bytes(None);
    let resp = call(&socket, "/v1/export", "application/json", body).await?;
    let resp = ok(resp).await?;
    let mut summary = summary_of(&resp);
    let n = summary["deliveries"].as_u64().unwrap_or(0);
    bar.set_message(format!("exporting {n} deliveries"));
    let bytes = save(resp, &args.out, Kind::Bundle, &bar).await.context(
        "the export failed; nothing was lost: the deliveries stay queued here, run export again",
    )?;
    bar.finish_and_clear();
    summary["file"] = json!(args.out);
    summary["bytes"] = json!(bytes);
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "exported {n} deliveries to {} ({}); they stay queued here, not sent, until `edgehook receipt apply` removes them",
            args.out.display(),
            bytesize::ByteSize(bytes).display().iec()
        );
    }
    Ok(())
}

/// `edgehook import`.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let socket = admin_socket(&args.admin)?;
    let receipt = args.receipt_out.clone().unwrap_or_else(|| {
        let mut name = args.file.clone().into_os_string();
        name.push(".receipt");
        PathBuf::from(name)
    });
    let (body, bar) = upload(&args.file, "uploading").await?;
    let resp = call(&socket, "/v1/import", "application/octet-stream", body).await?;
    let resp = ok(resp)
        .await
        .with_context(|| format!("import of {} failed", args.file.display()))?;
    let mut summary = summary_of(&resp);
    bar.set_message("writing the receipt");
    save(resp, &receipt, Kind::Receipt, &bar)
        .await
        .context("the deliveries are queued here, but the receipt could not be written; run the same import again for a new receipt (nothing is queued twice)")?;
    bar.finish_and_clear();
    summary["receipt"] = json!(receipt);
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "imported bundle {} from {}: {} deliveries, {} queued now, {} queued by an earlier import; \
             receipt written to {} (carry it back and run `edgehook receipt apply` there)",
            summary["bundle"].as_str().unwrap_or("?"),
            site_text(&summary["origin"]),
            summary["deliveries"],
            summary["queued"],
            summary["already"],
            receipt.display()
        );
    }
    Ok(())
}

/// `edgehook receipt apply`.
pub async fn receipt(args: ReceiptArgs) -> anyhow::Result<()> {
    let ReceiptAction::Apply(args) = args.action;
    let socket = admin_socket(&args.admin)?;
    let (body, bar) = upload(&args.file, "uploading").await?;
    let resp = call(&socket, "/v1/receipt", "application/octet-stream", body).await?;
    let resp = ok(resp)
        .await
        .with_context(|| format!("receipt {} not applied", args.file.display()))?;
    let bytes = resp.into_body().collect().await?.to_bytes();
    bar.finish_and_clear();
    let v: Value = serde_json::from_slice(&bytes).context("the daemon's answer is not JSON")?;
    if args.json {
        println!("{v}");
    } else {
        println!(
            "receipt for bundle {} applied: {} deliveries removed ({} were already gone)",
            v["bundle"].as_str().unwrap_or("?"),
            v["removed"],
            v["missing"]
        );
    }
    Ok(())
}

fn admin_socket(args: &AdminArgs) -> anyhow::Result<Located> {
    socket::locate(
        SocketKey::Admin,
        args.admin_socket.as_deref(),
        args.config.config.as_deref(),
    )
}

fn site_text(site: &Value) -> String {
    format!(
        "site {} (host {})",
        site["id"].as_str().unwrap_or("?"),
        site["host"].as_str().unwrap_or("?")
    )
}

/// `file` as a request body read in chunks, and the bar its upload moves; once the upload
/// is done the bar turns into a spinner while the daemon works.
async fn upload(file: &Path, what: &str) -> anyhow::Result<(ReqBody, ProgressBar)> {
    let f = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let len = f.metadata().await?.len();
    let bar = progress::bytes(Some(len));
    bar.set_message(what.to_string());
    let (b, done) = (bar.clone(), bar.clone());
    let body = file_body(
        f,
        move |n| b.inc(n),
        move || progress::to_spinner(&done, "verifying and applying"),
    );
    Ok((body, bar))
}

/// One request over the admin socket; the answer's body is left to stream.
async fn call(
    socket: &Located,
    path: &str,
    content_type: &str,
    body: ReqBody,
) -> anyhow::Result<Response<Incoming>> {
    let req = Request::post(path)
        .header("host", "localhost")
        .header("content-type", content_type)
        .body(body)?;
    crate::uds_client::send(&socket.path, req)
        .await
        .map_err(|e| unreachable(socket, &e))
}

/// The answer if it is 200, else its error message.
async fn ok(resp: Response<Incoming>) -> anyhow::Result<Response<Incoming>> {
    let status = resp.status().as_u16();
    if status == 200 {
        return Ok(resp);
    }
    let body = resp.into_body().collect().await?.to_bytes();
    Err(reply_error(status, &body))
}

fn summary_of(resp: &Response<Incoming>) -> Value {
    resp.headers()
        .get(SUMMARY_HEADER)
        .and_then(|v| serde_json::from_slice(v.as_bytes()).ok())
        .unwrap_or_else(|| json!({}))
}

/// Stream the answer's body to `dest` via `dest.partial`, check it is a complete sealed
/// file of `kind`, sync, rename. Returns its size. On failure no file is left.
async fn save(
    resp: Response<Incoming>,
    dest: &Path,
    kind: Kind,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = write_checked(resp, &partial, dest, kind, bar).await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

async fn write_checked(
    resp: Response<Incoming>,
    partial: &Path,
    dest: &Path,
    kind: Kind,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let mut file = tokio::fs::File::create(partial)
        .await
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.with_context(|| {
            format!("the daemon's stream broke off after {bytes} bytes (see its log)")
        })?;
        if let Ok(data) = frame.into_data() {
            file.write_all(&data)
                .await
                .with_context(|| format!("writing {}", partial.display()))?;
            bytes += data.len() as u64;
            bar.set_position(bytes);
        }
    }
    file.sync_all()
        .await
        .with_context(|| format!("syncing {}", partial.display()))?;
    drop(file);
    let check = partial.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let f = std::io::BufReader::new(std::fs::File::open(&check)?);
        check_complete(f, kind).map_err(anyhow::Error::from)
    })
    .await??;
    std::fs::rename(partial, dest)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), dest.display()))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_text_names_id_and_host() {
        assert_eq!(
            site_text(&json!({"id": "site_1", "host": "ship"})),
            "site site_1 (host ship)"
        );
    }
}
