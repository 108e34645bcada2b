//! The policy AST produced by `load`: every value the user wrote keeps the
//! span (file + byte range) it came from, so later stages can point at it.

use crate::source::Span;
use kvlar_grammar::ast::Expr;

/// A value with the span of the YAML node it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sp<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Sp<T> {
    pub fn new(value: T, span: Span) -> Self {
        Sp { value, span }
    }
}

/// Every policy given on the command line, in order, with its `extends`
/// already resolved (base rules appended after the policy's own rules).
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: Sp<String>,
    pub description: Option<Sp<String>>,
    pub version: Option<Sp<String>>,
    /// `default_outcome` (v0.4). `None` behaves like `deny`.
    pub default_outcome: Option<Sp<DefaultOutcome>>,
    /// Own rules first, then each base's rules (recursively resolved), in `extends` order.
    pub rules: Vec<Rule>,
    /// Span of the whole document (for diagnostics about the policy as a whole).
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultOutcome {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: Sp<String>,
    pub description: Option<Sp<String>>,
    /// Kvlar `match_on` block (absent in native rules that only use `tools`/`when`).
    pub match_on: Option<MatchOn>,
    /// Native `tools:` glob list (`*`, `?`, `[..]`, same matching as `resources`). Empty = absent.
    pub tools: Vec<Sp<String>>,
    /// Native `when:` expression, spans re-based onto the policy file.
    pub when: Option<Expr>,
    pub effect: Sp<Effect>,
    /// Span of the whole rule mapping.
    pub span: Span,
}

/// Kvlar's `match_on`; every present criterion must hold.
#[derive(Debug, Clone, Default)]
pub struct MatchOn {
    pub action_types: Vec<Sp<String>>,
    pub resources: Vec<Sp<String>>,
    pub agent_ids: Vec<Sp<String>>,
    /// Argument name → regex source, in file order.
    pub parameters: Vec<(Sp<String>, Sp<String>)>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub field: Sp<String>,
    pub operator: Sp<KvOp>,
    /// `value` as JSON (absent `value` is `null`; `exists`/`not_exists` ignore it).
    pub value: Sp<serde_json::Value>,
    pub span: Span,
}

/// Kvlar condition operators, both vocabularies (v0.3 and v0.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// `equals` (v0.3) / `eq` (v0.4)
    Eq,
    /// `not_equals` / `neq`
    Neq,
    Contains,
    StartsWith,
    EndsWith,
    /// v0.3
    GreaterThan,
    /// v0.3
    LessThan,
    /// v0.3
    Exists,
    /// v0.3
    NotExists,
    /// `one_of` (v0.3) / `in` (v0.4)
    In,
    /// v0.4
    NotIn,
    /// v0.4
    Matches,
    /// v0.4
    InDomain,
    /// v0.4
    NotInDomain,
}

impl KvOp {
    /// Every accepted spelling, for parsing and did-you-mean.
    pub const SPELLINGS: &'static [(&'static str, KvOp)] = &[
        ("equals", KvOp::Eq),
        ("eq", KvOp::Eq),
        ("not_equals", KvOp::Neq),
        ("neq", KvOp::Neq),
        ("contains", KvOp::Contains),
        ("starts_with", KvOp::StartsWith),
        ("ends_with", KvOp::EndsWith),
        ("greater_than", KvOp::GreaterThan),
        ("less_than", KvOp::LessThan),
        ("exists", KvOp::Exists),
        ("not_exists", KvOp::NotExists),
        ("one_of", KvOp::In),
        ("in", KvOp::In),
        ("not_in", KvOp::NotIn),
        ("matches", KvOp::Matches),
        ("in_domain", KvOp::InDomain),
        ("not_in_domain", KvOp::NotInDomain),
    ];

    pub fn parse(s: &str) -> Option<KvOp> {
        Self::SPELLINGS
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, op)| *op)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny { reason: String },
    RequireApproval { reason: String },
}
