//! `kvlar lint`: static analysis of a compiled policy set, on the IR.
//!
//! Rules are judged in evaluation order (policies in order, rules in order,
//! `extends` bases after the policy's own rules). The findings:
//!
//! - **shadowed**: an earlier rule (or several, tool by tool) matches every
//!   call a rule matches, so the rule never decides. Only reported when
//!   proven (see [`logic`]); "may be shadowed" only when the one way past the
//!   earlier rule is a tool name containing a newline;
//! - **unreachable**: a rule after an unconditional rule of its policy, and
//!   every policy after a policy that always decides (an unconditional rule,
//!   or `default_outcome: allow` with at least one rule);
//! - **conflict** (advice): a rule that overlaps an earlier, more permissive
//!   rule (provably: some call matches both), so the earlier one wins on the
//!   overlap;
//! - **empty regex**: a regex in a deny rule that matches the empty string,
//!   and so matches (nearly) every value;
//! - **path prefix**: `startswith` / `starts_with` on a path, which `..`
//!   defeats, unless `..` is refused earlier.
//!
//! With the tools of the servers (`kvlar lint --tools`), [`tools::check`]
//! adds **unknown argument** and **unknown tool**.

pub mod logic;
pub mod tools;

use std::sync::Arc;

use kvlar_vm::op::{KvOp, TestOp};
use kvlar_vm::program::PathSeg;
use kvlar_vm::Effect;
use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use serde_json::Value;

use crate::diagnostic::Note;
use crate::ir::{Cond, CondKind, Operand};
use crate::source::{SourceMap, Span};
use crate::{ast, ir, Compiled};
use logic::{conjuncts, kv_subject, reads, Facts, Reads, Subj};

type Src = NamedSource<Arc<str>>;

/// One lint finding. Severity `Warning`, except [`Warning::Conflict`] (`Advice`).
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Warning {
    /// Earlier rules match every call this rule matches.
    #[error("rule `{rule}` is shadowed by {by_text}: it can never decide")]
    #[diagnostic(code(kvlar::lint::shadowed), severity(Warning))]
    Shadowed {
        rule: String,
        by: Vec<String>,
        by_text: String,
        #[source_code]
        src: Src,
        #[label("never decides")]
        span: SourceSpan,
        #[label(collection)]
        others: Vec<LabeledSpan>,
        #[related]
        related: Vec<Note>,
        #[help]
        help: String,
    },

    /// Shadowed, except for tool names containing a newline.
    #[error("rule `{rule}` may be shadowed by {by_text}")]
    #[diagnostic(code(kvlar::lint::may_be_shadowed), severity(Warning))]
    MayBeShadowed {
        rule: String,
        by: Vec<String>,
        by_text: String,
        #[source_code]
        src: Src,
        #[label("decides only for names containing a newline")]
        span: SourceSpan,
        #[label(collection)]
        others: Vec<LabeledSpan>,
        #[related]
        related: Vec<Note>,
        #[help]
        help: String,
    },

    /// A rule after an unconditional rule of the same policy.
    #[error("rule `{rule}` is unreachable: `{by}` before it matches every call")]
    #[diagnostic(code(kvlar::lint::unreachable), severity(Warning))]
    Unreachable {
        rule: String,
        by: String,
        #[source_code]
        src: Src,
        #[label("unreachable")]
        span: SourceSpan,
        #[label(collection)]
        others: Vec<LabeledSpan>,
        #[related]
        related: Vec<Note>,
        #[help]
        help: String,
    },

    /// A policy after a policy that decides every call.
    #[error("policy `{policy}` is unreachable: {by_text}")]
    #[diagnostic(code(kvlar::lint::unreachable_policy), severity(Warning))]
    UnreachablePolicy {
        policy: String,
        by_text: String,
        #[source_code]
        src: Src,
        #[label("none of these rules is ever tried")]
        span: SourceSpan,
        #[label(collection)]
        others: Vec<LabeledSpan>,
        #[related]
        related: Vec<Note>,
        #[help]
        help: String,
    },

    /// A rule overlapping an earlier, more permissive rule.
    #[error("rule `{rule}` ({effect}) overlaps the earlier rule `{by}` ({by_effect}): `{by}` decides the calls both match")]
    #[diagnostic(code(kvlar::lint::conflict), severity(Advice))]
    Conflict {
        rule: String,
        effect: Effect,
        by: String,
        by_effect: Effect,
        #[source_code]
        src: Src,
        #[label("decides only what `{by}` leaves")]
        span: SourceSpan,
        #[label(collection)]
        others: Vec<LabeledSpan>,
        #[related]
        related: Vec<Note>,
        #[help]
        help: String,
    },

    /// A regex in a deny rule that matches the empty string.
    #[error("the regex `{regex}` in deny rule `{rule}` matches the empty string, so it matches any value")]
    #[diagnostic(code(kvlar::lint::empty_regex), severity(Warning))]
    EmptyRegex {
        rule: String,
        regex: String,
        #[source_code]
        src: Src,
        #[label("matches the empty string")]
        span: SourceSpan,
        #[label(collection)]
        others: Vec<LabeledSpan>,
        #[related]
        related: Vec<Note>,
        #[help]
        help: String,
    },

    /// `startswith` on a path without normalisation.
    #[error("rule `{rule}` tests a path with a text prefix, which `{witness}` defeats")]
    #[diagnostic(code(kvlar::lint::path_prefix), severity(Warning))]
    PathPrefix {
        rule: String,
        witness: String,
        #[source_code]
        src: Src,
        #[label("`..` is not resolved here")]
        span: SourceSpan,
        #[label(collection)]
        others: Vec<LabeledSpan>,
        #[related]
        related: Vec<Note>,
        #[help]
        help: String,
    },

    /// An argument none of the rule's tools declares (`--tools`).
    #[error("rule `{rule}` reads {arg}, which is not an argument of {tools_text}")]
    #[diagnostic(code(kvlar::lint::unknown_argument), severity(Warning))]
    UnknownArgument {
        rule: String,
        arg: String,
        tools_text: String,
        #[source_code]
        src: Src,
        #[label("not in the input schema")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    /// A tool name no server offers, close to one that one does (`--tools`).
    #[error("rule `{rule}` names the tool `{tool}`, which no server in the tools file offers")]
    #[diagnostic(code(kvlar::lint::unknown_tool), severity(Warning))]
    UnknownTool {
        rule: String,
        tool: String,
        #[source_code]
        src: Src,
        #[label("no such tool")]
        span: SourceSpan,
        #[help]
        help: String,
    },
}

impl Warning {
    fn parts(&self) -> (&Src, SourceSpan, &[LabeledSpan], &[Note]) {
        use Warning::*;
        match self {
            Shadowed {
                src,
                span,
                others,
                related,
                ..
            }
            | MayBeShadowed {
                src,
                span,
                others,
                related,
                ..
            }
            | Unreachable {
                src,
                span,
                others,
                related,
                ..
            }
            | UnreachablePolicy {
                src,
                span,
                others,
                related,
                ..
            }
            | Conflict {
                src,
                span,
                others,
                related,
                ..
            }
            | EmptyRegex {
                src,
                span,
                others,
                related,
                ..
            }
            | PathPrefix {
                src,
                span,
                others,
                related,
                ..
            } => (src, *span, others, related),
            UnknownArgument { src, span, .. } | UnknownTool { src, span, .. } => {
                (src, *span, &[], &[])
            }
        }
    }

    /// The stable code, e.g. `kvlar::lint::shadowed`.
    pub fn code_str(&self) -> &'static str {
        use Warning::*;
        match self {
            Shadowed { .. } => "kvlar::lint::shadowed",
            MayBeShadowed { .. } => "kvlar::lint::may_be_shadowed",
            Unreachable { .. } => "kvlar::lint::unreachable",
            UnreachablePolicy { .. } => "kvlar::lint::unreachable_policy",
            Conflict { .. } => "kvlar::lint::conflict",
            EmptyRegex { .. } => "kvlar::lint::empty_regex",
            PathPrefix { .. } => "kvlar::lint::path_prefix",
            UnknownArgument { .. } => "kvlar::lint::unknown_argument",
            UnknownTool { .. } => "kvlar::lint::unknown_tool",
        }
    }

    /// `true` for warnings, `false` for advice (conflict notes).
    pub fn is_warning(&self) -> bool {
        !matches!(self, Warning::Conflict { .. })
    }

    /// The rule (or policy) the finding is about.
    pub fn subject(&self) -> &str {
        use Warning::*;
        match self {
            Shadowed { rule, .. }
            | MayBeShadowed { rule, .. }
            | Unreachable { rule, .. }
            | Conflict { rule, .. }
            | EmptyRegex { rule, .. }
            | PathPrefix { rule, .. }
            | UnknownArgument { rule, .. }
            | UnknownTool { rule, .. } => rule,
            UnreachablePolicy { policy, .. } => policy,
        }
    }

    /// `(file, line, column)` of every label: the primary one, the other
    /// labels in the same file, then those of related notes (other files).
    pub fn positions(&self) -> Vec<(String, usize, usize)> {
        let (src, span, others, related) = self.parts();
        let at = |src: &Src, offset: usize| {
            let (l, c) = crate::source::line_col(src.inner(), offset);
            (src.name().to_string(), l, c)
        };
        let mut out = vec![at(src, span.offset())];
        out.extend(others.iter().map(|l| at(src, l.offset())));
        out.extend(related.iter().map(|n| at(&n.src, n.span.offset())));
        out
    }
}

/// Runs every check on a compiled policy set; findings in rule order.
pub fn lint(compiled: &Compiled) -> Vec<Warning> {
    Linter {
        sources: &compiled.sources,
        ast: &compiled.policies,
        ir: &compiled.ir,
        out: Vec::new(),
    }
    .run()
}

struct Linter<'c> {
    sources: &'c SourceMap,
    ast: &'c ast::PolicySet,
    ir: &'c ir::Program,
    out: Vec<Warning>,
}

/// A rule with its place and its conjuncts.
struct Seen<'c> {
    ir: &'c ir::Rule,
    ast: &'c ast::Rule,
    atoms: Vec<&'c Cond>,
}

/// Why the policies from some point on are never tried.
enum Blocked<'c> {
    CatchAll(&'c ast::Rule),
    DefaultAllow(&'c ast::Policy),
}

fn strictness(e: Effect) -> u8 {
    match e {
        Effect::Allow => 0,
        Effect::RequireApproval => 1,
        Effect::Deny => 2,
    }
}

fn quoted_list(ids: &[String]) -> String {
    let q: Vec<String> = ids.iter().map(|i| format!("`{i}`")).collect();
    match q.len() {
        0 => String::new(),
        1 => format!("rule {}", q[0]),
        _ => format!(
            "rules {} and {}",
            q[..q.len() - 1].join(", "),
            q[q.len() - 1]
        ),
    }
}

/// Probes for "matches every value": an empty match at the start of each.
const PROBES: &[&str] = &["x", "Z9", " ", "\n", "/", "-", "\u{1}", "é"];

fn is_path_name(name: &str) -> bool {
    matches!(
        name,
        "path" | "file" | "dir" | "directory" | "filepath" | "filename"
    ) || name.ends_with("_path")
        || name.ends_with("_file")
        || name.ends_with("_dir")
}

impl<'c> Linter<'c> {
    /// Labels for `others` in `primary`'s file: same file → extra label,
    /// other file → a related note.
    fn place(
        &self,
        primary: Span,
        others: &[(Span, String)],
    ) -> (Src, SourceSpan, Vec<LabeledSpan>, Vec<Note>) {
        let mut labels = Vec::new();
        let mut related = Vec::new();
        for (span, label) in others {
            if span.file == primary.file {
                labels.push(LabeledSpan::new_with_span(
                    Some(label.clone()),
                    SourceSpan::from(*span),
                ));
            } else {
                related.push(Note {
                    message: format!("earlier, in {}", self.sources.get(span.file).name),
                    label: label.clone(),
                    src: self.sources.named_source(span.file),
                    span: SourceSpan::from(*span),
                });
            }
        }
        (
            self.sources.named_source(primary.file),
            primary.into(),
            labels,
            related,
        )
    }

    fn run(mut self) -> Vec<Warning> {
        let mut earlier: Vec<Seen<'c>> = Vec::new();
        let mut blocked: Option<Blocked<'c>> = None;
        for (pi, policy) in self.ir.policies.iter().enumerate() {
            let Some(ast_policy) = self.ast.policies.get(pi) else {
                break;
            };
            if let Some(b) = &blocked {
                if !policy.rules.is_empty() {
                    self.unreachable_policy(ast_policy, b);
                }
                continue;
            }
            let mut catch_all: Option<&'c ast::Rule> = None;
            for (ri, rule) in policy.rules.iter().enumerate() {
                let Some(ast_rule) = ast_policy.rules.get(ri) else {
                    break;
                };
                let seen = Seen {
                    ir: rule,
                    ast: ast_rule,
                    atoms: conjuncts(&rule.cond),
                };
                let shadowed = if let Some(first) = catch_all {
                    self.unreachable(&seen, first);
                    true
                } else {
                    self.shadowing(&seen, &earlier)
                };
                self.empty_regex(&seen);
                self.path_prefix(&seen, &earlier);
                if matches!(rule.cond.kind, CondKind::True) && catch_all.is_none() {
                    catch_all = Some(ast_rule);
                }
                if !shadowed {
                    earlier.push(seen);
                }
            }
            if let Some(r) = catch_all {
                blocked = Some(Blocked::CatchAll(r));
            } else if policy.default_allow && !policy.rules.is_empty() {
                blocked = Some(Blocked::DefaultAllow(ast_policy));
            }
        }
        self.out
    }

    fn unreachable(&mut self, l: &Seen<'c>, by: &'c ast::Rule) {
        let (src, span, others, related) = self.place(
            l.ast.id.span,
            &[(by.id.span, "this rule has no conditions".to_string())],
        );
        self.out.push(Warning::Unreachable {
            rule: l.ir.id.clone(),
            by: by.id.value.clone(),
            src,
            span,
            others,
            related,
            help: format!(
                "rules are tried in order and `{}` matches every call; move it to the end of the policy, or give it conditions",
                by.id.value
            ),
        });
    }

    fn unreachable_policy(&mut self, p: &'c ast::Policy, why: &Blocked<'c>) {
        let (by_span, by_label, by_text, help) = match why {
            Blocked::CatchAll(r) => (
                r.id.span,
                "matches every call".to_string(),
                format!("the unconditional rule `{}` of an earlier policy decides every call", r.id.value),
                format!("move `{}` after the other policies' rules, or give it conditions", r.id.value),
            ),
            Blocked::DefaultAllow(q) => (
                q.default_outcome.as_ref().map_or(q.name.span, |d| d.span),
                "ends evaluation with `_default_allow`".to_string(),
                format!(
                    "policy `{}` has `default_outcome: allow`, which decides every call its rules leave",
                    q.name.value
                ),
                format!(
                    "put policy `{}` last, or drop its `default_outcome: allow` and end it with an explicit allow rule",
                    q.name.value
                ),
            ),
        };
        let (src, span, others, related) = self.place(p.name.span, &[(by_span, by_label)]);
        self.out.push(Warning::UnreachablePolicy {
            policy: p.name.value.clone(),
            by_text,
            src,
            span,
            others,
            related,
            help,
        });
    }

    /// Shadowing and conflict checks of `l` against the reachable earlier
    /// rules. Returns whether `l` is shadowed.
    fn shadowing(&mut self, l: &Seen<'c>, earlier: &[Seen<'c>]) -> bool {
        let facts = Facts::new(l.atoms.clone());
        if let Some(e) = earlier
            .iter()
            .find(|e| facts.truth(&e.ir.cond) == Some(true))
        {
            self.shadowed(l, &[e], false);
            return true;
        }
        if let Some(by) = self.shadowed_tool_by_tool(l, earlier) {
            self.shadowed(l, &by, false);
            return true;
        }
        let mut loose = facts.clone();
        loose.assume_plain_names = true;
        if let Some(e) = earlier
            .iter()
            .find(|e| loose.truth(&e.ir.cond) == Some(true))
        {
            self.shadowed(l, &[e], true);
            return true;
        }
        let l_has_conditions = l
            .atoms
            .iter()
            .any(|a| reads(a).iter().any(|r| matches!(r, Reads::Arg(_))));
        if l_has_conditions {
            if let Some(e) = earlier.iter().find(|e| {
                strictness(e.ir.effect) < strictness(l.ir.effect) && overlaps(e, l, &facts)
            }) {
                self.conflict(l, e);
            }
        }
        false
    }

    /// A rule whose one tool list is covered entry by entry, each entry by
    /// some earlier rule.
    fn shadowed_tool_by_tool<'e>(
        &self,
        l: &Seen<'c>,
        earlier: &'e [Seen<'c>],
    ) -> Option<Vec<&'e Seen<'c>>> {
        let tool_lists: Vec<usize> = l
            .atoms
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                matches!(&a.kind, CondKind::NameIn { field, .. } if *field == kvlar_vm::op::Field::Tool)
            })
            .map(|(i, _)| i)
            .collect();
        let [idx] = tool_lists.as_slice() else {
            return None;
        };
        let CondKind::NameIn { field, matchers } = &l.atoms[*idx].kind else {
            return None;
        };
        if matchers.len() < 2 {
            return None;
        }
        let mut by: Vec<&'e Seen<'c>> = Vec::new();
        for m in matchers {
            let single = Cond::new(
                CondKind::NameIn {
                    field: *field,
                    matchers: vec![m.clone()],
                },
                "",
                None,
            );
            let mut atoms = l.atoms.clone();
            atoms[*idx] = &single;
            let facts = Facts::new(atoms);
            let e = earlier
                .iter()
                .find(|e| facts.truth(&e.ir.cond) == Some(true))?;
            if !by.iter().any(|b| std::ptr::eq(*b, e)) {
                by.push(e);
            }
        }
        Some(by)
    }

    fn shadowed(&mut self, l: &Seen<'c>, by: &[&Seen<'c>], maybe: bool) {
        let ids: Vec<String> = by.iter().map(|e| e.ir.id.clone()).collect();
        let by_text = quoted_list(&ids);
        let labels: Vec<(Span, String)> = by
            .iter()
            .map(|e| {
                (
                    e.ast.id.span,
                    if maybe {
                        "matches every call with a tool name without a newline".to_string()
                    } else {
                        format!("matches every call `{}` matches", l.ir.id)
                    },
                )
            })
            .collect();
        let (src, span, others, related) = self.place(l.ast.id.span, &labels);
        let help = if by.len() > 1 {
            format!(
                "first match decides, and between them {by_text} take every tool of `{}`; move `{}` above them, narrow them, or delete it",
                l.ir.id, l.ir.id
            )
        } else {
            format!(
                "first match decides: move `{}` above `{}`, narrow `{}`, or delete `{}`",
                l.ir.id, ids[0], ids[0], l.ir.id
            )
        };
        let rule = l.ir.id.clone();
        self.out.push(if maybe {
            Warning::MayBeShadowed {
                rule,
                by: ids,
                by_text,
                src,
                span,
                others,
                related,
                help: format!("{help} (only a tool name containing a newline gets past the `*`)"),
            }
        } else {
            Warning::Shadowed {
                rule,
                by: ids,
                by_text,
                src,
                span,
                others,
                related,
                help,
            }
        });
    }

    fn conflict(&mut self, l: &Seen<'c>, e: &Seen<'c>) {
        let (src, span, others, related) = self.place(
            l.ast.id.span,
            &[(
                e.ast.id.span,
                format!(
                    "{} first, for every call it shares with `{}`",
                    e.ir.effect, l.ir.id
                ),
            )],
        );
        self.out.push(Warning::Conflict {
            rule: l.ir.id.clone(),
            effect: l.ir.effect,
            by: e.ir.id.clone(),
            by_effect: e.ir.effect,
            src,
            span,
            others,
            related,
            help: format!(
                "if `{}` should win where they overlap, move it above `{}`; if the overlap is intended, nothing to do",
                l.ir.id, e.ir.id
            ),
        });
    }

    fn empty_regex(&mut self, l: &Seen<'c>) {
        if l.ir.effect != Effect::Deny {
            return;
        }
        let mut found: Vec<(&Cond, String)> = Vec::new();
        positive_regexes(&l.ir.cond, true, &mut found);
        for (c, regex) in found {
            let Some(at) = c.span else { continue };
            let (src, span, others, related) =
                self.place(at, &[(l.ast.id.span, format!("deny rule `{}`", l.ir.id))]);
            self.out.push(Warning::EmptyRegex {
                rule: l.ir.id.clone(),
                regex,
                src,
                span,
                others,
                related,
                help: "an unanchored regex that matches \"\" finds a match in every value (an empty alternative `a|`, or everything optional like `x*`); remove the empty alternative, or require at least one character".to_string(),
            });
        }
    }

    fn path_prefix(&mut self, l: &Seen<'c>, earlier: &[Seen<'c>]) {
        let mut found = Vec::new();
        prefix_tests(&l.ir.cond, true, &mut found);
        let restrictive = l.ir.effect != Effect::Allow;
        for p in found {
            let dir = p.prefix.trim_end_matches('/');
            // Where the test is what lets a call through (allow, or the
            // negated test of a deny), a path that starts with the prefix
            // but leaves the directory; where it is what stops a call, a
            // path inside the directory that does not start with the prefix.
            let witness = if restrictive == p.positive {
                if p.prefix.starts_with('/') {
                    format!("/tmp/..{dir}/passwd")
                } else {
                    format!("./{dir}/passwd")
                }
            } else {
                format!("{dir}/../etc/passwd")
            };
            // What the rule knows, except about the tested argument, which
            // takes the witness value.
            let reads_subj = reads(p.cond);
            let others: Vec<&Cond> = l
                .atoms
                .iter()
                .copied()
                .filter(|a| {
                    !reads(a)
                        .iter()
                        .any(|r| reads_subj.iter().any(|s| r.touches(s)))
                })
                .collect();
            let mut facts = Facts::new(others);
            facts.assume_value(p.subj.clone(), Value::String(witness.clone()));
            // Guarded: the rule still decides safely on the witness, or an
            // earlier deny rule takes it.
            if facts.truth(&l.ir.cond) == Some(restrictive) {
                continue;
            }
            if earlier
                .iter()
                .any(|g| g.ir.effect == Effect::Deny && facts.truth(&g.ir.cond) == Some(true))
            {
                continue;
            }
            let Some(at) = p.cond.span else { continue };
            let shown_dir = if dir.is_empty() { "/" } else { dir };
            let (src, span, others, related) =
                self.place(at, &[(l.ast.id.span, format!("in rule `{}`", l.ir.id))]);
            self.out.push(Warning::PathPrefix {
                rule: l.ir.id.clone(),
                witness,
                src,
                span,
                others,
                related,
                help: format!(
                    "a text prefix does not resolve `..`: use `{} under \"{shown_dir}\"` (in a `when:` expression), which normalises the path first, or deny `..` components in an earlier rule",
                    p.native
                ),
            });
        }
    }
}

/// Is the regex vacuous (an empty match at the start of any text)?
fn vacuous(re: &regex::Regex) -> bool {
    re.is_match("") && PROBES.iter().all(|p| re.is_match(p))
}

/// Regexes that must match for the rule to fire (positive polarity), and
/// are vacuous. Globs (`glob`, anchored) are not regex searches: skipped.
fn positive_regexes<'c>(c: &'c Cond, positive: bool, out: &mut Vec<(&'c Cond, String)>) {
    match &c.kind {
        CondKind::And(xs) | CondKind::Or(xs) => {
            xs.iter().for_each(|x| positive_regexes(x, positive, out))
        }
        CondKind::Not(x) => positive_regexes(x, !positive, out),
        CondKind::KvParam { re, .. } if positive && vacuous(re) => {
            out.push((c, re.as_str().to_string()))
        }
        CondKind::KvCond {
            op: KvOp::Matches,
            re: Some(re),
            ..
        } if positive && vacuous(re) => out.push((c, re.as_str().to_string())),
        CondKind::Regex {
            re, negate: false, ..
        } if positive && !is_glob_test(c) && vacuous(re) => out.push((c, re.as_str().to_string())),
        _ => {}
    }
}

/// A `glob` test lowers to an anchored regex; its label is the source text.
fn is_glob_test(c: &Cond) -> bool {
    c.label.split_whitespace().any(|w| w == "glob")
}

struct PrefixTest<'c> {
    cond: &'c Cond,
    subj: Subj,
    prefix: String,
    /// The operand as a native expression (for the help).
    native: String,
    /// Not under a negation.
    positive: bool,
}

fn path_text(p: &[PathSeg]) -> String {
    let mut s = String::from("args");
    for seg in p {
        match seg {
            PathSeg::Key(k)
                if !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_') =>
            {
                s.push('.');
                s.push_str(k);
            }
            PathSeg::Key(k) => s.push_str(&format!("[{}]", Value::String(k.clone()))),
            PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn prefix_tests<'c>(c: &'c Cond, positive: bool, out: &mut Vec<PrefixTest<'c>>) {
    match &c.kind {
        CondKind::And(xs) | CondKind::Or(xs) => {
            xs.iter().for_each(|x| prefix_tests(x, positive, out))
        }
        CondKind::Not(x) => prefix_tests(x, !positive, out),
        CondKind::Test {
            op: TestOp::StartsWith,
            a: Operand::Args(p),
            b: Operand::Const(Value::String(prefix)),
        } => {
            let named = matches!(p.last(), Some(PathSeg::Key(k)) if is_path_name(k));
            if named || prefix.starts_with('/') {
                out.push(PrefixTest {
                    cond: c,
                    subj: Subj::Args(p.clone()),
                    prefix: prefix.clone(),
                    native: path_text(p),
                    positive,
                });
            }
        }
        CondKind::KvCond {
            op: KvOp::StartsWith,
            field,
            value: Value::String(prefix),
            ..
        } => {
            let last = field.rsplit('.').next().unwrap_or(field);
            if is_path_name(last) || prefix.starts_with('/') {
                let native = match kv_subject(field) {
                    Subj::Args(p) => path_text(&p),
                    Subj::KvDotted(f) => format!("args.{f}"),
                };
                out.push(PrefixTest {
                    cond: c,
                    subj: kv_subject(field),
                    prefix: prefix.clone(),
                    native,
                    positive,
                });
            }
        }
        _ => {}
    }
}

/// Is there provably a call matched by both `e` and `l`, with `e` applying
/// to every tool `l` applies to? Each atom of `e` must be implied by `l`, or
/// read only arguments (or the agent / action) that `l` does not read.
fn overlaps(e: &Seen<'_>, l: &Seen<'_>, l_facts: &Facts<'_>) -> bool {
    let l_reads: Vec<Reads> = l.atoms.iter().flat_map(|a| reads(a)).collect();
    e.atoms.iter().all(|a| match l_facts.truth(a) {
        Some(b) => b,
        None => {
            let mine = reads(a);
            !mine.is_empty()
                && !mine.contains(&Reads::Name(kvlar_vm::op::Field::Tool))
                && !mine.iter().any(|x| l_reads.iter().any(|y| x.touches(y)))
        }
    })
}
