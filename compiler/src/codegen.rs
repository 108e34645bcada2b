//! Code generation: IR → bytecode [`Program`].
//!
//! Each rule's condition becomes a chunk of its own, compiled as "branch to
//! the end when false" (short-circuit, no booleans materialised), returning
//! the flag. The entry chunk is `dispatch` + `halt`: the dispatch table
//! (built here) maps the call's tool name to the rules that can apply to it,
//! in first-match order, with the policies' `default_outcome: allow` markers
//! among them; nothing matched is `halt` (`_default_deny`). Regex tests on
//! one subject are grouped into regex sets, run once per call. Quantifier
//! bodies are chunks too. All jumps are forward.

use serde_json::Value;
use std::collections::HashMap;

use kvlar_vm::op::{encode, Instr};
use kvlar_vm::op::{Field, KvOp};
use kvlar_vm::program::{
    Chunk, Const, DebugEntry, Dispatch, Matcher, PolicyInfo, ProgramParts, RegexSet, RuleInfo,
    SetSubject, Step, MAX_REGS, MAX_SETS, MAX_SET_PATTERNS, MAX_TOTAL_SET_PATTERNS,
};
use kvlar_vm::Program;

use crate::ir::{self, Cond, CondKind, Operand};
use crate::source::SourceMap;

/// Why code generation failed (limits of the bytecode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodegenError {
    /// A rule's condition needs more registers than the VM has.
    TooComplex { rule: String },
    /// A jump or a table is larger than the encoding allows.
    TooLarge { what: &'static str, rule: String },
    /// The verifier refused the generated program (a compiler bug).
    Verify(String),
}

struct Label {
    target: Option<usize>,
    patches: Vec<(usize, usize)>, // (operand position, pc after the jump)
}

struct Gen {
    consts: Vec<Const>,
    const_index: HashMap<String, u16>,
    chunks: Vec<Vec<u8>>,
    labels: Vec<Label>,
    debug: Vec<DebugEntry>,
    sp: usize,
    max_regs: usize,
    var_regs: Vec<u8>,
    rule: u16,
    rule_id: String,
    error: Option<CodegenError>,
    /// (subject key, pattern) → (regex set constant, pattern id).
    set_tests: HashMap<(String, String), (u16, u16)>,
}

#[derive(Clone, Copy)]
struct LabelId(usize);

pub fn generate(ir: &ir::Program, sources: &SourceMap) -> Result<Program, CodegenError> {
    let mut g = Gen {
        consts: Vec::new(),
        const_index: HashMap::new(),
        chunks: vec![Vec::new()],
        labels: Vec::new(),
        debug: Vec::new(),
        sp: 0,
        max_regs: 0,
        var_regs: Vec::new(),
        rule: 0,
        rule_id: String::new(),
        error: None,
        set_tests: HashMap::new(),
    };
    g.build_regex_sets(ir);
    let mut rules = Vec::new();
    let mut policies = Vec::new();
    // (rule index, chunk, pc past the tool test, the rule's tool patterns)
    let mut entries: Vec<(u16, u16, u32, Option<&[Matcher]>)> = Vec::new();
    let mut defaults: Vec<(u32, Step)> = Vec::new();
    for (pi, p) in ir.policies.iter().enumerate() {
        policies.push(PolicyInfo {
            name: p.name.clone(),
            default_allow: p.default_allow,
        });
        for r in &p.rules {
            if rules.len() >= u16::MAX as usize || g.chunks.len() >= u16::MAX as usize {
                return Err(CodegenError::TooLarge {
                    what: "rule table",
                    rule: r.id.clone(),
                });
            }
            g.rule = rules.len() as u16;
            g.rule_id = r.id.clone();
            rules.push(RuleInfo {
                id: r.id.clone(),
                effect: r.effect,
                reason: r.reason.clone(),
                policy: pi as u16,
            });
            let (tools, rest) = split_tool_test(&r.cond);
            let chunk = g.chunks.len();
            g.chunks.push(Vec::new());
            let fail = g.label();
            if let Some(t) = tools {
                g.test(chunk, t);
                g.jump(chunk, |off| Instr::JumpIfFalse { off }, fail);
            }
            let skip = g.pc(chunk) as u32;
            for c in rest {
                g.branch_false(chunk, c, fail);
            }
            g.emit(chunk, Instr::SetFlag { value: true });
            g.emit(chunk, Instr::Return);
            g.bind(chunk, fail);
            g.emit(chunk, Instr::SetFlag { value: false });
            g.emit(chunk, Instr::Return);
            let patterns = tools.and_then(|t| match &t.kind {
                CondKind::NameIn { matchers, .. } => Some(&matchers[..]),
                _ => None,
            });
            entries.push((g.rule, chunk as u16, skip, patterns));
        }
        if p.default_allow && !p.rules.is_empty() {
            let last = rules.len() as u32 - 1;
            defaults.push((2 * last + 1, Step::DefaultAllow { policy: pi as u16 }));
        }
    }
    let dispatch = build_dispatch(&entries, &defaults);
    // One dispatch table per program: pushed as is (nothing to share).
    let table = g.consts.len() as u16;
    g.consts.push(Const::Dispatch(dispatch));
    g.emit(0, Instr::Dispatch { table });
    g.emit(0, Instr::Halt);
    if let Some(e) = g.error {
        return Err(e);
    }
    let parts = ProgramParts {
        consts: g.consts,
        chunks: g.chunks.into_iter().map(|code| Chunk { code }).collect(),
        nregs: g.max_regs as u8,
        rules,
        policies,
        debug: g.debug,
        source_names: sources.files().iter().map(|f| f.name.clone()).collect(),
    };
    Program::new(parts).map_err(|e| CodegenError::Verify(e.to_string()))
}

/// The subject and pattern of a test that can join a regex set: regex
/// tests, and Kvlar `contains` / `starts_with` / `ends_with` with a non-empty
/// string value (as an escaped literal: a Kvlar field that is not a string
/// reads as `""`, which such a pattern never matches, as in Kvlar).
fn set_test(c: &Cond) -> Option<(String, SetSubject, String)> {
    match &c.kind {
        CondKind::KvCond {
            op: KvOp::Matches,
            field,
            re: Some(re),
            ..
        } => Some((
            format!("f{field}"),
            SetSubject::KvField(field.clone()),
            re.as_str().to_string(),
        )),
        CondKind::KvCond {
            op: op @ (KvOp::Contains | KvOp::StartsWith | KvOp::EndsWith),
            field,
            value: Value::String(lit),
            ..
        } if !lit.is_empty() => {
            let lit = regex::escape(lit);
            let pattern = match op {
                KvOp::StartsWith => format!(r"\A{lit}"),
                KvOp::EndsWith => format!(r"{lit}\z"),
                _ => lit,
            };
            Some((
                format!("f{field}"),
                SetSubject::KvField(field.clone()),
                pattern,
            ))
        }
        CondKind::KvParam { key, re } => Some((
            format!("p{key}"),
            SetSubject::KvParam(key.clone()),
            re.as_str().to_string(),
        )),
        CondKind::Regex {
            a: Operand::Args(path),
            re,
            ..
        } => Some((
            format!("a{path:?}"),
            SetSubject::Args(path.clone()),
            re.as_str().to_string(),
        )),
        _ => None,
    }
}

fn each_cond<'c>(c: &'c Cond, f: &mut impl FnMut(&'c Cond)) {
    f(c);
    match &c.kind {
        CondKind::And(xs) | CondKind::Or(xs) => xs.iter().for_each(|x| each_cond(x, f)),
        CondKind::Not(x) => each_cond(x, f),
        CondKind::Quant { body, .. } => each_cond(body, f),
        _ => {}
    }
}

/// The rule's leading tool test (`tools:` / `resources:`), and the rest of its conjunction.
fn split_tool_test(cond: &Cond) -> (Option<&Cond>, Vec<&Cond>) {
    let is_tool = |c: &Cond| {
        matches!(
            c.kind,
            CondKind::NameIn {
                field: Field::Tool,
                ..
            }
        )
    };
    match &cond.kind {
        CondKind::True => (None, Vec::new()),
        CondKind::And(parts) => match parts.iter().position(is_tool) {
            Some(i) => (
                Some(&parts[i]),
                parts
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, c)| c)
                    .collect(),
            ),
            None => (None, parts.iter().collect()),
        },
        _ if is_tool(cond) => (Some(cond), Vec::new()),
        _ => (None, vec![cond]),
    }
}

fn matcher_matches(m: &Matcher, name: &str) -> bool {
    match m {
        Matcher::Exact(s) => s == name,
        Matcher::Glob { re, .. } => re.is_match(name),
    }
}

/// The tool-name dispatch table (see [`Dispatch`]): every exact tool name
/// the policies mention gets the list of rules whose patterns match it
/// (entered past their tool test); rules without tool patterns, and glob
/// rules for other names, are in the generic lists.
fn build_dispatch(
    entries: &[(u16, u16, u32, Option<&[Matcher]>)],
    defaults: &[(u32, Step)],
) -> Dispatch {
    let mut names: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.3)
        .flatten()
        .filter_map(|m| match m {
            Matcher::Exact(s) => Some(s.as_str()),
            Matcher::Glob { .. } => None,
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut generic_known: Vec<(u32, Step)> = Vec::new();
    let mut generic_unknown: Vec<(u32, Step)> = Vec::new();
    let mut lists: Vec<Vec<(u32, Step)>> = vec![Vec::new(); names.len()];
    for &(rule, chunk, skip, patterns) in entries {
        let key = 2 * rule as u32;
        let from_top = Step::Rule { rule, chunk, pc: 0 };
        match patterns {
            None => {
                generic_known.push((key, from_top));
                generic_unknown.push((key, from_top));
            }
            Some(ms) => {
                let past_test = Step::Rule {
                    rule,
                    chunk,
                    pc: skip,
                };
                // Exact names through the index, globs against every name:
                // linear in the rules, not rules × names.
                let mut hits: Vec<usize> = Vec::new();
                for m in ms {
                    match m {
                        Matcher::Exact(s) => hits.extend(index.get(s.as_str())),
                        Matcher::Glob { .. } => {
                            hits.extend((0..names.len()).filter(|&i| matcher_matches(m, names[i])))
                        }
                    }
                }
                hits.sort_unstable();
                hits.dedup();
                for i in hits {
                    lists[i].push((key, past_test));
                }
                if ms.iter().any(|m| matches!(m, Matcher::Glob { .. })) {
                    generic_unknown.push((key, from_top));
                }
            }
        }
    }
    for d in defaults {
        generic_known.push(*d);
        generic_unknown.push(*d);
    }
    generic_known.sort_by_key(|s| s.0);
    generic_unknown.sort_by_key(|s| s.0);
    Dispatch::new(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i as u32))
            .collect(),
        lists,
        generic_known,
        generic_unknown,
    )
}

impl Gen {
    /// Groups the regex tests of all rules by subject; every subject tested
    /// by two or more distinct regexes gets a regex set (the largest first,
    /// at most [`MAX_SETS`]), run once per call instead of once per test.
    fn build_regex_sets(&mut self, ir: &ir::Program) {
        let mut groups: Vec<(String, SetSubject, Vec<String>)> = Vec::new();
        for p in &ir.policies {
            for r in &p.rules {
                each_cond(&r.cond, &mut |c| {
                    if let Some((key, subject, pat)) = set_test(c) {
                        match groups.iter_mut().find(|g| g.0 == key) {
                            Some(g) => {
                                if !g.2.contains(&pat) && g.2.len() < MAX_SET_PATTERNS {
                                    g.2.push(pat);
                                }
                            }
                            None => groups.push((key, subject, vec![pat])),
                        }
                    }
                });
            }
        }
        // A lone test is kept as a set when the same key is tested on the
        // other side (a Kvlar `conditions` field and the `parameters` key
        // of the same name): the VM scans such twins in one pass, so the
        // lone test costs nothing more and its rule joins the bit runs.
        let partner = |g: &(String, SetSubject, Vec<String>)| match &g.1 {
            SetSubject::KvField(k) => Some(format!("p{k}")),
            SetSubject::KvParam(k) => Some(format!("f{k}")),
            SetSubject::Args(_) => None,
        };
        let keys: std::collections::HashSet<String> = groups.iter().map(|g| g.0.clone()).collect();
        groups.retain(|g| g.2.len() >= 2 || partner(g).is_some_and(|p| keys.contains(&p)));
        // Largest first; ties keep first-seen order (stable sort: deterministic).
        groups.sort_by_key(|g| std::cmp::Reverse(g.2.len()));
        let mut slot = 0u8;
        let mut total = 0usize;
        for (key, subject, patterns) in groups {
            if slot as usize >= MAX_SETS {
                break;
            }
            // The VM takes at most MAX_TOTAL_SET_PATTERNS in all: a group
            // past that keeps its tests as plain regexes.
            if total + patterns.len() > MAX_TOTAL_SET_PATTERNS {
                continue;
            }
            let Some(set) = RegexSet::new(slot, subject, patterns.clone()) else {
                continue;
            };
            total += patterns.len();
            let index = self.consts.len() as u16;
            self.consts.push(Const::RegexSet(set));
            for (i, pat) in patterns.into_iter().enumerate() {
                self.set_tests.insert((key.clone(), pat), (index, i as u16));
            }
            slot += 1;
        }
    }

    fn fail(&mut self, e: CodegenError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn pc(&self, chunk: usize) -> usize {
        self.chunks[chunk].len()
    }

    fn emit(&mut self, chunk: usize, i: Instr) -> usize {
        let pc = self.pc(chunk);
        encode(&i, &mut self.chunks[chunk]);
        pc
    }

    fn label(&mut self) -> LabelId {
        self.labels.push(Label {
            target: None,
            patches: Vec::new(),
        });
        LabelId(self.labels.len() - 1)
    }

    fn jump(&mut self, chunk: usize, kind: fn(u16) -> Instr, l: LabelId) {
        self.emit(chunk, kind(0));
        let after = self.pc(chunk);
        self.labels[l.0].patches.push((after - 2, after));
    }

    fn bind(&mut self, chunk: usize, l: LabelId) {
        let target = self.pc(chunk);
        self.labels[l.0].target = Some(target);
        let patches = std::mem::take(&mut self.labels[l.0].patches);
        for (pos, after) in patches {
            match u16::try_from(target - after) {
                Ok(off) => self.chunks[chunk][pos..pos + 2].copy_from_slice(&off.to_le_bytes()),
                Err(_) => {
                    let rule = self.rule_id.clone();
                    self.fail(CodegenError::TooLarge { what: "jump", rule })
                }
            }
        }
    }

    fn konst(&mut self, c: Const) -> u16 {
        let key = match &c {
            Const::Str(s) => format!("s{s}"),
            Const::Json(v) => format!("j{v}"),
            Const::Regex(r) => format!("r{}", r.as_str()),
            Const::Path(p) => format!("p{p:?}"),
            // Never shared: pushed directly by `generate` / `build_regex_sets`.
            Const::Dispatch(_) | Const::RegexSet(_) => format!("u{}", self.consts.len()),
            Const::Matchers(ms) => {
                let parts: Vec<String> = ms
                    .iter()
                    .map(|m| match m {
                        Matcher::Exact(s) => format!("e{s:?}"),
                        Matcher::Glob { glob, re } => format!("g{glob:?}{:?}", re.as_str()),
                    })
                    .collect();
                format!("m{}", parts.join(","))
            }
        };
        if let Some(&i) = self.const_index.get(&key) {
            return i;
        }
        if self.consts.len() >= u16::MAX as usize {
            let rule = self.rule_id.clone();
            self.fail(CodegenError::TooLarge {
                what: "constant pool",
                rule,
            });
            return 0;
        }
        let i = self.consts.len() as u16;
        self.consts.push(c);
        self.const_index.insert(key, i);
        i
    }

    fn alloc(&mut self) -> u8 {
        let r = self.sp;
        self.sp += 1;
        if self.sp > MAX_REGS {
            let rule = self.rule_id.clone();
            self.fail(CodegenError::TooComplex { rule });
            return 0;
        }
        self.max_regs = self.max_regs.max(self.sp);
        r as u8
    }

    fn debug(&mut self, chunk: usize, pc: usize, c: &Cond) {
        self.debug.push(DebugEntry {
            chunk: chunk as u16,
            pc: pc as u32,
            rule: self.rule,
            label: c.label.clone(),
            span: c
                .span
                .map(|s| (s.file.0 as u16, s.start as u32, s.end as u32)),
        });
    }

    /// Jump to `target` when `c` is false; fall through when true.
    fn branch_false(&mut self, chunk: usize, c: &Cond, target: LabelId) {
        match &c.kind {
            CondKind::True => {}
            CondKind::And(xs) => xs.iter().for_each(|x| self.branch_false(chunk, x, target)),
            CondKind::Or(xs) => {
                let done = self.label();
                if let Some((last, init)) = xs.split_last() {
                    for x in init {
                        self.branch_true(chunk, x, done);
                    }
                    self.branch_false(chunk, last, target);
                }
                self.bind(chunk, done);
            }
            CondKind::Not(x) => self.branch_true(chunk, x, target),
            _ => {
                self.test(chunk, c);
                self.jump(chunk, |off| Instr::JumpIfFalse { off }, target);
            }
        }
    }

    /// Jump to `target` when `c` is true; fall through when false.
    fn branch_true(&mut self, chunk: usize, c: &Cond, target: LabelId) {
        match &c.kind {
            CondKind::True => self.jump(chunk, |off| Instr::Jump { off }, target),
            CondKind::Or(xs) => xs.iter().for_each(|x| self.branch_true(chunk, x, target)),
            CondKind::And(xs) => {
                let done = self.label();
                if let Some((last, init)) = xs.split_last() {
                    for x in init {
                        self.branch_false(chunk, x, done);
                    }
                    self.branch_true(chunk, last, target);
                }
                self.bind(chunk, done);
            }
            CondKind::Not(x) => self.branch_false(chunk, x, target),
            _ => {
                self.test(chunk, c);
                self.jump(chunk, |off| Instr::JumpIfTrue { off }, target);
            }
        }
    }

    /// A leaf test: leaves its result in the flag.
    fn test(&mut self, chunk: usize, c: &Cond) {
        let saved = self.sp;
        if let Some((key, _, pat)) = set_test(c) {
            if let Some(&(set, pattern)) = self.set_tests.get(&(key, pat)) {
                let negate = matches!(c.kind, CondKind::Regex { negate: true, .. });
                let pc = self.emit(
                    chunk,
                    Instr::TestSet {
                        set,
                        pattern,
                        negate,
                    },
                );
                self.debug(chunk, pc, c);
                return;
            }
        }
        let instr = match &c.kind {
            CondKind::NameIn { field, matchers } => {
                let list = self.konst(Const::Matchers(matchers.clone()));
                Instr::NameIn {
                    field: *field,
                    list,
                }
            }
            CondKind::KvParam { key, re } => Instr::KvParam {
                key: self.konst(Const::Str(key.clone())),
                re: self.konst(Const::Regex(re.clone())),
            },
            CondKind::KvCond {
                op,
                field,
                value,
                re,
            } => {
                let field = self.konst(Const::Str(field.clone()));
                let value = match re {
                    Some(re) => self.konst(Const::Regex(re.clone())),
                    None => self.konst(Const::Json(value.clone())),
                };
                Instr::KvCond {
                    op: *op,
                    field,
                    value,
                }
            }
            CondKind::Test { op, a, b } => {
                let a = self.operand(chunk, a);
                let b = self.operand(chunk, b);
                Instr::Test { op: *op, a, b }
            }
            CondKind::Regex { a, re, negate } => {
                let a = self.operand(chunk, a);
                let re = self.konst(Const::Regex(re.clone()));
                Instr::TestRegex {
                    a,
                    re,
                    negate: *negate,
                }
            }
            CondKind::Exists(a) => Instr::Exists {
                a: self.operand(chunk, a),
            },
            CondKind::Truthy(a) => Instr::Truthy {
                a: self.operand(chunk, a),
            },
            CondKind::Quant {
                kind,
                var: _,
                over,
                body,
            } => {
                let src = self.operand(chunk, over);
                let var = self.alloc();
                self.var_regs.push(var);
                let body_chunk = self.chunks.len();
                if body_chunk >= u16::MAX as usize {
                    let rule = self.rule_id.clone();
                    self.fail(CodegenError::TooLarge {
                        what: "chunk table",
                        rule,
                    });
                }
                self.chunks.push(Vec::new());
                let no = self.label();
                self.branch_false(body_chunk, body, no);
                self.emit(body_chunk, Instr::SetFlag { value: true });
                self.emit(body_chunk, Instr::Return);
                self.bind(body_chunk, no);
                self.emit(body_chunk, Instr::SetFlag { value: false });
                self.emit(body_chunk, Instr::Return);
                self.var_regs.pop();
                Instr::Quant {
                    kind: *kind,
                    var,
                    src,
                    chunk: body_chunk as u16,
                }
            }
            CondKind::True | CondKind::And(_) | CondKind::Or(_) | CondKind::Not(_) => {
                // Not leaves; branch_* handles them. Keep the flag meaningful anyway.
                Instr::SetFlag {
                    value: matches!(c.kind, CondKind::True),
                }
            }
        };
        let pc = self.emit(chunk, instr);
        self.debug(chunk, pc, c);
        self.sp = saved;
    }

    /// Loads an operand into a register and returns it.
    fn operand(&mut self, chunk: usize, o: &Operand) -> u8 {
        match o {
            Operand::Name(field) => {
                let dst = self.alloc();
                self.emit(chunk, Instr::LoadName { dst, field: *field });
                dst
            }
            Operand::Args(path) => {
                let path = self.konst(Const::Path(path.clone()));
                let dst = self.alloc();
                self.emit(chunk, Instr::LoadArgs { dst, path });
                dst
            }
            Operand::Var(depth, path) => {
                let Some(&src) = depth.checked_sub(1).and_then(|d| self.var_regs.get(d)) else {
                    self.fail(CodegenError::Verify(format!(
                        "unbound variable depth {depth} in rule {}",
                        self.rule_id
                    )));
                    return 0;
                };
                if path.is_empty() {
                    return src;
                }
                let path = self.konst(Const::Path(path.clone()));
                let dst = self.alloc();
                self.emit(chunk, Instr::GetPath { dst, src, path });
                dst
            }
            Operand::Const(v) => {
                let value = self.konst(Const::Json(v.clone()));
                let dst = self.alloc();
                self.emit(chunk, Instr::LoadConst { dst, value });
                dst
            }
            Operand::Call(func, a) => {
                let src = self.operand(chunk, a);
                let dst = self.alloc();
                self.emit(
                    chunk,
                    Instr::Call {
                        dst,
                        func: *func,
                        src,
                    },
                );
                dst
            }
        }
    }
}
