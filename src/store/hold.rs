//! Endpoint holds: the persisted reasons an endpoint's deliveries are not sent
//! (`endpoint_state` table). Typed here, written as the same strings in the store and on
//! the admin wire (`"paused"`, `"gone"`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an endpoint is held; deliveries keep queueing while it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hold {
    /// An operator ran `edgehook pause`.
    Paused,
    /// The upstream answered 410 Gone.
    Gone,
}

impl Hold {
    pub fn as_str(self) -> &'static str {
        match self {
            Hold::Paused => "paused",
            Hold::Gone => "gone",
        }
    }

    /// The reason stored beside the hold (shown by `status`).
    pub fn reason(self) -> &'static str {
        match self {
            Hold::Paused => "paused by an operator (edgehook pause)",
            Hold::Gone => "HTTP 410 Gone from upstream",
        }
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Hold {
    type Err = String;

    fn from_str(s: &str) -> Result<Hold, String> {
        match s {
            "paused" => Ok(Hold::Paused),
            "gone" => Ok(Hold::Gone),
            other => Err(format!("unknown endpoint hold {other:?}")),
        }
    }
}

impl rusqlite::types::FromSql for Hold {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Hold> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| rusqlite::types::FromSqlError::Other(e.into()))
    }
}

impl rusqlite::types::ToSql for Hold {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_in_store_and_json() {
        for h in [Hold::Paused, Hold::Gone] {
            assert_eq!(h.as_str().parse::<Hold>(), Ok(h));
            assert_eq!(serde_json::to_string(&h).unwrap(), format!("\"{h}\""));
        }
        assert!("pause".parse::<Hold>().is_err());
    }
}
