//! An endpoint's event filter: `events` globs over the event type, plus optional `match`
//! entries (JSON pointer → exact JSON value) over the whole event document.
//!
//! Globs: `*` matches any run of characters (including `/` and `.`), `?` exactly one, every
//! other character itself; `["*"]` is the firehose. Event types are ASCII (SPEC §1), so
//! matching works on bytes.

use serde_json::Value;

/// Characters allowed in an `events` glob: the event type alphabet plus `*` and `?`.
fn is_glob_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-' | '*' | '?')
}

/// Check one `events` entry; the error follows `events[i]: `.
pub(super) fn check_glob(glob: &str) -> Result<(), String> {
    if glob.is_empty() {
        return Err("empty pattern: use \"*\" for every event type".to_owned());
    }
    if let Some(bad) = glob.chars().find(|&c| !is_glob_char(c)) {
        return Err(format!(
            "pattern {glob:?} contains {bad:?}: event types use A-Za-z0-9._:/- and globs add * and ?"
        ));
    }
    Ok(())
}

/// Example pointers for messages: `match` points into the whole event, `order_key` into `data`.
pub(super) const MATCH_EXAMPLE: &str = "/data/roomId";
pub(super) const ORDER_KEY_EXAMPLE: &str = "/roomId";

/// Check a JSON pointer (RFC 6901) used by `match` or `order_key`; `example` is a valid
/// pointer for that key, shown in the message.
pub(super) fn check_pointer(pointer: &str, example: &str) -> Result<(), String> {
    if !pointer.starts_with('/') {
        return Err(format!(
            "{pointer:?} is not a JSON pointer: it must start with \"/\", e.g. {example:?}"
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "JSON pointer {pointer:?} has a bad escape: write ~0 for ~ and ~1 for /"
            ));
        }
    }
    Ok(())
}

/// Which events an endpoint receives.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    globs: Vec<String>,
    /// `["*"]` (or any bare `*` among the globs): skip matching.
    firehose: bool,
    /// `(pointer, value)`, all must hold.
    matches: Vec<(String, Value)>,
}

impl Default for Filter {
    /// The firehose: every event type, no `match`.
    fn default() -> Self {
        Filter::firehose()
    }
}

impl Filter {
    /// Every event.
    pub fn firehose() -> Self {
        Filter {
            globs: vec!["*".to_owned()],
            firehose: true,
            matches: Vec::new(),
        }
    }

    /// Build a filter; the error names the first bad glob or pointer.
    pub fn new(
        globs: impl IntoIterator<Item = impl Into<String>>,
        matches: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<Self, String> {
        let globs: Vec<String> = globs.into_iter().map(Into::into).collect();
        let matches: Vec<(String, Value)> = matches.into_iter().collect();
        for glob in &globs {
            check_glob(glob)?;
        }
        for (pointer, _) in &matches {
            check_pointer(pointer, MATCH_EXAMPLE)?;
        }
        Ok(Filter {
            firehose: globs.iter().any(|g| g == "*"),
            globs,
            matches,
        })
    }

    /// The `events` globs as written.
    pub fn globs(&self) -> &[String] {
        &self.globs
    }

    /// The `match` entries as `(pointer, value)`.
    pub fn match_entries(&self) -> &[(String, Value)] {
        &self.matches
    }

    /// Whether the event type passes the `events` globs (ignores `match`).
    pub fn matches_type(&self, event_type: &str) -> bool {
        self.firehose
            || self
                .globs
                .iter()
                .any(|glob| glob_matches(glob.as_bytes(), event_type.as_bytes()))
    }

    /// Whether [`Filter::matches`] needs the event document (there are `match` entries).
    pub fn needs_document(&self) -> bool {
        !self.matches.is_empty()
    }

    /// Whether the event passes: its type matches a glob and every `match` pointer resolves,
    /// in `document` (the whole event `{"type","id","timestamp","data"}`), to an equal value.
    /// With `match` entries and no document, nothing passes.
    pub fn matches(&self, event_type: &str, document: Option<&Value>) -> bool {
        if !self.matches_type(event_type) {
            return false;
        }
        if self.matches.is_empty() {
            return true;
        }
        let Some(document) = document else {
            return false;
        };
        self.matches.iter().all(|(pointer, expected)| {
            document
                .pointer(pointer)
                .is_some_and(|found| json_eq(found, expected))
        })
    }
}

/// JSON equality, except that numbers compare by value: `1` in the config equals `1.0` in
/// an event (serde_json keeps integers and floats apart).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Classic two-pointer wildcard match with backtracking to the last `*`: linear in
/// practice, no recursion, no allocation.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(globs: &[&str]) -> Filter {
        Filter::new(globs.iter().copied(), []).unwrap()
    }

    #[test]
    fn globs() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "anything", true),
            ("*", "", true),
            ("UploadProduct", "UploadProduct", true),
            ("UploadProduct", "UploadProducts", false),
            ("UploadProduct", "uploadproduct", false),
            ("Delete*", "DeleteFolder", true),
            ("Delete*", "Delete", true),
            ("Delete*", "Undelete", false),
            ("flows/comments.*", "flows/comments.updated", true),
            ("flows/comments.*", "flows/comments", false),
            ("flows/*", "flows/comments.updated", true),
            ("*.created", "messages.created", true),
            ("*.created", "a/b.c.created", true),
            ("*.created", "messages.created.x", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "a-b-x-c", true),
            ("a*b*c", "a-c-b", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "abbc", false),
            ("??", "ab", true),
            ("*?", "", false),
            ("*a", "aaaa", true),
            ("*aab", "aaaaab", true),
            ("**", "x", true),
            ("x.y", "xzy", false),
        ];
        for &(glob, text, want) in cases {
            assert_eq!(filter(&[glob]).matches_type(text), want, "{glob} vs {text}");
        }
    }

    #[test]
    fn several_globs_any_matches() {
        let f = filter(&["UploadProduct", "Delete*", "flows/comments.*"]);
        assert!(f.matches_type("UploadProduct"));
        assert!(f.matches_type("DeleteFolder"));
        assert!(f.matches_type("flows/comments.created"));
        assert!(!f.matches_type("PublishEngine"));
        assert!(!filter(&[]).matches_type("x"), "no globs: nothing");
    }

    #[test]
    fn firehose_and_default() {
        assert!(Filter::default().matches_type("x"));
        assert!(Filter::default().matches("x", None));
        assert!(!Filter::default().needs_document());
        assert_eq!(Filter::default().globs(), ["*"]);
        assert!(filter(&["Nope", "*"]).matches_type("x"));
    }

    #[test]
    fn bad_globs() {
        for bad in ["", "a b", "a,b", "é", "[ab]", "a\n", "{a,b}"] {
            assert!(Filter::new([bad], []).is_err(), "{bad:?}");
            assert!(check_glob(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "A-Z_0.9:x/y", "*", "?", "x*?"] {
            check_glob(good).unwrap();
        }
    }

    #[test]
    fn pointers() {
        for good in [
            "/",
            "/data",
            "/data/roomId",
            "/data/a~1b",
            "/data/~0",
            "/data/0",
        ] {
            check_pointer(good, MATCH_EXAMPLE).unwrap();
        }
        for bad in ["", "data/roomId", "#/data", "/a~2", "/a~"] {
            assert!(check_pointer(bad, MATCH_EXAMPLE).is_err(), "{bad:?}");
        }
        assert!(Filter::new(["*"], [("data".to_owned(), json!(1))]).is_err());
    }

    fn event(data: Value) -> Value {
        json!({"type": "messages.created", "id": "evt_1", "timestamp": "2024-01-01T00:00:00Z", "data": data})
    }

    #[test]
    fn match_entries_must_all_hold() {
        let f = Filter::new(
            ["messages.*"],
            [
                ("/data/roomId".to_owned(), json!("Y2lz")),
                ("/data/n".to_owned(), json!(1)),
            ],
        )
        .unwrap();
        assert!(f.needs_document());
        let good = event(json!({"roomId": "Y2lz", "n": 1, "other": true}));
        assert!(f.matches("messages.created", Some(&good)));
        assert!(!f.matches("other", Some(&good)), "type still checked");
        assert!(!f.matches("messages.created", None), "no document");
        let wrong = event(json!({"roomId": "nope", "n": 1}));
        assert!(!f.matches("messages.created", Some(&wrong)));
        let missing = event(json!({"roomId": "Y2lz"}));
        assert!(!f.matches("messages.created", Some(&missing)));
        let typed = event(json!({"roomId": "Y2lz", "n": "1"}));
        assert!(
            !f.matches("messages.created", Some(&typed)),
            "\"1\" is not 1"
        );
    }

    #[test]
    fn match_on_envelope_fields_and_escapes() {
        let f = Filter::new(["*"], [("/type".to_owned(), json!("messages.created"))]).unwrap();
        assert!(f.matches("messages.created", Some(&event(json!(null)))));
        let f = Filter::new(["*"], [("/data/a~1b".to_owned(), json!(true))]).unwrap();
        assert!(f.matches("x", Some(&event(json!({"a/b": true})))));
        let f = Filter::new(["*"], [("/data/list/1".to_owned(), json!("b"))]).unwrap();
        assert!(f.matches("x", Some(&event(json!({"list": ["a", "b"]})))));
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_eq(&json!(1), &json!(1.0)));
        assert!(json_eq(&json!(-3), &json!(-3)));
        assert!(json_eq(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!json_eq(&json!(1), &json!(2)));
        assert!(!json_eq(&json!(1.5), &json!(1)));
        assert!(json_eq(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!json_eq(&json!([1]), &json!([1, 1])));
        assert!(!json_eq(&json!(true), &json!(1)));
        assert!(json_eq(&json!(null), &json!(null)));
    }
}
