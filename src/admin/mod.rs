//! The admin API on `admin.listen` (loopback by default): status page, `/metrics`, health and
//! readiness, `/status`, incidents, and mutating calls that need `Authorization: Bearer TOKEN`.
//! Reads come from snapshots the control loop published; writes are commands to it.

mod ack;
mod auth;

use crate::body::ResponseBody;
use crate::control::{Action, Command, CommandError, ControlHandle};
use crate::reload::ReloadError;
use crate::route::Weight;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use auth::Token;

const PAGE: &str = include_str!("status.html");

/// Reloads the config on demand (`POST /reload`); implemented by `reload`.
pub type ReloadFn =
    Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, Result<serde_json::Value, ReloadError>> + Send + Sync>;

/// What the admin server needs.
pub struct Admin {
    pub control: ControlHandle,
    pub metrics: PrometheusHandle,
    /// Bearer token, if configured.
    pub token: Option<Token>,
    pub reload: ReloadFn,
}

/// Serves the admin API until `stop` is cancelled, then finishes the requests in progress on
/// its connections (up to `ADMIN_DRAIN`) and closes them: none is left behind.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, stop: CancellationToken) {
    let conns = TaskTracker::new();
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let (admin, stop) = (admin.clone(), stop.clone());
        conns.spawn(async move {
            let svc = service_fn(move |req| handle(admin.clone(), req));
            let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            b.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
            let conn = b.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(ADMIN_DRAIN, conn).await;
                }
            }
        });
    }
    drop(listener);
    conns.close();
    conns.wait().await;
}

/// How long admin requests in progress at shutdown may take to finish.
const ADMIN_DRAIN: Duration = Duration::from_secs(2);

fn json(status: StatusCode, v: &impl serde::Serialize) -> Response<ResponseBody> {
    let mut r = Response::new(ResponseBody::full(serde_json::to_vec_pretty(v).expect("json")));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    r
}

fn text(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut r = Response::new(ResponseBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ctype));
    r
}

/// The status page. Its buttons act with the token the operator typed into it, so no other
/// site may frame it (a framed page could be clicked through: clickjacking); nothing cached.
fn page() -> Response<ResponseBody> {
    let mut r = text(StatusCode::OK, "text/html; charset=utf-8", PAGE);
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    h.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static("frame-ancestors 'none'"));
    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer"));
    r
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response<ResponseBody> {
    json(status, &serde_json::json!({"error": msg.into()}))
}

async fn handle(admin: Arc<Admin>, req: Request<Incoming>) -> Result<Response<ResponseBody>, Infallible> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let p = &admin.control.published;
    let resp = match (req.method(), segs.as_slice()) {
        (&Method::GET, []) => page(),
        (&Method::GET, ["metrics"]) => {
            let body = admin.metrics.render() + &roles(&p.status.load()) + &crate::stats::process::render();
            text(StatusCode::OK, "text/plain; version=0.0.4", body)
        }
        (&Method::GET, ["healthz"]) => text(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, ["readyz"]) if admin.control.ready() => text(StatusCode::OK, "text/plain", "ready\n"),
        (&Method::GET, ["readyz"]) => text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n"),
        (&Method::GET, ["status"]) => json(StatusCode::OK, &**p.status.load()),
        (&Method::GET, ["incidents"]) => {
            json(StatusCode::OK, &serde_json::to_value(&**p.incidents.load()).unwrap_or_default())
        }
        (&Method::GET, ["incidents", id]) => match p.incidents.load().iter().find(|i| i.id == *id) {
            Some(i) => json(StatusCode::OK, &serde_json::to_value(i).unwrap_or_default()),
            None => error(StatusCode::NOT_FOUND, format!("no incident {id}")),
        },
        (&Method::POST, _) => match auth::check(admin.token.as_ref(), req.headers()) {
            Err(r) => r,
            Ok(()) => mutate(&admin, req, &segs).await,
        },
        (_, ["metrics" | "healthz" | "readyz" | "status" | "incidents", ..]) | (_, []) => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}")),
    };
    Ok(resp)
}

async fn mutate(admin: &Admin, req: Request<Incoming>, segs: &[&str]) -> Response<ResponseBody> {
    let (name, action) = match segs {
        ["reload"] => {
            return match (admin.reload)().await {
                Ok(v) => json(StatusCode::OK, &v),
                Err(ReloadError::Apply(CommandError::NotRunning)) => {
                    error(StatusCode::SERVICE_UNAVAILABLE, "control loop stopped")
                }
                Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            };
        }
        ["incidents", id, "ack"] => return ack::ack(&admin.control, req, id).await,
        ["services", name, "weight"] => {
            let body = match http_body_util::Limited::new(req.into_body(), 4096).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return error(StatusCode::BAD_REQUEST, "unreadable body"),
            };
            let w = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("green").and_then(|g| g.as_f64()))
                .ok_or("body must be JSON {\"green\": PERCENT}".to_string())
                .and_then(|g| Weight::from_percent(g).map_err(|e| e.to_string()));
            match w {
                Ok(w) => (name.to_string(), Action::Weight(w)),
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            }
        }
        ["services", name, verb] => {
            let action = match *verb {
                "rollback" => Action::Rollback,
                "reset" => Action::Reset,
                "pause" => Action::Pause,
                "resume" => Action::Resume,
                "advance" => Action::Advance,
                "promote" => Action::Promote,
                _ => return error(StatusCode::NOT_FOUND, format!("unknown action {verb}")),
            };
            (name.to_string(), action)
        }
        _ => return error(StatusCode::NOT_FOUND, "no such endpoint"),
    };
    match admin.control.call(|reply| Command::Act(name, action, reply)).await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => error(command_status(&e), e.to_string()),
    }
}

/// `switchyard_release_info` and `switchyard_endpoint_up` from the published snapshot.
fn roles(doc: &crate::control::StatusDoc) -> String {
    use crate::stats::roles::{render, ColorRole};
    use crate::Color;
    let mut rows = Vec::new();
    for s in &doc.services {
        for c in [Color::Blue, Color::Green] {
            let (role, release) = if c == s.live {
                ("live", s.live_release.as_deref())
            } else if s.candidate == Some(c) {
                ("candidate", s.candidate_release.as_deref())
            } else {
                ("idle", None)
            };
            let endpoints = s.endpoints.get(c).iter().map(|e| (e.address.as_str(), e.healthy && !e.ejected)).collect();
            rows.push(ColorRole {
                service: &s.name,
                color: c.as_str(),
                role,
                release: release.unwrap_or(""),
                endpoints,
            });
        }
    }
    render(&rows)
}

/// The one place a refused command becomes an HTTP status, by its class.
fn command_status(e: &CommandError) -> StatusCode {
    match e {
        CommandError::NoService(_) | CommandError::NoIncident(_) => StatusCode::NOT_FOUND,
        CommandError::MissingAcknowledger => StatusCode::BAD_REQUEST,
        CommandError::NotRunning => StatusCode::SERVICE_UNAVAILABLE,
        CommandError::Conflict(_) => StatusCode::CONFLICT,
        CommandError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}
