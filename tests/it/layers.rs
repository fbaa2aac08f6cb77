//! The module dependency rule (ARCHITECTURE.md): references between top-level `src/` modules
//! only point down, so the graph of `crate::NAME` references has no cycle, and `types` (the
//! vocabulary) uses nothing else in the crate. Read from the source text so the rule is checked
//! by `cargo test` alone, with no tool outside the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// One reference that creates an edge, kept so a failure names where to look.
type Edges = BTreeMap<String, BTreeMap<String, String>>;

#[test]
fn src_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = module_graph(&src);
    assert!(edges.len() > 10, "found only {:?} under {}", edges.keys(), src.display());
    let cycles = cycles(&edges);
    assert!(cycles.is_empty(), "module cycles in src/ (each edge names one reference):\n{}", describe(&edges, &cycles));
}

#[test]
fn types_is_a_leaf() {
    let edges = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let out = edges.get("types").expect("src/types exists");
    assert!(out.is_empty(), "types must use nothing in the crate, but uses {out:?}");
}

#[test]
fn the_check_finds_a_cycle_hidden_behind_a_crate_root_re_export() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| fs::write(dir.path().join(name), text).unwrap();
    write("lib.rs", "pub mod a;\npub mod b;\npub mod c;\npub use c::Thing;\n");
    write("a.rs", "use crate::{b::X, c};\n// crate::zzz in a comment is not a reference\n");
    write("b.rs", "pub fn f() -> crate::Thing { todo!() }\n");
    write("c.rs", "pub struct Thing;\n#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n");
    let edges = module_graph(dir.path());
    assert_eq!(edges["a"].keys().collect::<Vec<_>>(), ["b", "c"]);
    assert_eq!(edges["b"].keys().collect::<Vec<_>>(), ["c"], "crate::Thing resolves to c");
    assert!(edges["c"].is_empty(), "unit tests may look anywhere");
    assert!(cycles(&edges).is_empty());

    write("c.rs", "pub struct Thing;\nfn g() { crate::a::h() }\n");
    let edges = module_graph(dir.path());
    let found = cycles(&edges);
    assert_eq!(found, [["a", "b", "c"]]);
    let text = describe(&edges, &found);
    assert!(text.contains("b -> c (") && text.contains("c -> a (") && text.contains("c.rs:2"), "{text}");
}

/// Top-level module → module it references → the first `file:line` that does.
fn module_graph(src: &Path) -> Edges {
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        if name == "lib" || name == "main" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, files.entry(name).or_default());
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.entry(name).or_default().push(path);
        }
    }
    let aliases = root_aliases(&src.join("lib.rs"));
    let mut edges = Edges::new();
    for (module, paths) in &files {
        let out = edges.entry(module.clone()).or_default();
        for path in paths {
            let text = without_unit_tests(&fs::read_to_string(path).unwrap());
            for (line, name) in crate_references(&text) {
                let target = aliases.get(&name).unwrap_or(&name);
                if target != module && files.contains_key(target) {
                    out.entry(target.clone()).or_insert_with(|| format!("{}:{line}", path.display()));
                }
            }
        }
    }
    edges
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
            out.push(path);
        }
    }
}

/// `pub use module::Name;` in lib.rs makes `crate::Name` a reference to `module`.
fn root_aliases(lib: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(lib).unwrap_or_default();
    let mut aliases = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else { continue };
        let path = rest.trim_end_matches(';').trim_start_matches("crate::");
        let Some((module, items)) = path.split_once("::") else { continue };
        for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
            let item = item.trim();
            let name = item.rsplit(" as ").next().unwrap_or(item).rsplit("::").next().unwrap_or(item);
            if !name.is_empty() {
                aliases.insert(name.to_string(), module.to_string());
            }
        }
    }
    aliases
}

/// Drops line comments and a trailing `#[cfg(test)] mod tests { … }` (unit tests may look anywhere).
fn without_unit_tests(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" && lines.peek().is_some_and(|l| l.trim().starts_with("mod tests {")) {
            break;
        }
        out.push_str(line.split("//").next().unwrap_or(""));
        out.push('\n');
    }
    out
}

/// `(line, first segment)` of every `crate::x` path, including each path of a `crate::{…}` group.
fn crate_references(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let line = text[..at].matches('\n').count() + 1;
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            found.extend(group_heads(group).into_iter().map(|name| (line, name)));
        } else {
            found.push((line, ident(rest)));
        }
    }
    found.retain(|(_, name)| !name.is_empty());
    found
}

/// First segments of the top-level comma-separated paths of a `{…}` group.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = vec![ident(group.trim_start())];
    let mut depth = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => heads.push(ident(group[i + 1..].trim_start())),
            _ => {}
        }
    }
    heads
}

fn ident(s: &str) -> String {
    s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// Strongly connected sets of more than one module (Tarjan), each sorted.
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a Edges,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in self.edges[v].keys().map(String::as_str) {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    self.low.insert(v, self.low[v].min(self.low[w]));
                } else if self.stack.contains(&w) {
                    self.low.insert(v, self.low[v].min(self.index[w]));
                }
            }
            if self.low[v] == self.index[v] {
                let at = self.stack.iter().position(|&x| x == v).unwrap();
                let mut set: Vec<String> = self.stack.drain(at..).map(str::to_owned).collect();
                if set.len() > 1 {
                    set.sort();
                    self.found.push(set);
                }
            }
        }
    }
    let mut walk = Walk { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in edges.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

fn describe(edges: &Edges, cycles: &[Vec<String>]) -> String {
    let mut text = String::new();
    for set in cycles {
        let members: BTreeSet<&String> = set.iter().collect();
        text.push_str(&format!("cycle: {}\n", set.join(" ")));
        for a in set {
            for (b, at) in &edges[a] {
                if members.contains(b) {
                    text.push_str(&format!("  {a} -> {b} ({at})\n"));
                }
            }
        }
    }
    text
}
