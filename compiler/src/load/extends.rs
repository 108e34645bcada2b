//! Reading policy files and resolving `extends`.
//!
//! Every file is read and checked once (keyed by its canonical path), so a
//! base reached through two parents (a diamond) is loaded once and its rule
//! ids are not reported as duplicates. `extends` entries are paths relative
//! to the extending file's directory. A cycle is reported at the entry that
//! closes it, naming the chain (`a.yaml → b.yaml → a.yaml`).
//!
//! Expansion appends each base's rules after the policy's own rules, in
//! `extends` order, recursively. A file that has already contributed its
//! rules to the same policy (a diamond) is not appended again: under
//! first-match evaluation the second copy could never decide, so the
//! decisions are the same as Kvlar's, which appends it twice.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use super::schema::{self, Parsed};
use super::yaml::{self, YamlProblem};
use crate::ast::{Policy, PolicySet, Rule, Sp};
use crate::diagnostic::CompileError;
use crate::source::{FileId, SourceMap, Span};

/// Kvlar's built-in template names (not bundled here).
pub const BUILTIN_TEMPLATES: &[&str] = &[
    "postgres",
    "github",
    "slack",
    "shell",
    "default",
    "strict",
    "permissive",
    "filesystem",
];

const TEMPLATE_HELP: &str =
    "built-in templates are not bundled yet; point extends at a file path, e.g. ./postgres.yaml";

struct FileNode {
    file: FileId,
    parsed: Option<Parsed>,
    /// Resolved `extends` targets (`None`: not found, unreadable, or a cycle).
    bases: Vec<Option<usize>>,
    done: bool,
}

/// Loads files and their bases, collecting every error.
pub struct Loader<'s> {
    sources: &'s mut SourceMap,
    errors: Vec<CompileError>,
    by_path: HashMap<PathBuf, usize>,
    nodes: Vec<FileNode>,
    stack: Vec<usize>,
}

impl<'s> Loader<'s> {
    pub fn new(sources: &'s mut SourceMap) -> Self {
        Loader {
            sources,
            errors: Vec::new(),
            by_path: HashMap::new(),
            nodes: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// Loads a top-level policy file (shown in diagnostics as given).
    pub fn load_root_file(&mut self, path: &Path) -> Option<usize> {
        self.load_path(path, &path.display().to_string(), None)
    }

    /// Loads an in-memory policy named `name`; its `extends` entries are
    /// resolved relative to `base_dir`.
    pub fn load_root_text(&mut self, name: &str, text: &str, base_dir: &Path) -> usize {
        let real_dir = std::fs::canonicalize(base_dir).unwrap_or_else(|_| base_dir.to_path_buf());
        let key = real_dir.join(name);
        let file = self.sources.add(name, &key, text);
        self.load_parsed(file, key, base_dir.to_path_buf(), real_dir)
    }

    /// `entry`: the `extends` entry that leads here (for error spans).
    fn load_path(
        &mut self,
        real: &Path,
        display: &str,
        entry: Option<&Sp<String>>,
    ) -> Option<usize> {
        let canonical = match std::fs::canonicalize(real) {
            Ok(c) => c,
            Err(e) => {
                self.read_error(real, display, entry, &e);
                return None;
            }
        };
        if let Some(&idx) = self.by_path.get(&canonical) {
            if self.nodes[idx].done {
                return Some(idx);
            }
            if let Some(entry) = entry {
                let pos = self.stack.iter().position(|&i| i == idx).unwrap_or(0);
                let mut chain: Vec<String> = self.stack[pos..]
                    .iter()
                    .map(|&i| self.sources.get(self.nodes[i].file).name.clone())
                    .collect();
                chain.push(self.sources.get(self.nodes[idx].file).name.clone());
                self.errors.push(CompileError::extends_cycle(
                    self.sources,
                    entry.span,
                    &chain,
                ));
            }
            return None;
        }
        // A base must be a regular file: `extends: [/dev/zero]` would read
        // forever, `/dev/stdin` block. (Top-level paths may be pipes: `<(…)`.)
        if entry.is_some() {
            let not_regular = match std::fs::metadata(&canonical) {
                Ok(m) if m.is_file() => None,
                Ok(_) => Some(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a regular file",
                )),
                Err(e) => Some(e),
            };
            if let Some(e) = not_regular {
                self.read_error(real, display, entry, &e);
                return None;
            }
        }
        let text = match std::fs::read_to_string(&canonical) {
            Ok(t) => t,
            Err(e) => {
                self.read_error(real, display, entry, &e);
                return None;
            }
        };
        let file = self.sources.add(display, &canonical, text);
        let display_dir = Path::new(display)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let real_dir = canonical
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Some(self.load_parsed(file, canonical, display_dir, real_dir))
    }

    fn read_error(
        &mut self,
        real: &Path,
        display: &str,
        entry: Option<&Sp<String>>,
        e: &std::io::Error,
    ) {
        match entry {
            Some(entry) if e.kind() == std::io::ErrorKind::NotFound => {
                let help = if is_template_name(&entry.value) {
                    Some(TEMPLATE_HELP.to_string())
                } else {
                    None
                };
                self.errors.push(CompileError::extends_not_found(
                    self.sources,
                    entry.span,
                    &entry.value,
                    Path::new(display),
                    help,
                ));
            }
            _ => self.errors.push(CompileError::io(
                if entry.is_some() {
                    Path::new(display)
                } else {
                    real
                },
                e,
            )),
        }
    }

    fn load_parsed(
        &mut self,
        file: FileId,
        key: PathBuf,
        display_dir: PathBuf,
        real_dir: PathBuf,
    ) -> usize {
        let idx = self.nodes.len();
        self.nodes.push(FileNode {
            file,
            parsed: None,
            bases: Vec::new(),
            done: false,
        });
        self.by_path.insert(key, idx);
        let text = self.sources.get(file).text.clone();
        let parsed = match yaml::parse(&text) {
            Ok((root, problems)) => {
                for p in problems {
                    self.yaml_problem(file, p);
                }
                Some(schema::parse_policy(
                    self.sources,
                    file,
                    &root,
                    &mut self.errors,
                ))
            }
            Err(p) => {
                self.yaml_problem(file, p);
                None
            }
        };
        let entries = parsed
            .as_ref()
            .map(|p| p.extends.clone())
            .unwrap_or_default();
        self.nodes[idx].parsed = parsed;
        self.stack.push(idx);
        let mut bases = Vec::with_capacity(entries.len());
        for entry in &entries {
            let real = real_dir.join(&entry.value);
            let display = normalize(&display_dir.join(&entry.value));
            bases.push(self.load_path(&real, &display, Some(entry)));
        }
        self.stack.pop();
        let node = &mut self.nodes[idx];
        node.bases = bases;
        node.done = true;
        idx
    }

    fn yaml_problem(&mut self, file: FileId, p: YamlProblem) {
        let e = match p {
            YamlProblem::Syntax {
                message,
                label,
                span,
            } => CompileError::yaml_syntax(
                self.sources,
                Span::new(file, span.start, span.end),
                message,
                label,
            ),
            YamlProblem::DuplicateKey { key, span, first } => CompileError::duplicate_key(
                self.sources,
                Span::new(file, span.start, span.end),
                Span::new(file, first.start, first.end),
                key,
            ),
        };
        self.errors.push(e);
    }

    /// Checks rule ids across every file read, expands `extends` of each
    /// root, and returns the policies (or every error found).
    pub fn finish(self, roots: &[usize]) -> Result<PolicySet, Vec<CompileError>> {
        let (set, errors) = self.finish_all(roots);
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// Like [`Loader::finish`], but always returns what could be loaded, with
    /// the errors beside it, so later stages can report their errors too.
    pub fn finish_all(mut self, roots: &[usize]) -> (PolicySet, Vec<CompileError>) {
        let mut seen: HashMap<String, Span> = HashMap::new();
        let mut dups = Vec::new();
        for node in &self.nodes {
            let Some(parsed) = &node.parsed else { continue };
            for id in &parsed.rule_ids {
                match seen.get(&id.value) {
                    Some(first) if *first != id.span => dups.push((id.clone(), *first)),
                    Some(_) => {}
                    None => {
                        seen.insert(id.value.clone(), id.span);
                    }
                }
            }
        }
        for (id, first) in dups {
            self.errors.push(CompileError::duplicate_rule_id(
                self.sources,
                id.span,
                first,
                id.value,
            ));
        }
        let mut set = PolicySet::default();
        for &root in roots {
            let Some(policy) = self.nodes[root]
                .parsed
                .as_ref()
                .and_then(|p| p.policy.as_ref())
            else {
                continue;
            };
            let mut rules = Vec::new();
            let mut visited = HashSet::new();
            self.expand(root, &mut visited, &mut rules);
            set.policies.push(Policy {
                rules,
                ..policy.clone()
            });
        }
        (set, self.errors)
    }

    fn expand(&self, idx: usize, visited: &mut HashSet<usize>, out: &mut Vec<Rule>) {
        if !visited.insert(idx) {
            return;
        }
        let node = &self.nodes[idx];
        if let Some(policy) = node.parsed.as_ref().and_then(|p| p.policy.as_ref()) {
            out.extend(policy.rules.iter().cloned());
        }
        for b in node.bases.iter().flatten() {
            self.expand(*b, visited, out);
        }
    }
}

/// An `extends` entry that looks like a Kvlar built-in template name rather
/// than a path: no `/` and no `.yaml` / `.yml` suffix.
pub fn is_template_name(entry: &str) -> bool {
    !entry.contains('/')
        && !entry.contains('\\')
        && !entry.ends_with(".yaml")
        && !entry.ends_with(".yml")
}

/// Removes `.` components (lexically; `..` is kept).
fn normalize(p: &Path) -> String {
    let mut out = PathBuf::new();
    for c in p.components() {
        if c != Component::CurDir {
            out.push(c.as_os_str());
        }
    }
    if out.as_os_str().is_empty() {
        ".".to_string()
    } else {
        out.display().to_string()
    }
}
