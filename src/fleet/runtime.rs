//! The task that owns the store connection. Per connection: keep (or grant) a lease, create the
//! replica's membership key only if no live process holds the name, read the whole prefix
//! (deliver it, then `Synced`), watch from the read revision + 1, and stand for leader whenever
//! nobody leads. The lease is renewed by its own task (`keepalive`). A compacted watch is a
//! resync (read again, watch again), not an outage. A read from a store whose cluster id
//! changed or whose revision went back means its data was lost: remembered revisions are
//! dropped and the store is re-seeded from the newest states this replica confirmed.

use super::etcd::txn::Header;
use super::etcd::{Etcd, Event, Kv, StoreError, Watch};
use super::keepalive::{self, Renewal};
use super::link::{FleetView, FromFleet, ToFleet, Windows};
use super::shared::SharedService;
use crate::config::FleetConfig;
use crate::stats::names;
use arc_swap::ArcSwap;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(super) struct Runtime {
    pub(super) etcd: Arc<Etcd>,
    pub(super) cfg: FleetConfig,
    pub(super) out: mpsc::Sender<FromFleet>,
    pub(super) view: Arc<ArcSwap<FleetView>>,
    /// Known `mod_revision` per service key: the CAS token of the next write.
    pub(super) revisions: HashMap<String, i64>,
    /// Latest store state per service: what an intent is rebased on, and (after the store lost
    /// its data) what it is re-seeded from.
    pub(super) states: HashMap<String, SharedService>,
    /// Writes the store did not take yet, latest intent per service with its base.
    pub(super) pending: HashMap<String, super::link::Write>,
    /// Sequence number of the latest local write taken, per service (see `Link::seq`).
    pub(super) seen: HashMap<String, u64>,
    /// Incidents decided while the store was away, written when it is back.
    pub(super) pending_incidents: Vec<(String, serde_json::Value)>,
    replicas: BTreeSet<String>,
    windows: Arc<Windows>,
    pub(super) lease: i64,
    /// Create revision of the leader key while this process holds it: the fence of its writes.
    pub(super) leader_rev: Option<i64>,
    renewal: Arc<Renewal>,
    /// The store identity and the highest revision seen from it.
    store: Option<Header>,
    /// An outage was reported to the loop (so its end is reported too).
    announced_down: bool,
}

enum Stop {
    Shutdown,
    Lost(StoreError),
    /// Another live process holds this replica's name.
    NameTaken(String),
}

impl Runtime {
    pub(super) fn new(
        etcd: Arc<Etcd>,
        cfg: FleetConfig,
        out: mpsc::Sender<FromFleet>,
        view: Arc<ArcSwap<FleetView>>,
        windows: Arc<Windows>,
        renewal: Arc<Renewal>,
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
            leader_rev: None,
            renewal,
            store: None,
            announced_down: false,
        }
    }

    pub(super) fn seq(&self, service: &str) -> u64 {
        self.seen.get(service).copied().unwrap_or(0)
    }

    pub(super) fn key(&self, kind: &str, name: &str) -> String {
        format!("{}/{kind}/{name}", self.cfg.prefix)
    }

    pub(super) fn set_view(&self, f: impl FnOnce(&mut FleetView)) {
        let mut v = (**self.view.load()).clone();
        f(&mut v);
        v.holds = self.leader_rev.is_some();
        metrics::gauge!(names::FLEET_STORE_UP).set(if v.store_up { 1.0 } else { 0.0 });
        metrics::gauge!(names::FLEET_LEADER).set(if v.leads() { 1.0 } else { 0.0 });
        metrics::gauge!(names::FLEET_REPLICAS).set(v.replicas.len() as f64);
        self.view.store(Arc::new(v));
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<ToFleet>, stop: CancellationToken) {
        // Reconnects back off with jitter, so a fleet does not reconnect in lockstep after an
        // outage; the first try after a connected period is quick (100–200 ms).
        let mut reconnect = super::etcd::Backoff::default();
        loop {
            let r = tokio::select! {
                r = self.session(&mut rx) => r,
                _ = stop.cancelled() => Stop::Shutdown,
            };
            self.leader_rev = None;
            let pause = match r {
                Stop::Shutdown => break,
                Stop::Lost(e) => {
                    if self.view.load().store_up {
                        reconnect.reset();
                        tracing::error!(error = %e, "fleet store unreachable: keeping the last weights, never raising green");
                        let _ = self.out.try_send(FromFleet::Store(false));
                        self.announced_down = true;
                    }
                    self.set_view(|v| v.store_up = false);
                    reconnect.next_delay()
                }
                Stop::NameTaken(why) => {
                    tracing::error!(replica = %self.cfg.replica, "{why}; waiting for it to go (serving the live color only)");
                    self.set_view(|v| v.waiting = Some(why));
                    self.cfg.lease_ttl / 2
                }
            };
            // Answer claims at once while away; keep their latches pending.
            let until = tokio::time::Instant::now() + pause;
            loop {
                tokio::select! {
                    m = tokio::time::timeout_at(until, rx.recv()) => match m {
                        Ok(Some(msg)) => self.offline(msg),
                        Ok(None) | Err(_) => break,
                    },
                    _ = stop.cancelled() => break,
                }
            }
            if stop.is_cancelled() {
                break;
            }
        }
        if self.lease != 0 {
            // Frees leadership and membership at once instead of after the TTL.
            match tokio::time::timeout(Duration::from_millis(800), self.etcd.lease_revoke(self.lease)).await {
                Ok(Ok(())) => tracing::info!(lease = self.lease, "fleet lease revoked"),
                _ => tracing::warn!("fleet lease not revoked: it expires after its TTL"),
            }
        }
    }

    /// One connected period; returns why it ended.
    async fn session(&mut self, rx: &mut mpsc::UnboundedReceiver<ToFleet>) -> Stop {
        if let Err(stop) = self.register().await {
            return stop;
        }
        let (lost_tx, mut lost) = mpsc::channel(1);
        let every = self.cfg.lease_ttl / 3;
        // Renewing every quarter of the TTL leaves room for one member that does not answer (a
        // call waits a third of the TTL before the next member is asked) inside the renew
        // deadline (two thirds): a paused etcd member is failed over to, not a step-down.
        let renew = self.cfg.lease_ttl / 4;
        let ka = keepalive::spawn(self.etcd.clone(), self.lease, renew, self.renewal.clone(), lost_tx);
        let _ka = AbortOnDrop(ka);
        let mut watch = match self.resync().await {
            Ok(w) => w,
            Err(e) => return Stop::Lost(e),
        };
        let mut rewatch = super::etcd::Backoff::default();
        let mut elect = tokio::time::interval(every);
        elect.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let r = tokio::select! {
                Some(e) = lost.recv() => Err(e),
                _ = elect.tick() => if !self.renewal.fresh() {
                    Err(StoreError::Unreachable("lease not renewed within the renew deadline".into()))
                } else if self.view.load().leader.is_none() {
                    self.elect().await
                } else {
                    Ok(())
                },
                b = watch.next() => match b {
                    Ok(batch) => {
                        rewatch.reset();
                        self.on_events(batch.revision, batch.events).await
                    }
                    Err(StoreError::Compacted(at)) => {
                        // History before `at` is gone: read again and watch from there.
                        tracing::info!(compacted = at, "fleet watch compacted: resyncing");
                        match self.resync().await {
                            Ok(w) => { watch = w; Ok(()) }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) if e.needs_rewatch() => {
                        // A stuck or canceled watch is not an outage (the lease is renewed
                        // apart): read again, on whichever member answers, and watch again.
                        // Only a read that fails too ends the session.
                        tracing::warn!(error = %e, "fleet watch ended: reading and watching again");
                        rewatch.wait().await;
                        match self.resync().await {
                            Ok(w) => { watch = w; Ok(()) }
                            Err(e) => Err(e),
                        }
                    }
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

    /// Keeps the lease if it still lives (a short outage), else grants one; then creates the
    /// membership key only if absent: a second process with a live name is refused.
    async fn register(&mut self) -> Result<(), Stop> {
        let old = self.lease;
        let kept = old != 0 && matches!(self.etcd.lease_keepalive(old).await, Ok(true));
        if !kept {
            self.lease = self.etcd.lease_grant(self.cfg.lease_ttl).await.map_err(Stop::Lost)?;
        }
        self.renewal.mark();
        let me = self.cfg.replica.clone();
        let key = self.key("replicas", &me);
        let mut created = self.etcd.create(&key, me.as_bytes(), self.lease).await.map_err(Stop::Lost)?;
        if let Err(kv) = &created {
            if !kept && old != 0 && kv.lease == old {
                // Our own name under this process's earlier lease, which the store still keeps
                // (a restarted etcd restores leases with a fresh TTL): it is not another
                // process. Revoking it drops our old membership (and leadership) at once.
                tracing::info!(lease = old, "fleet: revoking this replica's earlier lease, still alive in the store");
                self.etcd.lease_revoke(old).await.map_err(Stop::Lost)?;
                created = self.etcd.create(&key, me.as_bytes(), self.lease).await.map_err(Stop::Lost)?;
            }
        }
        match created {
            Ok(_) => {}
            Err(kv) if kv.lease == self.lease => {}
            Err(kv) => {
                let _ = self.etcd.lease_revoke(self.lease).await;
                self.lease = 0;
                return Err(Stop::NameTaken(format!(
                    "replica name {me:?} is held by another live process (lease {:x})",
                    kv.lease
                )));
            }
        }
        if self.view.load().waiting.is_some() {
            tracing::info!(replica = %me, "replica name free again: joining the fleet");
            self.set_view(|v| v.waiting = None);
        }
        Ok(())
    }

    /// Reads the whole prefix, delivers it, writes what is pending, and watches from there.
    async fn resync(&mut self) -> Result<Watch, StoreError> {
        let prefix = format!("{}/", self.cfg.prefix);
        let (kvs, header) = self.etcd.range_with_header(&prefix).await?;
        let rewound = self.check_store(header);
        let remembered = std::mem::take(&mut self.states);
        self.revisions.clear();
        self.replicas.clear();
        let mut leader = None;
        for kv in &kvs {
            self.index(kv, &mut leader);
        }
        if rewound {
            self.reseed(remembered);
        }
        if leader.as_ref().is_some_and(|(_, lease)| *lease == self.lease) && self.leader_rev.is_none() {
            // Our key from before an outage: its fence revision is unknown here, so give it up
            // and stand again rather than lead unfenced.
            self.etcd.delete(&format!("{}/leader", self.cfg.prefix)).await?;
            leader = None;
        } else if leader.as_ref().is_none_or(|(_, lease)| *lease != self.lease) {
            self.leader_rev = None;
        }
        self.flush_pending().await?;
        self.flush_incidents().await?;
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
            v.leader = leader.map(|(name, _)| name);
            v.replicas = replicas;
            v.revision = header.revision;
        });
        let _ = self.out.send(FromFleet::Synced).await;
        if std::mem::take(&mut self.announced_down) {
            let _ = self.out.send(FromFleet::Store(true)).await;
        }
        tracing::info!(revision = header.revision, replicas = self.replicas.len(), "fleet store synced");
        if self.view.load().leader.is_none() {
            self.elect().await?;
        }
        self.etcd.watch(&prefix, header.revision + 1).await
    }

    /// Whether the store answering now lost the data of the one read before (another cluster
    /// id, or a revision lower than one already seen). Remembers the newest identity.
    fn check_store(&mut self, h: Header) -> bool {
        let seen = self.view.load().revision;
        let rewound = self.store.is_some_and(|s| s.cluster_id != h.cluster_id) || h.revision < seen;
        if rewound {
            let why = format!(
                "fleet store lost its data (cluster {:x} → {:x}, revision {seen} → {}): re-seeding it from this replica's confirmed states",
                self.store.map_or(0, |s| s.cluster_id),
                h.cluster_id,
                h.revision
            );
            tracing::error!("{why}");
            let _ = self.out.try_send(FromFleet::Rewound(why));
            self.set_view(|v| v.revision = 0);
        }
        self.store = Some(h);
        rewound
    }

    /// After a data loss: every service the store no longer has gets this replica's newest
    /// confirmed state back (created only if still absent, so the first re-seed wins and a latch
    /// in a later one is merged onto it).
    fn reseed(&mut self, remembered: HashMap<String, SharedService>) {
        for (service, state) in remembered {
            let seq = self.seq(&service);
            let w = self.pending.entry(service.clone()).or_insert(super::link::Write {
                service,
                state,
                base: None,
                seq,
                lead: false,
            });
            w.base = None;
        }
    }

    /// Records a key read at (re)connect; `leader` gets the leader's name and lease.
    fn index(&mut self, kv: &Kv, leader: &mut Option<(String, i64)>) {
        let rest = kv.key.strip_prefix(&self.cfg.prefix).unwrap_or_default();
        if let Some(name) = rest.strip_prefix("/services/") {
            if let Ok(st) = serde_json::from_slice::<SharedService>(&kv.value) {
                self.revisions.insert(name.to_string(), kv.mod_revision);
                self.states.insert(name.to_string(), st);
            }
        } else if let Some(name) = rest.strip_prefix("/replicas/") {
            self.replicas.insert(name.to_string());
        } else if rest == "/leader" {
            *leader = Some((String::from_utf8_lossy(&kv.value).into_owned(), kv.lease));
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

    /// Stands for leader: the key exists only while its holder's lease lives; its create
    /// revision fences every plan write of this leadership.
    async fn elect(&mut self) -> Result<(), StoreError> {
        let me = self.cfg.replica.clone();
        let key = format!("{}/leader", self.cfg.prefix);
        if let Ok(rev) = self.etcd.create(&key, me.as_bytes(), self.lease).await? {
            tracing::info!(replica = %me, fence = rev, "this replica leads the fleet");
            self.leader_rev = Some(rev);
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
                if !deleted {
                    self.on_service(name, kv).await;
                }
            } else if let Some(name) = rest.strip_prefix("/replicas/") {
                self.set_membership(name.to_string(), !deleted);
            } else if rest == "/leader" {
                let leader = (!deleted).then(|| String::from_utf8_lossy(&kv.value).into_owned());
                if deleted || kv.lease != self.lease {
                    self.leader_rev = None;
                }
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

    async fn on_service(&mut self, name: &str, kv: Kv) {
        // A write this runtime made or already saw through a CAS answer: the event is old news,
        // and applying it now would step back over newer state.
        if kv.mod_revision <= self.revisions.get(name).copied().unwrap_or(0) {
            return;
        }
        if let Ok(state) = serde_json::from_slice::<SharedService>(&kv.value) {
            self.revisions.insert(name.to_string(), kv.mod_revision);
            self.states.insert(name.to_string(), state.clone());
            let (service, seq) = (name.to_string(), self.seq(name));
            let _ = self.out.send(FromFleet::State { service, state, force: false, seq }).await;
        }
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

    pub(super) async fn deliver_incident(&self, kv: &Kv) {
        if let Ok(v) = serde_json::from_slice(&kv.value) {
            let _ = self.out.send(FromFleet::Incident(v)).await;
        }
    }
}

/// Stops the keep-alive task with the session that started it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
