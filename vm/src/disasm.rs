//! The disassembler behind `kvlar compile --emit asm`: one line per
//! instruction, constants shown inline, each rule introduced by a header and
//! each test annotated with the source text it came from.

use std::fmt::Write;

use crate::op::{decode, Instr};
use crate::program::{Const, Matcher, PathSeg, Program};

fn path_text(segs: &[PathSeg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            PathSeg::Key(k)
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                let _ = write!(s, ".{k}");
            }
            PathSeg::Key(k) => {
                let _ = write!(s, "[{}]", serde_json::Value::String(k.clone()));
            }
            PathSeg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    s
}

/// A short rendering of a constant.
pub fn const_text(c: &Const) -> String {
    let text = match c {
        Const::Str(s) => serde_json::Value::String(s.clone()).to_string(),
        Const::Json(v) => v.to_string(),
        Const::Regex(re) => format!("/{}/", re.as_str()),
        Const::Path(p) => format!("args{}", path_text(p)),
        Const::RegexSet(rs) => format!(
            "regex set (slot {}) over {}: {} patterns",
            rs.slot,
            match &rs.subject {
                crate::program::SetSubject::KvField(f) => format!("field {f:?}"),
                crate::program::SetSubject::KvParam(k) => format!("parameter {k:?}"),
                crate::program::SetSubject::Args(p) => format!("args{}", path_text(p)),
            },
            rs.patterns.len()
        ),
        Const::Dispatch(d) => format!(
            "dispatch: {} tool names, {} generic rules, {} for other tools",
            d.names.len(),
            d.generic_known.len(),
            d.generic_unknown.len()
        ),
        Const::Matchers(ms) => {
            let items: Vec<String> = ms
                .iter()
                .map(|m| match m {
                    Matcher::Exact(s) => s.clone(),
                    Matcher::Glob { glob, .. } => format!("glob:{glob}"),
                })
                .collect();
            format!("[{}]", items.join(", "))
        }
    };
    if text.chars().count() > 60 {
        let short: String = text.chars().take(57).collect();
        format!("{short}...")
    } else {
        text
    }
}

impl Program {
    /// The program as readable assembly.
    pub fn disassemble(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "; kvlar program {}\n; {} policies, {} rules, {} constants, {} chunks, {} registers, {} bytes of code",
            self.hash_hex(),
            self.policies.len(),
            self.rules.len(),
            self.consts.len(),
            self.chunks.len(),
            self.nregs,
            self.code_size()
        );
        for (i, p) in self.policies.iter().enumerate() {
            let _ = writeln!(
                out,
                "; policy {i}: {}{}",
                p.name,
                if p.default_allow {
                    " (default_outcome: allow)"
                } else {
                    ""
                }
            );
        }
        // Which rule each rule chunk belongs to (from the dispatch tables).
        let mut chunk_rule: Vec<Option<u16>> = vec![None; self.chunks.len()];
        for c in &self.consts {
            if let Const::Dispatch(d) = c {
                for (_, step) in d.all_steps() {
                    if let crate::program::Step::Rule { rule, chunk, .. } = *step {
                        if let Some(slot) = chunk_rule.get_mut(chunk as usize) {
                            *slot = Some(rule);
                        }
                    }
                }
            }
        }
        for (ci, chunk) in self.chunks.iter().enumerate() {
            let kind = match (ci, chunk_rule[ci]) {
                (0, _) => "entry".to_string(),
                (_, Some(r)) => match self.rules.get(r as usize) {
                    Some(info) => format!(
                        "rule {r} `{}` → {}{}",
                        info.id,
                        info.effect,
                        info.reason
                            .as_deref()
                            .map(|s| format!(" ({s:?})"))
                            .unwrap_or_default()
                    ),
                    None => format!("rule {r}"),
                },
                (_, None) => "quantifier body".to_string(),
            };
            let _ = writeln!(out, "\nchunk {ci}: {kind}");
            let mut current_rule: Option<u16> = None;
            let mut pc = 0;
            while pc < chunk.code.len() {
                let Ok((instr, next)) = decode(&chunk.code, pc) else {
                    let _ = writeln!(out, "  {pc:04}  <undecodable>");
                    break;
                };
                let dbg = self.debug_at(ci as u16, pc);
                if ci == 0 {
                    if let Some(d) = dbg {
                        if current_rule != Some(d.rule) {
                            current_rule = Some(d.rule);
                            if let Some(r) = self.rules.get(d.rule as usize) {
                                let _ = writeln!(
                                    out,
                                    "  ; ── rule {} `{}` → {}",
                                    d.rule, r.id, r.effect
                                );
                            }
                        }
                    }
                }
                let text = self.instr_text(&instr, next);
                match dbg {
                    Some(d) if !d.label.is_empty() => {
                        let _ = writeln!(out, "  {pc:04}  {text:<48} ; {}", d.label);
                    }
                    _ => {
                        let _ = writeln!(out, "  {pc:04}  {text}");
                    }
                }
                pc = next;
            }
        }
        out
    }

    fn c(&self, i: u16) -> String {
        match self.consts.get(i as usize) {
            Some(c) => format!("#{i} {}", const_text(c)),
            None => format!("#{i} <out of range>"),
        }
    }

    fn instr_text(&self, instr: &Instr, next: usize) -> String {
        match *instr {
            Instr::NameIn { field, list } => {
                format!("name_in     {}, {}", field.name(), self.c(list))
            }
            Instr::KvParam { key, re } => format!("kv_param    {}, {}", self.c(key), self.c(re)),
            Instr::KvCond { op, field, value } => {
                format!(
                    "kv_cond     {} {}, {}",
                    op.name(),
                    self.c(field),
                    self.c(value)
                )
            }
            Instr::LoadName { dst, field } => format!("load_name   r{dst}, {}", field.name()),
            Instr::LoadArgs { dst, path } => format!("load_args   r{dst}, {}", self.c(path)),
            Instr::LoadConst { dst, value } => format!("load_const  r{dst}, {}", self.c(value)),
            Instr::GetPath { dst, src, path } => {
                format!("get_path    r{dst}, r{src}, {}", self.c(path))
            }
            Instr::Call { dst, func, src } => {
                format!("call        r{dst}, {}(r{src})", func.name())
            }
            Instr::Test { op, a, b } => format!("test        {} r{a}, r{b}", op.name()),
            Instr::TestRegex { a, re, negate } => format!(
                "test_regex  r{a}, {}{}",
                self.c(re),
                if negate { " (negated)" } else { "" }
            ),
            Instr::TestSet {
                set,
                pattern,
                negate,
            } => {
                let pat = match self.consts.get(set as usize) {
                    Some(Const::RegexSet(rs)) => rs
                        .patterns
                        .get(pattern as usize)
                        .cloned()
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                format!(
                    "test_set    #{set}[{pattern}] /{pat}/{}",
                    if negate { " (negated)" } else { "" }
                )
            }
            Instr::Exists { a } => format!("exists      r{a}"),
            Instr::Truthy { a } => format!("truthy      r{a}"),
            Instr::Not => "not".to_string(),
            Instr::SetFlag { value } => format!("set_flag    {value}"),
            Instr::JumpIfFalse { off } => format!("jump_false  -> {:04}", next + off as usize),
            Instr::JumpIfTrue { off } => format!("jump_true   -> {:04}", next + off as usize),
            Instr::Jump { off } => format!("jump        -> {:04}", next + off as usize),
            Instr::Quant {
                kind,
                var,
                src,
                chunk,
            } => format!(
                "{:<11} r{var} in r{src}: chunk {chunk}",
                match kind {
                    crate::op::Quant::Any => "any",
                    crate::op::Quant::All => "all",
                }
            ),
            Instr::Dispatch { table } => format!("dispatch    tool, {}", self.c(table)),
            Instr::Decide { rule } => match self.rules.get(rule as usize) {
                Some(r) => format!("decide      rule {rule} `{}` → {}", r.id, r.effect),
                None => format!("decide      rule {rule}"),
            },
            Instr::DefaultAllow { policy } => {
                format!("default     allow (policy {policy}: _default_allow)")
            }
            Instr::Halt => "halt        deny (_default_deny)".to_string(),
            Instr::Return => "return".to_string(),
        }
    }
}
