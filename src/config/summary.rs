//! The `edgehook check-config` report: what the daemon would run with, like `nginx -t`.
//!
//! Labels are the config keys, so a line maps back to the file. Secrets are never shown:
//! each one prints as `<redacted>` followed by where it comes from (`file:/etc/x`,
//! `env:NAME`, `credential:NAME` or `literal`). Extra header values are not shown either,
//! since people do put tokens there.

use std::fmt::Write as _;

use super::units::{format_duration, format_rate_limit, format_size};
use super::{
    ApiKeyPlacement, AuthConfig, BodyMode, Config, Durability, EndpointConfig, LogFormat, Ordering,
    Roots, Secret, SigningScheme, TlsVersion, WhenFull,
};

/// Width of the label column.
const LABEL: usize = 18;

/// Render the validated config for `check-config`: paths, sockets, queue settings, each
/// endpoint, then the warnings. Contains no secret values.
pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    line(&mut out, 0, "config", config.path.display());

    let d = &config.daemon;
    section(&mut out, "[daemon]");
    line(
        &mut out,
        2,
        "state_dir",
        format_args!(
            "{} (queue: {}; {})",
            d.state_dir.display(),
            config.queue_db().display(),
            match &d.state_group {
                Some(g) => format!("mode 0750, group: {g}"),
                None => "mode 0700".to_string(),
            }
        ),
    );
    line(
        &mut out,
        2,
        "admin_socket",
        format_args!(
            "{} (mode 0600, group: {})",
            d.admin_socket.display(),
            d.admin_group.as_deref().unwrap_or("none")
        ),
    );
    line(
        &mut out,
        2,
        "shutdown_timeout",
        format_duration(d.shutdown_timeout),
    );
    let log_format = match d.log_format {
        LogFormat::Auto => "auto (journald under systemd, text otherwise)",
        LogFormat::Journald => "journald",
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    line(&mut out, 2, "log_format", log_format);
    match d.metrics_listen {
        Some(addr) => line(&mut out, 2, "metrics_listen", addr),
        None => line(&mut out, 2, "metrics_listen", "off"),
    }

    let i = &config.ingest;
    section(&mut out, "[ingest]");
    line(&mut out, 2, "socket", i.socket.display());
    match &i.lines_socket {
        Some(path) => line(&mut out, 2, "lines_socket", path.display()),
        None => line(&mut out, 2, "lines_socket", "off"),
    }
    line(
        &mut out,
        2,
        "socket_mode",
        format_args!(
            "{:04o} (group: {})",
            i.socket_mode,
            i.socket_group.as_deref().unwrap_or("unchanged")
        ),
    );
    let peers = if i.allowed_uids.is_empty() && i.allowed_gids.is_empty() {
        "anyone who can open the socket".to_owned()
    } else {
        format!("uids {:?}, gids {:?}", i.allowed_uids, i.allowed_gids)
    };
    line(&mut out, 2, "allowed peers", peers);
    line(
        &mut out,
        2,
        "max_event_bytes",
        format_size(i.max_event_bytes as u64),
    );
    line(
        &mut out,
        2,
        "max_batch_bytes",
        format_size(i.max_batch_bytes as u64),
    );
    line(&mut out, 2, "max_connections", i.max_connections);

    let q = &config.queue;
    section(&mut out, "[queue]");
    let durability = match q.durability {
        Durability::Full => "full (an accepted event survives power loss)",
        Durability::Normal => "normal (survives a crash, not a power loss)",
    };
    line(&mut out, 2, "durability", durability);
    let when_full = match q.when_full {
        WhenFull::Reject => "reject",
        WhenFull::DropOldest => "drop_oldest",
    };
    line(
        &mut out,
        2,
        "max_bytes",
        format_args!("{} (when_full: {when_full})", format_size(q.max_bytes)),
    );
    match q.max_age {
        Some(age) => line(&mut out, 2, "max_age", format_duration(age)),
        None => line(&mut out, 2, "max_age", "off"),
    }
    line(
        &mut out,
        2,
        "dedupe_window",
        format_duration(q.dedupe_window),
    );
    line(
        &mut out,
        2,
        "keep_delivered",
        format_duration(q.keep_delivered),
    );
    line(&mut out, 2, "reserve", format_size(q.reserve));

    if let Some(key) = &config.transfer.key {
        section(&mut out, "[transfer]");
        line(&mut out, 2, "key", key);
    }

    for endpoint in &config.endpoints {
        section(&mut out, &format!("[[endpoint]] {}", endpoint.name));
        write_endpoint(&mut out, endpoint);
    }
    if config.endpoints.is_empty() {
        section(&mut out, "[[endpoint]] none");
    }

    if !config.warnings.is_empty() {
        section(&mut out, &format!("warnings ({})", config.warnings.len()));
        for warning in &config.warnings {
            let _ = writeln!(out, "  - {warning}");
        }
    }
    out
}

fn write_endpoint(out: &mut String, e: &EndpointConfig) {
    line(out, 2, "url", redact_userinfo(&e.url.to_string()));
    let globs: Vec<String> = e.filter.globs().iter().map(|g| format!("{g:?}")).collect();
    line(out, 2, "events", format_args!("[{}]", globs.join(", ")));
    for (pointer, value) in e.filter.match_entries() {
        line(out, 2, "match", format_args!("{pointer} = {value}"));
    }
    let body = match e.body {
        BodyMode::Envelope => "envelope",
        BodyMode::Data => "data",
    };
    line(out, 2, "body", body);
    if !e.headers.is_empty() {
        let names: Vec<&str> = e.headers.iter().map(|(name, _)| name.as_str()).collect();
        line(
            out,
            2,
            "headers",
            format_args!("{} (values not shown)", names.join(", ")),
        );
    }
    let in_flight = if e.adaptive {
        format!("adaptive concurrency up to {} in flight", e.concurrency)
    } else {
        format!("up to {} in flight", e.concurrency)
    };
    let ordering = match (e.ordering, &e.order_key) {
        (Ordering::Fifo, _) => "fifo (one in flight)".to_owned(),
        (Ordering::None, Some(key)) => format!("fifo per order_key {key}, {in_flight}"),
        (Ordering::None, None) => format!("none, {in_flight}"),
    };
    line(out, 2, "ordering", ordering);
    line(
        out,
        2,
        "connect_timeout",
        format_duration(e.connect_timeout),
    );
    line(out, 2, "timeout", format_duration(e.timeout));
    match &e.rate_limit {
        Some(limit) => line(out, 2, "rate_limit", format_rate_limit(limit)),
        None => line(out, 2, "rate_limit", "none"),
    }
    let r = &e.retry;
    line(
        out,
        2,
        "retry",
        format_args!(
            "initial {}, multiplier {}, max {}, jitter {}",
            format_duration(r.initial),
            r.multiplier,
            format_duration(r.max),
            r.jitter
        ),
    );
    match e.max_attempts {
        Some(n) => line(out, 2, "max_attempts", n),
        None => line(out, 2, "max_attempts", "unlimited"),
    }
    let statuses: Vec<String> = e.permanent_status.iter().map(u16::to_string).collect();
    line(out, 2, "permanent_status", statuses.join(", "));
    line(
        out,
        2,
        "compress",
        if e.compress.is_some() { "gzip" } else { "off" },
    );
    match &e.proxy {
        Some(proxy) => line(out, 2, "proxy", redact_userinfo(&proxy.to_string())),
        None => line(out, 2, "proxy", "from HTTPS_PROXY/NO_PROXY if set"),
    }
    if e.allow_plain_http {
        line(out, 2, "allow_plain_http", "true");
    }

    let auth = match &e.auth {
        None => "none".to_owned(),
        Some(AuthConfig::ApiKey { placement, value }) => match placement {
            ApiKeyPlacement::Header(name) => {
                format!("api-key in header {name}: {}", redacted(value))
            }
            ApiKeyPlacement::Query(param) => {
                format!("api-key in query ?{param}=…: {}", redacted(value))
            }
        },
        Some(AuthConfig::Bearer { token }) => {
            format!("bearer (authorization header): {}", redacted(token))
        }
        Some(AuthConfig::Basic { username, password }) => format!(
            "basic (authorization header), username {username:?}, password {}",
            redacted(password)
        ),
    };
    line(out, 2, "auth", auth);

    match &e.signing {
        None => line(out, 2, "signing", "none"),
        Some(s) => {
            let scheme = match s.scheme {
                SigningScheme::StandardWebhooks => "standard-webhooks",
                SigningScheme::HmacSha256 => "hmac-sha256",
                SigningScheme::HmacSha1 => "hmac-sha1",
            };
            let prefix = if s.prefix.is_empty() {
                String::new()
            } else {
                format!(", prefix {:?}", s.prefix)
            };
            let secrets: Vec<String> = s.secrets.iter().map(redacted).collect();
            let count = match s.secrets.len() {
                1 => "1 secret".to_owned(),
                n => format!("{n} secrets"),
            };
            line(
                out,
                2,
                "signing",
                format_args!(
                    "{scheme}, header {}{prefix}, {count}: {}",
                    s.header,
                    secrets.join(", ")
                ),
            );
        }
    }

    if e.url.scheme_str() == Some("http") {
        line(out, 2, "tls", "not used (plain http)");
        return;
    }
    let t = &e.tls;
    let mut tls = match (t.roots, &t.ca_file) {
        (Roots::System, None) => "roots system".to_owned(),
        (Roots::System, Some(ca)) => format!("roots system + ca_file {}", ca.display()),
        (Roots::CaFile, Some(ca)) => format!("roots ca_file {} only", ca.display()),
        (Roots::CaFile, None) => "roots ca_file (none given)".to_owned(),
    };
    let version = match t.min_version {
        TlsVersion::V1_2 => "1.2",
        TlsVersion::V1_3 => "1.3",
    };
    let _ = write!(tls, ", min_version {version}");
    if let Some(name) = &t.server_name {
        let _ = write!(tls, ", server_name {name}");
    }
    line(out, 2, "tls", tls);
    if let (Some(cert), Some(key)) = (&t.client_cert, &t.client_key) {
        line(
            out,
            2,
            "tls client cert",
            format_args!("{}, key {}", cert.display(), redacted(key)),
        );
    }
}

/// `<redacted> (file:/etc/x)`.
fn redacted(secret: &Secret) -> String {
    format!("<redacted> ({})", secret.source())
}

/// Replace a `user:password@` in a URL's authority by `user:<redacted>@`. Validation
/// refuses such URLs (and quotes them redacted); this is belt and braces for a report
/// people paste into tickets.
pub(super) fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let user = authority[..at].split(':').next().unwrap_or("");
    format!(
        "{}{user}:<redacted>{}",
        &url[..scheme_end],
        &url[scheme_end + at..]
    )
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "{title}");
}

fn line(out: &mut String, indent: usize, label: &str, value: impl std::fmt::Display) {
    let width = LABEL.saturating_sub(indent);
    let _ = writeln!(out, "{:indent$}{label:<width$} {value}", "");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use std::path::Path;

    const LITERAL_SECRETS: &[&str] = &[
        "api-key-value-1234",
        "bearer-token-5678",
        "basic-password-9012",
        "hmac-secret-3456",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ];

    fn config(text: &str) -> Config {
        parse(text, Path::new("/etc/edgehook/edgehook.toml")).unwrap()
    }

    #[test]
    fn defaults_only() {
        let out = summary(&config(""));
        for want in [
            "/etc/edgehook/edgehook.toml",
            "/var/lib/edgehook (queue: /var/lib/edgehook/queue.db; mode 0700)",
            "/run/edgehook/admin.sock",
            "/run/edgehook/edgehook.sock",
            "0660",
            "1MiB",
            "16MiB",
            "1GiB",
            "[[endpoint]] none",
            "warnings (1)",
            "no [[endpoint]] configured",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        assert_line(&out, "dedupe_window", "1d");
        assert_line(&out, "keep_delivered", "0s");
        assert_line(&out, "max_age", "off");
        assert_line(&out, "metrics_listen", "off");
    }

    /// A line `label   value` exists, whatever the padding.
    fn assert_line(out: &str, label: &str, value: &str) {
        assert!(
            out.lines().any(|l| l
                .trim_start()
                .strip_prefix(label)
                .is_some_and(|rest| rest.trim() == value)),
            "no line {label:?} = {value:?} in\n{out}"
        );
    }

    #[test]
    fn never_shows_secret_values() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key_pem = cert.signing_key.serialize_pem();
        std::fs::write(dir.path().join("client.pem"), cert.cert.pem()).unwrap();
        let text = format!(
            r#"
            [[endpoint]]
            name = "a"
            url = "https://a.example.com/hooks"
            headers = {{ x-tenant = "tenant-token-7777" }}
            [endpoint.auth]
            type = "api-key"
            value = "{}"
            [endpoint.signing]
            scheme = "standard-webhooks"
            secrets = ["whsec_{}", "whsec_{}"]
            [endpoint.tls]
            client_cert = "client.pem"
            client_key = """{key_pem}"""

            [[endpoint]]
            name = "b"
            url = "https://b.example.com/"
            auth = {{ type = "bearer", token = "{}" }}
            signing = {{ scheme = "hmac-sha256", secret = "{}" }}

            [[endpoint]]
            name = "c"
            url = "https://c.example.com/"
            auth = {{ type = "basic", username = "bob", password = "{}" }}
            "#,
            LITERAL_SECRETS[0],
            LITERAL_SECRETS[4],
            "dGVzdA==",
            LITERAL_SECRETS[1],
            LITERAL_SECRETS[3],
            LITERAL_SECRETS[2],
        );
        let config = parse(&text, &dir.path().join("edgehook.toml")).unwrap();
        let out = summary(&config);
        let debug = format!("{config:?}");
        for secret in LITERAL_SECRETS
            .iter()
            .copied()
            .chain(["dGVzdA==", "tenant-token-7777"])
        {
            assert!(!out.contains(secret), "summary shows {secret:?}:\n{out}");
            if secret != "tenant-token-7777" {
                assert!(!debug.contains(secret), "Debug shows {secret:?}");
            }
        }
        let key_body = key_pem.lines().nth(1).unwrap();
        assert!(!out.contains(key_body) && !debug.contains(key_body));
        for want in [
            "api-key in header x-api-key: <redacted> (literal)",
            "standard-webhooks, header webhook-signature, 2 secrets",
            "bearer (authorization header): <redacted> (literal)",
            "hmac-sha256, header x-hub-signature-256, prefix \"sha256=\", 1 secret",
            "basic (authorization header), username \"bob\", password <redacted> (literal)",
            "x-tenant (values not shown)",
            "key <redacted> (literal)",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
    }

    #[test]
    fn endpoint_details() {
        let out = summary(&config(
            r#"
            [[endpoint]]
            name = "webex"
            url = "http://webex.local/hooks?x=1"
            allow_plain_http = true
            events = ["messages.*", "rooms.created"]
            match = { "/data/roomId" = "Y2lz", "/data/n" = 2 }
            body = "data"
            order_key = "/roomId"
            concurrency = 4
            rate_limit = "50/s"
            max_attempts = 12
            compress = "gzip"
            proxy = "http://proxy.local:3128"
            auth = { type = "api-key", in = "query", param = "key", value = "k" }
            "#,
        ));
        for want in [
            "[[endpoint]] webex",
            "http://webex.local/hooks?x=1",
            "[\"messages.*\", \"rooms.created\"]",
            "/data/roomId = \"Y2lz\"",
            "/data/n = 2",
            "fifo per order_key /roomId, up to 4 in flight",
            "50/s",
            "gzip",
            "http://proxy.local:3128/",
            "api-key in query ?key=…: <redacted> (literal)",
            "plain http allowed",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        assert_line(&out, "max_attempts", "12");
        assert_line(&out, "tls", "not used (plain http)");
        assert_line(&out, "body", "data");
    }

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("https://bob:hunter2@example.com/x?y=1"),
            "https://bob:<redacted>@example.com/x?y=1"
        );
        assert_eq!(
            redact_userinfo("http://bob@proxy:3128"),
            "http://bob:<redacted>@proxy:3128"
        );
        assert_eq!(
            redact_userinfo("https://example.com/a@b"),
            "https://example.com/a@b"
        );
        assert_eq!(redact_userinfo("not a url"), "not a url");
    }
}
