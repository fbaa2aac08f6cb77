//! The one fixture: a running app in front of one service's real mocks, built from the parts a
//! test varies (control lines, `[limits]` lines, service lines, explicit pools).

use super::{Env, Mocks};
use std::net::SocketAddr;
use switchyard::app::App;

pub struct Fixture {
    pub mocks: Mocks,
    /// Holds the temp dir (config and state) for the fixture's lifetime.
    pub _env: Env,
    pub app: App,
    pub addr: SocketAddr,
}

/// Collects the config of a one-service fixture; `start` writes it and starts the app.
#[must_use]
pub struct FixtureBuilder {
    name: String,
    control: String,
    limits: String,
    service: String,
    pools: Option<(Mocks, String)>,
    threads: usize,
}

impl Fixture {
    /// Service `name` on 127.0.0.1:0 in front of mocks `NAME-blue`/`NAME-green` (green at 0 %,
    /// release `r1`), with the control loop at its defaults (a 30 s interval: no measurement
    /// closes during a test) unless `control` says otherwise.
    pub fn builder(name: &str) -> FixtureBuilder {
        FixtureBuilder {
            name: name.into(),
            control: String::new(),
            limits: String::new(),
            service: String::new(),
            pools: None,
            threads: 1,
        }
    }

    /// Writes the config (`control` lines in `[control]`, then `body`), starts the app and finds
    /// service `name`'s listener: for configs a builder does not describe (several services).
    pub async fn launch(mocks: Mocks, name: &str, control: &str, body: &str) -> Fixture {
        Fixture::launch_on(mocks, name, control, body, 1).await
    }

    /// [`Fixture::launch`] with `threads` worker runtimes (`--threads N`).
    pub async fn launch_on(mocks: Mocks, name: &str, control: &str, body: &str, threads: usize) -> Fixture {
        let mut env = Env::new(control, body);
        env.threads = threads;
        let app = env.start().await;
        let addr = app.service_addr(name).expect("service is listening");
        Fixture { mocks, _env: env, app, addr }
    }

    /// Stops the app and both mocks.
    pub async fn stop(self) {
        self.app.shutdown().await;
        self.mocks.blue.shutdown().await;
        self.mocks.green.shutdown().await;
    }
}

impl FixtureBuilder {
    /// Lines of the `[control]` table.
    pub fn control(mut self, lines: &str) -> Self {
        self.control = lines.into();
        self
    }

    /// Lines of the top-level `[limits]` table.
    pub fn limits(mut self, lines: &str) -> Self {
        self.limits = lines.into();
        self
    }

    /// Extra lines of the `[[services]]` table (weight, sticky, retry, health, ...).
    pub fn service(mut self, lines: &str) -> Self {
        self.service = lines.into();
        self
    }

    /// Own mocks and `blue = ...`/`green = ...` lines instead of the default pair.
    pub fn pools(mut self, mocks: Mocks, pools: &str) -> Self {
        self.pools = Some((mocks, pools.into()));
        self
    }

    /// Worker runtimes (`--threads N`); 1 by default.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    pub async fn start(self) -> Fixture {
        let (mocks, pools) = match self.pools {
            Some(p) => p,
            None => {
                let mocks = Mocks::start(&self.name).await;
                let pools = mocks.pools("r1");
                (mocks, pools)
            }
        };
        let body = format!(
            "[limits]\n{}\n{}",
            self.limits,
            super::service_toml(&self.name, "127.0.0.1:0", &self.service, &pools)
        );
        Fixture::launch_on(mocks, &self.name, &self.control, &body, self.threads).await
    }
}
