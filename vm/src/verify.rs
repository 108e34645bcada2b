//! The verifier: a program is run only after every instruction has been
//! decoded and every operand checked. What it guarantees:
//!
//! - every opcode and enumerated operand is valid, no chunk ends inside an instruction;
//! - registers are below the program's register count (≤ [`MAX_REGS`]);
//! - constant operands are in range **and of the kind the instruction needs**;
//! - jumps go strictly forward and land on an instruction boundary inside the chunk;
//! - quantifiers only enter chunks with a higher index (no recursion);
//! - the entry chunk ends with `Halt`, body chunks with `Return`; `Decide` and
//!   `DefaultAllow` appear only in the entry chunk and name existing rules / policies.
//!
//! So a verified program terminates: the entry chunk executes each instruction
//! at most once, and a quantifier runs its body once per list item.

use thiserror::Error;

use crate::op::{decode, DecodeError, Instr, KvOp};
use crate::program::{
    Const, Dispatch, Matcher, Program, Step, MAX_REGS, MAX_SETS, MAX_SET_PATTERNS,
    MAX_TOTAL_SET_PATTERNS,
};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("the program has no entry chunk")]
    NoChunks,
    #[error("register count {0} exceeds the maximum of {MAX_REGS}")]
    TooManyRegisters(u8),
    #[error("chunk {chunk}: code ends inside the instruction at {pc}")]
    Truncated { chunk: usize, pc: usize },
    #[error("chunk {chunk}: bad opcode 0x{byte:02x} at {pc}")]
    BadOpcode { chunk: usize, pc: usize, byte: u8 },
    #[error("chunk {chunk}: bad {what} operand {value} at {pc}")]
    BadOperand {
        chunk: usize,
        pc: usize,
        what: &'static str,
        value: u8,
    },
    #[error("chunk {chunk}: register r{reg} out of range at {pc}")]
    BadRegister { chunk: usize, pc: usize, reg: u8 },
    #[error("chunk {chunk}: constant #{index} out of range at {pc}")]
    BadConst { chunk: usize, pc: usize, index: u16 },
    #[error("chunk {chunk}: constant #{index} is a {found}, expected {expected} at {pc}")]
    ConstKind {
        chunk: usize,
        pc: usize,
        index: u16,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "chunk {chunk}: jump at {pc} to {target} does not land on an instruction of the chunk"
    )]
    BadJump {
        chunk: usize,
        pc: usize,
        target: usize,
    },
    #[error("chunk {chunk}: quantifier at {pc} enters chunk {target}, which is not a later chunk")]
    BadChunkRef {
        chunk: usize,
        pc: usize,
        target: u16,
    },
    #[error("chunk {chunk}: rule #{rule} out of range at {pc}")]
    BadRule { chunk: usize, pc: usize, rule: u16 },
    #[error("chunk {chunk}: policy #{policy} out of range at {pc}")]
    BadPolicy {
        chunk: usize,
        pc: usize,
        policy: u16,
    },
    #[error("chunk {chunk}: {instr} is not allowed in a {kind} chunk (at {pc})")]
    Misplaced {
        chunk: usize,
        pc: usize,
        instr: &'static str,
        kind: &'static str,
    },
    #[error("chunk {chunk} does not end with {expected}")]
    BadEnd {
        chunk: usize,
        expected: &'static str,
    },
    #[error("rule #{rule} names policy #{policy}, which does not exist")]
    RulePolicy { rule: usize, policy: u16 },
    #[error("debug entry {index} points outside the program")]
    BadDebug { index: usize },
    #[error("regex set #{index}: {why}")]
    BadRegexSet { index: usize, why: String },
    #[error("dispatch table #{index}: {why}")]
    BadDispatch { index: usize, why: String },
    #[error("too many {what}: {count} (at most 65535)")]
    TooMany { what: &'static str, count: usize },
    #[error("name list #{index}: the glob {glob:?} does not carry its own regex")]
    BadGlob { index: usize, glob: String },
}

/// Verifies a whole program.
pub fn verify(p: &Program) -> Result<(), VerifyError> {
    if p.chunks.is_empty() {
        return Err(VerifyError::NoChunks);
    }
    for (what, count) in [
        ("constants", p.consts.len()),
        ("chunks", p.chunks.len()),
        ("rules", p.rules.len()),
        ("policies", p.policies.len()),
    ] {
        if count > u16::MAX as usize {
            return Err(VerifyError::TooMany { what, count });
        }
    }
    if p.nregs as usize > MAX_REGS {
        return Err(VerifyError::TooManyRegisters(p.nregs));
    }
    for (i, r) in p.rules.iter().enumerate() {
        if r.policy as usize >= p.policies.len() {
            return Err(VerifyError::RulePolicy {
                rule: i,
                policy: r.policy,
            });
        }
    }
    let mut boundaries = Vec::with_capacity(p.chunks.len());
    for ci in 0..p.chunks.len() {
        boundaries.push(verify_chunk(p, ci)?);
    }
    let mut slots = [false; MAX_SETS];
    let mut total_patterns = 0usize;
    // The chunk each rule is entered in (0: not seen; no rule lives in the
    // entry chunk): the fast forms are derived per rule.
    let mut rule_chunks = vec![0u16; p.rules.len()];
    for (index, c) in p.consts.iter().enumerate() {
        match c {
            Const::Dispatch(d) => verify_dispatch(p, d, index, &boundaries, &mut rule_chunks)?,
            // The fast tool-name paths match a glob by its text, the rest
            // by its regex: they must be the same pattern.
            Const::Matchers(ms) => {
                for m in ms {
                    if let Matcher::Glob { glob, re } = m {
                        if crate::kvlar::glob_regex(glob).as_deref() != Some(re.as_str()) {
                            return Err(VerifyError::BadGlob {
                                index,
                                glob: glob.clone(),
                            });
                        }
                    }
                }
            }
            Const::RegexSet(rs) => {
                let slot = rs.slot as usize;
                if slot >= MAX_SETS || slots[slot] {
                    return Err(VerifyError::BadRegexSet {
                        index,
                        why: format!("slot {slot} is out of range or used twice"),
                    });
                }
                slots[slot] = true;
                if rs.patterns.is_empty() || rs.patterns.len() > MAX_SET_PATTERNS {
                    return Err(VerifyError::BadRegexSet {
                        index,
                        why: format!(
                            "{} patterns (1 to {MAX_SET_PATTERNS} allowed)",
                            rs.patterns.len()
                        ),
                    });
                }
                total_patterns += rs.patterns.len();
                if total_patterns > MAX_TOTAL_SET_PATTERNS {
                    return Err(VerifyError::BadRegexSet {
                        index,
                        why: format!(
                            "the regex sets hold more than {MAX_TOTAL_SET_PATTERNS} patterns in all"
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    for (index, d) in p.debug.iter().enumerate() {
        let ok = (d.chunk as usize) < p.chunks.len()
            && (d.pc as usize) < p.chunks[d.chunk as usize].code.len()
            && (d.rule as usize) < p.rules.len().max(1)
            && d.span
                .is_none_or(|(f, s, e)| (f as usize) < p.source_names.len() && s <= e);
        if !ok {
            return Err(VerifyError::BadDebug { index });
        }
    }
    Ok(())
}

/// Every step names an existing rule / policy and enters a body chunk at an
/// instruction boundary, each rule always in the same chunk; every list is
/// in strictly increasing order.
fn verify_dispatch(
    p: &Program,
    d: &Dispatch,
    index: usize,
    boundaries: &[Vec<bool>],
    rule_chunks: &mut [u16],
) -> Result<(), VerifyError> {
    let bad = |why: String| VerifyError::BadDispatch { index, why };
    for (_, list) in &d.names {
        if *list as usize >= d.lists.len() {
            return Err(bad(format!("name list #{list} out of range")));
        }
    }
    if d.names.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(bad("names are not sorted and unique".into()));
    }
    let lists = d.lists.iter().chain([&d.generic_known, &d.generic_unknown]);
    for list in lists {
        if list.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(bad("a list is not in increasing order".into()));
        }
        for (_, step) in list {
            match *step {
                Step::Rule { rule, chunk, pc } => {
                    if rule as usize >= p.rules.len() {
                        return Err(bad(format!("rule #{rule} out of range")));
                    }
                    let ok = chunk > 0
                        && boundaries
                            .get(chunk as usize)
                            .and_then(|b| b.get(pc as usize))
                            .copied()
                            .unwrap_or(false);
                    if !ok {
                        return Err(bad(format!("chunk {chunk} has no instruction at {pc}")));
                    }
                    match rule_chunks.get_mut(rule as usize) {
                        Some(seen) if *seen == 0 => *seen = chunk,
                        Some(seen) if *seen != chunk => {
                            return Err(bad(format!(
                                "rule #{rule} is entered in chunk {seen} and in chunk {chunk}"
                            )))
                        }
                        _ => {}
                    }
                }
                Step::DefaultAllow { policy } => {
                    if policy as usize >= p.policies.len() {
                        return Err(bad(format!("policy #{policy} out of range")));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Verifies one chunk; returns its instruction boundaries.
fn verify_chunk(p: &Program, ci: usize) -> Result<Vec<bool>, VerifyError> {
    let code = &p.chunks[ci].code;
    let entry = ci == 0;
    // First pass: decode everything, remember instruction boundaries.
    let mut starts = vec![false; code.len() + 1];
    let mut instrs = Vec::new();
    let mut pc = 0;
    while pc < code.len() {
        starts[pc] = true;
        let (instr, next) = decode(code, pc).map_err(|e| match e {
            DecodeError::Truncated { pc } => VerifyError::Truncated { chunk: ci, pc },
            DecodeError::BadOpcode { pc, byte } => VerifyError::BadOpcode {
                chunk: ci,
                pc,
                byte,
            },
            DecodeError::BadOperand { pc, what, value } => VerifyError::BadOperand {
                chunk: ci,
                pc,
                what,
                value,
            },
        })?;
        instrs.push((pc, instr, next));
        pc = next;
    }
    let expected_end = if entry { Instr::Halt } else { Instr::Return };
    match instrs.last() {
        Some((_, last, _)) if *last == expected_end => {}
        _ => {
            return Err(VerifyError::BadEnd {
                chunk: ci,
                expected: if entry { "Halt" } else { "Return" },
            })
        }
    }
    let nregs = p.nregs;
    for &(pc, instr, next) in &instrs {
        let reg = |r: u8| {
            if r < nregs {
                Ok(())
            } else {
                Err(VerifyError::BadRegister {
                    chunk: ci,
                    pc,
                    reg: r,
                })
            }
        };
        let konst = |index: u16, expected: &'static str, ok: fn(&Const) -> bool| match p
            .consts
            .get(index as usize)
        {
            None => Err(VerifyError::BadConst {
                chunk: ci,
                pc,
                index,
            }),
            Some(c) if ok(c) => Ok(()),
            Some(c) => Err(VerifyError::ConstKind {
                chunk: ci,
                pc,
                index,
                expected,
                found: c.kind(),
            }),
        };
        let jump = |off: u16| {
            let target = next + off as usize;
            if target < code.len() && starts[target] {
                Ok(())
            } else {
                Err(VerifyError::BadJump {
                    chunk: ci,
                    pc,
                    target,
                })
            }
        };
        let misplaced = |instr: &'static str| VerifyError::Misplaced {
            chunk: ci,
            pc,
            instr,
            kind: if entry { "entry" } else { "quantifier body" },
        };
        match instr {
            Instr::NameIn { list, .. } => {
                konst(list, "matchers", |c| matches!(c, Const::Matchers(_)))?
            }
            Instr::KvParam { key, re } => {
                konst(key, "str", |c| matches!(c, Const::Str(_)))?;
                konst(re, "regex", |c| matches!(c, Const::Regex(_)))?;
            }
            Instr::KvCond { op, field, value } => {
                konst(field, "str", |c| matches!(c, Const::Str(_)))?;
                if op == KvOp::Matches {
                    konst(value, "regex or json", |c| {
                        matches!(c, Const::Regex(_) | Const::Json(_))
                    })?;
                } else {
                    konst(value, "json", |c| matches!(c, Const::Json(_)))?;
                }
            }
            Instr::LoadName { dst, .. } => reg(dst)?,
            Instr::LoadArgs { dst, path } => {
                reg(dst)?;
                konst(path, "path", |c| matches!(c, Const::Path(_)))?;
            }
            Instr::LoadConst { dst, value } => {
                reg(dst)?;
                konst(value, "json", |c| matches!(c, Const::Json(_)))?;
            }
            Instr::GetPath { dst, src, path } => {
                reg(dst)?;
                reg(src)?;
                konst(path, "path", |c| matches!(c, Const::Path(_)))?;
            }
            Instr::Call { dst, src, .. } => {
                reg(dst)?;
                reg(src)?;
            }
            Instr::Test { a, b, .. } => {
                reg(a)?;
                reg(b)?;
            }
            Instr::TestRegex { a, re, .. } => {
                reg(a)?;
                konst(re, "regex", |c| matches!(c, Const::Regex(_)))?;
            }
            Instr::TestSet { set, pattern, .. } => match p.consts.get(set as usize) {
                Some(Const::RegexSet(rs)) if (pattern as usize) < rs.patterns.len() => {}
                Some(Const::RegexSet(_)) => {
                    return Err(VerifyError::BadConst {
                        chunk: ci,
                        pc,
                        index: pattern,
                    })
                }
                _ => konst(set, "regex set", |c| matches!(c, Const::RegexSet(_)))?,
            },
            Instr::Exists { a } | Instr::Truthy { a } => reg(a)?,
            Instr::Not | Instr::SetFlag { .. } => {}
            Instr::JumpIfFalse { off } | Instr::JumpIfTrue { off } | Instr::Jump { off } => {
                jump(off)?
            }
            Instr::Quant {
                var, src, chunk, ..
            } => {
                reg(var)?;
                reg(src)?;
                if chunk as usize <= ci || chunk as usize >= p.chunks.len() {
                    return Err(VerifyError::BadChunkRef {
                        chunk: ci,
                        pc,
                        target: chunk,
                    });
                }
            }
            Instr::Dispatch { table } => {
                if !entry {
                    return Err(misplaced("Dispatch"));
                }
                konst(table, "dispatch", |c| matches!(c, Const::Dispatch(_)))?;
            }
            Instr::Decide { rule } => {
                if !entry {
                    return Err(misplaced("Decide"));
                }
                if rule as usize >= p.rules.len() {
                    return Err(VerifyError::BadRule {
                        chunk: ci,
                        pc,
                        rule,
                    });
                }
            }
            Instr::DefaultAllow { policy } => {
                if !entry {
                    return Err(misplaced("DefaultAllow"));
                }
                if policy as usize >= p.policies.len() {
                    return Err(VerifyError::BadPolicy {
                        chunk: ci,
                        pc,
                        policy,
                    });
                }
            }
            Instr::Halt => {
                if !entry {
                    return Err(misplaced("Halt"));
                }
            }
            Instr::Return => {
                if entry {
                    return Err(misplaced("Return"));
                }
            }
        }
    }
    Ok(starts)
}
