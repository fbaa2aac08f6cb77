//! Username/password auth: `POST /v3/auth/authenticate` returns a token sent as the
//! `Authorization` header. etcd forgets simple tokens on restart and after `--auth-token-ttl`
//! of disuse, so a call refused for its token authenticates again once and retries, as etcd's
//! own client does. One refresh at a time: concurrent calls that saw the same stale token wait
//! for it instead of each authenticating.

use super::{Etcd, StoreError};
use crate::config::EtcdCredentials;
use serde_json::json;
use std::sync::{Arc, Mutex, PoisonError};

/// The shared token.
pub(super) struct Auth {
    credentials: EtcdCredentials,
    held: Mutex<Held>,
    refresh: tokio::sync::Mutex<()>,
}

/// The token in use; `generation` tells a refresh that another call already replaced the token
/// it found stale.
#[derive(Clone, Default)]
pub(super) struct Held {
    generation: u64,
    /// None after a fetch: the cluster has auth disabled.
    token: Option<Arc<str>>,
    fetched: bool,
}

impl Held {
    pub(super) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

impl Auth {
    pub(super) fn new(credentials: EtcdCredentials) -> Auth {
        Auth { credentials, held: Mutex::new(Held::default()), refresh: tokio::sync::Mutex::new(()) }
    }

    fn held(&self) -> Held {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Etcd {
    /// The token to send (None without credentials); authenticates on first use.
    pub(super) async fn token(&self) -> Result<Held, StoreError> {
        let Some(auth) = &self.shared.auth else { return Ok(Held::default()) };
        let held = auth.held();
        if held.fetched {
            return Ok(held);
        }
        self.reauthenticate(&held).await
    }

    /// Replaces `stale` with a fresh token, unless another call already did.
    pub(super) async fn reauthenticate(&self, stale: &Held) -> Result<Held, StoreError> {
        let Some(auth) = &self.shared.auth else { return Ok(Held::default()) };
        let _one = auth.refresh.lock().await;
        let now = auth.held();
        if now.generation != stale.generation {
            return Ok(now);
        }
        let c = &auth.credentials;
        let body = json!({"name": c.username, "password": c.password});
        let token = match self.call_as("/v3/auth/authenticate", &body, None).await {
            Ok(v) => match v["token"].as_str() {
                Some(t) if !t.is_empty() => Some(Arc::from(t)),
                _ => return Err(StoreError::Decode(format!("authenticate answered without a token: {v}"))),
            },
            // etcd's client carries on without a token here; a later "user name is empty"
            // (auth enabled meanwhile) brings it back.
            Err(StoreError::Status { body, .. }) if body.contains("authentication is not enabled") => None,
            Err(e @ StoreError::Status { .. }) if !e.fails_over() => return Err(StoreError::Auth(e.to_string())),
            Err(e) => return Err(e),
        };
        let held = Held { generation: now.generation + 1, token, fetched: true };
        *auth.held.lock().unwrap_or_else(PoisonError::into_inner) = held.clone();
        Ok(held)
    }

    /// The token to retry with after `e`, a refusal of the token in `held`.
    pub(super) async fn refresh_stale(&self, e: StoreError, held: &Held) -> Result<Held, StoreError> {
        if self.shared.auth.is_none() {
            return Err(StoreError::Auth(format!(
                "{e}; the cluster requires a user: set SWITCHYARD_ETCD_USERNAME and SWITCHYARD_ETCD_PASSWORD"
            )));
        }
        tracing::info!(error = %e, "etcd refused the auth token; authenticating again");
        self.reauthenticate(held).await
    }
}
