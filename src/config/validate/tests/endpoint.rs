//! `[[endpoint]]`: names, URLs, the event filter, delivery settings, proxies and retry.

use super::*;

#[test]
fn endpoint_names() {
    for bad in ["Spark", "spark.io", "", "a b", "ü"] {
        let err = error(&format!(
            "[[endpoint]]\nname = \"{bad}\"\nurl = \"https://x/\""
        ));
        assert_has(&err, &[":2:8:", "a-z, 0-9, _ and -"]);
    }
    let err = error(
        "[[endpoint]]\nname = \"a\"\nurl = \"https://x/\"\n[[endpoint]]\nname = \"a\"\nurl = \"https://y/\"\n",
    );
    assert_has(&err, &[":5:8:", "\"a\" is already used at", ":2:8"]);

    let err = error("[[endpoint]]\nurl = \"https://x/\"\n");
    assert_has(&err, &[":1:1:", "endpoint #1: missing key `name`"]);
    let err = error("[[endpoint]]\nname = \"a\"\n");
    assert_has(&err, &[":1:1:", "endpoint a: missing key `url`"]);
    let errs = errors("[[endpoint]]\n[[endpoint]]\nname = \"b\"\n");
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

#[test]
fn urls() {
    let e = ok_endpoint("");
    assert_eq!(e.url.scheme_str(), Some("https"));

    let url = |u: &str, extra: &str| format!("[[endpoint]]\nname = \"a\"\nurl = \"{u}\"\n{extra}");
    assert_has(
        &error(&url("http://a.example.com/", "")),
        &[
            ":3:7:",
            "endpoint a: url: plain http is refused",
            "allow_plain_http = true",
        ],
    );
    let c = ok(&url("http://a.example.com/", "allow_plain_http = true"));
    assert_eq!(
        c.warnings,
        ["endpoint a: plain http allowed, payloads and credentials travel unencrypted"]
    );
    assert!(ok(&url("https://a/", "allow_plain_http = true"))
        .warnings
        .is_empty());
    for (bad, why) in [
        ("ftp://a.example.com/", "must start with https://"),
        ("a.example.com/hooks", "not a valid URL"),
        ("/hooks", "has no host"),
        ("https://", "not a valid URL"),
        ("https://a b/", "not a valid URL"),
        (
            "https://bob:pw@a.example.com/",
            "must not contain credentials",
        ),
        ("https://bob:pw@a b/", "not a valid URL"),
    ] {
        let err = error(&url(bad, ""));
        assert_has(&err, &["endpoint a: url:", why]);
        assert!(!err.contains("pw@"), "password shown: {err}");
    }
}

#[test]
fn events_and_match() {
    let e = ok_endpoint("events = [\"Upload*\", \"flows/comments.?\"]");
    assert!(e.filter.matches_type("UploadProduct"));
    assert!(e.filter.matches_type("flows/comments.x"));
    assert!(!e.filter.matches_type("Delete"));

    assert_has(
        &endpoint_error("events = [\"ok\", \"bad glob\"]"),
        &[
            ":4:17:",
            "endpoint a: events: pattern \"bad glob\" contains ' '",
        ],
    );
    assert_has(&endpoint_error("events = [\"\"]"), &["empty pattern"]);
    let c = ok(&endpoint("events = []"));
    assert_eq!(c.warnings.len(), 1);
    assert_has(
        &c.warnings[0],
        &["endpoint a: events = [] matches no event"],
    );
    assert!(!c.endpoints[0].filter.matches_type("x"));

    assert_has(
        &endpoint_error("match = { \"data/roomId\" = \"x\" }"),
        &[":4:11:", "endpoint a: match:", "must start with \"/\""],
    );
    assert_has(
        &endpoint_error("match = { \"/data/when\" = 1979-05-27T07:32:00Z }"),
        &["match.\"/data/when\"", "quote it"],
    );
    let e = ok_endpoint("match = { \"/data/tags\" = [\"a\", 1], \"/data/o\" = { k = false } }");
    let doc = serde_json::json!({"data": {"tags": ["a", 1], "o": {"k": false}}});
    assert!(e.filter.matches("t", Some(&doc)));
    assert!(!e.filter.matches("t", None));
}

#[test]
fn body_ordering_order_key() {
    assert_has(
        &endpoint_error("body = \"raw\""),
        &["endpoint a: body: unknown value \"raw\"; expected one of \"envelope\", \"data\""],
    );
    assert_has(
        &endpoint_error("ordering = \"strict\""),
        &["\"none\", \"fifo\""],
    );
    assert_eq!(ok_endpoint("ordering = \"fifo\"").ordering, Ordering::Fifo);
    assert_eq!(ok_endpoint("order_key = \"\"").order_key, None);
    assert_has(
        &endpoint_error("order_key = \"roomId\""),
        &["endpoint a: order_key:", "must start with \"/\""],
    );
    assert_has(
        &endpoint_error("ordering = \"fifo\"\norder_key = \"/roomId\""),
        &[
            ":5:13:",
            "order_key: cannot be combined with ordering = \"fifo\"",
        ],
    );
}

#[test]
fn numbers_and_durations() {
    assert_has(
        &endpoint_error("concurrency = 0"),
        &["concurrency: 0 must be at least 1"],
    );
    assert_has(
        &endpoint_error("concurrency = -2"),
        &["concurrency: -2 must be at least 1"],
    );
    assert_has(
        &endpoint_error("timeout = \"0ms\""),
        &["timeout: must be more than 0"],
    );
    assert_has(
        &endpoint_error("timeout = \"10\""),
        &["timeout: invalid duration \"10\""],
    );
    let fixed = ok_endpoint("concurrency = 3");
    assert_eq!((fixed.concurrency, fixed.adaptive), (3, false));
    let adaptive = ok_endpoint("concurrency = \"adaptive\"\nmax_concurrency = 16");
    assert_eq!((adaptive.concurrency, adaptive.adaptive), (16, true));
    assert_has(
        &endpoint_error("concurrency = \"auto\""),
        &["concurrency: \"auto\" is neither \"adaptive\" nor a number"],
    );
    assert_has(
        &endpoint_error("concurrency = 4\nmax_concurrency = 16"),
        &["max_concurrency: only used with concurrency = \"adaptive\""],
    );
    assert_has(
        &endpoint_error("max_concurrency = 0"),
        &["max_concurrency: 0 must be at least 1"],
    );
    assert_has(
        &endpoint_error("connect_timeout = \"0s\""),
        &["connect_timeout: must be more than 0"],
    );
    assert_eq!(ok_endpoint("").connect_timeout, Duration::from_secs(5));
    assert_eq!(
        ok_endpoint("connect_timeout = \"750ms\"").connect_timeout,
        Duration::from_millis(750)
    );
    assert_eq!(ok_endpoint("rate_limit = \"\"").rate_limit, None);
    assert_eq!(
        ok_endpoint("rate_limit = \"10/h\"").rate_limit,
        Some(RateLimit {
            count: 10,
            per: Duration::from_secs(3600)
        })
    );
    assert_has(
        &endpoint_error("rate_limit = \"fast\""),
        &["rate_limit: invalid rate limit"],
    );
    let errs = errors(&endpoint("permanent_status = [399, 404, 600, -1]"));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert_has(&errs[0], &["399 is not a 4xx or 5xx status"]);
    assert_eq!(
        ok_endpoint("permanent_status = []").permanent_status,
        Vec::<u16>::new()
    );
    assert_eq!(ok_endpoint("max_attempts = 0").max_attempts, None);
    assert_eq!(ok_endpoint("max_attempts = 7").max_attempts, Some(7));
    assert_has(
        &endpoint_error("max_attempts = -1"),
        &["max_attempts: -1 is out of range"],
    );
    assert_eq!(ok_endpoint("compress = \"\"").compress, None);
    assert_has(&endpoint_error("compress = \"zstd\""), &["\"\", \"gzip\""]);
}

#[test]
fn proxies() {
    assert!(ok_endpoint("proxy = \"\"").proxy.is_none());
    let p = ok_endpoint("proxy = \"http://10.0.0.1:3128\"")
        .proxy
        .clone()
        .unwrap();
    assert_eq!(p.host(), Some("10.0.0.1"));
    // Proxy credentials come from the userinfo (Proxy-Authorization: Basic).
    let p = ok_endpoint("proxy = \"http://u:secretpw@proxy:3128\"")
        .proxy
        .clone()
        .unwrap();
    assert_eq!(p.host(), Some("proxy"));
    for (bad, why) in [
        ("https://proxy:3128", "only http:// proxies"),
        ("http://proxy", "the port is missing"),
        ("http://proxy:3128/path", "no path or query"),
        ("http://u:secretpw@proxy", "the port is missing"),
        ("http://u:secretpw@a b", "is not a URL"),
        ("socks5://proxy:1080", "not an http:// URL"),
        ("proxy:3128", "not an http:// URL"),
        ("http://a b", "is not a URL"),
    ] {
        let err = endpoint_error(&format!("proxy = \"{bad}\""));
        assert_has(&err, &["endpoint a: proxy:", why]);
        assert!(!err.contains("secretpw"), "password shown: {err}");
    }
}

#[test]
fn retry_rules() {
    let r = ok_endpoint("[endpoint.retry]\nmultiplier = 1\njitter = 1").retry;
    assert_eq!((r.multiplier, r.jitter), (1.0, 1.0));
    assert_has(
        &endpoint_error("[endpoint.retry]\ninitial = \"0s\""),
        &["retry.initial: must be more than 0"],
    );
    assert_has(
        &endpoint_error("[endpoint.retry]\nmultiplier = 0.5"),
        &["retry.multiplier: 0.5 must be at least 1.0"],
    );
    assert_has(
        &endpoint_error("[endpoint.retry]\nmultiplier = nan"),
        &["retry.multiplier: NaN must be at least 1.0"],
    );
    assert_has(
        &endpoint_error("[endpoint.retry]\ninitial = \"1m\"\nmax = \"30s\""),
        &[":6:7:", "retry.max: 30s is less than retry.initial (1m)"],
    );
    // Against the default max, pointing at initial.
    assert_has(
        &endpoint_error("[endpoint.retry]\ninitial = \"1h\""),
        &[":5:11:", "retry.max: 10m is less than retry.initial (1h)"],
    );
    assert_has(
        &endpoint_error("[endpoint.retry]\njitter = -0.1"),
        &["retry.jitter: -0.1 must be between 0.0 and 1.0"],
    );
}
