//! Operator actions composed with the plan (README: "Operator actions and the plan"), every
//! transition against the real binary, once through the CLI and once through the admin API:
//! an override and its way back (`resume` at the step nearest below), `advance` from an
//! override, the last step, `pause` freezing the hold, `reset` with and without a rollback,
//! the latch refusing what would undo it, and `promote` finishing the release from an override.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

/// How an action reaches the proxy.
#[derive(Clone, Copy, Debug)]
enum Via {
    Cli,
    Api,
}

struct Rig {
    p: Proxy,
    _env: Env,
    _mocks: Vec<Mocks>,
}

impl Rig {
    /// Two progressive services (`actc` driven by the CLI, `acta` by the API), steps 10/50/100,
    /// a one-hour hold so that nothing but the operator moves a plan.
    async fn start() -> Rig {
        switchyard::tls::install_provider();
        let mut body =
            "[rollout]\norder = [\"actc\", \"acta\"]\nsequential = false\nsteps = [10, 50, 100]\nhold = \"1h\"\n"
                .to_string();
        let mut mocks = Vec::new();
        for name in ["actc", "acta"] {
            let m = Mocks::start(name).await;
            body += &service_toml(name, "127.0.0.1:0", "mode = \"progressive\"", &m.pools("r2"));
            mocks.push(m);
        }
        let env = Env::new("interval = \"100ms\"\nwindow = \"300ms\"\nmin_samples = 3", &body);
        let p = Proxy::start(&env.path).await.unwrap_or_else(|e| panic!("{}", e.stderr));
        Rig { p, _env: env, _mocks: mocks }
    }

    /// Runs `verb` (with `arg` for `weight`) on `name`; returns the status code (409 read from
    /// the CLI's error), the service's `/status` entry afterwards with the reply's `effect`
    /// (the CLI's first line), and the CLI's text (or error).
    async fn act(&self, via: Via, name: &str, verb: &str, arg: Option<&str>) -> (u16, Value, String) {
        let (code, effect, text) = match via {
            Via::Cli => {
                let mut args = vec![verb, name];
                args.extend(arg);
                let (ok, text, err) = self.p.cli(&args, true).await;
                if !ok {
                    return (if err.contains("409") { 409 } else { 500 }, Value::Null, err);
                }
                let first = text.lines().next().unwrap_or("");
                let effect = first.strip_prefix(&format!("{name}: ")).unwrap_or(first).to_string();
                (200, effect, text)
            }
            Via::Api => {
                let body = arg.map(|w| format!("{{\"green\": {w}}}")).unwrap_or_default();
                let r = client()
                    .post(format!("{}/services/{name}/{verb}", self.p.admin))
                    .bearer_auth(TOKEN)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let code = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if code != 200 {
                    return (code, v, String::new());
                }
                assert_eq!(v["pending"], false, "alone, a reply is the confirmed state: {v:#}");
                (code, v["effect"].as_str().unwrap_or_default().to_string(), String::new())
            }
        };
        let mut v = self.service(name).await;
        v["effect"] = Value::String(effect);
        (code, v, text)
    }

    async fn service(&self, name: &str) -> Value {
        let v = self.p.status().await;
        v["services"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap()
    }
}

fn step(s: &Value) -> Option<u64> {
    s["step"]["index"].as_u64()
}

/// The whole table of transitions on one service through one path.
async fn transitions(rig: &Rig, via: Via, name: &str) {
    let s = rig.service(name).await;
    assert_eq!((step(&s), s["candidate_weight"].as_f64()), (Some(0), Some(10.0)), "{via:?}: plan at step 1: {s:#}");

    // weight: an override, shown as one, with its way back.
    let (code, v, text) = rig.act(via, name, "weight", Some("20")).await;
    assert_eq!(
        (code, v["override_weight"].as_f64(), v["candidate_weight"].as_f64()),
        (200, Some(20.0), Some(20.0)),
        "{v:#}"
    );
    let reason = v["progress"]["reason"].as_str().unwrap();
    assert!(reason.contains("operator weight 20 % (override; resume: back to the plan at step 1/3)"), "{reason}");
    assert!(v["effect"].as_str().unwrap().contains("`resume` hands it back to the plan at step 1/3"), "{v:#}");
    if let Via::Cli = via {
        assert!(text.contains(&format!("{name}: candidate green (r2) at 20 % (operator override")), "{text}");
        assert!(text.contains("live blue 80 % · candidate green (r2) 20 %"), "{text}");
    }

    // resume: the override goes back to the plan at the step nearest below it (10 % < 20 %).
    let (code, v, _) = rig.act(via, name, "resume", None).await;
    assert_eq!(
        (code, step(&v), v["override_weight"].is_null(), v["candidate_weight"].as_f64()),
        (200, Some(0), true, Some(10.0)),
        "{v:#}"
    );
    assert!(v["effect"].as_str().unwrap().contains("override of 20 % handed back to the plan at step 1/3"), "{v:#}");

    // advance from an override: the next step above it, with its weight.
    rig.act(via, name, "weight", Some("70")).await;
    let (code, v, _) = rig.act(via, name, "advance", None).await;
    assert_eq!(
        (code, step(&v), v["override_weight"].is_null(), v["candidate_weight"].as_f64()),
        (200, Some(2), true, Some(100.0)),
        "{v:#}"
    );
    let (code, _, err) = rig.act(via, name, "advance", None).await;
    assert_eq!(code, 409, "no step after the last: {err}");
    if let Via::Cli = via {
        assert!(err.contains("`promote` makes the candidate live"), "the refusal names the way out: {err}");
    }

    // reset without a rollback does not claim to clear one; the plan restarts at step 1.
    let (code, v, _) = rig.act(via, name, "reset", None).await;
    let effect = v["effect"].as_str().unwrap();
    assert!(code == 200 && !effect.contains("rollback cleared") && effect.contains("no rollback to clear"), "{v:#}");
    assert_eq!(step(&v), Some(0), "{v:#}");

    // pause freezes the hold clock; resume lets it run on from where it stood.
    let (code, v, _) = rig.act(via, name, "pause", None).await;
    assert_eq!((code, v["paused"].as_bool(), v["state"].as_str()), (200, Some(true), Some("paused")), "{v:#}");
    let frozen = rig.service(name).await["progress"]["hold_remaining_ms"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await; // time that must not count
    let later = rig.service(name).await["progress"]["hold_remaining_ms"].as_u64().unwrap();
    assert_eq!(later, frozen, "a paused hold does not run down");
    let (code, v, _) = rig.act(via, name, "resume", None).await;
    assert_eq!((code, v["paused"].as_bool()), (200, Some(false)), "{v:#}");
    let left = v["progress"]["hold_remaining_ms"].as_u64().unwrap();
    assert!(left <= frozen && frozen - left < 1000, "the hold runs on from {frozen} ms, not minus the pause: {left}");

    // rollback latches: nothing but reset (or weight 0) acts.
    let (code, v, _) = rig.act(via, name, "rollback", None).await;
    assert_eq!(
        (code, v["state"].as_str(), v["candidate_weight"].as_f64()),
        (200, Some("rolled_back"), Some(0.0)),
        "{v:#}"
    );
    for (verb, arg) in [("advance", None), ("promote", None), ("resume", None), ("pause", None), ("weight", Some("30"))]
    {
        let (code, v, err) = rig.act(via, name, verb, arg).await;
        assert_eq!(code, 409, "{verb} on a rolled-back candidate: {v:#} {err}");
    }
    let (code, v, _) = rig.act(via, name, "reset", None).await;
    assert!(code == 200 && v["effect"].as_str().unwrap().starts_with("rollback cleared"), "{v:#}");
    assert_eq!((v["latched"].as_bool(), step(&v)), (Some(false), Some(0)), "{v:#}");

    // The blocker: weight 100, then promote makes the candidate live (the release is finished).
    let (code, v, _) = rig.act(via, name, "weight", Some("100")).await;
    assert_eq!((code, v["candidate_weight"].as_f64()), (200, Some(100.0)), "{v:#}");
    let (code, v, text) = rig.act(via, name, "promote", None).await;
    assert_eq!((code, v["live"].as_str(), v["candidate"].is_null()), (200, Some("green"), true), "{v:#}");
    assert_eq!(
        (v["state"].as_str(), v["green_weight"].as_f64(), v["live_weight"].as_f64()),
        (Some("promoted"), Some(100.0), Some(100.0))
    );
    if let Via::Cli = via {
        assert!(
            text.contains("promoted: green (r2) is live, the release is finished; blue is idle and retired"),
            "{text}"
        );
    }
    let (code, _, _) = rig.act(via, name, "promote", None).await;
    assert_eq!(code, 409, "nothing left to promote");
    let s = rig.service(name).await;
    assert_eq!((s["live"].as_str(), s["candidate"].as_str()), (Some("green"), None), "{s:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_composes_with_the_plan_through_the_cli_and_the_api() {
    let rig = Rig::start().await;
    transitions(&rig, Via::Cli, "actc").await;
    transitions(&rig, Via::Api, "acta").await;
    let table = rig.p.ok(&["status"]).await;
    assert!(table.contains("live green (r2) 100 %, no candidate"), "{table}");
}
