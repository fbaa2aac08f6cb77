//! Applying a config (start-up and reloads). The change is first computed as a plan — per
//! service keep, rebind (listener or TLS changed), create, or remove — then the I/O it needs is
//! prepared (TLS files, binding new listeners) before anything changes, then it is executed in
//! one step. Services are matched by name; kept services keep their listener, pools, ejection
//! state and statistics. A change of the idle pool (endpoints or release) is a new candidate.

use super::persist::restore;
use super::service::{fingerprint, pool_cfg, Resources, ServiceControl};
use super::Controller;
use crate::config::{Config, Mode, ServiceConfig};
use crate::error::ApplyError;
use crate::listener::Listener;
use crate::proxy::ServiceCtx;
use crate::route::{Policy, ServiceKey, Weight};
use crate::state::{ServiceState, StateFile};
use crate::stats::{names, ServiceStats};
use crate::upstream::client::UpstreamClient;
use crate::upstream::{health, Pool};
use crate::workers::Sockets;
use crate::Color;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// What happens to one service of the new config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// Runs already (index into the running services) on the same listener.
    Keep(usize),
    /// Runs already, but its address or TLS changed: a socket is bound (or handed over).
    Rebind(usize),
    /// New: everything is created.
    Create,
}

/// A config change before it is executed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ConfigPlan {
    /// One per service of the new config, in its order.
    pub changes: Vec<Change>,
    /// Running services (indices) the new config no longer has: drained.
    pub remove: Vec<usize>,
}

/// Computes the plan; pure, so the diff is testable on its own.
pub(super) fn plan(running: &[&ServiceConfig], cfg: &Config) -> ConfigPlan {
    let changes = cfg
        .services
        .iter()
        .map(|sc| match running.iter().position(|r| r.name == sc.name) {
            Some(i) if running[i].listen == sc.listen && running[i].tls == sc.tls => Change::Keep(i),
            Some(i) => Change::Rebind(i),
            None => Change::Create,
        })
        .collect();
    let remove = (0..running.len()).filter(|&i| !cfg.services.iter().any(|sc| sc.name == running[i].name)).collect();
    ConfigPlan { changes, remove }
}

/// I/O prepared for one service before the commit.
struct Prepared {
    /// TLS clients for `[blue, green]` pools with a CA bundle, built (and validated) up front.
    upstream_tls: [Option<UpstreamClient>; 2],
    socket: Option<Sockets>,
    tls: Option<TlsAcceptor>,
}

impl Controller {
    /// Applies `cfg`; `saved` is the persisted state at start-up (None on reloads).
    pub(super) async fn reconfigure(&mut self, cfg: Config, saved: Option<StateFile>) -> Result<(), ApplyError> {
        let running: Vec<&ServiceConfig> = self.services.iter().map(|s| &s.cfg).collect();
        let plan = plan(&running, &cfg);
        let prepared = self.prepare(&cfg, &plan)?;
        let first = self.config_generation == 0;
        let safe_start = saved.is_none() && first && self.state_error.is_some();
        let mut old: Vec<Option<ServiceControl>> = std::mem::take(&mut self.services).into_iter().map(Some).collect();
        let mut next = Vec::with_capacity(cfg.services.len());
        for ((sc, change), prep) in cfg.services.iter().zip(&plan.changes).zip(prepared) {
            let svc = match *change {
                Change::Keep(i) | Change::Rebind(i) => {
                    let svc = old[i].take().expect("the plan names each running service once");
                    self.update(svc, sc, &cfg, prep).await
                }
                Change::Create => {
                    let st = saved.as_ref().and_then(|s| s.services.get(&*sc.name));
                    self.create(sc, &cfg, prep, st, safe_start)
                }
            };
            next.push(svc);
        }
        for gone in plan.remove.iter().filter_map(|&i| old[i].take()) {
            tracing::info!(service = %gone.cfg.name, "service removed: draining its listener");
            let mut gone = gone;
            gone.res.health.cancel();
            if let Some(l) = gone.res.listener.take() {
                tokio::spawn(l.drain());
            }
        }
        self.services = next;
        self.alerter.set_config(cfg.alerts.clone());
        self.cfg = Arc::new(cfg);
        self.config_generation += 1;
        if !first {
            metrics::counter!(names::CONFIG_RELOADS_TOTAL, "result" => "ok").increment(1);
            self.last_reload_error = None;
        }
        metrics::gauge!(names::CONFIG_GENERATION).set(self.config_generation as f64);
        self.commit().await;
        tracing::info!(generation = self.config_generation, services = self.services.len(), "config applied");
        Ok(())
    }

    fn prepare(&self, cfg: &Config, plan: &ConfigPlan) -> Result<Vec<Prepared>, ApplyError> {
        let mut out = Vec::with_capacity(cfg.services.len());
        for (sc, change) in cfg.services.iter().zip(&plan.changes) {
            let tls =
                match &sc.tls {
                    Some(t) => Some(TlsAcceptor::from(crate::tls::server_config(t).map_err(|source| {
                        ApplyError::Tls { service: sc.name.to_string(), source: Box::new(source) }
                    })?)),
                    None => None,
                };
            // A socket already bound at this address (by this service before a TLS change, or by
            // a service renamed or moved in this reload) is handed over rather than re-bound.
            let bound = self.services.iter().filter_map(|s| s.res.listener.as_ref()).find(|l| l.addr == sc.listen);
            let socket = match (change, bound) {
                (Change::Keep(_), _) => None,
                (_, Some(l)) => Some(l.sockets()),
                (_, None) => Some(Listener::bind(&self.workers, sc.listen).map_err(|source| ApplyError::Bind {
                    service: sc.name.to_string(),
                    addr: sc.listen,
                    source,
                })?),
            };
            let mut upstream_tls = [None, None];
            for c in [Color::Blue, Color::Green] {
                if let Some(ca) = &pool_cfg(sc, c).tls_ca {
                    upstream_tls[c.index()] =
                        Some(crate::upstream::client::build_tls(&cfg.limits, ca).map_err(|source| {
                            ApplyError::UpstreamCa { service: sc.name.to_string(), color: c, source: Box::new(source) }
                        })?);
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
            via: cfg.proxy.via,
            releases: [Color::Blue, Color::Green].map(|c| pool_cfg(sc, c).release.clone()),
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
        let p = pool_cfg(sc, c);
        match prev {
            Some((prev, old))
                if prev.same_endpoints(&p.endpoints)
                    && prev.max_in_flight() == cfg.limits.max_in_flight_per_endpoint.max(1)
                    && pool_cfg(old, c).tls_ca == p.tls_ca =>
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
        let res = Resources {
            stats: Arc::new(ServiceStats::new(key, sc.name.clone(), self.sink.clone())),
            split: Arc::new(AtomicU64::new(0)),
            pools: [Color::Blue, Color::Green].map(|c| Self::pool(c, sc, cfg, None, &mut prep.upstream_tls)),
            policy: Self::policy(sc, cfg),
            health: CancellationToken::new(),
            listener: None,
        };
        let mut svc = ServiceControl::new(key, sc.clone(), res);
        if safe_start {
            // Unknown past: never send traffic to a candidate by accident. An operator's reset or
            // weight or resume call lifts this.
            if let Some(c) = svc.candidate.as_mut() {
                c.admin_share = Some(Weight::ZERO);
            }
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
        let mut prep = prep;
        for c in [Color::Blue, Color::Green] {
            let prev = (&svc.res.pools[c.index()], &svc.cfg);
            svc.res.pools[c.index()] = Self::pool(c, sc, cfg, Some(prev), &mut prep.upstream_tls);
        }
        svc.res.policy = Self::policy(sc, cfg);
        if sc.mode == Mode::Manual && svc.live != Color::Blue {
            // Manual mode has no alternation: blue is live, green is set by hand.
            svc.live = Color::Blue;
            svc.new_candidate();
        }
        let idle = svc.idle();
        if fingerprint(pool_cfg(&svc.cfg, idle)) != fingerprint(pool_cfg(sc, idle)) {
            tracing::info!(service = %sc.name, color = idle.as_str(), release = pool_cfg(sc, idle).release.as_deref().unwrap_or("-"),
                "new release in the idle pool: a fresh candidate, its plan restarts");
            svc.new_candidate();
            self.window.forget(svc.key).await;
        }
        if let Some(c) = svc.candidate.as_mut() {
            if sc.mode != svc.cfg.mode && sc.mode == Mode::Manual {
                c.step = None;
            }
            c.step = c.step.map(|i| i.min(sc.plan.steps.len() - 1));
        }
        let rebind = prep.socket.is_some();
        svc.cfg = sc.clone();
        svc.res.health.cancel();
        if rebind {
            if let Some(l) = svc.res.listener.take() {
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
                telemetry: self.telemetry.clone(),
            });
            let l = Listener::start(socket, ctx, prep.tls, cfg.limits.clone());
            tracing::info!(service = %svc.cfg.name, addr = %l.addr, "listening");
            svc.res.listener = Some(l);
        }
        svc.res.health = CancellationToken::new();
        health::spawn(
            health::HealthTarget {
                key: svc.key,
                cfg: svc.cfg.health.clone(),
                pools: svc.res.pools.clone(),
                stats: svc.res.stats.clone(),
                expected_hash: (cfg.control.hash_header.clone(), cfg.constitutional_hash.clone()),
            },
            svc.res.health.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(services: &[(&str, u16)]) -> Config {
        let mut text = String::new();
        for (name, port) in services {
            text += &format!(
                "[[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\n[services.blue]\nendpoints = [\"127.0.0.1:1\"]\n[services.green]\nendpoints = [\"127.0.0.1:2\"]\n"
            );
        }
        crate::config::parse(&text, std::path::Path::new("t.toml")).expect("valid")
    }

    #[test]
    fn a_reload_is_planned_as_keep_rebind_create_and_remove() {
        let old = cfg(&[("a", 9001), ("b", 9002), ("c", 9003)]);
        let running: Vec<&ServiceConfig> = old.services.iter().collect();
        let new = cfg(&[("b", 9002), ("a", 9101), ("d", 9004)]);
        assert_eq!(
            plan(&running, &new),
            ConfigPlan { changes: vec![Change::Keep(1), Change::Rebind(0), Change::Create], remove: vec![2] }
        );
    }
}
