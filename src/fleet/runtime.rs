//! The task that owns the store connection. Per connection: grant a lease, register the
//! replica under it, read the whole prefix (deliver it, then `Synced`), watch from the read
//! revision + 1, keep the lease alive at TTL/3 and stand for leader whenever nobody leads.
//! Any failure marks the store unreachable and starts over; writes that could not be made
//! wait in `pending` and are rebased onto the fresh state when the store is back.

use super::etcd::{Cas, Etcd, Event, Kv, StoreError, Watch};
use super::link::{Claim, FleetView, FromFleet, ToFleet, Windows};
use super::shared::{rebase, SharedService};
use crate::config::FleetConfig;
use crate::stats::names;
use arc_swap::ArcSwap;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How many times a write is rebased onto a newer state before giving up until the next event.
const CAS_TRIES: usize = 8;

pub(super) struct Runtime {
    /// The store (etcd in production).
    etcd: Etcd,
    cfg: FleetConfig,
    out: mpsc::Sender<FromFleet>,
    view: Arc<ArcSwap<FleetView>>,
    /// Known `mod_revision` per service key: the CAS token of the next write.
    revisions: HashMap<String, i64>,
    /// Latest remote state per service, for rebasing a lost write.
    states: HashMap<String, SharedService>,
    /// Writes the store did not take yet (outage), latest per service.
    pending: HashMap<String, SharedService>,
    /// Sequence number of the latest local write taken, per service (see `Link::seq`).
    seen: HashMap<String, u64>,
    /// Incidents decided while the store was away, written when it is back.
    pending_incidents: Vec<(String, serde_json::Value)>,
    replicas: BTreeSet<String>,
    windows: Arc<Windows>,
    lease: i64,
    /// An outage was reported to the loop (so its end is reported too).
    announced_down: bool,
}

enum Stop {
    Shutdown,
    Lost(StoreError),
}

impl Runtime {
    pub(super) fn new(
        etcd: Etcd,
        cfg: FleetConfig,
        out: mpsc::Sender<FromFleet>,
        view: Arc<ArcSwap<FleetView>>,
        windows: Arc<Windows>,
    ) -> Runtime {
        Runtime {
            etcd,
            cfg,
            out,
            view,
            revisions: HashMap::new(),
            states: HashMap::new(),
            pending: HashMap::new(),
            seen: HashMap::new(),
            pending_incidents: Vec::new(),
            replicas: BTreeSet::new(),
            windows,
            lease: 0,
            announced_down: false,
        }
    }

    fn seq(&self, service: &str) -> u64 {
        self.seen.get(service).copied().unwrap_or(0)
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}/{kind}/{name}", self.cfg.prefix)
    }

    fn set_view(&self, f: impl FnOnce(&mut FleetView)) {
        let mut v = (**self.view.load()).clone();
        f(&mut v);
        metrics::gauge!(names::FLEET_STORE_UP).set(if v.store_up { 1.0 } else { 0.0 });
        metrics::gauge!(names::FLEET_LEADER).set(if v.leads() { 1.0 } else { 0.0 });
        metrics::gauge!(names::FLEET_REPLICAS).set(v.replicas.len() as f64);
        self.view.store(Arc::new(v));
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<ToFleet>, stop: CancellationToken) {
        loop {
            let r = tokio::select! {
                r = self.session(&mut rx) => r,
                _ = stop.cancelled() => Stop::Shutdown,
            };
            match r {
                Stop::Shutdown => break,
                Stop::Lost(e) => {
                    if self.view.load().store_up {
                        tracing::error!(error = %e, "fleet store unreachable: keeping the last weights, never raising green");
                        let _ = self.out.try_send(FromFleet::Store(false));
                        self.announced_down = true;
                    }
                    self.set_view(|v| v.store_up = false);
                    // Answer claims at once while down; keep their latches pending.
                    let until = tokio::time::Instant::now() + Duration::from_millis(250);
                    while let Ok(Some(msg)) = tokio::time::timeout_at(until, rx.recv()).await {
                        self.offline(msg);
                    }
                }
            }
        }
        if self.lease != 0 {
            // Frees leadership and membership at once instead of after the TTL.
            let _ = self.etcd.lease_revoke(self.lease).await;
        }
    }

    fn offline(&mut self, msg: ToFleet) {
        match msg {
            ToFleet::Publish(s, st, seq) => {
                self.seen.insert(s.clone(), seq);
                self.pending.insert(s, st);
            }
            ToFleet::Claim(s, st, seq, reply) => {
                self.seen.insert(s.clone(), seq);
                self.pending.insert(s, st);
                let _ = reply.send(Claim::Offline);
            }
            ToFleet::Incident(id, v) => self.pending_incidents.push((id, v)),
            ToFleet::Window(..) => {}
        }
    }

    /// One connected period; returns why it ended.
    async fn session(&mut self, rx: &mut mpsc::UnboundedReceiver<ToFleet>) -> Stop {
        let mut watch = match self.connect().await {
            Ok(w) => w,
            Err(e) => return Stop::Lost(e),
        };
        let mut keepalive = tokio::time::interval(self.cfg.lease_ttl / 3);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let r = tokio::select! {
                _ = keepalive.tick() => self.keep_alive().await,
                b = watch.next() => match b {
                    Ok(batch) => self.on_events(batch.revision, batch.events).await,
                    Err(e) => Err(e),
                },
                m = rx.recv() => match m {
                    Some(m) => self.on_message(m).await,
                    None => return Stop::Shutdown,
                },
            };
            if let Err(e) = r {
                return Stop::Lost(e);
            }
        }
    }

    async fn connect(&mut self) -> Result<Watch, StoreError> {
        self.lease = self.etcd.lease_grant(self.cfg.lease_ttl).await?;
        let me = self.cfg.replica.clone();
        self.etcd.put(&self.key("replicas", &me), me.as_bytes(), self.lease).await?;
        let prefix = format!("{}/", self.cfg.prefix);
        let (kvs, rev) = self.etcd.range_prefix(&prefix).await?;
        self.replicas.clear();
        let mut leader = None;
        for kv in &kvs {
            self.index(kv, &mut leader);
        }
        self.flush_pending().await?;
        while let Some((id, v)) = self.pending_incidents.first().cloned() {
            self.etcd.put(&self.key("incidents", &id), v.to_string().as_bytes(), 0).await?;
            self.pending_incidents.remove(0);
        }
        for kv in kvs.iter().filter(|kv| kv.key.starts_with(&self.key("incidents", ""))) {
            self.deliver_incident(kv).await;
        }
        let states: Vec<_> = self.states.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (service, state) in states {
            let seq = self.seq(&service);
            let _ = self.out.send(FromFleet::State { service, state, force: true, seq }).await;
        }
        let replicas = self.replicas.iter().cloned().collect();
        self.set_view(|v| {
            v.store_up = true;
            v.synced = true;
            v.leader = leader;
            v.replicas = replicas;
            v.revision = rev;
        });
        let _ = self.out.send(FromFleet::Synced).await;
        if std::mem::take(&mut self.announced_down) {
            let _ = self.out.send(FromFleet::Store(true)).await;
        }
        tracing::info!(revision = rev, replicas = self.replicas.len(), "fleet store synced");
        self.elect().await?;
        self.etcd.watch(&prefix, rev + 1).await
    }

    /// Records a key read at (re)connect.
    fn index(&mut self, kv: &Kv, leader: &mut Option<String>) {
        let rest = kv.key.strip_prefix(&self.cfg.prefix).unwrap_or_default();
        if let Some(name) = rest.strip_prefix("/services/") {
            if let Ok(st) = serde_json::from_slice::<SharedService>(&kv.value) {
                self.revisions.insert(name.to_string(), kv.mod_revision);
                self.states.insert(name.to_string(), st);
            }
        } else if let Some(name) = rest.strip_prefix("/replicas/") {
            self.replicas.insert(name.to_string());
        } else if rest == "/leader" {
            *leader = Some(String::from_utf8_lossy(&kv.value).into_owned());
        } else {
            self.set_window(rest, Some(&kv.value));
        }
    }

    /// Keeps `/windows/{replica}/{service}` current (None = deleted with its lease).
    fn set_window(&self, rest: &str, value: Option<&[u8]>) {
        let Some((replica, service)) = rest.strip_prefix("/windows/").and_then(|r| r.split_once('/')) else { return };
        let mut w = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (replica.to_string(), service.to_string());
        match value.and_then(|v| serde_json::from_slice(v).ok()) {
            Some(v) => w.insert(key, (v, tokio::time::Instant::now())),
            None => w.remove(&key),
        };
    }

    async fn keep_alive(&mut self) -> Result<(), StoreError> {
        if !self.etcd.lease_keepalive(self.lease).await? {
            return Err(StoreError::Unreachable("lease expired: membership lost".into()));
        }
        if self.view.load().leader.is_none() {
            self.elect().await?;
        }
        Ok(())
    }

    /// Stands for leader: the key exists only while its holder's lease lives.
    async fn elect(&mut self) -> Result<(), StoreError> {
        let me = self.cfg.replica.clone();
        let key = format!("{}/leader", self.cfg.prefix);
        if let Cas::Written(_) = self.etcd.cas(&key, me.as_bytes(), 0, self.lease).await? {
            tracing::info!(replica = %me, "this replica leads the fleet");
            self.set_view(|v| v.leader = Some(me));
        }
        Ok(())
    }

    async fn on_events(&mut self, revision: i64, events: Vec<Event>) -> Result<(), StoreError> {
        for ev in events {
            let (kv, deleted) = match ev {
                Event::Put(kv) => (kv, false),
                Event::Delete(kv) => (kv, true),
            };
            let rest = kv.key.strip_prefix(&self.cfg.prefix).unwrap_or_default().to_string();
            if let Some(name) = rest.strip_prefix("/services/") {
                if deleted {
                    continue;
                }
                // A write this runtime made or already saw through a CAS answer: the event is
                // old news, and applying it now would step back over newer state.
                if kv.mod_revision <= self.revisions.get(name).copied().unwrap_or(0) {
                    continue;
                }
                if let Ok(state) = serde_json::from_slice::<SharedService>(&kv.value) {
                    self.revisions.insert(name.to_string(), kv.mod_revision);
                    self.states.insert(name.to_string(), state.clone());
                    let (service, seq) = (name.to_string(), self.seq(name));
                    let _ = self.out.send(FromFleet::State { service, state, force: false, seq }).await;
                }
            } else if let Some(name) = rest.strip_prefix("/replicas/") {
                let name = name.to_string();
                self.set_membership(name, !deleted);
            } else if rest == "/leader" {
                let leader = (!deleted).then(|| String::from_utf8_lossy(&kv.value).into_owned());
                self.set_view(|v| v.leader = leader.clone());
                if leader.is_none() {
                    self.elect().await?;
                }
            } else if rest.starts_with("/incidents/") && !deleted {
                self.deliver_incident(&kv).await;
            } else if rest.starts_with("/windows/") {
                self.set_window(&rest, (!deleted).then_some(kv.value.as_slice()));
            }
        }
        self.set_view(|v| v.revision = v.revision.max(revision));
        Ok(())
    }

    fn set_membership(&mut self, name: String, alive: bool) {
        if alive {
            self.replicas.insert(name);
        } else {
            self.replicas.remove(&name);
        }
        let replicas = self.replicas.iter().cloned().collect();
        self.set_view(|v| v.replicas = replicas);
    }

    async fn deliver_incident(&self, kv: &Kv) {
        if let Ok(v) = serde_json::from_slice(&kv.value) {
            let _ = self.out.send(FromFleet::Incident(v)).await;
        }
    }

    async fn on_message(&mut self, m: ToFleet) -> Result<(), StoreError> {
        match m {
            ToFleet::Publish(service, state, seq) => {
                self.seen.insert(service.clone(), seq);
                self.pending.insert(service.clone(), state);
                self.write(&service).await.map(|_| ())
            }
            ToFleet::Claim(service, state, seq, reply) => {
                self.seen.insert(service.clone(), seq);
                self.pending.insert(service.clone(), state);
                let r = self.write(&service).await;
                let _ = reply.send(match &r {
                    Ok(None) => Claim::Won,
                    Ok(Some(remote)) => Claim::Lost(remote.clone()),
                    Err(_) => Claim::Offline,
                });
                r.map(|_| ())
            }
            ToFleet::Window(service, v) => {
                let key = format!("{}/windows/{}/{service}", self.cfg.prefix, self.cfg.replica);
                self.etcd.put(&key, v.to_string().as_bytes(), self.lease).await.map(|_| ())
            }
            ToFleet::Incident(id, v) => {
                let key = self.key("incidents", &id);
                let r = self.etcd.put(&key, v.to_string().as_bytes(), 0).await;
                if r.is_err() {
                    self.pending_incidents.push((id, v));
                }
                r.map(|_| ())
            }
        }
    }

    async fn flush_pending(&mut self) -> Result<(), StoreError> {
        let services: Vec<String> = self.pending.keys().cloned().collect();
        for s in services {
            self.write(&s).await?;
        }
        Ok(())
    }

    /// Writes the pending state of `service` by CAS. `Ok(None)` = ours landed (or merged onto
    /// a newer state); `Ok(Some(remote))` = another writer's state stands and ours was dropped.
    async fn write(&mut self, service: &str) -> Result<Option<SharedService>, StoreError> {
        let key = self.key("services", service);
        for _ in 0..CAS_TRIES {
            let Some(mut state) = self.pending.get(service).cloned() else { return Ok(None) };
            let expect = self.revisions.get(service).copied().unwrap_or(0);
            let bytes = serde_json::to_vec(&state).expect("state serialises");
            match self.etcd.cas(&key, &bytes, expect, 0).await? {
                Cas::Written(rev) => {
                    self.pending.remove(service);
                    self.revisions.insert(service.to_string(), rev);
                    self.states.insert(service.to_string(), state.clone());
                    let seq = self.seq(service);
                    let _ = self.out.send(FromFleet::Confirmed { service: service.to_string(), state, seq }).await;
                    return Ok(None);
                }
                Cas::Conflict(now) => {
                    let remote = now.as_ref().and_then(|kv| serde_json::from_slice::<SharedService>(&kv.value).ok());
                    self.revisions.insert(service.to_string(), now.as_ref().map_or(0, |kv| kv.mod_revision));
                    let Some(remote) = remote else { continue };
                    self.states.insert(service.to_string(), remote.clone());
                    match rebase(&state, &remote) {
                        Some(merged) => {
                            state = SharedService { writer: state.writer, written_ms: state.written_ms, ..merged };
                            self.pending.insert(service.to_string(), state);
                        }
                        None => {
                            self.pending.remove(service);
                            let (s, seq) = (service.to_string(), self.seq(service));
                            let _ = self
                                .out
                                .send(FromFleet::State { service: s, state: remote.clone(), force: true, seq })
                                .await;
                            return Ok(Some(remote));
                        }
                    }
                }
            }
        }
        Ok(None)
    }
}
