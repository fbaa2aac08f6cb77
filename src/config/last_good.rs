//! The last config `run` accepted, kept in `state_dir` so a restart with a broken file (a bad
//! ConfigMap edit that a reload already refused) serves from it instead of crash-looping.

use std::path::{Path, PathBuf};

/// File name of the copy inside `state_dir`.
pub const FILE_NAME: &str = "last-good.toml";

/// Where the copy lives for a given `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Replaces the copy atomically: a crash mid-write leaves the previous copy whole.
pub fn save(state_dir: &Path, source: &str) -> Result<(), crate::state::StateError> {
    crate::state::write_atomic(&path(state_dir), source.as_bytes())
}

/// The `state_dir` a file names even when the rest of it is broken: from the TOML if it parses,
/// else from a top-level `state_dir = "..."` line, else the default.
pub fn state_dir_of(source: &str) -> PathBuf {
    if let Ok(v) = source.parse::<toml::Table>() {
        return match v.get("state_dir").and_then(|d| d.as_str()) {
            Some(d) => d.into(),
            None => super::DEFAULT_STATE_DIR.into(),
        };
    }
    let top_level = source.lines().take_while(|l| !l.trim_start().starts_with('['));
    top_level
        .filter_map(|l| l.trim().strip_prefix("state_dir")?.trim_start().strip_prefix('='))
        .filter_map(|v| v.trim().strip_prefix('"')?.split('"').next().map(PathBuf::from))
        .next()
        .unwrap_or_else(|| super::DEFAULT_STATE_DIR.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_is_found_in_a_file_that_does_not_parse() {
        let broken = "state_dir = \"/var/lib/sy\"\n[control\ninterval = ";
        assert_eq!(state_dir_of(broken), PathBuf::from("/var/lib/sy"));
        assert_eq!(state_dir_of("state_dir = \"d\"\n[admin]\nlisten = 1"), PathBuf::from("d"));
        assert_eq!(state_dir_of("[[services]\n"), PathBuf::from(crate::config::DEFAULT_STATE_DIR));
    }
}
