//! Refusals travel as typed classes: a stopped control loop answers 503 (not 409), a start-up
//! bind failure is `ServeError::Start(ApplyError::Bind)` with the config key path in its text.
use crate::support::*;
use std::sync::Arc;
use switchyard::admin::{self, Admin};
use switchyard::alerts::Alerter;
use switchyard::control::Controller;
use switchyard::error::{ApplyError, ServeError};
use switchyard::route::Router;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_stopped_control_loop_answers_503_to_actions_and_reloads() {
    let m = Mocks::start("stopped").await;
    let env = Env::new(FAST, &service_toml("stopped", "127.0.0.1:0", "", &m.pools("r1")));
    let cfg = switchyard::config::load(&env.path).unwrap();
    let alerter = Alerter::spawn(cfg.alerts.clone());
    let (controller, control, inbox) =
        Controller::start(cfg, Arc::new(Router::new()), alerter, switchyard::workers::Workers::current())
            .await
            .unwrap();
    drop((controller, inbox)); // the loop is gone: its command channel is closed
    let reload: admin::ReloadFn = {
        let (path, control) = (env.path.clone(), control.clone());
        Arc::new(move || {
            let (path, control) = (path.clone(), control.clone());
            Box::pin(async move { switchyard::reload::reload_once(&path, &control).await })
        })
    };
    let admin = Arc::new(Admin {
        control,
        metrics: switchyard::app::prometheus(),
        token: Some(admin::Token::new(TOKEN)),
        reload,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(admin::serve(listener, admin, stop.clone()));

    for path in ["/services/stopped/rollback", "/services/stopped/promote", "/reload"] {
        let r = client().post(format!("http://{addr}{path}")).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 503, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "control loop stopped", "{path}");
    }
    stop.cancel();
}

#[tokio::test]
async fn a_listener_that_cannot_bind_fails_start_with_a_typed_apply_error() {
    let m = Mocks::start("taken").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let env = Env::new(FAST, &service_toml("taken", &format!("127.0.0.1:{port}"), "", &m.pools("r1")));
    let cfg = switchyard::config::load(&env.path).unwrap();
    let mut opts = switchyard::app::AppOptions::new(&env.path);
    opts.watch = false;
    match switchyard::app::App::start(cfg, opts).await {
        Err(e @ ServeError::Start(ApplyError::Bind { .. })) => {
            let text = e.to_string();
            assert!(text.starts_with(&format!("services.taken.listen: cannot bind 127.0.0.1:{port}: ")), "{text}");
        }
        Err(e) => panic!("expected a bind failure, got {e:?}"),
        Ok(_) => panic!("started on a port that is taken"),
    }
}
