//! Hook points of fleet mode in the control loop (see `crate::fleet`). Each is a no-op without
//! `[fleet]`. The loop still decides and swaps by itself; these functions only say what the
//! fleet shares, what may change while the store is away, and who may move a plan forward.

use super::incident::Incident;
use super::{Action, CommandError, Controller};
use crate::fleet::{Claim, FromFleet, SharedService};
use crate::route::Weight;
use crate::stats::window::{measure_merged, SummaryReport, WindowReport};
use crate::stats::{names, Measurement, WindowSummary};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

impl Controller {
    /// The shared state of service `i` as this replica sees it.
    fn shared_of(&self, i: usize) -> SharedService {
        let s = &self.services[i];
        SharedService {
            release: s.cfg.green.release.as_deref().map(String::from),
            latched: s.latched,
            admin_weight: s.admin_weight.map(|w| w.percent()),
            paused: s.paused,
            gate_open: s.gate_open,
            step: s.step,
            step_since_ms: s
                .step
                .map(|_| s.step_since_wall.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64),
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

    /// Whether this replica may start and advance plans: always alone; in a fleet only the
    /// leader, and only while it reaches the store (so no green weight rises during an outage).
    pub(super) fn fleet_drives(&self) -> bool {
        self.fleet.as_ref().is_none_or(|l| {
            let v = l.view.load();
            v.synced && v.leads()
        })
    }

    /// A replica that has not read the shared state yet serves blue only.
    pub(super) fn fleet_holds_blue(&self) -> bool {
        self.fleet.as_ref().is_some_and(|l| !l.view.load().synced)
    }

    /// HOOK(fleet) in `refresh_weights`: the most green service `i` may get, from the state
    /// the store holds (None = alone, no cap). A raise decided here takes effect when the
    /// store confirms it; a latch or any lowering takes effect at once.
    pub(super) fn fleet_cap(&self, i: usize) -> Option<Weight> {
        let link = self.fleet.as_ref()?;
        let s = &self.services[i];
        let Some(st) = link.confirmed.get(&*s.cfg.name) else { return Some(Weight::ZERO) };
        if st.latched || st.release.as_deref() != s.cfg.green.release.as_deref() {
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

    /// Refuses actions that could raise green while the fleet cannot agree on them.
    pub(super) fn fleet_refuses(&self, action: Action) -> Option<CommandError> {
        let v = self.fleet.as_ref()?.view.load();
        let lowers = matches!(action, Action::Rollback | Action::Pause | Action::Weight(Weight::ZERO));
        let agreed = v.store_up && v.synced;
        (!lowers && !agreed).then(|| {
            CommandError::Conflict("fleet store unreachable: only rollback, pause and weight 0 act now".into())
        })
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
                        "Switchyard cannot reach the fleet store: last weights kept, green never raised, local rollbacks only".into()
                    },
                    service: None,
                    fields: self.fleet.as_ref().map(|l| l.view.load().to_json()).unwrap_or_default(),
                });
                self.publish();
            }
            FromFleet::Synced => {
                tracing::info!("fleet state synced; green may take traffic");
                self.after_change().await;
            }
        }
    }

    async fn apply_shared(&mut self, service: &str, st: SharedService, force: bool, seq: u64) {
        let Some(i) = self.index(service) else { return };
        let Some(link) = self.fleet.as_mut() else { return };
        let s = &mut self.services[i];
        let own = st.writer == link.writer;
        if (!force && own) || !link.current(service, seq) || st.release.as_deref() != s.cfg.green.release.as_deref() {
            return;
        }
        link.applied(service, st.clone());
        let was_latched = s.latched;
        s.latched = st.latched;
        s.admin_weight = st.admin_weight.and_then(|w| Weight::from_percent(w).ok());
        s.paused = st.paused;
        s.gate_open = st.gate_open;
        s.incident = st.incident.clone();
        let since = st.step_since_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
        if s.step != st.step || (st.step.is_some() && since != Some(s.step_since_wall)) {
            s.step = st.step.map(|x| x.min(s.cfg.plan.steps.len() - 1));
            s.healthy_at_step = 0;
            if let Some(wall) = since {
                let ago = SystemTime::now().duration_since(wall).unwrap_or_default();
                s.step_since_wall = wall;
                s.step_since = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
            }
        }
        let key = s.key;
        if was_latched && !s.latched {
            s.pending_report = None;
            s.fresh_analysis();
            self.window.forget(key).await;
        }
        self.after_change().await;
        if st.written_ms > 0 && !own {
            let lag = crate::fleet::unix_ms().saturating_sub(st.written_ms);
            metrics::histogram!(names::FLEET_APPLY_LAG).record(lag as f64 / 1e3);
        }
    }
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
