//! Parsers (and printers) for the human-friendly values in the config file: sizes,
//! durations, rate limits and octal socket modes.
//!
//! Each parser takes the text as written and returns a message meant to follow
//! `file:line:column: key: ` in an error, so it says what was expected.

use std::time::Duration;

use super::RateLimit;

/// The units a size may carry, for error messages.
const SIZE_HINT: &str = "expected a number of bytes with an optional unit \
     (B, KB, MB, GB, TB or KiB, MiB, GiB, TiB), e.g. \"64KiB\" or \"10MB\"";

const DURATION_HINT: &str =
    "expected a number with a unit, e.g. \"1500ms\", \"10s\", \"10m\", \"24h\" or \"7d\"";

/// Parse a size such as `"64KiB"`, `"1MiB"`, `"10MB"` (decimal: 10 000 000) or `"500"` (bytes).
///
/// Binary units (`KiB`, `MiB`, …) are powers of 1024, decimal ones (`KB`, `MB`, …) powers of
/// 1000; units are case-insensitive and a space before the unit is allowed. Fractions such
/// as `"1.5MiB"` are rounded down to whole bytes.
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    // bytesize also takes a number alone, but its error for "" is unhelpful.
    if trimmed.is_empty() || !trimmed.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("invalid size {text:?}: {SIZE_HINT}"));
    }
    match trimmed.parse::<bytesize::ByteSize>() {
        // bytesize saturates on overflow; nothing sensible is that large.
        Ok(size) if size.as_u64() == u64::MAX => Err(format!("size {text:?} is too large")),
        Ok(size) => Ok(size.as_u64()),
        Err(_) => Err(format!("invalid size {text:?}: {SIZE_HINT}")),
    }
}

/// A size written either as a string (see [`parse_size`]) or as a TOML integer of bytes.
pub(super) fn size_from_toml(value: &toml::Value) -> Result<u64, String> {
    match value {
        toml::Value::String(text) => parse_size(text),
        toml::Value::Integer(n) => {
            u64::try_from(*n).map_err(|_| format!("size {n} is negative: {SIZE_HINT}"))
        }
        other => Err(format!(
            "invalid size: found a {}, {SIZE_HINT}",
            other.type_str()
        )),
    }
}

/// Parse a duration such as `"1500ms"`, `"10s"`, `"10m"`, `"24h"`, `"7d"` or `"1h 30m"`.
///
/// `m` is minutes (humantime's `M` would be months).
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.trim().is_empty() {
        return Err(format!("empty duration: {DURATION_HINT}"));
    }
    humantime::parse_duration(text.trim())
        .map_err(|err| format!("invalid duration {text:?} ({err}): {DURATION_HINT}"))
}

/// Parse a rate limit `"<count>/<unit>"` with unit `s`, `m` or `h`, e.g. `"50/s"`.
pub(super) fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    const HINT: &str = "expected <count>/<s|m|h>, e.g. \"50/s\", \"600/m\" or \"10/h\"";
    let Some((count, unit)) = text.trim().split_once('/') else {
        return Err(format!("invalid rate limit {text:?}: {HINT}"));
    };
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(format!("invalid rate limit {text:?}: {HINT}")),
    };
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| format!("invalid rate limit {text:?}: {HINT}"))?;
    if count == 0 {
        return Err(format!(
            "rate limit {text:?} allows nothing: use a count of at least 1, or \"\" for no limit"
        ));
    }
    Ok(RateLimit { count, per })
}

/// Parse permission bits written as an octal string, `"0660"` or `"660"`, or given as a
/// TOML integer (write `0o660`; a decimal `660` is a different number and is refused for
/// having bits beyond `0o777`).
pub(super) fn mode_from_toml(value: &toml::Value) -> Result<u32, String> {
    const HINT: &str = "expected an octal string such as \"0660\"";
    let mode = match value {
        toml::Value::String(text) => {
            let digits = text.trim();
            let digits = digits.strip_prefix("0o").unwrap_or(digits);
            if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return Err(format!("invalid mode {text:?}: {HINT}"));
            }
            u32::from_str_radix(digits, 8).map_err(|_| format!("invalid mode {text:?}: {HINT}"))?
        }
        toml::Value::Integer(n) => {
            u32::try_from(*n).map_err(|_| format!("invalid mode {n}: {HINT}"))?
        }
        other => {
            return Err(format!(
                "invalid mode: found a {}, {HINT}",
                other.type_str()
            ))
        }
    };
    if mode & !0o777 != 0 {
        return Err(format!(
            "mode {mode:#o} has bits beyond 0o777 (setuid, sticky or a decimal number?): {HINT}"
        ));
    }
    Ok(mode)
}

/// Print a size the way it would be written in the config: the largest binary unit that
/// divides it exactly, else bytes.
pub(crate) fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, factor) in UNITS {
        if bytes >= factor && bytes % factor == 0 {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// Print a duration the way it would be written in the config: `"10m"`, `"1d 2h"`,
/// `"1500ms"` stays `"1s 500ms"`, zero is `"0s"`. Sub-millisecond parts are dropped.
pub(crate) fn format_duration(duration: Duration) -> String {
    const UNITS: [(&str, u128); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut parts = Vec::new();
    for (unit, factor) in UNITS {
        if millis >= factor {
            parts.push(format!("{}{unit}", millis / factor));
            millis %= factor;
        }
    }
    parts.join(" ")
}

/// Print a rate limit as written (`"50/s"`).
pub(crate) fn format_rate_limit(limit: &RateLimit) -> String {
    let unit = match limit.per.as_secs() {
        1 => "s",
        60 => "m",
        3600 => "h",
        _ => return format!("{}/{}", limit.count, format_duration(limit.per)),
    };
    format!("{}/{unit}", limit.count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * 1024 * 1024;

    #[test]
    fn sizes_binary_units() {
        assert_eq!(parse_size("64KiB"), Ok(64 * KIB));
        assert_eq!(parse_size("1MiB"), Ok(MIB));
        assert_eq!(parse_size("16MiB"), Ok(16 * MIB));
        assert_eq!(parse_size("1GiB"), Ok(GIB));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("1 MiB"), Ok(MIB));
        assert_eq!(parse_size("1mib"), Ok(MIB));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
    }

    #[test]
    fn sizes_decimal_units_and_bare_bytes() {
        assert_eq!(parse_size("500"), Ok(500));
        assert_eq!(parse_size("500B"), Ok(500));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size(" 7 "), Ok(7));
    }

    #[test]
    fn sizes_rejected() {
        for bad in [
            "", " ", "MiB", "-1MiB", "1 parsec", "1.2.3MiB", "ten", "1e3", "0x10", "1MiBs",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains("size"), "{bad:?}: {err}");
        }
        assert!(parse_size("99999999999999EiB")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn sizes_from_toml_values() {
        assert_eq!(size_from_toml(&toml::Value::Integer(4096)), Ok(4096));
        assert_eq!(
            size_from_toml(&toml::Value::String("4KiB".into())),
            Ok(4096)
        );
        assert!(size_from_toml(&toml::Value::Integer(-1))
            .unwrap_err()
            .contains("negative"));
        assert!(size_from_toml(&toml::Value::Float(1.5))
            .unwrap_err()
            .contains("float"));
        assert!(size_from_toml(&toml::Value::Boolean(true)).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 2s "), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn durations_rejected() {
        for bad in ["", "10", "ten seconds", "-1s", "10 parsecs", "s"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("duration"), "{bad:?}: {err}");
            assert!(err.contains("\"10s\""), "{bad:?} gives a hint: {err}");
        }
    }

    #[test]
    fn rate_limits() {
        let second = Duration::from_secs(1);
        assert_eq!(
            parse_rate_limit("50/s"),
            Ok(RateLimit {
                count: 50,
                per: second
            })
        );
        assert_eq!(
            parse_rate_limit("600/m"),
            Ok(RateLimit {
                count: 600,
                per: Duration::from_secs(60)
            })
        );
        assert_eq!(
            parse_rate_limit("10/h"),
            Ok(RateLimit {
                count: 10,
                per: Duration::from_secs(3600)
            })
        );
        assert_eq!(
            parse_rate_limit(" 5 / s "),
            Ok(RateLimit {
                count: 5,
                per: second
            })
        );
    }

    #[test]
    fn rate_limits_rejected() {
        for bad in [
            "", "50", "50/", "/s", "50/d", "50/sec", "-1/s", "x/s", "1.5/s", "50/s/s",
        ] {
            let err = parse_rate_limit(bad).unwrap_err();
            assert!(err.contains("rate limit"), "{bad:?}: {err}");
        }
        assert!(parse_rate_limit("0/s").unwrap_err().contains("at least 1"));
    }

    #[test]
    fn modes() {
        let s = |t: &str| mode_from_toml(&toml::Value::String(t.into()));
        assert_eq!(s("0660"), Ok(0o660));
        assert_eq!(s("660"), Ok(0o660));
        assert_eq!(s("0600"), Ok(0o600));
        assert_eq!(s("0o777"), Ok(0o777));
        assert_eq!(s("0"), Ok(0));
        assert_eq!(mode_from_toml(&toml::Value::Integer(0o660)), Ok(0o660));
    }

    #[test]
    fn modes_rejected() {
        let s = |t: &str| mode_from_toml(&toml::Value::String(t.into()));
        for bad in ["", "rw-rw----", "0680", "0x1b0", "-660"] {
            assert!(s(bad).unwrap_err().contains("octal"), "{bad:?}");
        }
        assert!(s("4755").unwrap_err().contains("beyond 0o777"));
        assert!(s("99999999999").is_err());
        // A decimal 660 is 0o1224: refused rather than silently wrong.
        assert!(mode_from_toml(&toml::Value::Integer(660))
            .unwrap_err()
            .contains("beyond 0o777"));
        assert!(mode_from_toml(&toml::Value::Integer(-1)).is_err());
        assert!(mode_from_toml(&toml::Value::Boolean(true)).is_err());
    }

    #[test]
    fn formatting_round_trips() {
        for (bytes, text) in [
            (GIB, "1GiB"),
            (16 * MIB, "16MiB"),
            (64 * KIB, "64KiB"),
            (1536, "1536B"),
            (0, "0B"),
            (10_000_000, "10000000B"),
        ] {
            assert_eq!(format_size(bytes), text);
            assert_eq!(parse_size(text), Ok(bytes));
        }
        for text in ["10m", "24h", "7d", "1500ms", "0s", "1d 2h 3m 4s 5ms"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(86_400)), "1d");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(format_duration(Duration::from_nanos(10)), "0s");
        for text in ["50/s", "600/m", "10/h"] {
            assert_eq!(format_rate_limit(&parse_rate_limit(text).unwrap()), text);
        }
    }
}
