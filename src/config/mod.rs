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

/// `run --state-dir` / `SWITCHYARD_STATE_DIR`: where state lives whatever the file says. Set
/// once by the binary before the first config is read; every parse (start, reload, the last
/// good copy) applies it, and a file that cannot be read at all still finds its copy there.
static STATE_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Sets the state directory override (the first call wins).
pub fn override_state_dir(dir: PathBuf) {
    let _ = STATE_DIR.set(dir);
}

/// The state directory override, if `run` was given one.
pub fn state_dir_override() -> Option<&'static Path> {
    STATE_DIR.get().map(PathBuf::as_path)
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

/// Parses and validates config text; `path` is used for messages and `/status`. Every problem
/// is reported at once: a key the parser refuses (unknown, or of the wrong type) is recorded,
/// taken out of the text and the rest parsed again, so validation still judges everything else.
pub fn parse(source: &str, path: &Path) -> Result<Config, ConfigError> {
    let err = |problems| ConfigError { path: path.to_path_buf(), problems };
    let mut text = source.to_string();
    let mut problems = Vec::new();
    let file = loop {
        let e = match toml::from_str::<file::FileConfig>(&text) {
            Ok(f) => break Some(f),
            Err(e) => e,
        };
        let line = e.span().map(|s| line_of(&text, s.start));
        let key = key_at(&text, line).unwrap_or_else(|| "(syntax)".into());
        let next = e.span().filter(|_| problems.len() < MAX_PARSE_PROBLEMS).and_then(|s| without_key(&text, s.start));
        let syntax_after_removal = !problems.is_empty() && key == "(syntax)";
        if !syntax_after_removal {
            let key = named(source, &key);
            problems.push(Problem { key, line, message: named(source, &plain_message(e.message().trim())) });
        }
        match next.filter(|_| !syntax_after_removal) {
            Some(t) => text = t,
            None => break None,
        }
    };
    match (file, problems.is_empty()) {
        (Some(f), true) => validate::build(f, path).map_err(|p| located(source, path, p.0)).map(|mut c| {
            if let Some(dir) = state_dir_override() {
                c.state_dir = dir.to_path_buf();
            }
            c
        }),
        (Some(f), false) => {
            // Judged with the refused keys left out: the rest of the file's problems, located
            // in the original text (the removals kept every line where it was).
            if let Err(p) = validate::build(f, path) {
                problems.extend(located(source, path, p.0).problems);
            }
            Err(err(problems))
        }
        (None, _) => Err(err(problems)),
    }
}

/// More parser refusals than this in one file are a file of another kind: stop there.
const MAX_PARSE_PROBLEMS: usize = 20;

/// The text with the `key = value` that starts on or around byte `at` blanked out (spaces, so
/// every line and offset stays put): a whole `key = value` line, or one entry of an inline
/// table. `None` when no such entry can be found.
fn without_key(text: &str, at: usize) -> Option<String> {
    let line_start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..].find('\n').map_or(text.len(), |i| line_start + i);
    let line = &text[line_start..line_end];
    let indent = line.len() - line.trim_start().len();
    // The entry starts after the last `{` or `,` before `at` on this line (an inline table), or
    // at the line's first character.
    let sep = text[line_start..at].rfind(['{', ',']).map(|i| line_start + i);
    // After a `,` the comma goes too (TOML has no trailing comma in an inline table).
    let from = match sep {
        Some(i) if text.as_bytes()[i] == b',' => i,
        Some(i) => i + 1,
        None => line_start + indent,
    };
    let (mut depth, mut quoted, mut end) = (0i32, false, line_end);
    for (i, ch) in text[from..line_end].char_indices() {
        match ch {
            '"' => quoted = !quoted,
            '[' | '{' if !quoted => depth += 1,
            ']' | '}' if !quoted && depth == 0 => {
                end = from + i;
                break;
            }
            ']' | '}' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 && i > 0 && sep.is_some() => {
                end = from + i + 1;
                break;
            }
            _ => {}
        }
    }
    if end <= from || !text[from..end].contains('=') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..from]);
    out.extend(text[from..end].chars().map(|c| if c == '\n' { c } else { ' ' }));
    out.push_str(&text[end..]);
    Some(out)
}

/// `services[1]` as `services[shop]`: operators know their services by name. Unnamed (or
/// unfound) services keep their index.
fn named(source: &str, text: &str) -> String {
    if !text.contains("services[") {
        return text.to_string();
    }
    let names = service_names(source);
    let mut out = text.to_string();
    for (i, name) in names.iter().enumerate().rev() {
        // A duplicated name would name two services: those keep their index.
        if let Some(n) = name.as_ref().filter(|n| names.iter().filter(|o| o.as_ref() == Some(*n)).count() == 1) {
            out = out.replace(&format!("services[{i}]"), &format!("services[{n}]"));
        }
    }
    out
}

/// The `name = "..."` of each `[[services]]` table, in order.
fn service_names(source: &str) -> Vec<Option<String>> {
    let mut names: Vec<Option<String>> = Vec::new();
    let mut in_service = false;
    for l in source.lines() {
        let t = l.trim();
        if t.starts_with("[[services]]") {
            names.push(None);
            in_service = true;
        } else if t.starts_with('[') {
            in_service = false;
        } else if let Some(v) = t.strip_prefix("name").map(str::trim_start).and_then(|r| r.strip_prefix('=')) {
            let v = v.trim().strip_prefix('"').and_then(|v| v.split('"').next()).unwrap_or("");
            if in_service && !v.is_empty() {
                if let Some(last) = names.last_mut().filter(|n| n.is_none()) {
                    *last = Some(v.to_string());
                }
            }
        }
    }
    names
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
    let problems = problems
        .into_iter()
        .map(|(key, message)| Problem {
            line: locate(source, &key),
            key: named(source, &key),
            message: named(source, &message),
        })
        .collect();
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
