//! The interpreter. One flag register holds the result of the last test;
//! value registers hold [`Val`]s. Rules are laid out in order in the entry
//! chunk; the first `Decide` reached decides.

use serde_json::Value;

use crate::builtins;
use crate::call::Call;
use crate::decision::{Decision, Effect, DEFAULT_ALLOW, DEFAULT_DENY, DEFAULT_DENY_REASON};
use crate::kvlar;
use crate::op::{decode, Field, Instr, KvOp, Quant, TestOp};
use crate::program::{Const, PathSeg, Program, Step, MAX_REGS};
use crate::trace::{NoTrace, Sink, Tracer, TracerRef};
use crate::value::{self, Val};

/// The decision taken when the program itself is unusable at run time. A
/// verified program never reaches it; it exists so that evaluation is total
/// and fails closed.
pub const VM_FAULT: &str = "_vm_fault";

impl Program {
    /// Decides on a call. Never panics; never allocates on the common path.
    #[inline]
    pub fn evaluate<'p>(&'p self, call: &Call) -> Decision<'p> {
        self.run(call, &mut NoTrace)
    }

    /// Decides on a call, reporting every test to `tracer`.
    pub fn evaluate_traced<'p>(&'p self, call: &Call, tracer: &mut dyn Tracer) -> Decision<'p> {
        self.run(call, &mut TracerRef(tracer))
    }

    fn run<'p, T: Sink>(&'p self, call: &Call, t: &mut T) -> Decision<'p> {
        let mut regs: [Val; MAX_REGS] = std::array::from_fn(|_| Val::Missing);
        match self.exec(0, 0, call, &mut regs, t) {
            Exit::Decide(rule) => match self.rules.get(rule as usize) {
                Some(r) => Decision {
                    effect: r.effect,
                    rule: &r.id,
                    reason: r.reason.as_deref(),
                },
                None => fault(),
            },
            Exit::DefaultAllow => Decision {
                effect: Effect::Allow,
                rule: DEFAULT_ALLOW,
                reason: None,
            },
            Exit::Halt => Decision {
                effect: Effect::Deny,
                rule: DEFAULT_DENY,
                reason: Some(DEFAULT_DENY_REASON),
            },
            Exit::Return(_) | Exit::Fault => fault(),
        }
    }

    fn exec<'a, T: Sink>(
        &'a self,
        chunk: u16,
        start: usize,
        call: &Call<'a>,
        regs: &mut [Val<'a>; MAX_REGS],
        t: &mut T,
    ) -> Exit {
        let Some(code) = self.chunks.get(chunk as usize).map(|c| &c.code[..]) else {
            return Exit::Fault;
        };
        let mut flag = false;
        let mut pc = start;
        loop {
            let Ok((instr, next)) = decode(code, pc) else {
                return Exit::Fault;
            };
            match instr {
                Instr::NameIn { field, list } => {
                    let Some(Const::Matchers(ms)) = self.consts.get(list as usize) else {
                        return Exit::Fault;
                    };
                    let name = field_of(call, field);
                    flag = kvlar::name_matches(ms, name);
                    t.test(chunk, pc, flag, &Val::Str(name));
                }
                Instr::KvParam { key, re } => {
                    let (Some(Const::Str(key)), Some(Const::Regex(re))) =
                        (self.consts.get(key as usize), self.consts.get(re as usize))
                    else {
                        return Exit::Fault;
                    };
                    flag = kvlar::param_matches(call.args, key, re);
                    if T::ENABLED {
                        t.test(chunk, pc, flag, &arg_val(call.args, key));
                    }
                }
                Instr::KvCond { op, field, value } => {
                    let Some(Const::Str(field)) = self.consts.get(field as usize) else {
                        return Exit::Fault;
                    };
                    let (value, re) = match self.consts.get(value as usize) {
                        Some(Const::Json(v)) => (v, None),
                        Some(Const::Regex(re)) if op == KvOp::Matches => (&Value::Null, Some(re)),
                        _ => return Exit::Fault,
                    };
                    flag = kvlar::condition(call.args, op, field, value, re);
                    if T::ENABLED {
                        let actual = kvlar::resolve_field(call.args, field)
                            .map_or(Val::Missing, Val::from_json);
                        t.test(chunk, pc, flag, &actual);
                    }
                }
                Instr::LoadName { dst, field } => {
                    set(regs, dst, Val::Str(field_of(call, field)));
                }
                Instr::LoadArgs { dst, path } => {
                    let Some(Const::Path(path)) = self.consts.get(path as usize) else {
                        return Exit::Fault;
                    };
                    set(regs, dst, lookup(Val::Json(call.args), path));
                }
                Instr::LoadConst { dst, value } => {
                    let Some(Const::Json(v)) = self.consts.get(value as usize) else {
                        return Exit::Fault;
                    };
                    set(regs, dst, Val::from_json(v));
                }
                Instr::GetPath { dst, src, path } => {
                    let Some(Const::Path(path)) = self.consts.get(path as usize) else {
                        return Exit::Fault;
                    };
                    let base = get(regs, src).clone();
                    set(regs, dst, lookup(base, path));
                }
                Instr::Call { dst, func, src } => {
                    let v = builtins::call(func, get(regs, src));
                    set(regs, dst, v);
                }
                Instr::Test { op, a, b } => {
                    let (x, y) = (get(regs, a), get(regs, b));
                    flag = match op {
                        TestOp::Eq => value::equals(x, y),
                        TestOp::Ne => value::not_equals(x, y),
                        TestOp::Lt => value::lt(x, y),
                        TestOp::Le => value::le(x, y),
                        TestOp::Gt => value::gt(x, y),
                        TestOp::Ge => value::ge(x, y),
                        TestOp::In => value::is_in(x, y),
                        TestOp::NotIn => value::not_in(x, y),
                        TestOp::Contains => value::contains(x, y),
                        TestOp::StartsWith => value::starts_with(x, y),
                        TestOp::EndsWith => value::ends_with(x, y),
                        TestOp::Under => value::under(x, y),
                    };
                    t.test(chunk, pc, flag, x);
                }
                Instr::TestRegex { a, re, negate } => {
                    let Some(Const::Regex(re)) = self.consts.get(re as usize) else {
                        return Exit::Fault;
                    };
                    let x = get(regs, a);
                    flag = match x.as_str() {
                        Some(s) => re.is_match(s) != negate,
                        None => false,
                    };
                    t.test(chunk, pc, flag, x);
                }
                Instr::Exists { a } => {
                    flag = !get(regs, a).is_missing();
                    t.test(chunk, pc, flag, get(regs, a));
                }
                Instr::Truthy { a } => {
                    flag = matches!(get(regs, a), Val::Bool(true));
                    t.test(chunk, pc, flag, get(regs, a));
                }
                Instr::Not => flag = !flag,
                Instr::SetFlag { value } => flag = value,
                Instr::JumpIfFalse { off } => {
                    if !flag {
                        pc = next + off as usize;
                        continue;
                    }
                }
                Instr::JumpIfTrue { off } => {
                    if flag {
                        pc = next + off as usize;
                        continue;
                    }
                }
                Instr::Jump { off } => {
                    pc = next + off as usize;
                    continue;
                }
                Instr::Quant {
                    kind,
                    var,
                    src,
                    chunk: body,
                } => {
                    let list = get(regs, src).as_array();
                    flag = match list {
                        None => false,
                        Some(items) => {
                            let want = kind == Quant::Any;
                            let mut result = !want;
                            for item in items {
                                set(regs, var, Val::from_json(item));
                                match self.exec(body, 0, call, regs, t) {
                                    Exit::Return(r) if r == want => {
                                        result = want;
                                        break;
                                    }
                                    Exit::Return(_) => {}
                                    _ => return Exit::Fault,
                                }
                            }
                            result
                        }
                    };
                    t.test(chunk, pc, flag, get(regs, src));
                }
                Instr::Dispatch { table } => {
                    let Some(Const::Dispatch(d)) = self.consts.get(table as usize) else {
                        return Exit::Fault;
                    };
                    let (a, b) = d.lists_for(call.tool);
                    let (mut i, mut j) = (0, 0);
                    loop {
                        // Merge the two lists by first-match order.
                        let step = match (a.get(i), b.get(j)) {
                            (Some(x), Some(y)) if x.0 < y.0 => {
                                i += 1;
                                x.1
                            }
                            (_, Some(y)) => {
                                j += 1;
                                y.1
                            }
                            (Some(x), None) => {
                                i += 1;
                                x.1
                            }
                            (None, None) => break,
                        };
                        match step {
                            Step::Rule { rule, chunk, pc } => {
                                // Traced runs enter at the top so the tool test shows.
                                let entry = if T::ENABLED { 0 } else { pc as usize };
                                match self.exec(chunk, entry, call, regs, t) {
                                    Exit::Return(true) => {
                                        t.decide(rule);
                                        return Exit::Decide(rule);
                                    }
                                    Exit::Return(false) => {}
                                    _ => return Exit::Fault,
                                }
                            }
                            Step::DefaultAllow { .. } => return Exit::DefaultAllow,
                        }
                    }
                }
                Instr::Decide { rule } => {
                    t.decide(rule);
                    return Exit::Decide(rule);
                }
                Instr::DefaultAllow { .. } => return Exit::DefaultAllow,
                Instr::Halt => return Exit::Halt,
                Instr::Return => return Exit::Return(flag),
            }
            pc = next;
        }
    }
}

enum Exit {
    Decide(u16),
    DefaultAllow,
    Halt,
    Return(bool),
    Fault,
}

fn fault() -> Decision<'static> {
    Decision {
        effect: Effect::Deny,
        rule: VM_FAULT,
        reason: Some("internal error while deciding: the call was denied (fail-closed)"),
    }
}

#[inline]
fn field_of<'a>(call: &Call<'a>, field: Field) -> &'a str {
    match field {
        Field::Tool => call.tool,
        Field::Agent => call.agent,
        Field::Action => call.action,
    }
}

#[inline]
fn get<'r, 'a>(regs: &'r [Val<'a>; MAX_REGS], r: u8) -> &'r Val<'a> {
    // Registers are verified to be < nregs ≤ MAX_REGS.
    &regs[r as usize % MAX_REGS]
}

#[inline]
fn set<'a>(regs: &mut [Val<'a>; MAX_REGS], r: u8, v: Val<'a>) {
    regs[r as usize % MAX_REGS] = v;
}

fn arg_val<'a>(args: &'a Value, key: &str) -> Val<'a> {
    match args {
        Value::Object(m) => m.get(key).map_or(Val::Missing, Val::from_json),
        _ => Val::Missing,
    }
}

/// Follows a path through JSON objects and arrays.
fn lookup<'a>(base: Val<'a>, path: &[PathSeg]) -> Val<'a> {
    let mut cur = match base {
        Val::Json(v) => v,
        other if path.is_empty() => return other,
        _ => return Val::Missing,
    };
    for seg in path {
        let next = match (seg, cur) {
            (PathSeg::Key(k), Value::Object(m)) => m.get(k.as_str()),
            (PathSeg::Index(i), Value::Array(a)) => usize::try_from(*i).ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return Val::Missing,
        }
    }
    Val::from_json(cur)
}
