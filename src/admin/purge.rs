//! `edgehook purge --endpoint NAME [--yes] [--force]` (SPEC §12): delete the backlog of an
//! endpoint that is no longer in the config, so it stops counting against
//! `queue.max_bytes`. Both halves live here: the CLI command (count, confirm, ask) and the
//! daemon's `POST /v1/purge` route.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/purge` | `{"endpoint","force"?}` | `{"endpoint","purged":N,"queue_bytes":B}`, or 409 `configured` |
//!
//! A configured endpoint is refused unless `force` is set: its worker is still delivering
//! that backlog, and removing it from the config is the usual first step.

use std::io::IsTerminal;

use anyhow::bail;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::warn;

use super::client::{confirm, Client};
use super::Ctx;
use crate::cli::PurgeArgs;
use crate::reply::ApiError;

/// The `POST /v1/purge` body.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Body {
    endpoint: String,
    #[serde(default)]
    force: bool,
}

/// `POST /v1/purge`: delete the endpoint's pending, dead and exported deliveries.
pub(super) async fn route(ctx: &Ctx, body: Bytes) -> Result<Value, ApiError> {
    let b: Body = super::api::parse(&body)?;
    if b.endpoint.is_empty() {
        return Err(ApiError::new(
            400,
            "invalid_request",
            "\"endpoint\" is required",
        ));
    }
    let config = ctx.runtime.config.load();
    let configured = config.endpoint(&b.endpoint).is_some();
    if configured && !b.force {
        return Err(ApiError::new(
            409,
            "configured",
            refusal(&b.endpoint, &config.path.display().to_string()),
        ));
    }
    let store = &ctx.runtime.store;
    let purged = store.purge_endpoint(&b.endpoint).await?;
    warn!(endpoint = %b.endpoint, purged, configured, "Purged the endpoint's backlog (edgehook purge); those events will not be delivered to it.");
    Ok(json!({"endpoint": b.endpoint, "purged": purged, "queue_bytes": store.queue_bytes()}))
}

/// Why a configured endpoint is not purged without `--force`.
fn refusal(endpoint: &str, config: &str) -> String {
    format!(
        "endpoint {endpoint:?} is still in {config}, so its backlog is not orphaned; remove it \
         from the config and reload first, or pass --force to delete its pending and dead \
         deliveries anyway"
    )
}

/// `edgehook purge --endpoint NAME [--yes] [--force]`.
pub async fn run(args: PurgeArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.admin)?;
    let name = &args.endpoint;
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("purge deletes the endpoint's pending and dead deliveries for good; pass --yes to confirm (stdin is not a terminal, so edgehook cannot ask)");
        }
        let rows = client.get("/v1/endpoints").await?;
        let row = rows["endpoints"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == name.as_str()))
            .cloned()
            .unwrap_or_default();
        let count = |key: &str| row[key].as_u64().unwrap_or(0);
        let (pending, dead) = (count("pending"), count("dead"));
        if pending + dead == 0 {
            println!("endpoint {name} has no pending or dead deliveries; nothing to purge");
            return Ok(());
        }
        let orphaned = row["state"] == "orphaned";
        if !orphaned && !args.force {
            bail!("{}", refusal(name, "the config"));
        }
        let still = if orphaned { "" } else { ", still configured," };
        if !confirm(&format!(
            "Purge endpoint {name}{still}: {pending} pending and {dead} dead deliveries? They are deleted for good. [y/N] "
        ))? {
            bail!("purge cancelled; nothing was deleted");
        }
    }
    let v = client
        .post("/v1/purge", json!({"endpoint": name, "force": args.force}))
        .await?;
    println!(
        "purged {} deliveries of endpoint {name}; the queue now holds {}",
        v["purged"].as_u64().unwrap_or(0),
        super::render::size(v["queue_bytes"].as_u64().unwrap_or(0))
    );
    Ok(())
}
