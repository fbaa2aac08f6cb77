//! Why a store call failed, and what the caller should do about it. The classes follow etcd's
//! own client: a member that cannot answer (connection error, 5xx, 429) is skipped for the next
//! one; any other 4xx is the request's fault and the same on every member; a compacted watch is
//! a resync; a silent or cancelled watch is re-opened. Only the first class is an outage, and
//! only once every member failed it.

use std::time::Duration;

/// Why a store call failed.
///
/// How the fleet runtime should react:
/// - [`StoreError::Compacted`]: **relist** — read the prefix again and watch from that read's
///   revision + 1. etcd is fine; no alert, no refused raises.
/// - [`StoreError::WatchSilent`], [`StoreError::WatchCanceled`]: **re-watch** from the last
///   revision seen + 1 ([`super::Watch::last_revision`]) after a [`super::Backoff`] delay; an
///   outage only if the re-watch itself fails with an outage error.
/// - [`StoreError::is_outage`] errors (every member failed to answer): the store is
///   unreachable; reconnect with a [`super::Backoff`].
/// - [`StoreError::Auth`], [`StoreError::Tls`], other [`StoreError::Status`]: configuration or
///   request faults that retrying will not fix; report them (the message says which).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// No answer: refused, reset, TLS handshake failed, or no reply within the timeout.
    #[error("etcd unreachable: {0}")]
    Unreachable(String),
    /// etcd answered with an error status (for a stream, the status of its `{"error":…}` line).
    #[error("etcd answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// etcd's message.
        body: String,
    },
    /// The answer was not what the gateway documents.
    #[error("etcd answer unreadable: {0}")]
    Decode(String),
    /// The watch start revision was compacted away (oldest kept revision): read again and
    /// watch from there. A resync, not an outage.
    #[error("watch start revision compacted (oldest kept {0})")]
    Compacted(i64),
    /// The watch delivered nothing, not even the answer to a progress request, for this long:
    /// the member or the path to it is stuck. Watch again, from the last revision + 1.
    #[error("watch silent for {0:?}: no event and no progress notification")]
    WatchSilent(Duration),
    /// etcd cancelled the watch for a reason other than compaction (its `cancel_reason`, e.g. a
    /// permission revoked); watch again after a backoff.
    #[error("watch cancelled by etcd: {0}")]
    WatchCanceled(String),
    /// Authentication failed (wrong user or password, or the cluster requires a user and none
    /// is configured in SWITCHYARD_ETCD_USERNAME / SWITCHYARD_ETCD_PASSWORD).
    #[error("etcd authentication failed: {0}")]
    Auth(String),
    /// The TLS files for etcd (`fleet.ca`, `fleet.cert`, `fleet.key`) are unusable.
    #[error("etcd TLS material unusable: {0}")]
    Tls(String),
}

impl StoreError {
    /// Another member may answer where this one did not: a connection error, a timeout, a 5xx
    /// (etcd's "no leader", "leader changed", "too many requests" come as 503/429), a 429, or a
    /// silent watch. Any other 4xx would fail the same way on every member.
    pub fn fails_over(&self) -> bool {
        match self {
            StoreError::Unreachable(_) | StoreError::WatchSilent(_) => true,
            StoreError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The store is down for this replica (every member failed to answer); any other error
    /// means etcd answered, so no "store unreachable" alert is due.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            StoreError::Unreachable(_)
                | StoreError::Status { status: 500.., .. }
                | StoreError::Status { status: 429, .. }
        )
    }

    /// The watch's history is gone: read the prefix again, then watch from the read + 1.
    pub fn needs_relist(&self) -> bool {
        matches!(self, StoreError::Compacted(_))
    }

    /// The watch ended but the store answered: open a new one from the last revision + 1.
    pub fn needs_rewatch(&self) -> bool {
        matches!(self, StoreError::WatchSilent(_) | StoreError::WatchCanceled(_))
    }

    /// etcd refused the token (expired, lost in a member restart, or the auth store changed):
    /// authenticate again and retry once, as etcd's own client does.
    pub(super) fn is_stale_token(&self) -> bool {
        let StoreError::Status { body, .. } = self else { return false };
        ["invalid auth token", "revision of auth store is old", "user name is empty"].iter().any(|m| body.contains(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: u16) -> StoreError {
        StoreError::Status { status: s, body: String::new() }
    }

    #[test]
    fn connection_errors_5xx_and_429_fail_over_other_4xx_do_not() {
        assert!(StoreError::Unreachable("refused".into()).fails_over());
        for s in [500, 502, 503, 504, 429] {
            assert!(status(s).fails_over(), "{s}");
        }
        for s in [400, 401, 403, 404, 409] {
            assert!(!status(s).fails_over(), "{s}");
        }
        assert!(!StoreError::Compacted(5).fails_over());
    }

    #[test]
    fn compaction_and_silence_are_not_outages() {
        assert!(!StoreError::Compacted(5).is_outage() && StoreError::Compacted(5).needs_relist());
        let silent = StoreError::WatchSilent(Duration::from_secs(1));
        assert!(!silent.is_outage() && silent.needs_rewatch());
        assert!(StoreError::Unreachable(String::new()).is_outage() && status(503).is_outage());
        assert!(!status(400).is_outage());
    }
}
