//! Validation tests: inline TOML in, `Config` or the exact problems out. One file per part
//! of the config, like the code under test; the helpers below build and check the TOML.

mod auth;
mod endpoint;
mod example;
mod file;
mod headers;
mod secrets;
mod sections;
mod signing;
mod tls;

use super::*;
use crate::config::{
    ApiKeyPlacement, AuthConfig, BodyMode, Compress, Durability, EndpointConfig, Filter, LogFormat,
    Ordering, RateLimit, RetryConfig, Roots, SecretSource, SigningScheme, TlsVersion, WhenFull,
};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const PATH: &str = "/etc/edgehook/edgehook.toml";

fn no_env(_: &str) -> Option<OsString> {
    None
}

fn try_parse(text: &str) -> Result<Config, ConfigError> {
    parse_with(text, Path::new(PATH), &no_env).map(|(config, _)| config)
}

fn ok(text: &str) -> Config {
    try_parse(text).unwrap_or_else(|err| panic!("expected a valid config, got:\n{err}"))
}

fn errors(text: &str) -> Vec<String> {
    match try_parse(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(err) => err.messages().to_vec(),
    }
}

/// The one error `text` has; panics if there are more or none.
fn error(text: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    errors.into_iter().next().unwrap()
}

fn assert_has(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(haystack.contains(needle), "{needle:?} not in {haystack:?}");
    }
}

/// A valid endpoint `a` with `extra` appended to its table (keys or sub-tables).
fn endpoint(extra: &str) -> String {
    format!("[[endpoint]]\nname = \"a\"\nurl = \"https://a.example.com/hooks\"\n{extra}\n")
}

fn ok_endpoint(extra: &str) -> Arc<EndpointConfig> {
    ok(&endpoint(extra)).endpoints[0].clone()
}

/// The single error for endpoint `a` with `extra`.
fn endpoint_error(extra: &str) -> String {
    error(&endpoint(extra))
}

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
