//! The rollout state of one service that every replica of a fleet agrees on. It lives at
//! `{prefix}/services/{name}` and changes only by compare-and-swap on the key's revision. A
//! replica never writes its own view over the store's: it writes an *intent* (what it changed
//! since the store state it last applied, its `base`), and [`rebase`] replays that intent onto
//! whatever the store holds now — at the first try, after a lost CAS and after a reconnect.

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
    /// The candidate's release the state belongs to (after a completion: the release that
    /// became live). A replica configured with another release follows, never drives, it.
    pub release: Option<String>,
    /// Rolled back: the candidate gets nothing until reset or a new release.
    pub latched: bool,
    /// Operator override of the candidate's share, percent.
    pub admin_weight: Option<f64>,
    /// Plan paused by an operator.
    pub paused: bool,
    /// Manual gate opened by an operator.
    pub gate_open: bool,
    /// Plan step index into `plan` (the store's plan, not a replica's config).
    pub step: Option<usize>,
    /// Identifies the entry into the step (the writer's wall clock, unix ms). Only compared for
    /// equality: each replica times the hold from when it saw this value change (its own
    /// monotonic clock), never from another host's clock.
    pub step_since_ms: Option<u64>,
    /// Incident of the last rollback (the same id on every replica).
    pub incident: Option<String>,
    /// Resulting green weight, percent (informational: every replica derives it).
    pub weight: f64,
    /// The fleet's plan: the candidate's share at each step, percent. Every replica routes
    /// `plan[step]`, whatever its own config says.
    #[serde(default)]
    pub plan: Vec<f64>,
    /// Operator resets of this service so far: only a write carrying a higher count may lift a
    /// latch, so a stale, blank or replayed write never does.
    #[serde(default)]
    pub resets: u64,
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

    /// The same candidate (live color, candidate color and release).
    fn same_candidate(&self, o: &SharedService) -> bool {
        self.release == o.release && self.live == o.live && self.candidate == o.candidate
    }

    /// The candidate's share the fleet's plan gives at the stored step (percent), before any
    /// latch or operator weight; `None` without a plan or step.
    pub fn planned_share(&self) -> Option<f64> {
        self.step.and_then(|i| self.plan.get(i.min(self.plan.len().saturating_sub(1)))).copied()
    }

    /// Moves the plan (a leader's write): a step, a completion or a new plan.
    pub fn moves_plan(&self, o: &SharedService) -> bool {
        !self.same_candidate(o) || self.step != o.step || self.step_since_ms != o.step_since_ms || self.plan != o.plan
    }
}

/// What to write so that `local`'s intent lands on `remote` (the store's value now, `None` when
/// the key is absent); `base` is the store state `local` was derived from (`None`: a seed, or a
/// re-seed after the store lost its data). `None` = nothing to write: the store's value stands.
///
/// Rules, in order: a latch in the store stays unless the intent is a reset the store has not
/// seen (`resets` higher) or a new release replacing a finished or rolled-back one; a latch in
/// the intent is kept on any state of the same release not reset since; otherwise each field
/// the intent changed relative to `base` is applied to `remote`, and every other field is the
/// store's. Without a `base` of the store's candidate nothing but a latch is an intent, so a
/// write never carries a plan position its writer did not itself change.
pub fn rebase(
    base: Option<&SharedService>,
    local: &SharedService,
    remote: Option<&SharedService>,
) -> Option<SharedService> {
    let Some(remote) = remote else { return Some(local.clone()) };
    let mut out = if !local.same_candidate(remote) {
        replace(base, local, remote)?
    } else if local.resets > remote.resets {
        // An operator reset (or one on top of it) the store has not seen: the intent wins.
        local.clone()
    } else if remote.latched {
        return None;
    } else {
        // Without a base for the store's candidate (a seed meeting another seed, a replica that
        // has not applied this candidate yet) the intent is empty: taking the store's state as
        // the base would turn every field this replica merely has not caught up on (the plan
        // position above all) into a change. Only its latch is kept (below).
        let mut out = merge_fields(base.filter(|b| b.same_candidate(remote)).unwrap_or(local), local, remote);
        if local.resets < remote.resets {
            // A latch decided before a reset the store has seen belongs to the old attempt.
            (out.latched, out.incident) = (remote.latched, remote.incident.clone());
        }
        out
    };
    if local.latched && local.same_candidate(remote) && local.resets >= remote.resets && !out.latched {
        out = SharedService { latched: true, incident: local.incident.clone(), ..out };
    }
    out.resets = out.resets.max(remote.resets);
    (!out.same_rollout(remote)).then_some(out)
}

/// A state for another candidate than the store's: a new release replaces the store's only
/// when the store's is finished (no candidate) or rolled back, or when this replica completed
/// the store's own plan (the same release became live). Otherwise the store's plan stands.
fn replace(base: Option<&SharedService>, local: &SharedService, remote: &SharedService) -> Option<SharedService> {
    let completes = local.release == remote.release
        && remote.candidate.is_some()
        && local.live == remote.candidate
        && local.candidate.is_none()
        && base.is_some_and(|b| b.same_candidate(remote));
    if completes && !remote.latched {
        return Some(local.clone());
    }
    // The new candidate goes into the store's idle color: the same live color as the store's.
    let new_release =
        local.release != remote.release && local.live == remote.live && (remote.candidate.is_none() || remote.latched);
    let from_here = base.is_none_or(|b| !b.same_candidate(local));
    (new_release && from_here && local.candidate.is_some()).then(|| SharedService { resets: 0, ..local.clone() })
}

/// Three-way merge of the candidate's fields: what `local` changed since `base` wins.
fn merge_fields(base: &SharedService, local: &SharedService, remote: &SharedService) -> SharedService {
    let mut out = remote.clone();
    macro_rules! take {
        ($($f:ident),*) => { $( if local.$f != base.$f { out.$f = local.$f.clone(); } )* };
    }
    take!(latched, admin_weight, paused, gate_open, incident, plan);
    if local.step != base.step || local.step_since_ms != base.step_since_ms {
        out.step = local.step;
        out.step_since_ms = local.step_since_ms;
    }
    out.writer = local.writer.clone();
    out.written_ms = local.written_ms;
    out
}

#[cfg(test)]
mod tests;
