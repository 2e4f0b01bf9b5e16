//! `[endpoint.auth]`: api-key, bearer or basic credentials, only the fields the type takes,
//! and secrets that are valid in a header (checked without showing them).

use hyper::header::{HeaderName, HeaderValue};
use toml::Spanned;

use super::{Ctx, S};
use crate::config::raw::{defaults, secret_text, RawAuth};
use crate::config::secret::{Bare, Secret};
use crate::config::{ApiKeyPlacement, AuthConfig};

impl Ctx<'_> {
    pub(super) fn auth(&mut self, spanned: &Spanned<RawAuth>, label: &str) -> Option<AuthConfig> {
        let raw = spanned.get_ref();
        let key = |key: &str| format!("{label}: auth.{key}");
        let (value, token, password) = (
            secret_text(&raw.value),
            secret_text(&raw.token),
            secret_text(&raw.password),
        );
        let fields: [(&str, &S<String>); 7] = [
            ("header", &raw.header),
            ("in", &raw.r#in),
            ("param", &raw.param),
            ("value", &value),
            ("token", &token),
            ("username", &raw.username),
            ("password", &password),
        ];
        let Some(kind) = &raw.r#type else {
            self.error(
                spanned.span(),
                format!(
                    "{}: missing: one of \"api-key\", \"bearer\", \"basic\"",
                    key("type")
                ),
            );
            return None;
        };
        let (used, takes): (&[&str], &str) = match kind.get_ref().as_str() {
            "api-key" => (
                &["header", "in", "param", "value"],
                "value, and header or in = \"query\" with param",
            ),
            "bearer" => (&["token"], "token"),
            "basic" => (&["username", "password"], "username and password"),
            other => {
                self.error(
                    kind.span(),
                    format!(
                        "{}: unknown value {other:?}; expected one of \"api-key\", \"bearer\", \"basic\"",
                        key("type")
                    ),
                );
                return None;
            }
        };
        let mut ok = true;
        for (field, value) in fields {
            if let (Some(v), false) = (value, used.contains(&field)) {
                self.error(
                    v.span(),
                    format!(
                        "{}: not used by type {:?} (it takes {takes})",
                        key(field),
                        kind.get_ref()
                    ),
                );
                ok = false;
            }
        }
        let required =
            |ctx: &mut Self, field: &str, value: &S<String>| -> Option<Spanned<String>> {
                if value.is_none() {
                    ctx.error(
                        spanned.span(),
                        format!(
                            "{}: missing, type {:?} needs it",
                            key(field),
                            kind.get_ref()
                        ),
                    );
                }
                value.clone()
            };
        let auth = match kind.get_ref().as_str() {
            "api-key" => {
                let reference = value;
                let value = required(self, "value", &reference);
                let placement = match raw.r#in.as_ref().map(|v| v.get_ref().as_str()) {
                    None | Some("header") => {
                        let header = raw
                            .header
                            .as_ref()
                            .map_or(defaults::API_KEY_HEADER, |v| v.get_ref());
                        if let Err(err) = HeaderName::from_bytes(header.as_bytes()) {
                            let span = raw.header.as_ref().map_or(0..0, Spanned::span);
                            self.error(
                                span,
                                format!(
                                    "{}: {header:?} is not a valid HTTP header name ({err})",
                                    key("header")
                                ),
                            );
                        }
                        ApiKeyPlacement::Header(header.to_ascii_lowercase())
                    }
                    Some("query") => {
                        let param = raw
                            .param
                            .as_ref()
                            .map_or(defaults::API_KEY_PARAM, |v| v.get_ref());
                        if param.is_empty()
                            || !param
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
                        {
                            let span = raw.param.as_ref().map_or(0..0, Spanned::span);
                            self.error(
                                span,
                                format!(
                                    "{}: {param:?} must be a non-empty run of A-Za-z0-9-._~",
                                    key("param")
                                ),
                            );
                        }
                        ApiKeyPlacement::Query(param.to_owned())
                    }
                    Some(other) => {
                        let span = raw.r#in.as_ref().map_or(0..0, Spanned::span);
                        self.error(
                            span,
                            format!(
                                "{}: unknown value {other:?}; expected \"header\" or \"query\"",
                                key("in")
                            ),
                        );
                        ApiKeyPlacement::Header(defaults::API_KEY_HEADER.to_owned())
                    }
                };
                let value = value.and_then(|v| self.secret(&v, &key("value"), Bare::Literal));
                if let (Some(secret), ApiKeyPlacement::Header(_)) = (&value, &placement) {
                    self.header_safe_secret(secret, &reference, &key("value"), "");
                }
                value.map(|value| AuthConfig::ApiKey { placement, value })
            }
            "bearer" => {
                let reference = token;
                let token = required(self, "token", &reference)
                    .and_then(|v| self.secret(&v, &key("token"), Bare::Literal));
                if let Some(secret) = &token {
                    self.header_safe_secret(secret, &reference, &key("token"), "Bearer ");
                }
                token.map(|token| AuthConfig::Bearer { token })
            }
            _ => {
                let username = required(self, "username", &raw.username);
                let password = required(self, "password", &password)
                    .and_then(|v| self.secret(&v, &key("password"), Bare::Literal));
                if let Some(v) = &username {
                    if v.get_ref().is_empty() || v.get_ref().contains(':') {
                        self.error(
                            v.span(),
                            format!(
                                "{}: must be non-empty and contain no ':' (RFC 7617)",
                                key("username")
                            ),
                        );
                    }
                }
                match (username, password) {
                    (Some(username), Some(password)) => Some(AuthConfig::Basic {
                        username: username.into_inner(),
                        password,
                    }),
                    _ => None,
                }
            }
        };
        auth.filter(|_| ok)
    }

    /// A secret that goes into a header value must be a valid one; say so without showing it.
    fn header_safe_secret(&mut self, secret: &Secret, raw: &S<String>, key: &str, prefix: &str) {
        if HeaderValue::from_str(&format!("{prefix}{}", secret.expose())).is_err() {
            let span = raw.as_ref().map_or(0..0, Spanned::span);
            self.error(
                span,
                format!(
                    "{key}: the secret from {} is not a valid HTTP header value \
                     (control characters or non-ASCII)",
                    secret.source()
                ),
            );
        }
    }
}
