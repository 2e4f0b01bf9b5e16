//! `edgehook send`: build one event from flags and hand it to the daemon's socket.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::value::RawValue;

use crate::cli::SendArgs;
use crate::config;

/// Fallback socket when neither `--socket` nor a readable config names one.
const DEFAULT_SOCKET: &str = "/run/edgehook/edgehook.sock";

pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let data = read_data(&args.data)?;
    let data: Box<RawValue> = serde_json::from_str(data.trim()).with_context(|| {
        format!(
            "--data is not valid JSON ({})",
            args.data.chars().take(40).collect::<String>()
        )
    })?;
    let body = build_body(&args.event_type, &data, args.id.as_deref())?;
    let socket = socket_path(&args);
    let (status, reply) = crate::uds_client::request(
        &socket,
        "POST",
        "/v1/events",
        Some("application/json"),
        body,
    )
    .await?;
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
                    "accepted {} (no endpoint subscribes to this type; not queued)",
                    json["id"].as_str().unwrap_or("?")
                );
            } else {
                println!(
                    "accepted {} → {}",
                    json["id"].as_str().unwrap_or("?"),
                    endpoints.join(", ")
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

fn socket_path(args: &SendArgs) -> PathBuf {
    if let Some(s) = &args.socket {
        return s.clone();
    }
    let path = config::resolve_path(args.config.config.as_deref());
    config::load(&path)
        .map(|c| c.ingest.socket)
        .unwrap_or_else(|_| PathBuf::from(DEFAULT_SOCKET))
}
