//! Node tree → [`ast::Policy`](crate::ast::Policy): the policy schema, with
//! every problem of a file reported (unknown keys with did-you-mean, missing
//! keys, wrong types, bad operators / effects, `when:` syntax errors).
//!
//! String fields accept any YAML scalar by its text, as Kvlar's loader
//! (serde_yaml 0.9, which hands any scalar to a `String` as written) does:
//! `version: 1.0` is the string `"1.0"`, `description:` (empty) is `""`.

use std::ops::Range;

use kvlar_grammar::ast::Expr;
use serde_json::Value;

use super::scalar::ScalarMap;
use super::yaml::{key_text, YKind, YNode};
use crate::ast::{Condition, DefaultOutcome, Effect, KvOp, MatchOn, Policy, Rule, Sp};
use crate::diagnostic::{did_you_mean, CompileError};
use crate::source::{FileId, SourceMap, Span};

pub const POLICY_KEYS: &[&str] = &[
    "name",
    "description",
    "version",
    "extends",
    "default_outcome",
    "rules",
];
pub const RULE_KEYS: &[&str] = &[
    "id",
    "description",
    "match_on",
    "tools",
    "when",
    "effect",
    "reason",
];
pub const MATCH_ON_KEYS: &[&str] = &[
    "action_types",
    "resources",
    "agent_ids",
    "parameters",
    "conditions",
];
pub const CONDITION_KEYS: &[&str] = &["field", "operator", "value"];
pub const EFFECT_KEYS: &[&str] = &["type", "reason"];

/// One file's policy, before `extends` is resolved.
#[derive(Debug)]
pub struct Parsed {
    /// `None` when the file had errors.
    pub policy: Option<Policy>,
    /// The `extends` entries, in order.
    pub extends: Vec<Sp<String>>,
    /// Every rule id found (also in rules with other errors), for the
    /// duplicate-id check across files.
    pub rule_ids: Vec<Sp<String>>,
}

/// Checks the tree of file `file` against the policy schema.
pub fn parse_policy(
    sources: &SourceMap,
    file: FileId,
    root: &YNode,
    errors: &mut Vec<CompileError>,
) -> Parsed {
    let text = sources.get(file).text.clone();
    let mut cx = Cx {
        sources,
        file,
        text: &text,
        errors: Vec::new(),
        rule_ids: Vec::new(),
    };
    let (policy, extends) = cx.policy(root);
    let rule_ids = std::mem::take(&mut cx.rule_ids);
    errors.append(&mut cx.errors);
    Parsed {
        // Kept even when there were errors (the rules that had them are
        // left out), so that later stages report their errors too; no
        // program is ever built from a file with errors.
        policy,
        extends,
        rule_ids,
    }
}

struct Cx<'a> {
    sources: &'a SourceMap,
    file: FileId,
    text: &'a str,
    errors: Vec<CompileError>,
    rule_ids: Vec<Sp<String>>,
}

struct Entry<'n> {
    key: String,
    key_node: &'n YNode,
    value: &'n YNode,
}

fn get<'e, 'n>(entries: &'e [Entry<'n>], key: &str) -> Option<&'e Entry<'n>> {
    entries.iter().find(|e| e.key == key)
}

impl<'a> Cx<'a> {
    fn span(&self, r: &Range<usize>) -> Span {
        Span::new(self.file, r.start, r.end)
    }

    fn src(&self, n: &YNode) -> &'a str {
        self.text.get(n.span.clone()).unwrap_or("")
    }

    /// The span to blame for a key missing from mapping `n`: its first key,
    /// or the mapping itself.
    fn missing_span(&self, n: &YNode) -> Span {
        match &n.kind {
            YKind::Map(es) if !es.is_empty() => self.span(&es[0].0.span),
            _ => {
                let end = if n.span.is_empty() {
                    let next = self
                        .text
                        .get(n.span.start..)
                        .and_then(|s| s.chars().next())
                        .filter(|c| *c != '\n' && *c != '\r');
                    n.span.start + next.map_or(0, char::len_utf8)
                } else {
                    n.span.end
                };
                self.span(&(n.span.start..end))
            }
        }
    }

    /// The allowed entries of a mapping; unknown and non-scalar keys are reported.
    fn entries<'n>(
        &mut self,
        map: &'n [(YNode, YNode)],
        allowed: &[&str],
        context: &str,
    ) -> Vec<Entry<'n>> {
        let mut out = Vec::new();
        for (k, v) in map {
            let Some(key) = key_text(self.text, k) else {
                self.errors.push(CompileError::wrong_type(
                    self.sources,
                    self.span(&k.span),
                    format!("{context} key"),
                    "a string",
                    k.kind.describe(),
                ));
                continue;
            };
            if !allowed.contains(&key.as_str()) {
                self.errors.push(CompileError::unknown_key(
                    self.sources,
                    self.span(&k.span),
                    key,
                    context,
                    allowed,
                ));
                continue;
            }
            out.push(Entry {
                key,
                key_node: k,
                value: v,
            });
        }
        out
    }

    fn require<'e, 'n>(
        &mut self,
        entries: &'e [Entry<'n>],
        key: &str,
        context: &str,
        owner: &YNode,
        help: Option<String>,
    ) -> Option<&'e Entry<'n>> {
        let e = get(entries, key);
        if e.is_none() {
            self.errors.push(CompileError::missing_key(
                self.sources,
                self.missing_span(owner),
                key,
                context,
                help,
            ));
        }
        e
    }

    /// A scalar's text: the decoded string, or the source text of a number,
    /// boolean or null (`""` for an empty value).
    fn scalar_text(&self, n: &YNode) -> Option<String> {
        match &n.kind {
            YKind::Str(s) => Some(s.clone()),
            YKind::Int(_) | YKind::Float(_) | YKind::Bool(_) | YKind::Null => {
                Some(self.src(n).to_string())
            }
            YKind::Map(_) | YKind::Seq(_) => None,
        }
    }

    fn string(&mut self, n: &YNode, what: &str) -> Option<Sp<String>> {
        match self.scalar_text(n) {
            Some(s) => Some(Sp::new(s, self.span(&n.span))),
            None => {
                self.errors.push(CompileError::wrong_type(
                    self.sources,
                    self.span(&n.span),
                    what,
                    "a string",
                    n.kind.describe(),
                ));
                None
            }
        }
    }

    /// An empty value (`key:` with nothing after it), which Kvlar's loader
    /// accepts as an empty list / mapping.
    fn is_empty_null(&self, n: &YNode) -> bool {
        matches!(n.kind, YKind::Null) && self.src(n).is_empty()
    }

    fn string_list(&mut self, n: &YNode, what: &str) -> Vec<Sp<String>> {
        match &n.kind {
            YKind::Seq(items) => items
                .iter()
                .filter_map(|i| {
                    if matches!(i.kind, YKind::Map(_) | YKind::Seq(_)) {
                        self.errors.push(CompileError::wrong_type(
                            self.sources,
                            self.span(&i.span),
                            format!("{what} entry"),
                            "a string",
                            i.kind.describe(),
                        ));
                        None
                    } else {
                        self.string(i, what)
                    }
                })
                .collect(),
            _ if self.is_empty_null(n) => Vec::new(),
            _ => {
                self.errors.push(CompileError::wrong_type(
                    self.sources,
                    self.span(&n.span),
                    what,
                    "a list of strings",
                    n.kind.describe(),
                ));
                Vec::new()
            }
        }
    }

    fn mapping<'n>(&mut self, n: &'n YNode, what: &str) -> Option<&'n [(YNode, YNode)]> {
        match &n.kind {
            YKind::Map(es) => Some(es),
            _ if self.is_empty_null(n) => Some(&[]),
            _ => {
                self.errors.push(CompileError::wrong_type(
                    self.sources,
                    self.span(&n.span),
                    what,
                    "a mapping",
                    n.kind.describe(),
                ));
                None
            }
        }
    }

    fn policy(&mut self, root: &YNode) -> (Option<Policy>, Vec<Sp<String>>) {
        let doc = self.span(&(0..self.text.len()));
        let map = match &root.kind {
            YKind::Map(es) => es,
            YKind::Null => {
                self.errors.push(CompileError::invalid_value(
                    self.sources,
                    self.span(&(0..0)),
                    "the policy file is empty",
                    "expected a policy here",
                    Some(
                        "a policy is a mapping with `name`, `description`, `version` and `rules`"
                            .into(),
                    ),
                ));
                return (None, Vec::new());
            }
            other => {
                self.errors.push(CompileError::wrong_type(
                    self.sources,
                    self.span(&root.span),
                    "policy",
                    "a mapping",
                    other.describe(),
                ));
                return (None, Vec::new());
            }
        };
        let entries = self.entries(map, POLICY_KEYS, "policy");
        let name = self
            .require(&entries, "name", "policy", root, None)
            .and_then(|e| self.string(e.value, "name"));
        let description = self
            .require(&entries, "description", "policy", root, None)
            .and_then(|e| self.string(e.value, "description"));
        let version = self
            .require(
                &entries,
                "version",
                "policy",
                root,
                Some("add e.g. `version: \"1.0\"`".into()),
            )
            .and_then(|e| self.string(e.value, "version"));
        let extends = match get(&entries, "extends") {
            Some(e) => self.string_list(e.value, "extends"),
            None => Vec::new(),
        };
        let default_outcome = match get(&entries, "default_outcome") {
            Some(e) => self.default_outcome(e.value),
            None => None,
        };
        let mut rules = Vec::new();
        if let Some(e) = get(&entries, "rules") {
            match &e.value.kind {
                YKind::Seq(items) => {
                    for item in items {
                        if let Some(r) = self.rule(item) {
                            rules.push(r);
                        }
                    }
                }
                _ if self.is_empty_null(e.value) => {}
                other => self.errors.push(CompileError::wrong_type(
                    self.sources,
                    self.span(&e.value.span),
                    "rules",
                    "a list of rules",
                    other.describe(),
                )),
            }
        }
        let policy = name.map(|name| Policy {
            name,
            description,
            version,
            default_outcome,
            rules,
            span: doc,
        });
        (policy, extends)
    }

    fn default_outcome(&mut self, n: &YNode) -> Option<Sp<DefaultOutcome>> {
        let s = self.string(n, "default_outcome")?;
        let v = match s.value.as_str() {
            "allow" => DefaultOutcome::Allow,
            "deny" => DefaultOutcome::Deny,
            other => {
                let help = match did_you_mean(other, ["allow", "deny"]) {
                    Some(m) => {
                        format!("did you mean `{m}`? `default_outcome` is `allow` or `deny`")
                    }
                    None => "`default_outcome` is `allow` or `deny`".to_string(),
                };
                self.errors.push(CompileError::invalid_value(
                    self.sources,
                    s.span,
                    format!("unknown default_outcome `{other}`"),
                    "expected `allow` or `deny`",
                    Some(help),
                ));
                return None;
            }
        };
        Some(Sp::new(v, s.span))
    }

    fn rule(&mut self, n: &YNode) -> Option<Rule> {
        let YKind::Map(map) = &n.kind else {
            self.errors.push(CompileError::wrong_type(
                self.sources,
                self.span(&n.span),
                "rules entry",
                "a mapping (a rule)",
                n.kind.describe(),
            ));
            return None;
        };
        let entries = self.entries(map, RULE_KEYS, "rule");
        let id = self
            .require(
                &entries,
                "id",
                "rule",
                n,
                Some("give every rule a unique `id:`".into()),
            )
            .and_then(|e| self.string(e.value, "id"));
        if let Some(id) = &id {
            if id.value.trim().is_empty() {
                self.errors.push(CompileError::invalid_value(
                    self.sources,
                    id.span,
                    "empty rule id",
                    "this id is empty",
                    Some("give every rule a unique, non-empty id".into()),
                ));
            } else {
                self.rule_ids.push(id.clone());
            }
        }
        let description =
            get(&entries, "description").and_then(|e| self.string(e.value, "description"));
        let match_on = get(&entries, "match_on").and_then(|e| self.match_on(e.value));
        let tools = match get(&entries, "tools") {
            Some(e) => self.string_list(e.value, "tools"),
            None => Vec::new(),
        };
        let when = get(&entries, "when").and_then(|e| self.when(e.value));
        let reason = get(&entries, "reason");
        let effect = self
            .require(
                &entries,
                "effect",
                "rule",
                n,
                Some("add `effect: allow`, `effect: deny` (with `reason:`) or `effect: require_approval` (with `reason:`)".into()),
            )
            .and_then(|e| self.effect(e.value, reason));
        Some(Rule {
            id: id?,
            description,
            match_on,
            tools,
            when,
            effect: effect?,
            span: self.span(&n.span),
        })
    }

    fn effect(&mut self, n: &YNode, sibling_reason: Option<&Entry>) -> Option<Sp<Effect>> {
        let span = self.span(&n.span);
        match &n.kind {
            YKind::Map(map) => {
                let entries = self.entries(map, EFFECT_KEYS, "effect");
                if let Some(r) = sibling_reason {
                    self.errors.push(CompileError::invalid_value(
                        self.sources,
                        self.span(&r.key_node.span),
                        "`reason` beside an `effect` mapping",
                        "the reason belongs inside `effect`",
                        Some("write `effect: {type: deny, reason: \"...\"}`, or the short form `effect: deny` with `reason:` beside it".into()),
                    ));
                }
                let ty = self
                    .require(
                        &entries,
                        "type",
                        "effect",
                        n,
                        Some("add `type: allow`, `type: deny` or `type: require_approval`".into()),
                    )
                    .and_then(|e| self.string(e.value, "type"))?;
                let reason = get(&entries, "reason");
                self.effect_of(&ty, reason, n, "effect", span)
            }
            YKind::Seq(_) => {
                self.errors.push(CompileError::wrong_type(
                    self.sources,
                    span,
                    "effect",
                    "`allow`, `deny`, `require_approval` or a mapping `{type, reason}`",
                    n.kind.describe(),
                ));
                None
            }
            _ => {
                let ty = self.string(n, "effect")?;
                self.effect_of(&ty, sibling_reason, n, "rule", span)
            }
        }
    }

    /// `ty` is the effect name, `reason` its reason entry (inside the effect
    /// mapping or beside the short form), `owner` where a missing reason is reported.
    fn effect_of(
        &mut self,
        ty: &Sp<String>,
        reason: Option<&Entry>,
        owner: &YNode,
        context: &str,
        span: Span,
    ) -> Option<Sp<Effect>> {
        let needs_reason = |cx: &mut Self, name: &str| -> Option<String> {
            match reason {
                Some(r) => cx.string(r.value, "reason").map(|s| s.value),
                None => {
                    let (blame, help) = if context == "rule" {
                        (
                            ty.span,
                            format!("add `reason: \"...\"` beside `effect: {name}`: it is shown to the agent"),
                        )
                    } else {
                        (
                            cx.missing_span(owner),
                            "add `reason: \"...\"` to the effect: it is shown to the agent"
                                .to_string(),
                        )
                    };
                    cx.errors.push(CompileError::missing_key(
                        cx.sources,
                        blame,
                        "reason",
                        format!("`{name}` {context}"),
                        Some(help),
                    ));
                    None
                }
            }
        };
        let effect = match ty.value.as_str() {
            "allow" => {
                // Kvlar's `{type: allow, reason: ...}` is accepted (its engine
                // ignores the reason, and Kvlar files must compile unchanged);
                // the native short form refuses it.
                if let Some(r) = reason.filter(|_| context == "rule") {
                    self.errors.push(CompileError::invalid_value(
                        self.sources,
                        self.span(&r.key_node.span),
                        "`allow` takes no reason",
                        "reason given here",
                        Some("remove `reason:`, or use `deny` / `require_approval`, which report a reason to the agent".into()),
                    ));
                    return None;
                }
                Effect::Allow
            }
            "deny" => Effect::Deny {
                reason: needs_reason(self, "deny")?,
            },
            "require_approval" => Effect::RequireApproval {
                reason: needs_reason(self, "require_approval")?,
            },
            other => {
                self.errors
                    .push(CompileError::unknown_effect(self.sources, ty.span, other));
                return None;
            }
        };
        Some(Sp::new(effect, span))
    }

    fn match_on(&mut self, n: &YNode) -> Option<MatchOn> {
        let map = self.mapping(n, "match_on")?;
        let entries = self.entries(map, MATCH_ON_KEYS, "match_on");
        let mut m = MatchOn::default();
        for e in &entries {
            match e.key.as_str() {
                "action_types" => m.action_types = self.string_list(e.value, "action_types"),
                "resources" => m.resources = self.string_list(e.value, "resources"),
                "agent_ids" => m.agent_ids = self.string_list(e.value, "agent_ids"),
                "parameters" => {
                    if let Some(ps) = self.mapping(e.value, "parameters") {
                        for (k, v) in ps {
                            let Some(name) = key_text(self.text, k) else {
                                self.errors.push(CompileError::wrong_type(
                                    self.sources,
                                    self.span(&k.span),
                                    "parameters key",
                                    "a string",
                                    k.kind.describe(),
                                ));
                                continue;
                            };
                            if let Some(re) = self.string(v, "parameters value (a regex)") {
                                m.parameters.push((Sp::new(name, self.span(&k.span)), re));
                            }
                        }
                    }
                }
                _ => match &e.value.kind {
                    YKind::Seq(items) => {
                        for c in items {
                            if let Some(c) = self.condition(c) {
                                m.conditions.push(c);
                            }
                        }
                    }
                    _ if self.is_empty_null(e.value) => {}
                    other => self.errors.push(CompileError::wrong_type(
                        self.sources,
                        self.span(&e.value.span),
                        "conditions",
                        "a list of conditions",
                        other.describe(),
                    )),
                },
            }
        }
        Some(m)
    }

    fn condition(&mut self, n: &YNode) -> Option<Condition> {
        let YKind::Map(map) = &n.kind else {
            self.errors.push(CompileError::wrong_type(
                self.sources,
                self.span(&n.span),
                "conditions entry",
                "a mapping `{field, operator, value}`",
                n.kind.describe(),
            ));
            return None;
        };
        let entries = self.entries(map, CONDITION_KEYS, "condition");
        let field = self
            .require(&entries, "field", "condition", n, None)
            .and_then(|e| self.string(e.value, "field"));
        let operator = self
            .require(&entries, "operator", "condition", n, None)
            .and_then(|e| self.string(e.value, "operator"))
            .and_then(|op| match KvOp::parse(&op.value) {
                Some(k) => Some(Sp::new(k, op.span)),
                None => {
                    self.errors.push(CompileError::unknown_operator(
                        self.sources,
                        op.span,
                        &op.value,
                    ));
                    None
                }
            });
        let value = match get(&entries, "value") {
            Some(e) => Sp::new(self.json(e.value)?, self.span(&e.value.span)),
            None => Sp::new(Value::Null, self.span(&n.span)),
        };
        Some(Condition {
            field: field?,
            operator: operator?,
            value,
            span: self.span(&n.span),
        })
    }

    /// A YAML value as JSON ([`to_json`]), its problem reported.
    fn json(&mut self, n: &YNode) -> Option<Value> {
        match to_json(self.text, n) {
            Ok(v) => Some(v),
            Err(JsonProblem::KeyNotString(k)) => {
                self.errors.push(CompileError::wrong_type(
                    self.sources,
                    self.span(&k.span),
                    "value key",
                    "a string",
                    k.kind.describe(),
                ));
                None
            }
            Err(JsonProblem::OutOfRange(n, text)) => {
                self.errors
                    .push(out_of_range(self.sources, self.span(&n.span), &text));
                None
            }
        }
    }

    /// A `when:` expression: parsed, spans re-based onto the file.
    fn when(&mut self, n: &YNode) -> Option<Expr> {
        let decoded = match &n.kind {
            YKind::Map(_) | YKind::Seq(_) => {
                self.errors.push(CompileError::wrong_type(
                    self.sources,
                    self.span(&n.span),
                    "when",
                    "an expression (a string)",
                    n.kind.describe(),
                ));
                return None;
            }
            _ => self.scalar_text(n)?,
        };
        let map = ScalarMap::build(self.text, n.span.clone(), &decoded);
        match kvlar_grammar::parse(&decoded) {
            Ok(mut e) => {
                e.map_spans(&mut |r| map.range(r));
                Some(e)
            }
            Err(pe) => {
                let mut r = map.range(&pe.span);
                if r.is_empty() && decoded.trim().is_empty() {
                    r = n.span.clone();
                }
                self.errors.push(CompileError::expression(
                    self.sources,
                    self.span(&r),
                    pe.message,
                    pe.label,
                    pe.help,
                ));
                None
            }
        }
    }
}

/// An integer that does not fit in 64 bits (Kvlar's JSON values cannot hold it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange;

/// Why a YAML value has no JSON form ([`to_json`]).
#[derive(Debug, Clone)]
pub enum JsonProblem<'n> {
    /// A mapping key that is not a string.
    KeyNotString(&'n YNode),
    /// A plain integer (its text) that does not fit in 64 bits.
    OutOfRange(&'n YNode, String),
}

/// A YAML value as JSON, plain scalars resolved as serde_yaml 0.9 (what
/// Kvlar reads policies and test files with) does; the first problem stops it.
pub fn to_json<'n>(text: &str, n: &'n YNode) -> Result<Value, JsonProblem<'n>> {
    let src = |n: &YNode| text.get(n.span.clone()).unwrap_or("");
    let plain = |v: &str| {
        resolve_plain_scalar(v).map_err(|OutOfRange| JsonProblem::OutOfRange(n, v.into()))
    };
    Ok(match &n.kind {
        YKind::Map(es) => {
            let mut obj = serde_json::Map::new();
            for (k, v) in es {
                let key = key_text(text, k).ok_or(JsonProblem::KeyNotString(k))?;
                obj.insert(key, to_json(text, v)?);
            }
            Value::Object(obj)
        }
        YKind::Seq(items) => Value::Array(
            items
                .iter()
                .map(|i| to_json(text, i))
                .collect::<Result<_, _>>()?,
        ),
        YKind::Str(s) if !is_plain(text, n) => Value::String(s.clone()),
        YKind::Str(s) => plain(s)?,
        _ => plain(src(n))?,
    })
}

/// Whether a string node is a plain scalar: not quoted, not a block scalar,
/// not tagged (`!!str 5`).
fn is_plain(text: &str, n: &YNode) -> bool {
    let src = text.get(n.span.clone()).unwrap_or("");
    if matches!(src.chars().next(), Some('"' | '\'' | '|' | '>')) {
        return false;
    }
    let start = n.span.start.min(text.len());
    let before = text.get(..start).unwrap_or("");
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let last_token = line
        .trim_end()
        .rsplit([' ', '\t', '[', '{', ','])
        .next()
        .unwrap_or("");
    !last_token.starts_with('!')
}

/// The diagnostic for [`JsonProblem::OutOfRange`] (`text`: the integer).
pub fn out_of_range(sources: &SourceMap, span: Span, text: &str) -> CompileError {
    CompileError::invalid_value(
        sources,
        span,
        format!("integer `{text}` is out of range"),
        "out of range",
        Some("integers must fit in 64 bits; quote the value to use it as a string".into()),
    )
}

/// Resolves a plain scalar's text the way serde_yaml 0.9 does for an untyped
/// value (YAML 1.2 core schema): null, `true`/`false`, integers (decimal
/// without leading zeros, `0x`, `0o`, `0b`), floats (`.inf`/`.nan` become
/// null in JSON), otherwise a string. `Err` for an integer beyond 64 bits.
pub fn resolve_plain_scalar(v: &str) -> Result<Value, OutOfRange> {
    if v.is_empty() || matches!(v, "null" | "Null" | "NULL" | "~") {
        return Ok(Value::Null);
    }
    match v {
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if let Some(u) = parse_unsigned(v, |s, r| u64::from_str_radix(s, r).ok()) {
        return Ok(Value::from(u));
    }
    if let Some(i) = parse_negative(v, |s, r| i64::from_str_radix(s, r).ok()) {
        return Ok(Value::from(i));
    }
    if parse_unsigned(v, |s, r| u128::from_str_radix(s, r).ok()).is_some()
        || parse_negative(v, |s, r| i128::from_str_radix(s, r).ok()).is_some()
    {
        return Err(OutOfRange);
    }
    if !digits_but_not_number(v) {
        if let Some(f) = parse_f64(v) {
            return Ok(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number));
        }
    }
    Ok(Value::String(v.to_string()))
}

fn digits_but_not_number(scalar: &str) -> bool {
    let scalar = scalar.strip_prefix(['-', '+']).unwrap_or(scalar);
    scalar.len() > 1 && scalar.starts_with('0') && scalar[1..].bytes().all(|b| b.is_ascii_digit())
}

fn parse_unsigned<T>(scalar: &str, radix: impl Fn(&str, u32) -> Option<T>) -> Option<T> {
    let unpositive = scalar.strip_prefix('+').unwrap_or(scalar);
    for (prefix, r) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = unpositive.strip_prefix(prefix) {
            if rest.starts_with(['+', '-']) {
                return None;
            }
            if let Some(v) = radix(rest, r) {
                return Some(v);
            }
        }
    }
    if unpositive.starts_with(['+', '-']) || digits_but_not_number(scalar) {
        return None;
    }
    radix(unpositive, 10)
}

fn parse_negative<T>(scalar: &str, radix: impl Fn(&str, u32) -> Option<T>) -> Option<T> {
    for (prefix, r) in [("-0x", 16), ("-0o", 8), ("-0b", 2)] {
        if let Some(rest) = scalar.strip_prefix(prefix) {
            if let Some(v) = radix(&format!("-{rest}"), r) {
                return Some(v);
            }
        }
    }
    if digits_but_not_number(scalar) {
        return None;
    }
    radix(scalar, 10)
}

fn parse_f64(scalar: &str) -> Option<f64> {
    let unpositive = match scalar.strip_prefix('+') {
        Some(u) if u.starts_with(['+', '-']) => return None,
        Some(u) => u,
        None => scalar,
    };
    if matches!(unpositive, ".inf" | ".Inf" | ".INF") {
        return Some(f64::INFINITY);
    }
    if matches!(scalar, "-.inf" | "-.Inf" | "-.INF") {
        return Some(f64::NEG_INFINITY);
    }
    if matches!(scalar, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    match unpositive.parse::<f64>() {
        Ok(f) if f.is_finite() => Some(f),
        _ => None,
    }
}
