//! What the control loop holds of the fleet: a way to hand over writes, the published view of
//! the fleet, and the last state it wrote or applied per service (so an unchanged state is
//! never written again, and an applied remote state is never echoed back).

use super::shared::SharedService;
use arc_swap::ArcSwap;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The fleet as this replica sees it; read by the loop and `/status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetView {
    /// The store answered the last call.
    pub store_up: bool,
    /// The shared state was read at least once since start: until then, blue only.
    pub synced: bool,
    /// This replica's name.
    pub replica: String,
    /// Current leader's name.
    pub leader: Option<String>,
    /// Live replicas (holding a lease), sorted.
    pub replicas: Vec<String>,
    /// Last store revision seen.
    pub revision: i64,
    /// This process holds the leader key under its current lease (not just a key naming it).
    pub holds: bool,
    /// Why this replica is not part of the fleet yet (its name is held by another live
    /// process), for `/status` and the log.
    pub waiting: Option<String>,
}

impl FleetView {
    /// Leads and can reach the store: only then may it move plans forward.
    pub fn leads(&self) -> bool {
        self.store_up && self.holds && self.leader.as_deref() == Some(self.replica.as_str())
    }

    /// The `/status` `fleet` object.
    pub fn status(&self) -> FleetStatus {
        FleetStatus {
            leader: self.leader.clone(),
            replica: self.replica.clone(),
            replicas: self.replicas.clone(),
            revision: self.revision,
            store: if self.store_up { "ok" } else { "unreachable" }.into(),
            synced: self.synced,
            skew: Vec::new(),
            waiting: self.waiting.clone(),
        }
    }
}

/// The `/status` `fleet` object (fields in alphabetical order, as the map-backed document had them).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FleetStatus {
    pub leader: Option<String>,
    pub replica: String,
    /// Live replicas, sorted.
    pub replicas: Vec<String>,
    pub revision: i64,
    /// `ok` or `unreachable`: a word, so a script need not know what a missing store means.
    pub store: String,
    /// The shared state was read at least once since start.
    pub synced: bool,
    /// Services whose config (release, plan) differs from the store's: this replica follows
    /// the store's state for them and drives nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skew: Vec<String>,
    /// Set while this replica waits for its name (held by another live process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// Events from the store to the control loop.
#[derive(Debug, Clone)]
pub enum FromFleet {
    /// A service's shared state; `force` = apply even if this replica wrote it (initial sync).
    State {
        /// Service name.
        service: String,
        /// The state.
        state: SharedService,
        /// Apply even an own write (after a (re)connect or a lost CAS).
        force: bool,
        /// The last local write the runtime had taken for this service when it sent this.
        seq: u64,
    },
    /// An incident written by the replica that decided it (JSON of `control::Incident`).
    Incident(Value),
    /// Every shared state has been delivered once: green may get traffic again.
    Synced,
    /// The store took this replica's write: what it raises may now take effect.
    Confirmed {
        /// Service name.
        service: String,
        /// The state as written.
        state: SharedService,
        /// Sequence number of the local write this confirms (or a later one).
        seq: u64,
    },
    /// The store stopped answering (`false`) or answers again (`true`).
    Store(bool),
    /// A latch this replica decided while cut off met the fleet's latch for the same rollout:
    /// its incident `ours` is the fleet's `theirs`.
    Merged {
        /// The incident decided here.
        ours: String,
        /// The incident the store holds.
        theirs: String,
    },
    /// An incident decided here was written to the store as the fleet's (its latch is the
    /// store's): an alert held for it while the store was away may go now.
    Owned(String),
    /// The store lost or rewound its data (new cluster id, revision went back): it was
    /// re-seeded from this replica's newest confirmed states (a latch wins).
    Rewound(String),
}

/// Outcome of claiming a rollback for the fleet.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Our latch was written: we own the incident and send the alert.
    Won,
    /// Another replica latched first: adopt its incident, send nothing.
    Lost(SharedService),
    /// The store is unreachable: decide locally; the latch is written when it is back.
    Offline,
}

/// A write handed to the runtime: an intent relative to `base`, rebased on the store's state.
pub(super) struct Write {
    pub service: String,
    pub state: SharedService,
    /// The store state `state` was derived from (`None`: never applied one).
    pub base: Option<SharedService>,
    pub seq: u64,
    /// Made while this replica led: plan moves in it are fenced by the leader key.
    pub lead: bool,
}

pub(super) enum ToFleet {
    Publish(Write),
    Claim(Write, oneshot::Sender<Claim>),
    Incident(String, Value),
    Window(String, Value),
}

/// Latest published window per `(replica, service)`, with when it arrived here.
pub type Windows = std::sync::Mutex<HashMap<(String, String), (Value, tokio::time::Instant)>>;

/// The loop's end of the fleet runtime.
pub struct Link {
    pub(super) tx: mpsc::UnboundedSender<ToFleet>,
    /// Published by the runtime after every change.
    pub view: Arc<ArcSwap<FleetView>>,
    /// `replica/nonce`: identifies this process's writes.
    pub writer: String,
    /// Last state written or applied, per service.
    pub last: HashMap<String, SharedService>,
    /// Last state the store holds, per service (acknowledged write or watched value): green
    /// never gets more than this state gives, so nothing rises before the fleet has it.
    pub confirmed: HashMap<String, SharedService>,
    /// Local writes handed to the runtime, per service. A store state sent before the runtime
    /// took the latest one is stale for this replica: that write is in flight and will either
    /// land or come back as a lost CAS with the winner's state.
    pub seq: HashMap<String, u64>,
    /// Every live replica's latest window summaries, kept by the runtime from the watch.
    pub windows: Arc<Windows>,
    /// The loop applied every shared state the runtime read (set on `FromFleet::Synced`): until
    /// then this replica publishes nothing and routes its live color only.
    pub synced: bool,
    /// Services whose config differs from the store's, with the alert already sent.
    pub skew: std::collections::BTreeSet<String>,
    pub(super) renewal: Arc<super::keepalive::Renewal>,
    pub(super) stop: CancellationToken,
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Link {
    /// Leads the fleet now: holds the leader key and renewed its lease within the deadline.
    pub fn leads(&self) -> bool {
        self.view.load().leads() && self.renewal.fresh()
    }

    /// The `/status` `fleet` object; a leader whose renewal is overdue names no leader (it may
    /// have lost the role without having heard so yet).
    pub fn status(&self) -> FleetStatus {
        let v = self.view.load();
        let mut st = v.status();
        if st.leader.as_deref() == Some(v.replica.as_str()) && !self.leads() {
            st.leader = None;
        }
        st.skew = self.skew.iter().cloned().collect();
        st
    }

    /// Hands the intent `state` (derived from the last store state applied) to the runtime,
    /// unless it is what this replica last wrote or applied. `lead`: the loop led when it
    /// made the change. Nothing is published before the loop has applied the shared state.
    pub fn publish(&mut self, service: &str, state: SharedService, lead: bool) {
        if !self.synced || self.last.get(service).is_some_and(|l| l.same_rollout(&state)) {
            return;
        }
        let w = self.write(service, state, lead);
        let _ = self.tx.send(ToFleet::Publish(w));
    }

    fn write(&mut self, service: &str, mut state: SharedService, lead: bool) -> Write {
        state.writer = self.writer.clone();
        state.written_ms = super::unix_ms();
        self.last.insert(service.to_string(), state.clone());
        let seq = self.next_seq(service);
        let base = self.confirmed.get(service).cloned();
        Write { service: service.to_string(), state, base, seq, lead }
    }

    /// Claims a rollback: the first replica whose latch lands owns the incident.
    pub async fn claim(&mut self, service: &str, state: SharedService) -> Claim {
        if !self.view.load().store_up || !self.synced {
            let w = self.write(service, state, false);
            let _ = self.tx.send(ToFleet::Publish(w));
            return Claim::Offline;
        }
        let (tx, rx) = oneshot::channel();
        let w = self.write(service, state, false);
        if self.tx.send(ToFleet::Claim(w, tx)).is_err() {
            return Claim::Offline;
        }
        rx.await.unwrap_or(Claim::Offline)
    }

    /// Stops the runtime and waits (at most a second) until it revoked its lease, so that
    /// leadership passes on at once when the process exits.
    pub async fn close(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), t).await;
        }
    }

    fn next_seq(&mut self, service: &str) -> u64 {
        let n = self.seq.entry(service.to_string()).or_default();
        *n += 1;
        *n
    }

    /// Whether a store state carrying `seq` reflects every local write of `service`.
    pub fn current(&self, service: &str, seq: u64) -> bool {
        seq >= self.seq.get(service).copied().unwrap_or(0)
    }

    /// Stores an incident (or its completed report) for every replica's `/incidents`.
    pub fn incident(&self, id: &str, inc: Value) {
        let _ = self.tx.send(ToFleet::Incident(id.to_string(), inc));
    }

    /// Publishes this replica's window summaries of a service (`[blue, green]` JSON) under its
    /// lease, for the leader to merge; they vanish with the replica.
    pub fn window(&self, service: &str, summaries: Value) {
        let _ = self.tx.send(ToFleet::Window(service.to_string(), summaries));
    }

    /// Records a remote state as applied, so it is not written back.
    pub fn applied(&mut self, service: &str, state: SharedService) {
        self.last.insert(service.to_string(), state.clone());
        self.confirmed.insert(service.to_string(), state);
    }
}
