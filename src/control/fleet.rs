//! Hook points of fleet mode in the control loop (see `crate::fleet`). Each is a no-op without
//! `[fleet]`. The loop still decides and swaps by itself; these functions only say what the
//! fleet shares, what may change while the store is away, and who may move a plan forward.
//!
//! With alternating colors the shared state names the live color and the candidate (color and
//! release); a share is always the candidate's, converted to green's weight only in
//! `refresh_weights`. "Raise" means more traffic to the candidate, whichever color it is in.

use super::candidate::Candidate;
use super::incident::Incident;
use super::service::{pool_cfg, ServiceControl};
use super::{Action, CommandError, Conflict, Controller};
use crate::fleet::{Claim, FromFleet, SharedService};
use crate::route::Weight;
use crate::stats::window::{measure_merged, SummaryReport, WindowReport};
use crate::stats::{names, Measurement, WindowSummary};
use crate::Color;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The candidate's release, as the shared state names it.
fn candidate_release(s: &ServiceControl) -> Option<String> {
    let c = s.candidate.as_ref()?;
    pool_cfg(&s.cfg, c.color).release.as_deref().map(String::from)
}

impl Controller {
    /// The shared state of service `i` as this replica sees it.
    fn shared_of(&self, i: usize) -> SharedService {
        let s = &self.services[i];
        let c = s.candidate.as_ref();
        SharedService {
            live: Some(s.live),
            candidate: c.map(|c| c.color),
            release: candidate_release(s),
            latched: c.is_some_and(|c| c.latched),
            admin_weight: c.and_then(|c| c.admin_share).map(|w| w.percent()),
            paused: c.is_some_and(|c| c.paused),
            gate_open: c.is_some_and(|c| c.gate_open),
            step: c.and_then(|c| c.step),
            step_since_ms: c
                .filter(|c| c.step.is_some())
                .map(|c| c.step_since_wall.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64),
            incident: s.incident.clone(),
            weight: s.weight.percent(),
            ..Default::default()
        }
    }

    /// HOOK(fleet) after every commit: hand changed shared states to the store.
    pub(super) fn fleet_publish(&mut self) {
        if self.fleet.as_ref().is_none_or(|l| !l.view.load().synced) {
            return;
        }
        for i in 0..self.services.len() {
            let st = self.shared_of(i);
            let name = self.services[i].cfg.name.to_string();
            if let Some(link) = self.fleet.as_mut() {
                link.publish(&name, st);
            }
        }
    }

    /// Whether this replica may start, advance and complete plans: always alone; in a fleet only
    /// the leader, and only while it reaches the store (so no candidate share rises during an
    /// outage).
    pub(super) fn fleet_drives(&self) -> bool {
        self.fleet.as_ref().is_none_or(|l| {
            let v = l.view.load();
            v.synced && v.leads()
        })
    }

    /// A replica that has not read the shared state yet serves its live color only.
    pub(super) fn fleet_holds_live(&self) -> bool {
        self.fleet.as_ref().is_some_and(|l| !l.view.load().synced)
    }

    /// HOOK(fleet) in `refresh_weights`: the largest share service `i`'s candidate may get, from
    /// the state the store confirmed (None = alone, no cap). A raise decided here takes effect
    /// when the store confirms it; a latch or any lowering takes effect at once.
    pub(super) fn fleet_cap(&self, i: usize) -> Option<Weight> {
        let link = self.fleet.as_ref()?;
        let s = &self.services[i];
        let c = s.candidate.as_ref()?;
        let Some(st) = link.confirmed.get(&*s.cfg.name) else { return Some(Weight::ZERO) };
        let same = st.release == candidate_release(s)
            && st.live.unwrap_or(Color::Blue) == s.live
            && st.candidate.is_none_or(|x| x == c.color);
        if st.latched || !same {
            return Some(Weight::ZERO);
        }
        if let Some(w) = st.admin_weight {
            return Some(Weight::from_percent(w).unwrap_or(Weight::ZERO));
        }
        Some(match s.cfg.mode {
            crate::config::Mode::Progressive => {
                st.step.map_or(Weight::ZERO, |x| s.cfg.plan.steps[x.min(s.cfg.plan.steps.len() - 1)])
            }
            crate::config::Mode::Manual => s.cfg.green_weight,
        })
    }

    /// Refuses actions that could raise the candidate while the fleet cannot agree on them.
    pub(super) fn fleet_refuses(&self, action: Action) -> Option<CommandError> {
        let v = self.fleet.as_ref()?.view.load();
        let lowers = matches!(action, Action::Rollback | Action::Pause | Action::Weight(Weight::ZERO));
        let agreed = v.store_up && v.synced;
        (!lowers && !agreed).then(|| Conflict::FleetStoreUnreachable.into())
    }

    /// HOOK(fleet) in a rollback, after the local swap: the first replica whose latch lands
    /// owns the incident and the alert. Returns the winner's state when another replica won.
    pub(super) async fn fleet_claim(&mut self, i: usize) -> Option<SharedService> {
        let st = self.shared_of(i);
        let name = self.services[i].cfg.name.to_string();
        let link = self.fleet.as_mut()?;
        match tokio::time::timeout(Duration::from_secs(1), link.claim(&name, st)).await {
            Ok(Claim::Lost(remote)) => Some(remote),
            _ => None,
        }
    }

    /// HOOK(fleet) when an incident is stored locally: every replica's `/incidents` shows it.
    pub(super) fn fleet_incident(&self, inc: &Incident) {
        if let Some(link) = &self.fleet {
            link.incident(&inc.id, serde_json::to_value(inc).unwrap_or_default());
        }
    }

    /// HOOK(fleet) for store events.
    pub(super) async fn on_fleet(&mut self, ev: FromFleet) {
        match ev {
            FromFleet::State { service, state, force, seq } => self.apply_shared(&service, state, force, seq).await,
            FromFleet::Incident(v) => {
                if let Ok(inc) = serde_json::from_value::<Incident>(v) {
                    match self.incidents.iter_mut().find(|o| o.id == inc.id) {
                        Some(o) => *o = inc,
                        None => self.incidents.push(inc),
                    }
                    self.publish();
                }
            }
            FromFleet::Confirmed { service, state, seq } => {
                if let Some(link) = self.fleet.as_mut() {
                    link.confirmed.insert(service.clone(), state.clone());
                }
                // Brings this replica to exactly what the store took (a no-op unless a state
                // from another writer was applied in between).
                self.apply_shared(&service, state, true, seq).await;
            }
            FromFleet::Store(up) => {
                self.alerter.send(crate::alerts::Alert {
                    severity: if up { crate::alerts::Severity::Medium } else { crate::alerts::Severity::High },
                    alert: if up { "fleet_store_back" } else { "fleet_store_unreachable" }.into(),
                    text: if up {
                        "Switchyard fleet store reachable again; shared state re-read".into()
                    } else {
                        "Switchyard cannot reach the fleet store: last weights kept, candidates never raised, local rollbacks only".into()
                    },
                    service: None,
                    fields: self.fleet.as_ref().map(|l| serde_json::json!(l.view.load().status())).unwrap_or_default(),
                });
                self.publish();
            }
            FromFleet::Synced => {
                tracing::info!("fleet state synced; candidates may take traffic");
                self.commit().await;
            }
        }
    }

    async fn apply_shared(&mut self, service: &str, st: SharedService, force: bool, seq: u64) {
        let Some(i) = self.index(service) else { return };
        let Some(link) = self.fleet.as_mut() else { return };
        let s = &mut self.services[i];
        let own = st.writer == link.writer;
        if (!force && own) || !link.current(service, seq) {
            return;
        }
        // A plan completed on the leader: the candidate became live there, so it does here.
        let live = st.live.unwrap_or(Color::Blue);
        if live != s.live && s.candidate.as_ref().is_some_and(|c| c.color == live) {
            s.complete();
        }
        if live != s.live || st.release != candidate_release(s) {
            // Another release or another live color than this replica's config: not ours to apply.
            return;
        }
        link.applied(service, st.clone());
        s.incident = st.incident.clone();
        let unlatched = match s.candidate.as_mut() {
            Some(c) => apply_candidate(c, &st, s.cfg.plan.steps.len()),
            None => false,
        };
        let key = s.key;
        if unlatched {
            self.window.forget(key).await;
        }
        self.commit().await;
        if st.written_ms > 0 && !own {
            let lag = crate::fleet::unix_ms().saturating_sub(st.written_ms);
            metrics::histogram!(names::FLEET_APPLY_LAG).record(lag as f64 / 1e3);
        }
    }
}

/// Copies the shared candidate state; returns whether a latch was lifted (an operator reset
/// elsewhere), so the caller forgets the old measurements.
fn apply_candidate(c: &mut Candidate, st: &SharedService, steps: usize) -> bool {
    let was_latched = c.latched;
    if was_latched && !st.latched {
        c.reset();
    }
    c.latched = st.latched;
    c.admin_share = st.admin_weight.and_then(|w| Weight::from_percent(w).ok());
    c.paused = st.paused;
    c.gate_open = st.gate_open;
    let since = st.step_since_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
    if c.step != st.step || (st.step.is_some() && since != Some(c.step_since_wall)) {
        c.step = st.step.map(|x| x.min(steps - 1));
        c.healthy_at_step = 0;
        if let Some(wall) = since {
            let ago = SystemTime::now().duration_since(wall).unwrap_or_default();
            c.step_since_wall = wall;
            c.step_since = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
        }
    }
    was_latched && !c.latched
}

/// Windows older than this many intervals are left out of the merge (a replica that stopped
/// publishing without losing its lease yet).
const STALE_INTERVALS: u32 = 3;

impl Controller {
    /// HOOK(fleet) on tick: closes the window, with summaries for the fleet when in one.
    pub(super) async fn close_window(&self) -> Option<(WindowReport, SummaryReport)> {
        let c = &self.cfg.control;
        if self.fleet.is_some() {
            self.window.close_summarized(c.interval, c.window).await
        } else {
            self.window.close(c.interval, c.window).await.map(|r| (r, Vec::new()))
        }
    }

    /// HOOK(fleet) on tick: publishes service `i`'s summaries and, on the leader, returns the
    /// measurement of every live replica's window merged (the fleet judges one window).
    pub(super) fn fleet_window(&self, i: usize, summaries: &SummaryReport) -> Option<[Measurement; 2]> {
        let link = self.fleet.as_ref()?;
        let s = &self.services[i];
        let empty = Default::default();
        let own: &[WindowSummary; 2] = summaries.iter().find(|(k, _)| *k == s.key).map_or(&empty, |(_, v)| v);
        let view = link.view.load();
        if view.store_up {
            link.window(&s.cfg.name, serde_json::to_value(own).unwrap_or_default());
        }
        if !view.leads() {
            return None;
        }
        let fresh = self.cfg.control.interval * STALE_INTERVALS;
        let windows = link.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let others: Vec<[WindowSummary; 2]> = windows
            .iter()
            .filter(|((replica, service), (_, at))| {
                *replica != view.replica && **service == *s.cfg.name && at.elapsed() <= fresh
            })
            .filter_map(|(_, (v, _))| serde_json::from_value(v.clone()).ok())
            .collect();
        let merged = |c: usize| measure_merged(std::iter::once(&own[c]).chain(others.iter().map(|o| &o[c])));
        Some([merged(0), merged(1)])
    }

    /// Whether this replica leaves statistical judgment to the leader: in a fleet that it can
    /// reach and does not lead. Alone or cut off, it judges its own window.
    pub(super) fn fleet_defers(&self) -> bool {
        self.fleet.as_ref().is_some_and(|l| {
            let v = l.view.load();
            v.store_up && v.synced && !v.leads()
        })
    }
}
