//! `[endpoint.signing]`: the scheme, one secret or several to rotate (standard-webhooks
//! ones checked for their `whsec_`/`whsk_` form), and the signature header and prefix.

use base64::Engine as _;
use hyper::header::{HeaderName, HeaderValue};
use toml::Spanned;

use super::Ctx;
use crate::config::raw::{defaults, secret_text, RawSigning};
use crate::config::secret::Bare;
use crate::config::{SigningConfig, SigningScheme};

impl Ctx<'_> {
    pub(super) fn signing(
        &mut self,
        spanned: &Spanned<RawSigning>,
        label: &str,
    ) -> Option<SigningConfig> {
        let raw = spanned.get_ref();
        let key = |key: &str| format!("{label}: signing.{key}");
        let schemes = [
            ("standard-webhooks", SigningScheme::StandardWebhooks),
            ("hmac-sha256", SigningScheme::HmacSha256),
            ("hmac-sha1", SigningScheme::HmacSha1),
        ];
        let scheme = match &raw.scheme {
            None => {
                self.error(
                    spanned.span(),
                    format!(
                        "{}: missing: one of \"standard-webhooks\", \"hmac-sha256\", \"hmac-sha1\"",
                        key("scheme")
                    ),
                );
                None
            }
            Some(v) => {
                let known = schemes.iter().find(|(name, _)| name == v.get_ref());
                if known.is_none() {
                    // Reports the unknown value with the list of known ones.
                    self.choice(
                        &raw.scheme,
                        &key("scheme"),
                        &schemes,
                        SigningScheme::HmacSha256,
                    );
                }
                known.map(|&(_, scheme)| scheme)
            }
        };
        let secret = secret_text(&raw.secret);
        let references: Vec<(Spanned<String>, String)> = match (&secret, &raw.secrets) {
            (Some(_), Some(list)) => {
                self.error(
                    list.span(),
                    format!(
                        "{}: give either secret or secrets, not both",
                        key("secrets")
                    ),
                );
                Vec::new()
            }
            (None, None) => {
                self.error(
                    spanned.span(),
                    format!(
                        "{}: missing: set secret = \"…\" (or secrets = [\"…\", …] to rotate)",
                        key("secret")
                    ),
                );
                Vec::new()
            }
            (Some(one), None) => vec![(one.clone(), key("secret"))],
            (None, Some(list)) => {
                let items = &list.get_ref().0;
                if items.is_empty() {
                    self.error(
                        list.span(),
                        format!("{}: is empty: give at least one secret", key("secrets")),
                    );
                }
                if items.len() > 1 && scheme.is_some_and(|s| s != SigningScheme::StandardWebhooks) {
                    self.error(
                        list.span(),
                        format!(
                            "{}: only standard-webhooks carries several signatures; \
                             {} takes one secret",
                            key("secrets"),
                            raw.scheme.as_ref().map_or("", |s| s.get_ref())
                        ),
                    );
                }
                items
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let text = Spanned::new(s.span(), s.get_ref().0.clone());
                        (text, key(&format!("secrets[{i}]")))
                    })
                    .collect()
            }
        };
        let mut secrets = Vec::new();
        for (reference, name) in &references {
            let Some(secret) = self.secret(reference, name, Bare::Literal) else {
                continue;
            };
            if scheme == Some(SigningScheme::StandardWebhooks) {
                if let Err(err) = check_standard_webhooks_secret(secret.expose()) {
                    self.error(
                        reference.span(),
                        format!("{name}: the secret from {}: {err}", secret.source()),
                    );
                }
            }
            secrets.push(secret);
        }

        let header_set = raw.header.as_ref().filter(|h| !h.get_ref().is_empty());
        let prefix_set = raw.prefix.as_ref().filter(|p| !p.get_ref().is_empty());
        let scheme = scheme?;
        let (default_header, default_prefix) = match scheme {
            SigningScheme::StandardWebhooks => (defaults::STANDARD_WEBHOOKS_HEADER, ""),
            SigningScheme::HmacSha256 => {
                (defaults::HMAC_SHA256_HEADER, defaults::HMAC_SHA256_PREFIX)
            }
            SigningScheme::HmacSha1 => (defaults::HMAC_SHA1_HEADER, ""),
        };
        let header = match header_set {
            None => default_header.to_owned(),
            Some(v) => {
                let header = v.get_ref();
                if scheme == SigningScheme::StandardWebhooks
                    && !header.eq_ignore_ascii_case(defaults::STANDARD_WEBHOOKS_HEADER)
                {
                    self.error(
                        v.span(),
                        format!(
                            "{}: standard-webhooks always uses {}; remove header",
                            key("header"),
                            defaults::STANDARD_WEBHOOKS_HEADER
                        ),
                    );
                } else if let Err(err) = HeaderName::from_bytes(header.as_bytes()) {
                    self.error(
                        v.span(),
                        format!(
                            "{}: {header:?} is not a valid HTTP header name ({err})",
                            key("header")
                        ),
                    );
                }
                header.to_ascii_lowercase()
            }
        };
        let prefix = match prefix_set {
            None => default_prefix.to_owned(),
            Some(v) if scheme != SigningScheme::HmacSha256 => {
                self.error(
                    v.span(),
                    format!(
                        "{}: only hmac-sha256 takes a prefix; remove it",
                        key("prefix")
                    ),
                );
                String::new()
            }
            Some(v) => {
                if HeaderValue::from_str(v.get_ref()).is_err() {
                    self.error(
                        v.span(),
                        format!("{}: not valid in an HTTP header value", key("prefix")),
                    );
                }
                v.get_ref().clone()
            }
        };
        (!secrets.is_empty() && secrets.len() == references.len()).then_some(SigningConfig {
            scheme,
            secrets,
            header,
            prefix,
        })
    }
}

/// `whsec_<base64>` (HMAC) or `whsk_<base64>` (ed25519), STANDARD base64 with padding.
fn check_standard_webhooks_secret(secret: &str) -> Result<(), String> {
    let Some(encoded) = secret
        .strip_prefix("whsec_")
        .or_else(|| secret.strip_prefix("whsk_"))
    else {
        return Err(
            "standard-webhooks secrets start with whsec_ (or whsk_ for ed25519) followed by base64"
                .to_owned(),
        );
    };
    match base64::engine::general_purpose::STANDARD.decode(encoded) {
        Ok(bytes) if secret.starts_with("whsk_") && ![32, 64].contains(&bytes.len()) => Err(format!(
            "a whsk_ secret is an ed25519 key: 32 bytes (seed) or 64 (seed + public key), this one has {}",
            bytes.len()
        )),
        Ok(bytes) if !bytes.is_empty() => Ok(()),
        Ok(_) => Err("nothing after the whsec_/whsk_ prefix".to_owned()),
        Err(err) => Err(format!(
            "the part after the prefix is not valid base64 ({err})"
        )),
    }
}
