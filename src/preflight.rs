//! The one verdict on a config file, shared by `run`, `check` and reloads: the file's own rules
//! (`config`) plus what only the disk can answer — TLS and CA files that load, an admin token
//! wherever the admin API is reachable from another host. `check` saying OK means `run` starts.

use crate::config::{self, Config, ConfigError, Token};
use std::path::Path;

/// A config `run` may start from, with the text it was built from (kept as the last good copy).
#[derive(Debug)]
pub struct Accepted {
    /// The validated config.
    pub config: Config,
    /// The exact text accepted.
    pub source: String,
    /// The admin token (environment first, then `admin.token_file`).
    pub token: Option<Token>,
}

/// Reads `path` and judges it; `env_token` is `SWITCHYARD_ADMIN_TOKEN` as the process sees it.
pub fn judge(path: &Path, env_token: Option<String>) -> Result<Accepted, ConfigError> {
    judge_source(config::read(path)?, path, env_token)
}

/// Judges config text; every problem found is returned at once.
pub fn judge_source(source: String, path: &Path, env_token: Option<String>) -> Result<Accepted, ConfigError> {
    let config = config::parse(&source, path)?;
    let mut problems = files_load(&config);
    let token = match Token::from_env_or_file(env_token, config.admin.token_file.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            problems.push(("admin.token_file".into(), format!("cannot read: {e}")));
            None
        }
    };
    if token.is_none() && !config.admin.listen.ip().is_loopback() {
        problems.push((
            "admin.listen".into(),
            format!(
                "{} is reachable from other hosts: set SWITCHYARD_ADMIN_TOKEN or admin.token_file, or listen on 127.0.0.1",
                config.admin.listen
            ),
        ));
    }
    if !problems.is_empty() {
        return Err(config::located(&source, path, problems));
    }
    Ok(Accepted { config, source, token })
}

/// Loads every certificate, key and CA bundle the way the listeners and upstream clients will.
fn files_load(c: &Config) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (i, s) in c.services.iter().enumerate() {
        if let Some(t) = &s.tls {
            if let Err(e) = crate::tls::server_config(t) {
                problems.push((format!("services[{i}].tls"), e.to_string()));
            }
        }
        for (color, pool) in [("blue", &s.blue), ("green", &s.green)] {
            if let Some(ca) = &pool.tls_ca {
                if let Err(e) = crate::upstream::client::build_tls(&c.limits, ca) {
                    problems.push((format!("services[{i}].{color}.tls.ca"), e.to_string()));
                }
            }
        }
    }
    if let Some(ca) = &c.alerts.ca {
        if let Err(e) = crate::alerts::read_ca(ca) {
            problems.push(("alerts.ca".into(), e));
        }
    }
    problems
}

/// What `run` starts from: the file, or — when the file is refused — the last good copy.
#[derive(Debug)]
pub struct Start {
    /// The config to run.
    pub accepted: Accepted,
    /// The file's problems when the last good copy stands in for it.
    pub refused: Option<ConfigError>,
}

/// The file if it is accepted; else the last good copy in the `state_dir` the file names (the
/// copy is judged again: a TLS file deleted since is still a refusal). Without a usable copy,
/// the file's problems.
pub fn start_config(path: &Path, env_token: Option<String>) -> Result<Start, ConfigError> {
    let refused = match judge(path, env_token.clone()) {
        Ok(accepted) => return Ok(Start { accepted, refused: None }),
        Err(e) => e,
    };
    let dir = match config::state_dir_override() {
        Some(d) => d.to_path_buf(),
        None => config::read(path)
            .map(|s| config::last_good::state_dir_of(&s))
            .unwrap_or_else(|_| config::DEFAULT_STATE_DIR.into()),
    };
    let copy = config::last_good::path(&dir);
    if !copy.exists() {
        return Err(refused);
    }
    match judge(&copy, env_token) {
        Ok(accepted) => Ok(Start { accepted, refused: Some(refused) }),
        Err(e) => {
            tracing::error!(copy = %copy.display(), error = %e, "the last good copy is refused too");
            Err(refused)
        }
    }
}
