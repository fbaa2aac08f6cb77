//! The runtime's writes. Every service write is an intent (`Write`: the replica's state and
//! the store state it was derived from) rebased on the store's current value by
//! [`rebase`](super::shared::rebase) before each try, so neither a lost CAS nor a reconnect
//! turns it into a blind overwrite. A plan move made while leading is fenced by the leader key:
//! if this process lost the role, the write fails and it says so.

use super::etcd::txn::Fenced;
use super::etcd::StoreError;
use super::link::{Claim, FromFleet, ToFleet, Write};
use super::runtime::Runtime;
use super::shared::{rebase, SharedService};

/// How many times a write is rebased onto a newer state before giving up until the next event.
const CAS_TRIES: usize = 8;

impl Runtime {
    /// Takes a write while the store is away: it is written (rebased) when it is back.
    pub(super) fn offline(&mut self, msg: ToFleet) {
        match msg {
            ToFleet::Publish(w) => self.queue(w),
            ToFleet::Claim(w, reply) => {
                self.queue(w);
                let _ = reply.send(Claim::Offline);
            }
            ToFleet::Incident(id, v) => self.pending_incidents.push((id, v)),
            ToFleet::Window(..) => {}
        }
    }

    /// Keeps the latest intent per service, on the oldest base not yet written: the intent
    /// is everything changed since the store state this replica last had.
    fn queue(&mut self, mut w: Write) {
        self.seen.insert(w.service.clone(), w.seq);
        if let Some(old) = self.pending.remove(&w.service) {
            w.base = old.base;
            w.lead |= old.lead;
        }
        self.pending.insert(w.service.clone(), w);
    }

    pub(super) async fn on_message(&mut self, m: ToFleet) -> Result<(), StoreError> {
        match m {
            ToFleet::Publish(w) => {
                let service = w.service.clone();
                self.queue(w);
                self.write(&service).await.map(|_| ())
            }
            ToFleet::Claim(w, reply) => {
                let service = w.service.clone();
                self.queue(w);
                let r = self.write(&service).await;
                let _ = reply.send(match &r {
                    Ok(None) => Claim::Won,
                    Ok(Some(remote)) => Claim::Lost(remote.clone()),
                    Err(_) => Claim::Offline,
                });
                r.map(|_| ())
            }
            ToFleet::Window(service, v) => {
                // Best effort: the next interval brings a newer one, and a slow put is not an
                // outage (the keep-alive's renew deadline decides that).
                let key = format!("{}/windows/{}/{service}", self.cfg.prefix, self.cfg.replica);
                if let Err(e) = self.etcd.put(&key, v.to_string().as_bytes(), self.lease).await {
                    tracing::debug!(error = %e, service, "window summary not published");
                }
                Ok(())
            }
            ToFleet::Incident(id, v) => {
                self.pending_incidents.push((id, v));
                self.flush_incidents().await
            }
        }
    }

    pub(super) async fn flush_pending(&mut self) -> Result<(), StoreError> {
        let services: Vec<String> = self.pending.keys().cloned().collect();
        for s in services {
            self.write(&s).await?;
        }
        Ok(())
    }

    /// Writes the incidents decided here. One decided while cut off, for a rollback the fleet
    /// latched with another incident, is not written: it is merged into the fleet's.
    pub(super) async fn flush_incidents(&mut self) -> Result<(), StoreError> {
        while let Some((id, v)) = self.pending_incidents.first().cloned() {
            let service = v["service"].as_str().unwrap_or_default();
            let fleet = self.states.get(service).filter(|s| s.latched).and_then(|s| s.incident.clone());
            match fleet {
                Some(theirs) if theirs != id => {
                    tracing::warn!(ours = %id, %theirs, service, "rollback decided here while cut off: merged into the fleet's incident");
                    let _ = self.out.send(FromFleet::Merged { ours: id, theirs }).await;
                }
                _ => {
                    self.etcd.put(&self.key("incidents", &id), v.to_string().as_bytes(), 0).await?;
                    let _ = self.out.send(FromFleet::Owned(id)).await;
                }
            }
            self.pending_incidents.remove(0);
        }
        Ok(())
    }

    /// Writes the pending intent of `service`. `Ok(None)` = it landed (rebased on the store's
    /// state); `Ok(Some(remote))` = nothing of it was left to write: the store's state stands.
    pub(super) async fn write(&mut self, service: &str) -> Result<Option<SharedService>, StoreError> {
        let key = self.key("services", service);
        for _ in 0..CAS_TRIES {
            let Some(w) = self.pending.get(service) else { return Ok(None) };
            let remote = self.states.get(service).cloned();
            let Some(mut next) = rebase(w.base.as_ref(), &w.state, remote.as_ref()) else {
                return Ok(self.dropped(service, remote).await);
            };
            next.writer = w.state.writer.clone();
            next.written_ms = w.state.written_ms;
            next.weight = next.planned_share().filter(|_| !next.latched).unwrap_or(0.0);
            let moves = remote.as_ref().is_none_or(|r| next.moves_plan(r));
            let fence = match (w.lead && moves, self.leader_rev) {
                (false, _) => None,
                (true, Some(rev)) => Some(rev),
                (true, None) => {
                    self.refuse_plan_move(service, "it does not hold the leader key");
                    continue;
                }
            };
            let leader_key = format!("{}/leader", self.cfg.prefix);
            let expect = self.revisions.get(service).copied().unwrap_or(0);
            let bytes = serde_json::to_vec(&next).expect("state serialises");
            match self.etcd.fenced_cas(&key, &bytes, expect, fence.map(|r| (leader_key.as_str(), r))).await? {
                Fenced::Written(rev) => {
                    self.pending.remove(service);
                    self.revisions.insert(service.to_string(), rev);
                    self.states.insert(service.to_string(), next.clone());
                    let seq = self.seq(service);
                    let _ =
                        self.out.send(FromFleet::Confirmed { service: service.to_string(), state: next, seq }).await;
                    return Ok(None);
                }
                Fenced::Conflict(now) => {
                    self.revisions.insert(service.to_string(), now.as_ref().map_or(0, |kv| kv.mod_revision));
                    match now.and_then(|kv| serde_json::from_slice::<SharedService>(&kv.value).ok()) {
                        Some(s) => self.states.insert(service.to_string(), s),
                        None => self.states.remove(service),
                    };
                }
                Fenced::Fenced(holder) => {
                    self.leader_rev = None;
                    let who = holder.map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                    self.set_view(|v| v.leader = who);
                    self.refuse_plan_move(service, "its leadership ended (fenced by the leader key)");
                }
            }
        }
        Ok(None)
    }

    /// A stale leader's plan move: dropped, and logged; whatever else the intent holds (a
    /// latch, an operator's pause) is written without it.
    fn refuse_plan_move(&mut self, service: &str, why: &str) {
        tracing::warn!(service, replica = %self.cfg.replica, "plan write refused: {why}");
        metrics::counter!(crate::stats::names::FLEET_FENCED_TOTAL).increment(1);
        let Some(w) = self.pending.get_mut(service) else { return };
        w.lead = false;
        match &w.base {
            Some(b) => {
                let b = b.clone();
                let s = &mut w.state;
                (s.live, s.candidate, s.release) = (b.live, b.candidate, b.release.clone());
                (s.step, s.step_since_ms, s.plan) = (b.step, b.step_since_ms, b.plan.clone());
            }
            None => {
                self.pending.remove(service);
            }
        }
    }

    /// Nothing of the intent is left: the store's state stands and the loop applies it.
    async fn dropped(&mut self, service: &str, remote: Option<SharedService>) -> Option<SharedService> {
        self.pending.remove(service);
        let remote = remote?;
        let (s, seq) = (service.to_string(), self.seq(service));
        let _ = self.out.send(FromFleet::State { service: s, state: remote.clone(), force: true, seq }).await;
        Some(remote)
    }
}
