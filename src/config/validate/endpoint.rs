//! One `[[endpoint]]`: its name and URL, the event filter (`events`, `match`), the
//! delivery settings, `proxy` and `[endpoint.retry]`. Auth, signing, headers and TLS are
//! checked in their own files and gathered here.

use std::collections::HashMap;

use serde_json::Value;
use toml::Spanned;

use super::{position, Ctx};
use crate::config::filter::{check_glob, check_pointer, MATCH_EXAMPLE, ORDER_KEY_EXAMPLE};
use crate::config::raw::{defaults, RawConcurrency, RawEndpoint, RawRetry};
use crate::config::summary::redact_userinfo;
use crate::config::units;
use crate::config::{BodyMode, Compress, EndpointConfig, Filter, Ordering, RetryConfig};

impl Ctx<'_> {
    pub(super) fn endpoint(
        &mut self,
        index: usize,
        spanned: &Spanned<RawEndpoint>,
        names: &mut HashMap<String, usize>,
    ) -> Option<EndpointConfig> {
        let raw = spanned.get_ref();
        let name = match &raw.name {
            None => {
                self.error(
                    spanned.span(),
                    format!(
                        "endpoint #{}: missing key `name` (a unique name of a-z, 0-9, _ and -)",
                        index + 1
                    ),
                );
                None
            }
            Some(v) => {
                let name = v.get_ref();
                if name.is_empty()
                    || !name.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
                {
                    self.error(
                        v.span(),
                        format!("endpoint name {name:?} must be non-empty and use only a-z, 0-9, _ and -"),
                    );
                    None
                } else if let Some(&first) = names.get(name) {
                    let line = position(self.path, self.text, first);
                    self.error(
                        v.span(),
                        format!("endpoint name {name:?} is already used at {line}: names must be unique"),
                    );
                    None
                } else {
                    names.insert(name.clone(), v.span().start);
                    Some(name.clone())
                }
            }
        };
        let label = match &name {
            Some(name) => format!("endpoint {name}"),
            None => format!("endpoint #{}", index + 1),
        };
        let key = |key: &str| format!("{label}: {key}");

        let allow_plain_http = raw.allow_plain_http.unwrap_or(false);
        let url = match &raw.url {
            None => {
                self.error(spanned.span(), format!("{label}: missing key `url`"));
                None
            }
            Some(v) => self.endpoint_url(v, &label, allow_plain_http),
        };

        let filter = self.filter(raw, &label);
        let ordering = self.choice(
            &raw.ordering,
            &key("ordering"),
            &[("none", Ordering::None), ("fifo", Ordering::Fifo)],
            Ordering::None,
        );
        let order_key = match &raw.order_key {
            Some(v) if !v.get_ref().is_empty() => {
                if let Err(err) = check_pointer(v.get_ref(), ORDER_KEY_EXAMPLE) {
                    self.error(
                        v.span(),
                        format!(
                            "{}: {err} (it points into data, not the whole event)",
                            key("order_key")
                        ),
                    );
                }
                if ordering == Ordering::Fifo {
                    self.error(
                        v.span(),
                        format!(
                            "{}: cannot be combined with ordering = \"fifo\", which already keeps \
                             the whole endpoint in order; remove one of them",
                            key("order_key")
                        ),
                    );
                }
                Some(v.get_ref().clone())
            }
            _ => None,
        };
        let timeout = self.duration(&raw.timeout, &key("timeout"), defaults::TIMEOUT);
        if let (Some(v), true) = (&raw.timeout, timeout.is_zero()) {
            self.error(v.span(), format!("{}: must be more than 0", key("timeout")));
        }
        let connect_timeout = self.duration(
            &raw.connect_timeout,
            &key("connect_timeout"),
            defaults::CONNECT_TIMEOUT,
        );
        if let (Some(v), true) = (&raw.connect_timeout, connect_timeout.is_zero()) {
            self.error(
                v.span(),
                format!("{}: must be more than 0", key("connect_timeout")),
            );
        }
        let rate_limit = match &raw.rate_limit {
            Some(v) if !v.get_ref().is_empty() => match units::parse_rate_limit(v.get_ref()) {
                Ok(limit) => Some(limit),
                Err(err) => {
                    self.error(v.span(), format!("{}: {err}", key("rate_limit")));
                    None
                }
            },
            _ => None,
        };
        let permanent_status = match &raw.permanent_status {
            None => defaults::PERMANENT_STATUS.to_vec(),
            Some(list) => list
                .get_ref()
                .iter()
                .filter_map(|status| match u16::try_from(*status.get_ref()) {
                    Ok(code @ 400..=599) => Some(code),
                    _ => {
                        self.error(
                            status.span(),
                            format!(
                                "{}: {} is not a 4xx or 5xx status (400..=599)",
                                key("permanent_status"),
                                status.get_ref()
                            ),
                        );
                        None
                    }
                })
                .collect(),
        };
        let max_attempts = match &raw.max_attempts {
            None => None,
            Some(v) => match u32::try_from(*v.get_ref()) {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(
                        v.span(),
                        format!(
                            "{}: {} is out of range: use 0 for unlimited or a count up to {}",
                            key("max_attempts"),
                            v.get_ref(),
                            u32::MAX
                        ),
                    );
                    None
                }
            },
        };
        let compress = self.choice(
            &raw.compress,
            &key("compress"),
            &[("", None), ("gzip", Some(Compress::Gzip))],
            None,
        );
        let proxy = match &raw.proxy {
            Some(v) if !v.get_ref().is_empty() => self.proxy(v, &key("proxy")),
            _ => None,
        };
        let retry = self.retry(raw.retry.as_ref(), &label);
        let auth = raw.auth.as_ref().and_then(|auth| self.auth(auth, &label));
        let signing = raw
            .signing
            .as_ref()
            .and_then(|signing| self.signing(signing, &label));
        let headers = self.headers(raw, &label, auth.as_ref(), signing.as_ref());
        let tls = self.tls(raw.tls.as_ref(), &label);
        let body = self.choice(
            &raw.body,
            &key("body"),
            &[("envelope", BodyMode::Envelope), ("data", BodyMode::Data)],
            BodyMode::Envelope,
        );
        let (concurrency, adaptive) = self.concurrency(raw, &key);

        // Every check above has run; only now may a missing name or url end this endpoint.
        Some(EndpointConfig {
            name: name?.into(),
            url: url?,
            filter,
            body,
            headers,
            ordering,
            order_key,
            concurrency,
            adaptive,
            connect_timeout,
            timeout,
            rate_limit,
            permanent_status,
            max_attempts,
            compress,
            proxy,
            allow_plain_http,
            retry,
            auth,
            signing,
            tls,
        })
    }

    fn endpoint_url(
        &mut self,
        v: &Spanned<String>,
        label: &str,
        allow_plain_http: bool,
    ) -> Option<hyper::Uri> {
        let text = v.get_ref();
        // Shown in messages: a password in the URL must not reach logs either.
        let shown = redact_userinfo(text);
        let uri = match text.parse::<hyper::Uri>() {
            Ok(uri) => uri,
            Err(err) => {
                self.error(
                    v.span(),
                    format!("{label}: url: {shown:?} is not a valid URL ({err})"),
                );
                return None;
            }
        };
        let Some(authority) = uri.authority().filter(|a| !a.host().is_empty()) else {
            self.error(
                v.span(),
                format!("{label}: url: {shown:?} has no host: write https://host/path"),
            );
            return None;
        };
        if authority.as_str().contains('@') {
            self.error(
                v.span(),
                format!(
                    "{label}: url: must not contain credentials (user:password@): \
                     use [endpoint.auth] type = \"basic\""
                ),
            );
            return None;
        }
        match uri.scheme_str() {
            Some("https") => Some(uri),
            Some("http") if allow_plain_http => {
                self.warnings.push(format!(
                    "{label}: plain http allowed, payloads and credentials travel unencrypted"
                ));
                Some(uri)
            }
            Some("http") => {
                self.error(
                    v.span(),
                    format!(
                        "{label}: url: plain http is refused: use https, or set \
                         allow_plain_http = true on this endpoint (payloads and credentials \
                         would travel unencrypted)"
                    ),
                );
                None
            }
            _ => {
                self.error(
                    v.span(),
                    format!("{label}: url: {shown:?} must start with https://"),
                );
                None
            }
        }
    }

    fn filter(&mut self, raw: &RawEndpoint, label: &str) -> Filter {
        let globs: Vec<String> = match &raw.events {
            None => vec!["*".to_owned()],
            Some(list) => {
                if list.get_ref().is_empty() {
                    self.warnings.push(format!(
                        "{label}: events = [] matches no event; the endpoint only drains \
                         deliveries already queued (use [\"*\"] for every event)"
                    ));
                }
                for glob in list.get_ref() {
                    if let Err(err) = check_glob(glob.get_ref()) {
                        self.error(glob.span(), format!("{label}: events: {err}"));
                    }
                }
                list.get_ref().iter().map(|g| g.get_ref().clone()).collect()
            }
        };
        let mut matches = Vec::new();
        if let Some(table) = &raw.r#match {
            let mut entries: Vec<_> = table.get_ref().iter().collect();
            entries.sort_by_key(|(pointer, _)| pointer.span().start);
            for (pointer, value) in entries {
                if let Err(err) = check_pointer(pointer.get_ref(), MATCH_EXAMPLE) {
                    self.error(pointer.span(), format!("{label}: match: {err}"));
                }
                match toml_to_json(value.get_ref()) {
                    Ok(json) => matches.push((pointer.get_ref().clone(), json)),
                    Err(err) => self.error(
                        value.span(),
                        format!("{label}: match.{:?}: {err}", pointer.get_ref()),
                    ),
                }
            }
        }
        // Every glob and pointer was checked above; a failure is already reported.
        Filter::new(globs, matches).unwrap_or_default()
    }

    /// `concurrency` (`"adaptive"`, the default, or a number) and `max_concurrency`: the
    /// most attempts in flight, and whether the limit is learned below it.
    fn concurrency(&mut self, raw: &RawEndpoint, key: &dyn Fn(&str) -> String) -> (usize, bool) {
        let max = self.count(
            &raw.max_concurrency,
            &key("max_concurrency"),
            defaults::MAX_CONCURRENCY,
        );
        let Some(v) = &raw.concurrency else {
            return (max, true);
        };
        match v.get_ref() {
            RawConcurrency::Word(w) if w == "adaptive" => (max, true),
            RawConcurrency::Fixed(n) => {
                let fixed = Some(Spanned::new(v.span(), *n));
                if let Some(m) = &raw.max_concurrency {
                    self.error(
                        m.span(),
                        format!(
                            "{}: only used with concurrency = \"adaptive\"; remove it or the number",
                            key("max_concurrency")
                        ),
                    );
                }
                (
                    self.count(&fixed, &key("concurrency"), defaults::CONCURRENCY),
                    false,
                )
            }
            RawConcurrency::Word(w) => {
                self.error(
                    v.span(),
                    format!(
                        "{}: {w:?} is neither \"adaptive\" nor a number of attempts in flight",
                        key("concurrency")
                    ),
                );
                (max, true)
            }
        }
    }

    fn proxy(&mut self, v: &Spanned<String>, key: &str) -> Option<hyper::Uri> {
        let text = v.get_ref();
        let shown = redact_userinfo(text);
        let hint = "expected http://host:port (HTTPS to the endpoint is tunnelled with CONNECT)";
        let Ok(uri) = text.parse::<hyper::Uri>() else {
            self.error(v.span(), format!("{key}: {shown:?} is not a URL: {hint}"));
            return None;
        };
        let problem = match (uri.scheme_str(), uri.authority()) {
            (Some("http"), Some(authority)) => {
                if authority.host().is_empty() {
                    Some("it has no host")
                } else if authority.port_u16().is_none() {
                    Some("the port is missing")
                } else if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
                    Some("a proxy URL has no path or query")
                } else {
                    None
                }
            }
            (Some("https"), _) => Some("only http:// proxies are supported"),
            _ => Some("it is not an http:// URL"),
        };
        match problem {
            Some(problem) => {
                self.error(v.span(), format!("{key}: {shown:?}: {problem}; {hint}"));
                None
            }
            None => Some(uri),
        }
    }

    fn retry(&mut self, raw: Option<&RawRetry>, label: &str) -> RetryConfig {
        let default = RawRetry::default();
        let raw = raw.unwrap_or(&default);
        let key = |key: &str| format!("{label}: retry.{key}");
        let initial = self.duration(&raw.initial, &key("initial"), defaults::RETRY_INITIAL);
        if let (Some(v), true) = (&raw.initial, initial.is_zero()) {
            self.error(v.span(), format!("{}: must be more than 0", key("initial")));
        }
        let max = self.duration(&raw.max, &key("max"), defaults::RETRY_MAX);
        if max < initial {
            let span = raw.max.as_ref().or(raw.initial.as_ref()).map(Spanned::span);
            self.error(
                span.unwrap_or(0..0),
                format!(
                    "{}: {} is less than retry.initial ({})",
                    key("max"),
                    units::format_duration(max),
                    units::format_duration(initial)
                ),
            );
        }
        let multiplier = match &raw.multiplier {
            None => defaults::RETRY_MULTIPLIER,
            Some(v) => {
                let m = *v.get_ref();
                if !(m.is_finite() && m >= 1.0) {
                    self.error(
                        v.span(),
                        format!(
                            "{}: {m} must be at least 1.0 (1.0: constant backoff)",
                            key("multiplier")
                        ),
                    );
                }
                m
            }
        };
        let jitter = match &raw.jitter {
            None => defaults::RETRY_JITTER,
            Some(v) => {
                let j = *v.get_ref();
                if !(0.0..=1.0).contains(&j) {
                    self.error(
                        v.span(),
                        format!(
                            "{}: {j} must be between 0.0 and 1.0 (a fraction of the delay)",
                            key("jitter")
                        ),
                    );
                }
                j
            }
        };
        RetryConfig {
            initial,
            multiplier,
            max,
            jitter,
        }
    }
}

/// A `match` value as JSON. TOML datetimes and non-finite floats have no JSON form.
fn toml_to_json(value: &toml::Value) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} has no JSON form"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(_) => {
            return Err(
                "a TOML date/time has no JSON form: quote it to compare with a JSON string"
                    .to_owned(),
            )
        }
        toml::Value::Array(items) => {
            Value::Array(items.iter().map(toml_to_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}
