//! Endpoint tables the benchmarks share.

/// An endpoint that refuses connections: events are stored for it, and its worker goes
/// offline at once (one probe per backoff), so delivery costs the ingest numbers nothing
/// and an air-gapped site's deliveries stay queued.
pub const OFFLINE_ENDPOINT: &str = r#"
[[endpoint]]
name = "sink"
url = "https://127.0.0.1:9/sink"
[endpoint.retry]
initial = "10s"
"#;
