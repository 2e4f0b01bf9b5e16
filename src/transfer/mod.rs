//! Air-gapped transfer (SPEC §12, docs/TRANSFER.md): carry a relay's pending deliveries
//! across an air gap on removable media, and a receipt back.
//!
//! - `key.rs`: the `[transfer] key` both sites share.
//! - `format.rs`: the sealed container (chunked XChaCha20-Poly1305 STREAM).
//! - `records.rs`: what is inside it (compressed JSON lines: header, deliveries or
//!   receipt entries, end).
//! - `routes.rs`, `export.rs`, `import.rs`, `receipt.rs`: the daemon's side, behind the
//!   admin socket; the queue work itself is `store/transfer.rs`, on the store's writer.
//! - `client.rs`: the CLI commands `export`, `import`, `receipt apply`.

pub mod client;
mod export;
pub mod format;
mod import;
pub mod key;
mod receipt;
pub mod records;
pub mod routes;
