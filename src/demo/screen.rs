//! What the demo prints. On a terminal each frame redraws the screen from the top (intro, legend,
//! table, recent events), so the table refreshes in place; anywhere else (a pipe, a file,
//! `TERM=dumb`) it prints plain lines with no control codes: the legend once, a table per
//! second, events as they happen. Both end with a summary: what happened, what to try next.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;
use switchyard::control::incident::Incident;
use switchyard::control::status::ServiceStatus;
use switchyard::control::StatusDoc;
use switchyard::Color;

/// Events kept on a terminal frame.
const EVENTS_SHOWN: usize = 6;

pub struct Screen {
    tty: bool,
    admin: SocketAddr,
    rps: u64,
    events: Vec<String>,
}

impl Screen {
    pub fn new(admin: SocketAddr) -> Screen {
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Screen { tty: std::io::stdout().is_terminal() && !dumb, admin, rps: 0, events: Vec::new() }
    }

    /// The opening lines and the legend (printed once when piped; part of every frame on a terminal).
    pub fn intro(&mut self, rps: u64) {
        self.rps = rps;
        if !self.tty {
            emit(&self.head());
        }
    }

    fn head(&self) -> Vec<String> {
        vec![
            format!(
                "Switchyard demo: 7 services on loopback, {} req/s each; status page http://{}/ (while the demo runs)",
                self.rps, self.admin
            ),
            "Each service runs its live release in blue (legacy) and rolls out a candidate (acge-1.0.0) in green;"
                .into(),
            "plans advance every 3 s when healthy, and ac's candidate gets +2.5 s of latency at its 25 % step.".into(),
            String::new(),
            "Legend: live / candidate = release (color); cand% = share of requests to the candidate;".into(),
            "  step = plan step i/n; p95 ms and err% over the last 4 s window, L = live, C = candidate;".into(),
            "  C.compl = the candidate's constitutional compliance (rolled back below 0.95);".into(),
            "  state: stable (all on live), canary (candidate takes part), promoted (candidate has all),".into(),
            "  rolled_back (candidate stopped, live has all), paused. A rollback halts the sequence.".into(),
            String::new(),
        ]
    }

    /// Records an event: printed at once when piped, kept on the frame on a terminal.
    pub fn event(&mut self, e: String) {
        if !self.tty {
            emit(&[format!(">>> {e}"), String::new()]);
        }
        self.events.push(e);
    }

    /// One frame.
    pub fn draw(&self, s: &StatusDoc, t: Duration) {
        let mut lines = Vec::new();
        if self.tty {
            lines.extend(self.head());
        }
        lines.extend(table(s, t));
        if self.tty {
            let from = self.events.len().saturating_sub(EVENTS_SHOWN);
            lines.extend(self.events[from..].iter().map(|e| format!(">>> {e}")));
            // Home and clear, then the frame: the table stays where it is and changes in place.
            print!("\x1b[H\x1b[J");
        }
        lines.push(String::new());
        emit(&lines);
    }

    /// What happened and what to try next.
    pub fn summary(&self, s: &StatusDoc, incidents: &[Incident], t: Duration, interrupted: bool) {
        let mut out = vec![format!(
            "What happened ({} s{}):",
            t.as_secs(),
            if interrupted { ", stopped with Ctrl-C" } else { "" }
        )];
        for svc in &s.services {
            out.push(format!("  {:<10} {}", svc.name, story(svc)));
        }
        for i in incidents.iter() {
            out.push(format!(
                "  incident {}: {} rolled back on {} (observed {:.3}, threshold {}), decision→swap {} µs; report: {}",
                i.id,
                i.service,
                i.trigger,
                i.value,
                i.threshold,
                i.decision_to_swap_us,
                i.report.summary.as_deref().unwrap_or("pending")
            ));
        }
        if incidents.is_empty() {
            out.push("  no rollback yet: run longer (about 40 s) to see ac's candidate rolled back".into());
        }
        out.extend([
            String::new(),
            "What to try next:".into(),
            "  - run it again and, while it runs, open the status page it prints, or in another terminal:".into(),
            "      switchyard status --admin http://ADDRESS   and   switchyard incidents --admin http://ADDRESS".into(),
            "    (ADDRESS: the status page's, printed at the top)".into(),
            "  - with SWITCHYARD_ADMIN_TOKEN set, act as an operator: switchyard pause|resume|advance|promote|rollback ac".into(),
            "    (or the status page's buttons, after typing the token there once)".into(),
            "  - your own services: switchyard check --config FILE, then switchyard run --config FILE;".into(),
            "    Prometheus alert rules from the same file: switchyard rules --config FILE".into(),
            "  - the full stack with Prometheus, Alertmanager and Grafana: docker/README.md".into(),
        ]);
        emit(&out);
    }
}

fn emit(lines: &[String]) {
    let mut out = std::io::stdout().lock();
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    let _ = out.flush();
}

/// `acge-1.0.0 (green)`.
fn named(release: Option<&str>, c: Color) -> String {
    format!("{} ({})", release.unwrap_or("-"), c.as_str())
}

fn table(s: &StatusDoc, t: Duration) -> Vec<String> {
    let mut lines = vec![
        format!(
            "t={:>3}s  sequence: {}{}",
            t.as_secs(),
            s.sequence.current.as_deref().unwrap_or("-"),
            if s.sequence.halted { "  HALTED (rollback)" } else { "" }
        ),
        format!(
            "  {:<10} {:<11} {:<20} {:<20} {:>5} {:>5} {:>5} {:>7} {:>7} {:>6} {:>6} {:>7}",
            "service",
            "state",
            "live",
            "candidate",
            "cand%",
            "step",
            "rps",
            "L.p95",
            "C.p95",
            "L.err%",
            "C.err%",
            "C.compl"
        ),
    ];
    for svc in &s.services {
        let live = svc.window.get(svc.live);
        let cand = svc.candidate.map(|c| svc.window.get(c));
        let share =
            svc.candidate.map_or(0.0, |c| if c == Color::Green { svc.green_weight } else { 100.0 - svc.green_weight });
        let step = match (&svc.step, svc.latched) {
            (Some(st), false) => format!("{}/{}", st.index + 1, st.of),
            _ => "-".into(),
        };
        let c = |f: fn(&switchyard::stats::MeasurementView) -> String| cand.map_or("-".into(), f);
        lines.push(format!(
            "  {:<10} {:<11} {:<20} {:<20} {:>5} {:>5} {:>5.0} {:>7.1} {:>7} {:>6.2} {:>6} {:>7}",
            svc.name,
            svc.state.as_str(),
            named(svc.live_release.as_deref(), svc.live),
            svc.candidate.map_or("-".into(), |c| named(svc.candidate_release.as_deref(), c)),
            share,
            step,
            svc.window.blue.rps + svc.window.green.rps,
            live.p95_ms,
            c(|m| format!("{:.1}", m.p95_ms)),
            live.error_rate * 100.0,
            c(|m| format!("{:.2}", m.error_rate * 100.0)),
            c(|m| m.compliance.map_or("-".into(), |x| format!("{x:.3}"))),
        ));
    }
    lines
}

/// One service's outcome in words, release first.
fn story(svc: &ServiceStatus) -> String {
    let live = named(svc.live_release.as_deref(), svc.live);
    let Some(c) = svc.candidate else {
        return format!("{live} is live: the candidate finished its plan and took over");
    };
    let cand = named(svc.candidate_release.as_deref(), c);
    match (&svc.step, svc.latched) {
        (Some(st), true) => {
            format!("candidate {cand} rolled back at step {}/{}; {live} serves all traffic", st.index + 1, st.of)
        }
        (_, true) => format!("candidate {cand} rolled back; {live} serves all traffic"),
        (Some(st), false) => format!(
            "candidate {cand} at step {}/{} ({} %), {live} still live",
            st.index + 1,
            st.of,
            st.weights.get(st.index).copied().unwrap_or(0.0)
        ),
        (None, false) => format!(
            "candidate {cand} waiting ({}); {live} serves all traffic",
            svc.progress.as_ref().and_then(|p| p.reason.as_deref()).unwrap_or("not started")
        ),
    }
}
