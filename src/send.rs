//! `edgehook send`: build one event from flags and hand it to the daemon's socket.

use std::io::{ErrorKind, Read};

use anyhow::{anyhow, bail, Context};
use serde_json::value::RawValue;

use crate::cli::SendArgs;
use crate::config::socket::{self, Located, SocketKey};

pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let data = read_data(&args.data)?;
    let data: Box<RawValue> = serde_json::from_str(data.trim()).with_context(|| {
        format!(
            "--data is not valid JSON ({})",
            args.data.chars().take(40).collect::<String>()
        )
    })?;
    let body = build_body(&args.event_type, &data, args.id.as_deref())?;
    let socket = socket::locate(
        SocketKey::Ingest,
        args.socket.as_deref(),
        args.config.config.as_deref(),
    )?;
    let (status, reply) = crate::uds_client::request(
        &socket.path,
        "POST",
        "/v1/events",
        Some("application/json"),
        body,
    )
    .await
    .map_err(|err| unreachable(&socket, &err))?;
    let json: serde_json::Value = serde_json::from_slice(&reply).unwrap_or_default();
    if args.json {
        println!("{}", String::from_utf8_lossy(&reply));
    }
    match status {
        202 if !args.json => {
            let endpoints: Vec<&str> = json["endpoints"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            if endpoints.is_empty() {
                println!(
                    "accepted {} (no endpoint subscribes to this type; not queued) via {}",
                    json["id"].as_str().unwrap_or("?"),
                    socket.path.display()
                );
            } else {
                println!(
                    "accepted {} → {} via {}",
                    json["id"].as_str().unwrap_or("?"),
                    endpoints.join(", "),
                    socket.path.display()
                );
            }
        }
        200 if !args.json => println!(
            "duplicate {}: already accepted, not queued again",
            json["id"].as_str().unwrap_or("?")
        ),
        200 | 202 => {}
        _ => bail!(
            "{} ({status}): {}",
            json["error"]["code"].as_str().unwrap_or("error"),
            json["error"]["message"]
                .as_str()
                .unwrap_or(&String::from_utf8_lossy(&reply))
        ),
    }
    Ok(())
}

/// The event JSON, with `data` inserted byte for byte.
fn build_body(event_type: &str, data: &RawValue, id: Option<&str>) -> anyhow::Result<Vec<u8>> {
    #[derive(serde::Serialize)]
    struct Wire<'a> {
        #[serde(rename = "type")]
        event_type: &'a str,
        data: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    }
    Ok(serde_json::to_vec(&Wire {
        event_type,
        data,
        id,
    })?)
}

fn read_data(arg: &str) -> anyhow::Result<String> {
    if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading --data from stdin")?;
        Ok(s)
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("reading --data file {path}"))
    } else {
        Ok(arg.to_string())
    }
}

/// A failure to reach the socket, naming it and where its path came from.
fn unreachable(socket: &Located, err: &anyhow::Error) -> anyhow::Error {
    match crate::config::socket::io_kind(err) {
        Some(ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            anyhow!("cannot send to {socket}: nothing listens there; is edgehook running?")
        }
        Some(ErrorKind::PermissionDenied) => anyhow!(
            "cannot send to {socket}: permission denied; the socket is for \
             ingest.socket_group (socket_mode), and ingest.allowed_uids/allowed_gids if set"
        ),
        _ => anyhow!("cannot send to {socket}: {err:#}"),
    }
}
