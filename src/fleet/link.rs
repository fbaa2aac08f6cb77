//! What the control loop holds of the fleet: a way to hand over writes, the published view of
//! the fleet, and the last state it wrote or applied per service (so an unchanged state is
//! never written again, and an applied remote state is never echoed back).

use super::shared::SharedService;
use arc_swap::ArcSwap;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::DropGuard;

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
}

impl FleetView {
    /// Leads and can reach the store: only then may it move plans forward.
    pub fn leads(&self) -> bool {
        self.store_up && self.leader.as_deref() == Some(self.replica.as_str())
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

pub(super) enum ToFleet {
    Publish(String, SharedService, u64),
    Claim(String, SharedService, u64, oneshot::Sender<Claim>),
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
    pub(super) _stop: DropGuard,
}

impl Link {
    /// Writes `state` unless it is what the fleet already has; the runtime retries when the
    /// store is back.
    pub fn publish(&mut self, service: &str, mut state: SharedService) {
        if self.last.get(service).is_some_and(|l| l.same_rollout(&state)) {
            return;
        }
        state.writer = self.writer.clone();
        state.written_ms = super::unix_ms();
        self.last.insert(service.to_string(), state.clone());
        let seq = self.next_seq(service);
        let _ = self.tx.send(ToFleet::Publish(service.to_string(), state, seq));
    }

    /// Claims a rollback: the first replica whose latch lands owns the incident.
    pub async fn claim(&mut self, service: &str, mut state: SharedService) -> Claim {
        if !self.view.load().store_up {
            self.publish(service, state);
            return Claim::Offline;
        }
        state.writer = self.writer.clone();
        state.written_ms = super::unix_ms();
        self.last.insert(service.to_string(), state.clone());
        let (tx, rx) = oneshot::channel();
        let seq = self.next_seq(service);
        if self.tx.send(ToFleet::Claim(service.to_string(), state, seq, tx)).is_err() {
            return Claim::Offline;
        }
        rx.await.unwrap_or(Claim::Offline)
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
