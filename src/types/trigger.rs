//! Trigger identities. An enum rather than strings so a trigger is named once: the config key,
//! the `switchyard_rollbacks_total` label and the incident field all come from `as_str`.

/// Which trigger, named by its config key (operators grep incidents for these).
///
/// Serialized as that key alone (`status_rate` without its index), the string incidents have
/// always carried; read back, `status_rate` is `StatusRate(0)`: the log never recorded which
/// entry of the list tripped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TriggerId {
    /// `p95_latency`.
    P95Latency,
    /// `error_rate`.
    ErrorRate,
    /// `availability`.
    Availability,
    /// `compliance`.
    Compliance,
    /// `hash_mismatch`.
    HashMismatch,
    /// `status_rate` (index into the list).
    StatusRate(usize),
    /// `manual` (an operator's rollback).
    Manual,
    /// `candidate_down`: every candidate endpoint fails its health probe (no config key: hard
    /// evidence, like a hash mismatch, judged without waiting for `min_samples`).
    CandidateDown,
    /// `live_down`: the live pool has no healthy endpoint (an incident record, not a rollback).
    LiveDown,
}

impl TriggerId {
    /// Config key / metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerId::P95Latency => "p95_latency",
            TriggerId::ErrorRate => "error_rate",
            TriggerId::Availability => "availability",
            TriggerId::Compliance => "compliance",
            TriggerId::HashMismatch => "hash_mismatch",
            TriggerId::StatusRate(_) => "status_rate",
            TriggerId::Manual => "manual",
            TriggerId::CandidateDown => "candidate_down",
            TriggerId::LiveDown => "live_down",
        }
    }

    /// The trigger a config key names (`status_rate` as the list's first entry).
    pub fn from_key(key: &str) -> Option<TriggerId> {
        Some(match key {
            "p95_latency" => TriggerId::P95Latency,
            "error_rate" => TriggerId::ErrorRate,
            "availability" => TriggerId::Availability,
            "compliance" => TriggerId::Compliance,
            "hash_mismatch" => TriggerId::HashMismatch,
            "status_rate" => TriggerId::StatusRate(0),
            "manual" => TriggerId::Manual,
            "candidate_down" => TriggerId::CandidateDown,
            "live_down" => TriggerId::LiveDown,
            _ => return None,
        })
    }
}

impl std::fmt::Display for TriggerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for TriggerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for TriggerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TriggerId::from_key(&key).ok_or_else(|| serde::de::Error::unknown_variant(&key, KEYS))
    }
}

const KEYS: &[&str] = &[
    "p95_latency",
    "error_rate",
    "availability",
    "compliance",
    "hash_mismatch",
    "status_rate",
    "manual",
    "candidate_down",
    "live_down",
];

#[cfg(test)]
mod tests {
    use super::TriggerId;

    #[test]
    fn serializes_as_the_config_key_and_reads_back() {
        let all = [
            TriggerId::P95Latency,
            TriggerId::ErrorRate,
            TriggerId::Availability,
            TriggerId::Compliance,
            TriggerId::HashMismatch,
            TriggerId::StatusRate(0),
            TriggerId::Manual,
            TriggerId::CandidateDown,
            TriggerId::LiveDown,
        ];
        for t in all {
            let text = serde_json::to_string(&t).unwrap();
            assert_eq!(text, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<TriggerId>(&text).unwrap(), t);
        }
        assert_eq!(serde_json::to_string(&TriggerId::StatusRate(3)).unwrap(), "\"status_rate\"", "no index");
        assert!(serde_json::from_str::<TriggerId>("\"latency\"").is_err());
    }
}
