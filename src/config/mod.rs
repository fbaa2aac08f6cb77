//! Configuration: `file` mirrors the TOML, `model` holds validated types, `validate` builds one
//! from the other. `load` is the only entry point, used at start-up, by `check` and by reloads.

pub mod file;
pub mod last_good;
pub mod model;
mod rules;
mod token;
mod validate;

pub use model::*;
pub use token::Token;

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a config file, located for the operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted key path, e.g. `services[1].green_weight`.
    pub key: String,
    /// 1-based line, when it could be located.
    pub line: Option<usize>,
    pub message: String,
}

/// Why a config could not be loaded: every problem found, not just the first.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// File that was read.
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match p.line {
                Some(l) => write!(f, "{}:{}: {}: {}", self.path.display(), l, p.key, p.message)?,
                None => write!(f, "{}: {}: {}", self.path.display(), p.key, p.message)?,
            }
        }
        Ok(())
    }
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    parse(&read(path)?, path)
}

/// The file's text, or the problem of reading it.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        problems: vec![Problem { key: "(file)".into(), line: None, message: format!("cannot read: {e}") }],
    })
}

/// Parses and validates config text; `path` is used for messages and `/status`.
pub fn parse(source: &str, path: &Path) -> Result<Config, ConfigError> {
    let err = |problems| ConfigError { path: path.to_path_buf(), problems };
    let file: file::FileConfig = toml::from_str(source).map_err(|e| {
        let line = e.span().map(|s| line_of(source, s.start));
        let key = key_at(source, line).unwrap_or_else(|| "(syntax)".into());
        err(vec![Problem { key, line, message: plain_message(e.message().trim()) }])
    })?;
    validate::build(file, path).map_err(|p| located(source, path, p.0))
}

/// serde's untagged-enum failure names a Rust type, not what to write: say what to write.
fn plain_message(serde: &str) -> String {
    match serde.split("untagged enum ").nth(1) {
        Some(ty) if serde.contains("did not match any variant") => match ty.trim() {
            "FileSticky" => "must be \"client_ip\", { header = \"NAME\" } or { cookie = \"NAME\" }".into(),
            ty => format!("has none of the accepted forms of {}", ty.trim_start_matches("File").to_lowercase()),
        },
        _ => serde.to_string(),
    }
}

/// A `ConfigError` for problems found after parsing (files that do not load, a missing token),
/// each placed on the line of its key like the parser's own.
pub fn located(source: &str, path: &Path, problems: Vec<(String, String)>) -> ConfigError {
    let problems =
        problems.into_iter().map(|(key, message)| Problem { line: locate(source, &key), key, message }).collect();
    ConfigError { path: path.to_path_buf(), problems }
}

fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

/// The key written on `line`, if that line is `key = ...`, prefixed by its table header.
fn key_at(source: &str, line: Option<usize>) -> Option<String> {
    let line = line?;
    let mut table = String::new();
    let mut services = 0usize;
    for (i, l) in source.lines().enumerate() {
        let t = l.trim();
        if t.starts_with("[[services]]") {
            table = format!("services[{services}]");
            services += 1;
        } else if let Some(h) = t.strip_prefix('[').and_then(|h| h.split(']').next()) {
            table = h.trim_matches('[').to_string();
        }
        if i + 1 == line {
            let key = t.split('=').next()?.trim();
            if key.is_empty() || key.starts_with('[') {
                return Some(table);
            }
            return Some(if table.is_empty() { key.to_string() } else { format!("{table}.{key}") });
        }
    }
    None
}

/// Best-effort line of a key path such as `services[2].green.endpoints[0]` or `control.interval`.
fn locate(source: &str, key: &str) -> Option<usize> {
    let lines: Vec<&str> = source.lines().collect();
    let (start, end, rest) = if let Some(r) = key.strip_prefix("services[") {
        let (idx, rest) = r.split_once(']')?;
        let idx: usize = idx.parse().ok()?;
        let start = lines.iter().enumerate().filter(|(_, l)| l.trim().starts_with("[[services]]")).nth(idx)?.0;
        let end =
            lines[start + 1..].iter().position(|l| l.trim().starts_with('[')).map_or(lines.len(), |p| start + 1 + p);
        (start, end, rest.trim_start_matches('.'))
    } else {
        let (table, rest) = best_table(&lines, key);
        match table {
            Some(s) => {
                let end =
                    lines[s + 1..].iter().position(|l| l.trim().starts_with('[')).map_or(lines.len(), |p| s + 1 + p);
                (s, end, rest)
            }
            None => (0, lines.iter().position(|l| l.trim().starts_with('[')).unwrap_or(lines.len()), rest),
        }
    };
    let first = rest.split(['.', '[']).next().unwrap_or("");
    if first.is_empty() {
        return Some(start + 1);
    }
    let found = lines[start..end].iter().position(|l| {
        let t = l.trim_start();
        t.strip_prefix(first).is_some_and(|after| after.starts_with([' ', '=', '.']))
    });
    Some(found.map_or(start + 1, |p| start + p + 1))
}

/// The longest `[a.b]` header that prefixes `key`, and what remains of the key.
fn best_table<'k>(lines: &[&str], key: &'k str) -> (Option<usize>, &'k str) {
    let mut best = (None, key);
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        let Some(h) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) else { continue };
        if let Some(rest) = key.strip_prefix(h).filter(|r| r.is_empty() || r.starts_with('.')) {
            if best.0.is_none() || rest.len() < best.1.len() {
                best = (Some(i), rest.trim_start_matches('.'));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests;
