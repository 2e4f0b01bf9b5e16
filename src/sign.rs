//! Webhook signatures, pure: (secrets, id, timestamp, body) → header value.
//!
//! - Standard Webhooks (`whsec_<base64>` secrets): `v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`,
//!   one space-separated entry per secret so receivers keep verifying during rotation.
//!   `whsk_<base64>` secrets (an ed25519 key: the 32-byte seed, or seed + public key as
//!   64 bytes) sign the same content as `v1a,<base64 signature>`; receivers verify with
//!   the `whpk_<base64 public key>` that [`public_key`] derives.
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

/// Prefixes of Standard Webhooks secrets: symmetric, ed25519 secret key, ed25519 public key.
const WHSEC: &str = "whsec_";
const WHSK: &str = "whsk_";
const WHPK: &str = "whpk_";

/// One decoded signing key.
#[derive(Clone)]
enum Key {
    Hmac(Vec<u8>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

/// A ready-to-use signer for one endpoint: keys decoded once, at config load.
#[derive(Clone)]
pub struct Signer {
    scheme: SigningScheme,
    header: String,
    prefix: String,
    keys: Vec<Key>,
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
                SigningScheme::StandardWebhooks => decode_standard(s.expose()).ok_or_else(|| {
                    format!(
                        "signing secret #{} is neither whsec_<base64> nor whsk_<base64 of a 32- or 64-byte ed25519 key>",
                        i + 1
                    )
                }),
                SigningScheme::HmacSha256 | SigningScheme::HmacSha1 => {
                    Ok(Key::Hmac(s.expose().as_bytes().to_vec()))
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
                .map(|k| match k {
                    Key::Hmac(k) => standard_webhooks(k, id, timestamp, body),
                    Key::Ed25519(k) => standard_webhooks_ed25519(k, id, timestamp, body),
                })
                .collect::<Vec<_>>()
                .join(" "),
            SigningScheme::HmacSha256 => format!(
                "{}{}",
                self.prefix,
                hex(&hmac_sha256(self.hmac_key(), &[body]))
            ),
            SigningScheme::HmacSha1 => {
                format!("{}{}", self.prefix, hex(&hmac_sha1(self.hmac_key(), body)))
            }
        };
        (&self.header, value)
    }
}

impl Signer {
    /// The key of an hmac-* scheme (validation guarantees exactly one).
    fn hmac_key(&self) -> &[u8] {
        match self.keys.first() {
            Some(Key::Hmac(k)) => k,
            _ => &[],
        }
    }
}

/// Decode a Standard Webhooks secret of either kind.
fn decode_standard(secret: &str) -> Option<Key> {
    if secret.starts_with(WHSEC) {
        return decode_whsec(secret).map(Key::Hmac);
    }
    decode_whsk(secret).map(|k| Key::Ed25519(Box::new(k)))
}

/// Decode `whsk_<base64>`: a 32-byte seed, or 64 bytes of seed + matching public key.
fn decode_whsk(secret: &str) -> Option<ed25519_dalek::SigningKey> {
    let bytes = B64.decode(secret.strip_prefix(WHSK)?).ok()?;
    match bytes.len() {
        32 => Some(ed25519_dalek::SigningKey::from_bytes(
            bytes.as_slice().try_into().ok()?,
        )),
        64 => ed25519_dalek::SigningKey::from_keypair_bytes(bytes.as_slice().try_into().ok()?).ok(),
        _ => None,
    }
}

/// The `whpk_<base64>` public key for a `whsk_` secret, for the receiver's side.
pub fn public_key(secret: &str) -> Option<String> {
    let key = decode_whsk(secret)?;
    Some(format!(
        "{WHPK}{}",
        B64.encode(key.verifying_key().as_bytes())
    ))
}

/// `(endpoint, whpk_…)` for every ed25519 signing secret in `config`, for check-config.
pub fn public_keys(config: &crate::config::Config) -> Vec<(String, String)> {
    config
        .endpoints
        .iter()
        .flat_map(|e| {
            let secrets = e.signing.iter().flat_map(|s| s.secrets.iter());
            secrets.filter_map(|s| public_key(s.expose()).map(|pk| (e.name.to_string(), pk)))
        })
        .collect()
}

/// `v1a,<base64>` for one ed25519 key.
fn standard_webhooks_ed25519(
    key: &ed25519_dalek::SigningKey,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    use ed25519_dalek::Signer as _;
    let mut content = Vec::with_capacity(id.len() + body.len() + 24);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.to_string().as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    format!("v1a,{}", B64.encode(key.sign(&content).to_bytes()))
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

    /// ed25519 with the RFC 8032 test 1 key: the v1a signature verifies with ring (an
    /// independent implementation) against the whpk_ key we publish.
    #[test]
    fn ed25519_v1a_verifies_independently() {
        let seed = [
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ];
        let secret = format!("whsk_{}", B64.encode(seed));
        let public = public_key(&secret).unwrap();
        let pk = B64.decode(public.strip_prefix("whpk_").unwrap()).unwrap();
        assert_eq!(
            hex(&pk),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let signer = Signer::new(&SigningConfig {
            scheme: SigningScheme::StandardWebhooks,
            secrets: vec![
                crate::config::Secret::literal(&secret),
                crate::config::Secret::literal("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ],
            header: "webhook-signature".into(),
            prefix: String::new(),
        })
        .unwrap();
        let (_, value) = signer.sign("msg_1", 1614265330, b"{}");
        let (v1a, v1) = value.split_once(' ').unwrap();
        assert!(v1.starts_with("v1,"));
        let sig = B64.decode(v1a.strip_prefix("v1a,").unwrap()).unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &pk)
            .verify(b"msg_1.1614265330.{}", &sig)
            .unwrap();
        assert!(Signer::new(&SigningConfig {
            scheme: SigningScheme::StandardWebhooks,
            secrets: vec![crate::config::Secret::literal("whsk_AAAA")],
            header: "webhook-signature".into(),
            prefix: String::new(),
        })
        .is_err());
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
