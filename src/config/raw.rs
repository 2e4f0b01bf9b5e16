//! Serde structs that mirror the TOML file exactly (SPEC §11), and nothing more.
//!
//! Every key is optional: `None` means "not written", and `validate/` applies the SPEC
//! default (see [`defaults`]). Every table has `deny_unknown_fields`, so a typo is a TOML
//! error with a span. Values that get a semantic check are wrapped in [`Spanned`] so that
//! check can report `file:line:column`. Sizes and octal modes are kept as raw
//! [`toml::Value`]s because they may be written as a string (`"64KiB"`, `"0660"`) or as an
//! integer (`65536`, `0o660`); numbers that must be positive are kept as `i64` so a
//! negative value is a semantic error (collected with the others) rather than a serde
//! type error that stops parsing.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// The SPEC §11 defaults, in the same units as the file (validation parses them).
pub(super) mod defaults {
    pub const STATE_DIR: &str = "/var/lib/edgehook";
    pub const ADMIN_SOCKET: &str = "/run/edgehook/admin.sock";
    pub const SHUTDOWN_TIMEOUT: &str = "10s";
    pub const SOCKET: &str = "/run/edgehook/edgehook.sock";
    pub const SOCKET_MODE: u32 = 0o660;
    pub const MAX_EVENT_BYTES: u64 = 1024 * 1024;
    pub const MAX_BATCH_BYTES: u64 = 16 * 1024 * 1024;
    pub const MAX_CONNECTIONS: i64 = 1024;
    pub const MAX_BYTES: u64 = 1024 * 1024 * 1024;
    /// Room kept free for bookkeeping (SPEC §12): more than SQLite's default WAL
    /// auto-checkpoint (1000 pages of 4 KiB), which a drain may need to write.
    pub const RESERVE: u64 = 4 * 1024 * 1024;
    pub const DEDUPE_WINDOW: &str = "24h";
    pub const KEEP_DELIVERED: &str = "0s";
    /// Fixed concurrency where a number is needed (`concurrency = 8` is the old default).
    pub const CONCURRENCY: i64 = 8;
    pub const MAX_CONCURRENCY: i64 = 64;
    pub const TIMEOUT: &str = "10s";
    pub const CONNECT_TIMEOUT: &str = "5s";
    pub const PERMANENT_STATUS: [u16; 3] = [400, 413, 422];
    pub const RETRY_INITIAL: &str = "1s";
    pub const RETRY_MULTIPLIER: f64 = 2.0;
    pub const RETRY_MAX: &str = "10m";
    pub const RETRY_JITTER: f64 = 0.2;
    pub const API_KEY_HEADER: &str = "x-api-key";
    pub const API_KEY_PARAM: &str = "api_key";
    pub const HMAC_SHA256_HEADER: &str = "x-hub-signature-256";
    pub const HMAC_SHA256_PREFIX: &str = "sha256=";
    pub const HMAC_SHA1_HEADER: &str = "x-spark-signature";
    pub const STANDARD_WEBHOOKS_HEADER: &str = "webhook-signature";
}

type S<T> = Option<Spanned<T>>;

/// `concurrency`: `"adaptive"` or a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum RawConcurrency {
    Fixed(i64),
    Word(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub daemon: Option<RawDaemon>,
    pub ingest: Option<RawIngest>,
    pub queue: Option<RawQueue>,
    pub transfer: Option<RawTransfer>,
    /// `[[endpoint]]`: an array of tables; each entry spanned so a missing key can point at it.
    #[serde(default)]
    pub endpoint: Vec<Spanned<RawEndpoint>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub state_dir: S<String>,
    pub admin_socket: S<String>,
    pub admin_group: S<String>,
    pub state_group: S<String>,
    pub shutdown_timeout: S<String>,
    pub log_format: S<String>,
    pub metrics_listen: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIngest {
    pub socket: S<String>,
    pub lines_socket: S<String>,
    /// `"0660"` or an integer such as `0o660`.
    pub socket_mode: S<toml::Value>,
    pub socket_group: S<String>,
    pub allowed_uids: Option<Vec<Spanned<i64>>>,
    pub allowed_gids: Option<Vec<Spanned<i64>>>,
    /// Sizes: `"1MiB"` or an integer number of bytes.
    pub max_event_bytes: S<toml::Value>,
    pub max_batch_bytes: S<toml::Value>,
    pub max_connections: S<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    pub durability: S<String>,
    pub max_bytes: S<toml::Value>,
    pub when_full: S<String>,
    pub max_age: S<String>,
    pub dedupe_window: S<String>,
    pub keep_delivered: S<String>,
    pub reserve: S<toml::Value>,
}

/// `[transfer]`: air-gapped transfer (SPEC §12).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransfer {
    pub key: S<SecretText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpoint {
    pub name: S<String>,
    pub url: S<String>,
    pub events: S<Vec<Spanned<String>>>,
    /// JSON pointer → value (any TOML value, compared as JSON).
    pub r#match: S<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    pub body: S<String>,
    pub headers: S<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub ordering: S<String>,
    pub order_key: S<String>,
    pub concurrency: S<RawConcurrency>,
    pub max_concurrency: S<i64>,
    pub connect_timeout: S<String>,
    pub timeout: S<String>,
    pub rate_limit: S<String>,
    pub permanent_status: S<Vec<Spanned<i64>>>,
    pub max_attempts: S<i64>,
    pub compress: S<String>,
    pub proxy: S<String>,
    pub allow_plain_http: Option<bool>,
    pub retry: Option<RawRetry>,
    pub auth: S<RawAuth>,
    pub signing: S<RawSigning>,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    pub initial: S<String>,
    pub multiplier: S<f64>,
    pub max: S<String>,
    pub jitter: S<f64>,
}

/// The union of every auth type's fields; validation rejects those the `type` doesn't use.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub r#type: S<String>,
    pub header: S<String>,
    pub r#in: S<String>,
    pub param: S<String>,
    pub value: S<SecretText>,
    pub token: S<SecretText>,
    pub username: S<String>,
    pub password: S<SecretText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSigning {
    pub scheme: S<String>,
    pub secret: S<SecretText>,
    pub secrets: S<SecretList>,
    pub header: S<String>,
    pub prefix: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub roots: S<String>,
    pub ca_file: S<String>,
    pub client_cert: S<String>,
    pub client_key: S<SecretText>,
    pub min_version: S<String>,
    pub server_name: S<String>,
}

/// A secret (or a `file:`/`env:`/`credential:` reference): a string. Unlike `String`, a
/// wrongly typed value is refused without quoting it, so `token = 12345` does not put the
/// token in an error message.
#[derive(Debug, Clone)]
pub(super) struct SecretText(pub String);

/// `secrets = [...]`: a list of [`SecretText`], refused without quoting when not a list.
#[derive(Debug)]
pub(super) struct SecretList(pub Vec<Spanned<SecretText>>);

const SECRET_EXPECTED: &str =
    "a string: the secret, or a \"file:…\", \"env:…\" or \"credential:…\" reference";

/// The serde error for a wrongly typed secret (the value is not shown).
fn not_a_string<E: de::Error>(found: &str) -> E {
    E::custom(format!(
        "invalid type: {found} (value not shown), expected {SECRET_EXPECTED}"
    ))
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = SecretText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SECRET_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretText, E> {
                Ok(SecretText(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<SecretText, E> {
                Ok(SecretText(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretText, E> {
                Err(not_a_string("boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretText, E> {
                Err(not_a_string("integer"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretText, E> {
                Err(not_a_string("integer"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretText, E> {
                Err(not_a_string("float"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<SecretText, A::Error> {
                Err(not_a_string("array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<SecretText, A::Error> {
                Err(not_a_string("table or date"))
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

impl<'de> Deserialize<'de> for SecretList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = SecretList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of secrets")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SecretList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(SecretList(items))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretList, E> {
                Err(E::custom(
                    "invalid type: string (value not shown), expected an array of secrets; \
                     for one secret write secret = \"…\"",
                ))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretList, E> {
                Err(not_a_string("boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretList, E> {
                Err(not_a_string("integer"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretList, E> {
                Err(not_a_string("integer"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretList, E> {
                Err(not_a_string("float"))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<SecretList, A::Error> {
                Err(not_a_string("table or date"))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

/// A spanned secret as a spanned string, for validation.
pub(super) fn secret_text(value: &S<SecretText>) -> S<String> {
    value
        .as_ref()
        .map(|v| Spanned::new(v.span(), v.get_ref().0.clone()))
}
