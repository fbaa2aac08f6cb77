//! The rollout state of one service that every replica of a fleet agrees on. It lives at
//! `{prefix}/services/{name}` and changes only by compare-and-swap on the key's revision, so
//! two replicas writing at once never lose an update silently: the loser sees the winner's
//! value and [`rebase`]s onto it.

use serde::{Deserialize, Serialize};

/// What a replica needs to route a service exactly like every other replica.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SharedService {
    /// The color every replica sends traffic to when no candidate does (`None` in states
    /// written before colors alternated: blue).
    #[serde(default)]
    pub live: Option<crate::Color>,
    /// The idle color the candidate was deployed into; `None` once its plan completed.
    #[serde(default)]
    pub candidate: Option<crate::Color>,
    /// The candidate's release the state belongs to; a replica running another ignores it.
    pub release: Option<String>,
    /// Rolled back: green gets nothing until reset or a new release.
    pub latched: bool,
    /// Operator override of the candidate's share, percent.
    pub admin_weight: Option<f64>,
    /// Plan paused by an operator.
    pub paused: bool,
    /// Manual gate opened by an operator.
    pub gate_open: bool,
    /// Plan step index.
    pub step: Option<usize>,
    /// Start of the step (unix ms): a new leader resumes the hold instead of restarting it.
    pub step_since_ms: Option<u64>,
    /// Incident of the last rollback (the same id on every replica).
    pub incident: Option<String>,
    /// Resulting green weight, percent (informational: every replica derives it).
    pub weight: f64,
    /// `replica/nonce` of the writer: a replica skips its own echoes.
    pub writer: String,
    /// Write time (unix ms), for the apply-lag histogram.
    pub written_ms: u64,
}

impl SharedService {
    /// Equal in everything that routes (ignores who wrote it and when).
    pub fn same_rollout(&self, o: &SharedService) -> bool {
        let strip =
            |s: &SharedService| SharedService { writer: String::new(), written_ms: 0, weight: 0.0, ..s.clone() };
        strip(self) == strip(o)
    }
}

/// After losing a CAS to `remote`: what to write on top of it, if anything. The other writer's
/// change wins, except that a rollback is never undone by a concurrent write: a latch seen by
/// this replica is re-applied to the newer state (for the same release).
pub fn rebase(local: &SharedService, remote: &SharedService) -> Option<SharedService> {
    if local.release != remote.release || local.live != remote.live || !local.latched || remote.latched {
        return None;
    }
    Some(SharedService { latched: true, incident: local.incident.clone(), weight: 0.0, ..remote.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(latched: bool, step: Option<usize>) -> SharedService {
        SharedService { release: Some("r1".into()), latched, step, ..Default::default() }
    }

    #[test]
    fn the_other_writer_wins_unless_we_latched() {
        assert_eq!(rebase(&state(false, Some(1)), &state(false, Some(2))), None);
        let r = rebase(&state(true, Some(1)), &state(false, Some(2))).unwrap();
        assert!(r.latched);
        assert_eq!(r.step, Some(2), "the winner's plan position is kept");
    }

    #[test]
    fn a_latch_is_not_written_twice_nor_onto_another_release() {
        assert_eq!(rebase(&state(true, None), &state(true, None)), None);
        let other = SharedService { release: Some("r2".into()), ..Default::default() };
        assert_eq!(rebase(&state(true, None), &other), None);
    }

    #[test]
    fn writer_and_time_do_not_make_a_change() {
        let a = SharedService { writer: "a".into(), written_ms: 1, ..state(false, Some(1)) };
        assert!(a.same_rollout(&state(false, Some(1))));
        assert!(!a.same_rollout(&state(false, Some(2))));
    }
}
