//! The policy test-file format (`*.test.yaml`): Kvlar's format unchanged
//! (`policy:` relative to the test file, `tests:` whose cases give an
//! `action {action_type, resource, agent_id, parameters}` and an `expect`),
//! plus native cases whose `call:` is an MCP `tools/call` params object
//! `{name, arguments}` (agent `mcp-agent`).
//!
//! The file is parsed with the compiler's YAML loader (spanned nodes), so
//! every problem — malformed YAML, an unknown key (with a did-you-mean), a
//! missing key, a value of the wrong type — is a diagnostic with the file,
//! line and column. All problems of a file are reported, not just the first.

use std::ops::Range;
use std::path::{Path, PathBuf};

use kvlar_compiler::diagnostic::did_you_mean;
use kvlar_compiler::load::schema::{out_of_range, to_json, JsonProblem};
use kvlar_compiler::load::yaml::{self, key_text, YKind, YNode, YamlProblem};
use kvlar_compiler::{CompileError, FileId, SourceMap, Span};
use kvlar_vm::Effect;
use serde_json::{Map, Value};

use crate::input::{OwnedCall, TEST_AGENT};

pub const FILE_KEYS: &[&str] = &["policy", "tests"];
pub const CASE_KEYS: &[&str] = &[
    "id",
    "description",
    "action",
    "call",
    "expect",
    "rule",
    "reason_contains",
];
pub const ACTION_KEYS: &[&str] = &["action_type", "resource", "agent_id", "parameters"];
pub const CALL_KEYS: &[&str] = &["name", "arguments"];

/// The spellings `expect:` accepts (compared after trimming and lower-casing,
/// as Kvlar does).
pub const EXPECT_SPELLINGS: &[(&str, Effect)] = &[
    ("allow", Effect::Allow),
    ("deny", Effect::Deny),
    ("require_approval", Effect::RequireApproval),
    ("requireapproval", Effect::RequireApproval),
    ("approval", Effect::RequireApproval),
];

/// A parsed test file.
#[derive(Debug)]
pub struct TestFile {
    /// The `policy:` entry, resolved against the test file's folder.
    pub policy: Option<PathBuf>,
    pub cases: Vec<Case>,
}

/// One test case.
#[derive(Debug)]
pub struct Case {
    pub id: String,
    pub description: Option<String>,
    pub call: OwnedCall,
    pub expect: Effect,
    pub rule: Option<String>,
    pub reason_contains: Option<String>,
    /// 1-based line of the case in the test file.
    pub line: usize,
}

/// Reads and checks a test file. `Err` carries every problem found, each a
/// diagnostic on the file's text.
/// `needs_policy`: whether a missing `policy:` is an error (it is unless
/// `--policy` overrides it).
pub fn load(path: &Path, needs_policy: bool) -> Result<TestFile, Vec<CompileError>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![CompileError::io(path, &e)])?;
    let name = path.display().to_string();
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&name, &text, base, needs_policy)
}

/// Checks the text of a test file named `name`; `policy:` is resolved
/// against `base`.
pub fn parse(
    name: &str,
    text: &str,
    base: &Path,
    needs_policy: bool,
) -> Result<TestFile, Vec<CompileError>> {
    let mut sources = SourceMap::new();
    let file = sources.add(name, Path::new(name), text);
    let mut cx = Cx {
        sources: &sources,
        file,
        text,
        errors: Vec::new(),
    };
    let root = match yaml::parse(text) {
        Ok((root, problems)) => {
            for p in problems {
                cx.problem(p);
            }
            root
        }
        Err(p) => {
            cx.problem(p);
            return Err(cx.errors);
        }
    };
    let parsed = cx.file(&root, base, needs_policy);
    match parsed {
        Some(f) if cx.errors.is_empty() => Ok(f),
        _ => Err(cx.errors),
    }
}

struct Cx<'a> {
    sources: &'a SourceMap,
    file: FileId,
    text: &'a str,
    errors: Vec<CompileError>,
}

impl<'a> Cx<'a> {
    fn span(&self, r: &Range<usize>) -> Span {
        Span::new(self.file, r.start, r.end)
    }

    fn src(&self, n: &YNode) -> &'a str {
        self.text.get(n.span.clone()).unwrap_or("")
    }

    fn problem(&mut self, p: YamlProblem) {
        let e = match p {
            YamlProblem::Syntax {
                message,
                label,
                span,
            } => CompileError::yaml_syntax(self.sources, self.span(&span), message, label),
            YamlProblem::DuplicateKey { key, span, first } => {
                CompileError::duplicate_key(self.sources, self.span(&span), self.span(&first), key)
            }
        };
        self.errors.push(e);
    }

    fn wrong_type(&mut self, n: &YNode, what: &str, expected: &str) {
        self.errors.push(CompileError::wrong_type(
            self.sources,
            self.span(&n.span),
            what,
            expected,
            n.kind.describe(),
        ));
    }

    /// The entries of mapping `n` whose keys are in `allowed`; unknown keys
    /// are reported with a did-you-mean. `None` (reported) if `n` is not a
    /// mapping.
    fn entries<'n>(
        &mut self,
        n: &'n YNode,
        allowed: &[&str],
        context: &str,
    ) -> Option<Vec<(String, &'n YNode, &'n YNode)>> {
        let map = match &n.kind {
            YKind::Map(map) => map,
            _ => {
                self.wrong_type(n, context, "a mapping");
                return None;
            }
        };
        let mut out = Vec::new();
        for (k, v) in map {
            match key_text(self.text, k) {
                Some(key) if allowed.contains(&key.as_str()) => out.push((key, k, v)),
                Some(key) => self.errors.push(CompileError::unknown_key(
                    self.sources,
                    self.span(&k.span),
                    key,
                    context,
                    allowed,
                )),
                None => self.wrong_type(k, &format!("{context} key"), "a string"),
            }
        }
        Some(out)
    }

    /// Where a key missing from `n` is reported: its first key, or `n`.
    fn missing(&mut self, n: &YNode, key: &str, context: &str, help: Option<String>) {
        let span = match &n.kind {
            YKind::Map(es) if !es.is_empty() => es[0].0.span.clone(),
            _ => n.span.start..n.span.end.max(n.span.start),
        };
        self.errors.push(CompileError::missing_key(
            self.sources,
            self.span(&span),
            key,
            context,
            help,
        ));
    }

    /// Any scalar by its text (as Kvlar's serde_yaml loader hands a scalar to
    /// a `String`): the decoded string, or the source text of a number.
    fn string(&mut self, n: &YNode, what: &str) -> Option<String> {
        match &n.kind {
            YKind::Str(s) => Some(s.clone()),
            YKind::Map(_) | YKind::Seq(_) => {
                self.wrong_type(n, what, "a string");
                None
            }
            _ => Some(self.src(n).to_string()),
        }
    }

    fn file(&mut self, root: &YNode, base: &Path, needs_policy: bool) -> Option<TestFile> {
        if matches!(root.kind, YKind::Null) {
            self.errors.push(CompileError::invalid_value(
                self.sources,
                self.span(&(0..0)),
                "the test file is empty",
                "expected `policy:` and `tests:` here",
                Some("a test file is a mapping with `policy:` (optional) and `tests:`".into()),
            ));
            return None;
        }
        let entries = self.entries(root, FILE_KEYS, "test file")?;
        let mut policy = None;
        let mut cases = Vec::new();
        let mut saw_tests = false;
        for (key, _, v) in &entries {
            match key.as_str() {
                "policy" => policy = self.string(v, "policy").map(|p| base.join(p)),
                _ => {
                    saw_tests = true;
                    match &v.kind {
                        YKind::Seq(items) => {
                            cases.extend(items.iter().filter_map(|i| self.case(i)));
                        }
                        _ => self.wrong_type(v, "tests", "a list of test cases"),
                    }
                }
            }
        }
        if needs_policy && !entries.iter().any(|e| e.0 == "policy") {
            self.missing(
                root,
                "policy",
                "test file",
                Some(
                    "add `policy: my-policy.yaml` (relative to the test file), or pass `--policy`"
                        .into(),
                ),
            );
        }
        if !saw_tests {
            self.missing(
                root,
                "tests",
                "test file",
                Some("add `tests:` with a list of cases".into()),
            );
        }
        Some(TestFile { policy, cases })
    }

    fn case(&mut self, n: &YNode) -> Option<Case> {
        let entries = self.entries(n, CASE_KEYS, "test case")?;
        let get = |k: &str| entries.iter().find(|(key, _, _)| key == k).map(|e| e.2);
        let id = match get("id") {
            Some(v) => self.string(v, "id"),
            None => {
                self.missing(
                    n,
                    "id",
                    "test case",
                    Some("give every case an `id:`".into()),
                );
                None
            }
        };
        let description = get("description").and_then(|v| self.string(v, "description"));
        let call = match (get("action"), get("call")) {
            (Some(a), None) => self.action(a),
            (None, Some(c)) => self.mcp_call(c),
            (Some(_), Some(_)) => {
                let key = entries.iter().find(|e| e.0 == "call").map(|e| e.1);
                let span = key.map_or(n.span.clone(), |k| k.span.clone());
                self.errors.push(CompileError::invalid_value(
                    self.sources,
                    self.span(&span),
                    "a test case has both `action` and `call`",
                    "second call given here",
                    Some(
                        "give either a Kvlar `action:` or an MCP `call: {name, arguments}`".into(),
                    ),
                ));
                None
            }
            (None, None) => {
                self.missing(
                    n,
                    "action",
                    "test case",
                    Some(
                        "give a Kvlar `action: {resource, parameters}` or an MCP `call: {name, arguments}`"
                            .into(),
                    ),
                );
                None
            }
        };
        let expect = match get("expect") {
            Some(v) => self.expect(v),
            None => {
                self.missing(
                    n,
                    "expect",
                    "test case",
                    Some(
                        "add `expect: allow`, `expect: deny` or `expect: require_approval`".into(),
                    ),
                );
                None
            }
        };
        let rule = get("rule").and_then(|v| self.string(v, "rule"));
        let reason_contains =
            get("reason_contains").and_then(|v| self.string(v, "reason_contains"));
        let line = kvlar_compiler::source::line_col(self.text, n.span.start).0;
        Some(Case {
            id: id?,
            description,
            call: call?,
            expect: expect?,
            rule,
            reason_contains,
            line,
        })
    }

    fn expect(&mut self, n: &YNode) -> Option<Effect> {
        let s = self.string(n, "expect")?;
        let wanted = s.trim().to_lowercase();
        if let Some((_, e)) = EXPECT_SPELLINGS.iter().find(|(name, _)| *name == wanted) {
            return Some(*e);
        }
        let names = EXPECT_SPELLINGS.iter().map(|(name, _)| *name);
        let help = match did_you_mean(&wanted, names) {
            Some(m) => {
                format!("did you mean `{m}`? `expect` is `allow`, `deny` or `require_approval`")
            }
            None => "`expect` is `allow`, `deny` or `require_approval` (also `approval`)".into(),
        };
        self.errors.push(CompileError::invalid_value(
            self.sources,
            self.span(&n.span),
            format!("unknown expected decision `{s}`"),
            "not a decision",
            Some(help),
        ));
        None
    }

    /// A Kvlar action, with Kvlar's defaults (`tool_call`, `test-agent`, no parameters).
    fn action(&mut self, n: &YNode) -> Option<OwnedCall> {
        let entries = self.entries(n, ACTION_KEYS, "action")?;
        let mut tool = None;
        let mut agent = TEST_AGENT.to_string();
        let mut action = kvlar_vm::call::TOOL_CALL.to_string();
        let mut args = Some(Value::Object(Map::new()));
        for (key, _, v) in &entries {
            match key.as_str() {
                "resource" => tool = self.string(v, "resource"),
                "agent_id" => agent = self.string(v, "agent_id").unwrap_or(agent),
                "action_type" => action = self.string(v, "action_type").unwrap_or(action),
                _ => args = self.arguments(v, "parameters"),
            }
        }
        if !entries.iter().any(|e| e.0 == "resource") {
            self.missing(
                n,
                "resource",
                "action",
                Some("`resource` is the tool name".into()),
            );
        }
        Some(OwnedCall {
            tool: tool?,
            agent,
            action,
            args: args?,
        })
    }

    /// An MCP `tools/call` params object, agent `mcp-agent`.
    fn mcp_call(&mut self, n: &YNode) -> Option<OwnedCall> {
        let entries = self.entries(n, CALL_KEYS, "call")?;
        let mut tool = None;
        let mut args = Some(Value::Object(Map::new()));
        for (key, _, v) in &entries {
            match key.as_str() {
                "name" => tool = self.string(v, "name"),
                _ => args = self.arguments(v, "arguments"),
            }
        }
        if !entries.iter().any(|e| e.0 == "name") {
            self.missing(n, "name", "call", Some("`name` is the tool name".into()));
        }
        Some(OwnedCall {
            tool: tool?,
            agent: kvlar_vm::call::MCP_AGENT.to_string(),
            action: kvlar_vm::call::TOOL_CALL.to_string(),
            args: args?,
        })
    }

    /// Arguments: a mapping (an empty value counts as `{}`), as JSON.
    fn arguments(&mut self, n: &YNode, what: &str) -> Option<Value> {
        match &n.kind {
            YKind::Map(_) => self.json(n),
            YKind::Null if self.src(n).is_empty() => Some(Value::Object(Map::new())),
            _ => {
                self.wrong_type(n, what, "a mapping");
                None
            }
        }
    }

    /// A YAML value as JSON (`schema::to_json`), its problem reported.
    fn json(&mut self, n: &YNode) -> Option<Value> {
        match to_json(self.text, n) {
            Ok(v) => Some(v),
            Err(JsonProblem::KeyNotString(k)) => {
                self.wrong_type(k, "argument name", "a string");
                None
            }
            Err(JsonProblem::OutOfRange(n, text)) => {
                self.errors
                    .push(out_of_range(self.sources, self.span(&n.span), &text));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        /// Any text, YAML-shaped or not, gives a test file or diagnostics with
        /// positions inside the text — never a panic.
        #[test]
        fn never_panics(
            text in "(policy|tests|id|action|call|expect|rule|resource|parameters|name|arguments|deny|- |: |[-:{}\\[\\], \n'\"a-z0-9!&*|>#é])*"
        ) {
            if let Err(errors) = parse("t.test.yaml", &text, Path::new("."), true) {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    if let Some(r) = e.byte_range() {
                        prop_assert!(r.end <= text.len());
                    }
                }
            }
        }
    }

    fn ok(text: &str) -> TestFile {
        parse("t.test.yaml", text, Path::new("dir"), false).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn errs(text: &str) -> Vec<(String, usize, usize)> {
        parse("t.test.yaml", text, Path::new("."), true)
            .unwrap_err()
            .iter()
            .map(|e| {
                let (_, l, c) = e.line_col().unwrap_or_default();
                (e.to_string(), l, c)
            })
            .collect()
    }

    #[test]
    fn kvlar_case_with_defaults() {
        let f = ok("policy: p.yaml\ntests:\n  - id: a\n    action: {resource: bash, parameters: {command: ls, n: 5, mode: '0755', raw: 0755}}\n    expect: ' Approval '\n    rule: r\n    reason_contains: x\n");
        assert_eq!(f.policy, Some(PathBuf::from("dir/p.yaml")));
        let c = &f.cases[0];
        assert_eq!(
            (
                c.call.tool.as_str(),
                c.call.agent.as_str(),
                c.call.action.as_str()
            ),
            ("bash", "test-agent", "tool_call")
        );
        assert_eq!(
            c.call.args,
            json!({"command": "ls", "n": 5, "mode": "0755", "raw": "0755"})
        );
        assert_eq!(c.expect, Effect::RequireApproval);
        assert_eq!(
            (c.rule.as_deref(), c.reason_contains.as_deref()),
            (Some("r"), Some("x"))
        );
        assert_eq!(c.line, 3);
    }

    #[test]
    fn native_call_case() {
        let f = ok("tests:\n  - id: b\n    call:\n      name: fetch\n      arguments: {url: 'http://x', raw: true, max_length: 10}\n    expect: deny\n");
        assert_eq!(f.policy, None);
        let c = &f.cases[0];
        assert_eq!(
            (c.call.tool.as_str(), c.call.agent.as_str()),
            ("fetch", "mcp-agent")
        );
        assert_eq!(
            c.call.args,
            json!({"url": "http://x", "raw": true, "max_length": 10})
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let e = errs("policy: p.yaml\ntests:\n  - id: a\n    actoin: {resource: x}\n    expect: deny\n  - id: b\n    action: {resource: x, parameter: {}}\n    expect: dney\n");
        assert_eq!(
            e,
            [
                ("unknown key `actoin` in test case".to_string(), 4, 5),
                (
                    "missing required key `action` in test case".to_string(),
                    3,
                    5
                ),
                ("unknown key `parameter` in action".to_string(), 7, 27),
                ("unknown expected decision `dney`".to_string(), 8, 13),
            ]
        );
    }

    #[test]
    fn malformed_yaml_and_wrong_types() {
        assert_eq!(
            errs("tests:\n  - id: a\n    action: {resource: x\n"),
            [("YAML syntax error: unclosed bracket '{'".to_string(), 3, 13)]
        );
        assert_eq!(
            errs("tests: 5\n"),
            [
                (
                    "expected a list of test cases for `tests`, found an integer".to_string(),
                    1,
                    8
                ),
                (
                    "missing required key `policy` in test file".to_string(),
                    1,
                    1
                )
            ]
        );
        assert_eq!(
            errs("policy: p.yaml\n"),
            [(
                "missing required key `tests` in test file".to_string(),
                1,
                1
            )]
        );
        assert_eq!(
            errs("tests:\n  - id: a\n    call: {name: t, arguments: [1]}\n    action: {resource: t}\n    expect: allow\n")
                .len(),
            2
        );
        assert_eq!(errs("").len(), 1);
    }

    #[test]
    fn arguments_without_a_json_form() {
        assert_eq!(
            errs("policy: p.yaml\ntests:\n  - id: a\n    action: {resource: t, parameters: {n: [1, 99999999999999999999]}}\n    expect: deny\n"),
            [(
                "integer `99999999999999999999` is out of range".to_string(),
                4,
                47
            )]
        );
        assert_eq!(
            errs("policy: p.yaml\ntests:\n  - id: a\n    action: {resource: t, parameters: {n: {[1]: x}}}\n    expect: deny\n"),
            [(
                "expected a string for `argument name`, found a list".to_string(),
                4,
                44
            )]
        );
    }
}
