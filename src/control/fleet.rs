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
use crate::alerts::Alert;
use crate::fleet::{Claim, FromFleet, SharedService};
use crate::route::Weight;
use crate::stats::window::{measure_merged, SummaryReport, WindowReport};
use crate::stats::{names, Measurement, WindowSummary};
use crate::Color;
use std::time::{Duration, UNIX_EPOCH};
use tokio::time::Instant;

/// What the store said about a rollback this replica decided.
#[derive(Debug, PartialEq)]
pub(super) enum Claimed {
    /// Our latch landed first (or there is no fleet): we own the incident and the alert.
    Ours,
    /// Another replica latched first: adopt its incident, send nothing.
    Theirs(SharedService),
    /// The store did not answer: decided locally; the alert waits for the store.
    Unknown,
}

/// Alerts of a rollback decided while the store was away.
pub(super) struct HeldAlerts {
    incident: String,
    until: Instant,
    alerts: Vec<Alert>,
}

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
        let stored = self.fleet.as_ref().and_then(|l| l.confirmed.get(&*s.cfg.name));
        let release = candidate_release(s);
        let same = stored.filter(|st| st.live == Some(s.live) && st.candidate == c.map(|c| c.color));
        // The fleet's plan is set when its candidate enters the store; a replica with other
        // steps never writes its own over it.
        let plan = match same.filter(|st| st.release == release && !st.plan.is_empty()) {
            Some(st) => st.plan.clone(),
            None => s.cfg.plan.steps.iter().map(|w| w.percent()).collect(),
        };
        SharedService {
            live: Some(s.live),
            candidate: c.map(|c| c.color),
            // After a completion the store names the release that became live; keep it.
            release: release.or_else(|| same.filter(|_| c.is_none()).and_then(|st| st.release.clone())),
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
            plan,
            resets: self.fleet_resets(i),
            ..Default::default()
        }
    }

    /// Operator resets of service `i` this replica knows of: the store's count, plus one when
    /// the latch it applied is gone here (an operator reset on this replica).
    fn fleet_resets(&self, i: usize) -> u64 {
        let s = &self.services[i];
        let Some(st) = self.fleet.as_ref().and_then(|l| l.confirmed.get(&*s.cfg.name)) else { return 0 };
        let same = st.release == candidate_release(s) && st.live == Some(s.live);
        let lifted = same && st.latched && s.candidate.as_ref().is_some_and(|c| !c.latched);
        st.resets + u64::from(lifted)
    }

    /// HOOK(fleet) after every commit: hand changed shared states to the store.
    pub(super) fn fleet_publish(&mut self) {
        if self.fleet.as_ref().is_none_or(|l| !l.synced) {
            return;
        }
        let lead = self.fleet_drives();
        for i in 0..self.services.len() {
            let st = self.shared_of(i);
            let name = self.services[i].cfg.name.to_string();
            // A replica whose config disagrees only follows (its rollbacks still go out as claims):
            // what it would write is its own plan, not an intent.
            if let Some(link) = self.fleet.as_mut().filter(|l| !l.skew.contains(&name)) {
                link.publish(&name, st, lead);
            }
        }
    }

    /// Whether this replica may start, advance and complete plans: always alone; in a fleet only
    /// the leader, and only while it reaches the store (so no candidate share rises during an
    /// outage).
    pub(super) fn fleet_drives(&self) -> bool {
        self.fleet.as_ref().is_none_or(|l| l.synced && l.leads())
    }

    /// Whether this replica may judge, advance and complete service `i`'s plan: it drives, and
    /// its config agrees with the fleet's state (the same release and plan).
    pub(super) fn fleet_drives_service(&self, i: usize) -> bool {
        self.fleet_drives() && self.fleet.as_ref().is_none_or(|l| !l.skew.contains(&*self.services[i].cfg.name))
    }

    /// A replica that has not read the shared state yet serves its live color only.
    pub(super) fn fleet_holds_live(&self) -> bool {
        self.fleet.as_ref().is_some_and(|l| !l.synced)
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
            // The fleet's plan, not this replica's config: every replica routes the same share.
            crate::config::Mode::Progressive => match st.planned_share() {
                Some(p) => Weight::from_percent(p).unwrap_or(Weight::ZERO),
                None => st.step.map_or(Weight::ZERO, |x| s.cfg.plan.steps[x.min(s.cfg.plan.steps.len() - 1)]),
            },
            crate::config::Mode::Manual => s.cfg.green_weight,
        })
    }

    /// Refuses actions that could raise the candidate while the fleet cannot agree on them.
    pub(super) fn fleet_refuses(&self, action: Action) -> Option<CommandError> {
        let link = self.fleet.as_ref()?;
        let lowers = matches!(action, Action::Rollback | Action::Pause | Action::Weight(Weight::ZERO));
        let agreed = link.view.load().store_up && link.synced;
        (!lowers && !agreed).then(|| Conflict::FleetStoreUnreachable.into())
    }

    /// HOOK(fleet) in a rollback, after the local swap: the first replica whose latch lands
    /// owns the incident and the alert.
    pub(super) async fn fleet_claim(&mut self, i: usize) -> Claimed {
        let st = self.shared_of(i);
        let name = self.services[i].cfg.name.to_string();
        let Some(link) = self.fleet.as_mut() else { return Claimed::Ours };
        match tokio::time::timeout(Duration::from_secs(1), link.claim(&name, st)).await {
            Ok(Claim::Won) => Claimed::Ours,
            Ok(Claim::Lost(remote)) => Claimed::Theirs(remote),
            Ok(Claim::Offline) | Err(_) => Claimed::Unknown,
        }
    }

    /// What every replica that reports service `i`'s rollback puts in its alerts' `dedup_key`:
    /// the service, the candidate's release and the fleet's reset count (alone: the incident).
    pub(super) fn rollback_dedup_key(&self, i: usize, incident: &str) -> String {
        let s = &self.services[i];
        if self.fleet.is_none() {
            return format!("{}/{incident}", s.cfg.name);
        }
        let release = candidate_release(s).unwrap_or_else(|| "-".into());
        format!("{}/{release}/{}", s.cfg.name, self.fleet_resets(i))
    }

    /// Sends a rollback's alerts, or holds them while the store cannot say whose rollback it
    /// is (`unknown`): a replica cut off from the store that rolled back on its own evidence
    /// may be rolling back what the fleet already rolled back and alerted. On heal the store
    /// decides (`FromFleet::Owned`: send; `FromFleet::Merged`: the fleet's owner alerted, drop);
    /// after `fleet.alert_hold` they go anyway, with the shared `dedup_key`.
    pub(super) fn send_rollback_alerts(&mut self, incident: &str, alerts: Vec<Alert>, unknown: bool) {
        let hold = self.cfg.fleet.as_ref().map_or(Duration::ZERO, |f| f.alert_hold);
        if !unknown || hold.is_zero() {
            alerts.into_iter().for_each(|a| self.alerter.send(a));
            return;
        }
        tracing::warn!(
            incident,
            hold_ms = hold.as_millis() as u64,
            "rollback alert held until the fleet store says whose rollback this is"
        );
        self.held_alerts.push(HeldAlerts { incident: incident.to_string(), until: Instant::now() + hold, alerts });
    }

    /// The store took incident `id` as the fleet's: its held alerts go now.
    fn release_held_alerts(&mut self, id: &str) {
        let now: Vec<_> = self.held_alerts.extract_if(.., |h| h.incident == id).collect();
        for h in now {
            tracing::info!(incident = %h.incident, "rollback alert sent: the fleet store took this replica's latch");
            h.alerts.into_iter().for_each(|a| self.alerter.send(a));
        }
    }

    /// Sends the held alerts whose `fleet.alert_hold` ran out (called every tick): a store that
    /// stays away must not keep a rollback from being paged.
    pub(super) fn release_overdue_alerts(&mut self) {
        let now = Instant::now();
        let due: Vec<_> = self.held_alerts.extract_if(.., |h| h.until <= now).collect();
        for h in due {
            tracing::warn!(incident = %h.incident, "rollback alert sent unconfirmed: the fleet store did not answer within fleet.alert_hold");
            for mut a in h.alerts {
                a.text +=
                    " (fleet store unreachable: another replica may report this rollback under the same dedup_key)";
                self.alerter.send(a);
            }
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
                // Only a confirmation of this replica's latest write is its base: an older one
                // is followed by the answer to the newer write, and taking it as the base now
                // would turn the local state (not yet brought to it) into a false intent.
                if let Some(link) = self.fleet.as_mut().filter(|l| l.current(&service, seq)) {
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
                    dedup_key: None,
                });
                self.publish();
            }
            FromFleet::Synced => {
                tracing::info!("fleet state synced; candidates may take traffic");
                if let Some(link) = self.fleet.as_mut() {
                    link.synced = true;
                }
                self.commit().await;
            }
            FromFleet::Owned(id) => self.release_held_alerts(&id),
            FromFleet::Merged { ours, theirs } => {
                if self.held_alerts.extract_if(.., |h| h.incident == ours).count() > 0 {
                    tracing::warn!(%ours, %theirs, "rollback alert not sent: the fleet latched this rollback first and its replica alerted");
                }
                self.incidents.retain(|i| i.id != ours);
                for s in self.services.iter_mut().filter(|s| s.incident.as_deref() == Some(ours.as_str())) {
                    s.incident = Some(theirs.clone());
                }
                self.publish();
            }
            FromFleet::Rewound(why) => self.alerter.send(crate::alerts::Alert {
                severity: crate::alerts::Severity::High,
                alert: "fleet_store_rewound".into(),
                text: format!("Switchyard: {why}"),
                service: None,
                fields: self.fleet.as_ref().map(|l| serde_json::json!(l.status())).unwrap_or_default(),
                dedup_key: None,
            }),
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
        // A plan completed in the store (by the leader): the candidate becomes live here too,
        // if it is the same release.
        let live = st.live.unwrap_or(Color::Blue);
        let same_release = st.release == candidate_release(s);
        if live != s.live && same_release && s.candidate.as_ref().is_some_and(|c| c.color == live) {
            s.complete();
        }
        let skewed = skew_of(s, &st);
        set_skew(link, &self.alerter, &s.cfg.name, skewed.clone());
        if live != s.live || !same_release && s.candidate.is_some() {
            // Another release or another live color than this replica's config: follow by
            // driving nothing and routing the live color only (reported as skew).
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
        // The hold runs from when this replica saw the step start, on its own monotonic clock:
        // the writer's wall-clock stamp only identifies the step entry (another host's clock
        // running ahead must not shorten a hold).
        c.step_since = Instant::now();
        if let Some(wall) = since {
            c.step_since_wall = wall;
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
        if !link.leads() {
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
        self.fleet.as_ref().is_some_and(|l| l.view.load().store_up && l.synced && !l.leads())
    }
}

/// How service `s`'s config disagrees with the fleet's state `st`, if it does: another release
/// for the running candidate, or another plan.
fn skew_of(s: &ServiceControl, st: &SharedService) -> Option<String> {
    let live = st.live.unwrap_or(Color::Blue);
    if live != s.live {
        return Some(format!("{} live here, {} in the fleet", s.live.as_str(), live.as_str()));
    }
    st.candidate?;
    let c = s.candidate.as_ref()?;
    let mine = candidate_release(s);
    if st.release != mine {
        return Some(format!("release {:?} here, {:?} in the fleet", mine, st.release));
    }
    let plan: Vec<f64> = s.cfg.plan.steps.iter().map(|w| w.percent()).collect();
    let progressive = s.cfg.mode == crate::config::Mode::Progressive && c.admin_share.is_none();
    (progressive && !st.plan.is_empty() && st.plan != plan)
        .then(|| format!("steps {plan:?} here, {:?} in the fleet", st.plan))
}

/// Records service `name`'s skew (metric, `/status`) and alerts when it starts.
fn set_skew(link: &mut crate::fleet::Link, alerter: &crate::alerts::Alerter, name: &str, skew: Option<String>) {
    metrics::gauge!(names::FLEET_CONFIG_SKEW, "service" => name.to_string()).set(if skew.is_some() {
        1.0
    } else {
        0.0
    });
    let Some(why) = skew else {
        link.skew.remove(name);
        return;
    };
    if link.skew.insert(name.to_string()) {
        tracing::warn!(service = name, %why, "config differs from the fleet's: following the store, driving nothing");
        alerter.send(crate::alerts::Alert {
            severity: crate::alerts::Severity::Medium,
            alert: "fleet_config_skew".into(),
            text: format!("Switchyard replica {} follows the fleet's plan for {name}: {why}", link.view.load().replica),
            service: Some(name.to_string()),
            fields: serde_json::json!({"replica": link.view.load().replica, "skew": why}),
            dedup_key: None,
        });
    }
}

/// HOOK(fleet) in `judge` on `Complete`: in a fleet the plan completes in the store first (a
/// fenced leader write that never lands past a latch); every replica, this one included,
/// completes when it applies that state.
pub(super) fn complete_in_store(link: &mut crate::fleet::Link, s: &ServiceControl) {
    let Some(c) = s.candidate.as_ref() else { return };
    let st = SharedService {
        live: Some(c.color),
        candidate: None,
        release: candidate_release(s),
        incident: s.incident.clone(),
        resets: link.confirmed.get(&*s.cfg.name).map_or(0, |b| b.resets),
        weight: 100.0,
        ..Default::default()
    };
    tracing::info!(service = %s.cfg.name, color = c.color.as_str(), "plan complete: asking the fleet store to make the candidate live");
    link.publish(&s.cfg.name, st, true);
}
