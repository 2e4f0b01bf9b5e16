//! Webhook signatures, pure: (secrets, id, timestamp, body) → header value.
//!
//! - Standard Webhooks (`whsec_<base64>` secrets): `v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`,
//!   one space-separated entry per secret so receivers keep verifying during rotation.
//! - `hmac-sha256` (GitHub style): `<prefix><hex HMAC-SHA256(body)>`.
//! - `hmac-sha1` (Webex style): `<hex HMAC-SHA1(body)>`.
//!
//! Signatures are always over the uncompressed body.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::config::{SigningConfig, SigningScheme};

/// Prefix of a Standard Webhooks symmetric secret.
const WHSEC: &str = "whsec_";

/// A ready-to-use signer for one endpoint: keys decoded once, at config load.
#[derive(Clone)]
pub struct Signer {
    scheme: SigningScheme,
    header: String,
    prefix: String,
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("scheme", &self.scheme)
            .field("header", &self.header)
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .finish()
    }
}

impl Signer {
    /// Decode the configured secrets. Errors name the secret's position, never its value.
    pub fn new(config: &SigningConfig) -> Result<Signer, String> {
        let keys = config
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| match config.scheme {
                SigningScheme::StandardWebhooks => decode_whsec(s.expose())
                    .ok_or_else(|| format!("signing secret #{} is not whsec_<base64>", i + 1)),
                SigningScheme::HmacSha256 | SigningScheme::HmacSha1 => {
                    Ok(s.expose().as_bytes().to_vec())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Signer {
            scheme: config.scheme,
            header: config.header.clone(),
            prefix: config.prefix.clone(),
            keys,
        })
    }

    /// The header name and value to add to a request with this id, timestamp and body.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> (&str, String) {
        let value = match self.scheme {
            SigningScheme::StandardWebhooks => self
                .keys
                .iter()
                .map(|k| standard_webhooks(k, id, timestamp, body))
                .collect::<Vec<_>>()
                .join(" "),
            SigningScheme::HmacSha256 => format!(
                "{}{}",
                self.prefix,
                hex(&hmac_sha256(&self.keys[0], &[body]))
            ),
            SigningScheme::HmacSha1 => {
                format!("{}{}", self.prefix, hex(&hmac_sha1(&self.keys[0], body)))
            }
        };
        (&self.header, value)
    }
}

/// Decode `whsec_<base64>` into the HMAC key.
pub fn decode_whsec(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix(WHSEC)?).ok()
}

/// `v1,<base64>` for one key.
pub fn standard_webhooks(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", B64.encode(mac))
}

/// Whether any `v1,` entry of a `webhook-signature` header matches (used by the demo receiver).
pub fn verify_standard_webhooks(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let Some(key) = decode_whsec(secret) else {
        return false;
    };
    let expected = standard_webhooks(&key, id, timestamp, body);
    header.split(' ').any(|sig| sig == expected)
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha1(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published Standard Webhooks test vector.
    #[test]
    fn standard_webhooks_reference_vector() {
        let key = decode_whsec("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = standard_webhooks(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify_standard_webhooks(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
            &format!("v1,bogus {sig}")
        ));
    }

    /// RFC 4231 test case 2 (HMAC-SHA256) and RFC 2202 test case 2 (HMAC-SHA1).
    #[test]
    fn hmac_rfc_vectors() {
        assert_eq!(
            hex(&hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }
}
