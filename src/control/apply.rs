//! Applying a config (start-up and reloads): validate what needs I/O (TLS files, binding new
//! listeners) before changing anything, then commit in one step. Services are matched by name;
//! untouched services keep their listener, pools, ejection state and statistics.

use super::service::{ServiceControl, State};
use super::{CommandError, Controller};
use crate::config::{Config, Mode, ServiceConfig};
use crate::listener::Listener;
use crate::proxy::ServiceCtx;
use crate::route::{Policy, ServiceKey, Weight};
use crate::state::{ServiceState, StateFile};
use crate::stats::{names, ServiceStats};
use crate::upstream::client::UpstreamClient;
use crate::upstream::{health, Pool};
use crate::Color;
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// I/O prepared for one service before the commit.
struct Prepared {
    /// TLS clients for `[blue, green]` pools with a CA bundle, built (and validated) up front.
    upstream_tls: [Option<UpstreamClient>; 2],
    socket: Option<Arc<TcpListener>>,
    tls: Option<TlsAcceptor>,
}

impl Controller {
    /// Applies `cfg`; `saved` is the persisted state at start-up (None on reloads).
    pub(super) async fn apply(&mut self, cfg: Config, saved: Option<StateFile>) -> Result<(), CommandError> {
        let prepared = self.prepare(&cfg)?;
        let first = self.config_generation == 0;
        let mut keep: Vec<ServiceControl> = Vec::with_capacity(cfg.services.len());
        let mut old = std::mem::take(&mut self.services);
        for (sc, prep) in cfg.services.iter().zip(prepared) {
            let svc = match old.iter().position(|s| s.cfg.name == sc.name) {
                Some(i) => self.update(old.swap_remove(i), sc, &cfg, prep).await,
                None => {
                    let st = saved.as_ref().and_then(|s| s.services.get(&*sc.name));
                    self.create(sc, &cfg, prep, st, saved.is_none() && first && self.state_error.is_some())
                }
            };
            keep.push(svc);
        }
        for mut gone in old {
            tracing::info!(service = %gone.cfg.name, "service removed: draining its listener");
            gone.health.cancel();
            if let Some(l) = gone.listener.take() {
                tokio::spawn(l.drain());
            }
        }
        self.services = keep;
        self.alerter.set_config(cfg.alerts.clone());
        self.cfg = Arc::new(cfg);
        self.config_generation += 1;
        if !first {
            metrics::counter!(names::CONFIG_RELOADS_TOTAL, "result" => "ok").increment(1);
            self.last_reload_error = None;
        }
        metrics::gauge!(names::CONFIG_GENERATION).set(self.config_generation as f64);
        self.sequence();
        self.refresh_weights();
        self.store_routes();
        self.save_state().await;
        self.publish();
        tracing::info!(generation = self.config_generation, services = self.services.len(), "config applied");
        Ok(())
    }

    fn prepare(&self, cfg: &Config) -> Result<Vec<Prepared>, CommandError> {
        let mut out = Vec::with_capacity(cfg.services.len());
        for sc in &cfg.services {
            let tls = match &sc.tls {
                Some(t) => Some(TlsAcceptor::from(
                    crate::tls::server_config(t)
                        .map_err(|e| CommandError::Invalid(format!("services.{}.tls: {e}", sc.name)))?,
                )),
                None => None,
            };
            let existing = self.services.iter().find(|s| s.cfg.name == sc.name);
            let rebind = existing.is_none_or(|s| s.cfg.listen != sc.listen || s.cfg.tls != sc.tls);
            // A socket already bound at this address (by this service before a TLS change, or by
            // a service renamed or moved in this reload) is handed over rather than re-bound.
            let bound = self.services.iter().filter_map(|s| s.listener.as_ref()).find(|l| l.addr == sc.listen);
            let socket = match (rebind, bound) {
                (false, _) => None,
                (true, Some(l)) => Some(l.socket()),
                (true, None) => Some(Arc::new(Listener::bind(sc.listen).map_err(|e| {
                    CommandError::Invalid(format!("services.{}.listen: cannot bind {}: {e}", sc.name, sc.listen))
                })?)),
            };
            let mut upstream_tls = [None, None];
            for (i, (color, pool)) in [("blue", &sc.blue), ("green", &sc.green)].into_iter().enumerate() {
                if let Some(ca) = &pool.tls_ca {
                    upstream_tls[i] = Some(
                        crate::upstream::client::build_tls(&cfg.limits, ca)
                            .map_err(|e| CommandError::Invalid(format!("services.{}.{color}.tls.ca: {e}", sc.name)))?,
                    );
                }
            }
            out.push(Prepared { socket, tls, upstream_tls });
        }
        Ok(out)
    }

    fn policy(sc: &ServiceConfig, cfg: &Config) -> Arc<Policy> {
        Arc::new(Policy {
            expected_hash: cfg.constitutional_hash.clone(),
            check_hash: sc.triggers.hash_mismatch.is_some(),
            hash_header: cfg.control.hash_header.clone(),
            compliance_header: cfg.control.compliance_header.clone(),
            principles_header: cfg.control.principles_header.clone(),
            retry: sc.retry.clone(),
            max_body_bytes: cfg.limits.max_body_bytes,
            response_timeout: cfg.limits.response_timeout,
        })
    }

    /// The pool of a color: the previous one when nothing it is built from changed (so ejection
    /// state and pooled connections survive a reload), else a new one.
    fn pool(
        c: Color,
        sc: &ServiceConfig,
        cfg: &Config,
        prev: Option<(&Arc<Pool>, &ServiceConfig)>,
        tls: &mut [Option<UpstreamClient>; 2],
    ) -> Arc<Pool> {
        let of = |s: &ServiceConfig| match c {
            Color::Blue => s.blue.clone(),
            Color::Green => s.green.clone(),
        };
        let p = of(sc);
        match prev {
            Some((prev, old))
                if prev.same_endpoints(&p.endpoints)
                    && prev.max_in_flight() == cfg.limits.max_in_flight_per_endpoint.max(1)
                    && of(old).tls_ca == p.tls_ca =>
            {
                prev.clone()
            }
            _ => {
                let pool = Pool::new(c, &p.endpoints, cfg.limits.eject_after, cfg.limits.eject_for)
                    .with_max_in_flight(cfg.limits.max_in_flight_per_endpoint);
                Arc::new(match tls[c.index()].take() {
                    Some(client) => pool.with_tls_client(client),
                    None => pool,
                })
            }
        }
    }

    fn create(
        &mut self,
        sc: &ServiceConfig,
        cfg: &Config,
        mut prep: Prepared,
        saved: Option<&ServiceState>,
        safe_start: bool,
    ) -> ServiceControl {
        let key = ServiceKey(self.next_key);
        self.next_key += 1;
        let mut svc = ServiceControl {
            key,
            cfg: sc.clone(),
            stats: Arc::new(ServiceStats::new(key, sc.name.clone(), self.sink.clone())),
            split: Arc::new(AtomicU64::new(0)),
            blue: Self::pool(Color::Blue, sc, cfg, None, &mut prep.upstream_tls),
            green: Self::pool(Color::Green, sc, cfg, None, &mut prep.upstream_tls),
            policy: Self::policy(sc, cfg),
            latched: false,
            admin_weight: None,
            paused: false,
            gate_open: false,
            step: None,
            step_since: Instant::now(),
            step_since_wall: SystemTime::now(),
            healthy_at_step: 0,
            streaks: Default::default(),
            first_bad: None,
            hash_alarms: 0,
            incident: None,
            pending_report: None,
            last: Default::default(),
            history: VecDeque::new(),
            weight: Weight::ZERO,
            health: CancellationToken::new(),
            listener: None,
            alert_rules: Default::default(),
        };
        if safe_start {
            // Unknown past: never send traffic to green by accident. An operator's reset or
            // weight call lifts this.
            svc.admin_weight = Some(Weight::ZERO);
        } else if let Some(st) = saved {
            restore(&mut svc, st);
        }
        self.start_io(&mut svc, prep, cfg);
        svc
    }

    async fn update(
        &mut self,
        mut svc: ServiceControl,
        sc: &ServiceConfig,
        cfg: &Config,
        prep: Prepared,
    ) -> ServiceControl {
        let new_release = svc.cfg.green.release != sc.green.release;
        let mut prep = prep;
        svc.blue = Self::pool(Color::Blue, sc, cfg, Some((&svc.blue, &svc.cfg)), &mut prep.upstream_tls);
        svc.green = Self::pool(Color::Green, sc, cfg, Some((&svc.green, &svc.cfg)), &mut prep.upstream_tls);
        svc.policy = Self::policy(sc, cfg);
        if new_release {
            tracing::info!(service = %sc.name, release = ?sc.green.release, "new green release: latch cleared, plan restarts");
            svc.latched = false;
            svc.admin_weight = None;
            svc.paused = false;
            svc.step = None;
            svc.pending_report = None;
            svc.fresh_analysis();
            self.window.forget(svc.key).await;
        }
        if sc.mode != svc.cfg.mode && sc.mode == Mode::Manual {
            svc.step = None;
        }
        if let Some(i) = svc.step {
            svc.step = Some(i.min(sc.plan.steps.len() - 1));
        }
        let rebind = prep.socket.is_some();
        svc.cfg = sc.clone();
        svc.health.cancel();
        if rebind {
            if let Some(l) = svc.listener.take() {
                tokio::spawn(l.drain());
            }
        }
        self.start_io(&mut svc, prep, cfg);
        svc
    }

    /// Starts the listener (when a socket was bound for it) and the health task.
    fn start_io(&self, svc: &mut ServiceControl, prep: Prepared, cfg: &Config) {
        if let Some(socket) = prep.socket {
            let ctx = Arc::new(ServiceCtx {
                router: self.router.clone(),
                key: svc.key,
                name: svc.cfg.name.clone(),
                client: self.client.clone(),
                alarms: self.alarms.clone(),
                proto: http::HeaderValue::from_static(if prep.tls.is_some() { "https" } else { "http" }),
            });
            let l = Listener::start(socket, ctx, prep.tls, cfg.limits.clone());
            tracing::info!(service = %svc.cfg.name, addr = %l.addr, "listening");
            svc.listener = Some(l);
        }
        svc.health = CancellationToken::new();
        health::spawn(
            health::HealthTarget {
                key: svc.key,
                cfg: svc.cfg.health.clone(),
                pools: [svc.blue.clone(), svc.green.clone()],
                stats: svc.stats.clone(),
                expected_hash: (cfg.control.hash_header.clone(), cfg.constitutional_hash.clone()),
            },
            svc.health.clone(),
        );
    }

    /// Recomputes every weight from the rules; updates the gauges.
    pub(super) fn refresh_weights(&mut self) -> bool {
        let mut changed = false;
        for s in &mut self.services {
            let w = s.target_weight();
            if w != s.weight {
                tracing::info!(service = %s.cfg.name, from = %s.weight, to = %w, "green weight changes");
                s.weight = w;
                changed = true;
            }
            s.stats.green_weight.set(w.percent());
            let state = s.state();
            for st in State::ALL {
                metrics::gauge!(names::SERVICE_STATE, "service" => s.cfg.name.to_string(), "state" => st.as_str())
                    .set(if st == state { 1.0 } else { 0.0 });
            }
            let step = if s.cfg.mode == Mode::Progressive { s.step.map_or(-1.0, |i| i as f64) } else { -1.0 };
            metrics::gauge!(names::ROLLOUT_STEP, "service" => s.cfg.name.to_string()).set(step);
        }
        let active = self.services.iter().any(|s| s.state() == State::Canary);
        metrics::gauge!(names::MIGRATION_ACTIVE).set(if active { 1.0 } else { 0.0 });
        changed
    }
}

fn restore(svc: &mut ServiceControl, st: &ServiceState) {
    if st.release.as_deref() != svc.cfg.green.release.as_deref() {
        tracing::info!(service = %svc.cfg.name, "saved state is for another release: starting a fresh plan");
        return;
    }
    svc.latched = st.latched;
    svc.admin_weight = st.admin_weight.and_then(|w| Weight::from_percent(w).ok());
    svc.paused = st.paused;
    svc.incident = st.incident.clone();
    if svc.cfg.mode == Mode::Progressive {
        svc.step = st.step.map(|i| i.min(svc.cfg.plan.steps.len() - 1));
        if let Some(ms) = st.step_since_ms {
            let wall = UNIX_EPOCH + Duration::from_millis(ms);
            let ago = SystemTime::now().duration_since(wall).unwrap_or_default();
            svc.step_since_wall = wall;
            svc.step_since = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
        }
    }
    tracing::info!(service = %svc.cfg.name, step = ?svc.step, latched = svc.latched, "state restored");
}
