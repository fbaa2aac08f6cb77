//! Persisted control state (`state_dir/state.json`), so a restart loses nothing: a service at
//! step 2 resumes at step 2, a rolled-back service stays on blue. Written atomically: temp file,
//! fsync, rename, fsync of the directory. A file that cannot be read is an error the caller
//! reports before starting every service safe on blue.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// I/O on the state directory or file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not valid state.
    #[error("{path}: corrupt state file ({source}); starting every service safe on blue")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Persisted state of one service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    /// As configured when saved.
    pub mode: crate::types::Mode,
    /// Written for readers of the file; a restart recomputes it from the fields below.
    pub state: crate::types::State,
    /// Current plan step index.
    pub step: Option<usize>,
    /// When the current step started (unix ms).
    pub step_since_ms: Option<u64>,
    /// Green weight in percent.
    pub weight: f64,
    /// Rolled back and latched on blue.
    pub latched: bool,
    /// Green release the state refers to (files from before colors alternated match on it).
    pub release: Option<String>,
    /// Green's weight set through the admin API (overrides the plan and the file weight). Green's,
    /// not the candidate's, as files have always said; `control::service::as_green` converts.
    pub admin_weight: Option<f64>,
    /// The live color; absent in files from before colors alternated (blue then).
    #[serde(default)]
    pub live: Option<crate::Color>,
    /// The candidate's color, `None` when the idle pool holds a retired release.
    #[serde(default)]
    pub candidate: Option<crate::Color>,
    /// What the idle pool held when saved (release and endpoints): a different pool at restart
    /// is a new release, whose plan starts fresh; the same one keeps its state (or stays retired).
    #[serde(default)]
    pub idle_pool: Option<String>,
    /// Plan paused by an operator.
    pub paused: bool,
    /// When the pause began (unix ms): the hold stands still from then on, across a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_since_ms: Option<u64>,
    pub incident: Option<String>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateFile {
    pub version: u32,
    /// Per service name.
    pub services: BTreeMap<String, ServiceState>,
    /// The sequence halted after a rollback.
    pub sequence_halted: bool,
}

/// Path of the state file in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// Loads state; a missing file is empty state, a corrupt one an error.
pub fn load(dir: &Path) -> Result<StateFile, StateError> {
    let p = path(dir);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path: p, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StateFile::default()),
        Err(source) => Err(StateError::Io { path: p, source }),
    }
}

/// Saves state atomically.
pub fn save(dir: &Path, state: &StateFile) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
    write_atomic(&path(dir), &bytes)
}

/// Writes `bytes` to `target` via a temp file, fsync, rename and directory fsync.
pub fn write_atomic(target: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = target.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, target).map_err(io(target))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Appends one line to a file and fsyncs it (incident log).
pub fn append_line(target: &Path, line: &str) -> Result<(), StateError> {
    let io = |source| StateError::Io { path: target.to_path_buf(), source };
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(target).map_err(io)?;
    f.write_all(line.as_bytes()).and_then(|_| f.write_all(b"\n")).and_then(|_| f.sync_data()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StateFile { version: 1, ..Default::default() };
        s.services.insert("auth".into(), ServiceState { step: Some(2), latched: true, ..Default::default() });
        save(dir.path(), &s).unwrap();
        assert_eq!(load(dir.path()).unwrap(), s);
        assert!(!dir.path().join("state.tmp").exists());
    }

    #[test]
    fn files_from_before_alternation_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"version":1,"sequence_halted":false,"services":{"auth":{"mode":"progressive",
            "state":"canary","step":1,"step_since_ms":5,"weight":10.0,"latched":false,"release":"1.1",
            "admin_weight":null,"paused":false,"incident":null}}}"#;
        std::fs::write(path(dir.path()), old).unwrap();
        let s = &load(dir.path()).unwrap().services["auth"];
        assert_eq!((s.step, s.live, s.idle_pool.as_deref()), (Some(1), None, None));
    }

    /// Mode and state were strings until they became enums: every string the old code wrote
    /// still loads, and saving writes the same strings back.
    #[test]
    fn mode_and_state_strings_of_string_typed_files_still_load() {
        use crate::types::{Mode, State};
        let dir = tempfile::tempdir().unwrap();
        let entry = |mode: &str, state: &str| {
            format!(
                r#"{{"mode":"{mode}","state":"{state}","step":null,"step_since_ms":null,"weight":0.0,"latched":false,
                "release":"1.1","admin_weight":null,"live":"blue","candidate":"green","idle_pool":"fp","paused":false,
                "incident":null}}"#
            )
        };
        let pairs = [
            ("manual", "stable", Mode::Manual, State::Stable),
            ("progressive", "canary", Mode::Progressive, State::Canary),
            ("progressive", "promoted", Mode::Progressive, State::Promoted),
            ("progressive", "rolled_back", Mode::Progressive, State::RolledBack),
            ("manual", "paused", Mode::Manual, State::Paused),
        ];
        let services: Vec<String> =
            pairs.iter().enumerate().map(|(i, (m, st, ..))| format!("\"s{i}\":{}", entry(m, st))).collect();
        let old = format!(r#"{{"version":1,"sequence_halted":true,"services":{{{}}}}}"#, services.join(","));
        std::fs::write(path(dir.path()), &old).unwrap();
        let file = load(dir.path()).unwrap();
        for (i, (.., mode, state)) in pairs.iter().enumerate() {
            let s = &file.services[&format!("s{i}")];
            assert_eq!((s.mode, s.state), (*mode, *state), "s{i}");
        }
        save(dir.path(), &file).unwrap();
        let written: serde_json::Value = serde_json::from_slice(&std::fs::read(path(dir.path())).unwrap()).unwrap();
        assert_eq!(written, serde_json::from_str::<serde_json::Value>(&old).unwrap(), "the same strings go back");
    }

    #[test]
    fn missing_file_is_empty_and_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), StateFile::default());
        std::fs::write(path(dir.path()), b"{not json").unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }));
        assert!(e.to_string().contains("state.json"));
    }
}
