//! The interpreter. One flag register holds the result of the last test;
//! value registers hold [`Val`]s. Rules are laid out in order in the entry
//! chunk; the first `Decide` reached decides.

use serde_json::Value;

use crate::builtins;
use crate::call::Call;
use crate::decision::{Decision, Effect, Verdict, DEFAULT_ALLOW_VERDICT, DEFAULT_DENY_VERDICT};
use crate::fast::{Fast, GlobIndex, ListRuns, Rest, Run, ToolGlobs, MAX_TOOL_GLOBS, NO_RULE};
use crate::kvlar;
use crate::op::{decode, Field, Instr, KvOp, Quant};
use crate::program::{
    Const, Matcher, PathSeg, Program, RegexSet, SelectedList, SetSubject, Step, MAX_REGS, MAX_SETS,
    MAX_SET_PATTERNS, MAX_TOTAL_SET_PATTERNS,
};
use crate::set_engine::SetEngine;
use crate::trace::{NoTrace, Sink, StepCounter, Tracer, TracerRef};
use crate::value::{self, Val};

/// The decision taken when the program itself is unusable at run time. A
/// verified program never reaches it; it exists so that evaluation is total
/// and fails closed.
pub const VM_FAULT: &str = "_vm_fault";

impl Program {
    /// Decides on a call. Never panics; never allocates on the common path.
    #[inline]
    pub fn evaluate<'p>(&'p self, call: &Call) -> Decision<'p> {
        // The calls the tool alone decides are decided here, inline, before
        // the interpreter sets up its frame (~1,800 bytes of stack and six
        // saved registers).
        match self.entry_shortcut(call) {
            Ok(decision) => decision,
            Err(pre) => self.run_from(call, &mut NoTrace, pre),
        }
    }

    /// Decides on a call, reporting every test to `tracer`.
    pub fn evaluate_traced<'p>(&'p self, call: &Call, tracer: &mut dyn Tracer) -> Decision<'p> {
        self.run(call, &mut TracerRef(tracer))
    }

    /// Decides on a call and counts the instructions executed; the count never
    /// exceeds [`Program::step_bound`] for the call's arguments.
    pub fn evaluate_counting<'p>(&'p self, call: &Call) -> (Decision<'p>, u64) {
        let mut counter = StepCounter(0);
        let d = self.run(call, &mut counter);
        (d, counter.0)
    }

    /// An upper bound on the instructions any evaluation with these arguments
    /// executes. Jumps go forward and quantifiers only enter later chunks, so
    /// a chunk runs each instruction at most once per entry; the entry chunk's
    /// dispatch enters each rule chunk at most once; a quantifier enters its
    /// body at most once per item of the longest list in the arguments or the
    /// constants. (Saturating.)
    pub fn step_bound(&self, args: &Value) -> u128 {
        fn longest(v: &Value) -> usize {
            match v {
                Value::Array(a) => a.iter().map(longest).max().unwrap_or(0).max(a.len()),
                Value::Object(m) => m.values().map(longest).max().unwrap_or(0),
                _ => 0,
            }
        }
        let mut maxlen = longest(args);
        for c in &self.consts {
            if let Const::Json(v) = c {
                maxlen = maxlen.max(longest(v));
            }
        }
        let n = self.chunks.len();
        let mut bound = vec![0u128; n];
        // Chunks only enter later chunks: compute from the last one back.
        for ci in (0..n).rev() {
            let code = &self.chunks[ci].code;
            let mut b: u128 = 0;
            let mut pc = 0;
            while let Ok((instr, next)) = decode(code, pc) {
                b = b.saturating_add(1);
                match instr {
                    Instr::Quant { chunk, .. } => {
                        let body = bound.get(chunk as usize).copied().unwrap_or(0);
                        b = b.saturating_add((maxlen as u128).saturating_mul(body));
                    }
                    Instr::Dispatch { table } => {
                        if let Some(Const::Dispatch(d)) = self.consts.get(table as usize) {
                            let mut chunks: Vec<u16> = d
                                .all_steps()
                                .filter_map(|(_, s)| match s {
                                    Step::Rule { chunk, .. } => Some(*chunk),
                                    Step::DefaultAllow { .. } => None,
                                })
                                .collect();
                            chunks.sort_unstable();
                            chunks.dedup();
                            for c in chunks {
                                let body = bound.get(c as usize).copied().unwrap_or(0);
                                b = b.saturating_add(body);
                            }
                        }
                    }
                    _ => {}
                }
                if next >= code.len() {
                    break;
                }
                pc = next;
            }
            bound[ci] = b;
        }
        bound.first().copied().unwrap_or(0)
    }

    fn run<'p, T: Sink>(&'p self, call: &Call, t: &mut T) -> Decision<'p> {
        // A tracer sees every test: no shortcut.
        let pre = match T::ENABLED {
            true => None,
            false => match self.entry_shortcut(call) {
                Ok(decision) => return decision,
                Err(pre) => pre,
            },
        };
        self.run_from(call, t, pre)
    }

    /// What the entry's dispatch alone shows about `call` (see
    /// [`crate::fast::Entry`]): `Ok` when it decides (a tool that meets no
    /// rule, or whose first rule has no condition left, or whose list has a
    /// one-pass plan and a string argument for it); otherwise the tool's
    /// selected lists, `None` without an entry shortcut.
    #[inline(always)]
    fn entry_shortcut<'p>(&'p self, call: &Call) -> Result<Decision<'p>, Option<Pre<'p>>> {
        let mut pre = None;
        if let Some(entry) = &self.entry {
            // The filter tells most unknown tools apart without hashing.
            let known = match entry.names.filter.may_contain(call.tool) {
                true => entry.names.lookup_unfiltered(call.tool),
                false => None,
            };
            // A tool no rule names, when no rule applies to every tool.
            if known.is_none() && entry.unknown_empty {
                return Ok(self.decision(Exit::Halt));
            }
            // A tool no rule names, with its own list since its first call.
            let resolved = match known {
                Some(_) => None,
                None => self.unknown_list(entry.table, call.tool),
            };
            let immediate = match (known, resolved) {
                (Some(k), _) => k.immediate,
                (None, Some(r)) => {
                    if r.immediate == NO_RULE && r.list.is_empty() {
                        return Ok(self.decision(Exit::Halt));
                    }
                    r.immediate
                }
                (None, None) => {
                    // A tool no rule names and no glob of theirs matches.
                    if let (Some(mask), Some(g)) = (&entry.unknown_globs, &self.globs) {
                        let bits = g.which(call.tool);
                        // (Recomputed by the rules' name tests otherwise:
                        // carrying the bits over costs as much.)
                        if !crate::fast::any_common(mask, &bits) {
                            return Ok(self.decision(Exit::Halt));
                        }
                    }
                    entry.unknown_immediate
                }
            };
            // The tool's first rule has no condition left.
            if immediate != NO_RULE {
                return Ok(self.decision(Exit::Decide(immediate)));
            }
            // The tool's rules are one pass over one string argument.
            let plan = match (known, resolved) {
                (Some(k), _) => usize::from(k.plan)
                    .checked_sub(1)
                    .and_then(|i| entry.plans.get(i)),
                (None, Some(r)) => r.plan.as_ref(),
                (None, None) => None,
            };
            if let Some(plan) = plan {
                if let Some(rule) = plan.decide(call.args) {
                    return Ok(self.decision(rule.map_or(Exit::Halt, Exit::Decide)));
                }
            }
            pre = match (resolved, self.consts.get(entry.table as usize)) {
                (Some(r), _) => Some((((&r.list[..], Some(&r.runs)), (&[][..], None)), false)),
                (None, Some(Const::Dispatch(d))) => {
                    Some((d.lists_of(known.map(|k| k.list)), known.is_some()))
                }
                _ => None,
            };
        }
        Err(pre)
    }

    /// Runs the program on `call`, from the entry's selected lists if any.
    fn run_from<'p, T: Sink>(
        &'p self,
        call: &Call,
        t: &mut T,
        pre: Option<Pre<'p>>,
    ) -> Decision<'p> {
        // A register file only as large as the program needs: clearing 32
        // registers costs more than deciding most calls.
        match self.nregs {
            0 => self.run_sized::<0, T>(call, t, pre),
            1..=4 => self.run_sized::<4, T>(call, t, pre),
            5..=12 => self.run_sized::<12, T>(call, t, pre),
            _ => self.run_sized::<MAX_REGS, T>(call, t, pre),
        }
    }

    /// The list of a tool the entry's dispatch table (constant `table`) does
    /// not know: cached, or resolved now if the cache has room for it.
    #[inline]
    fn unknown_list(&self, table: u16, tool: &str) -> Option<&crate::names_cache::Resolved> {
        let Some(Const::Dispatch(d)) = self.consts.get(table as usize) else {
            return None;
        };
        if tool.len() > crate::names_cache::MAX_NAME {
            return None;
        }
        let hash = crate::program::name_hash(tool);
        self.unknown_names.get_or_resolve(tool, hash, || {
            crate::names_cache::resolve(d, tool, &self.consts, &self.chunks, &self.fast)
        })
    }

    /// Picks the result-bit array's size class from the program's set
    /// patterns: zeroing all 4,096 bits costs more than many decisions.
    #[inline]
    fn run_sized<'p, const N: usize, T: Sink>(
        &'p self,
        call: &Call,
        t: &mut T,
        pre: Option<Pre<'p>>,
    ) -> Decision<'p> {
        match self.set_patterns {
            0..=64 => self.run_with::<N, 1, T>(call, t, pre),
            65..=256 => self.run_with::<N, 4, T>(call, t, pre),
            257..=1024 => self.run_with::<N, 16, T>(call, t, pre),
            _ => self.run_with::<N, { MAX_TOTAL_SET_PATTERNS / 64 }, T>(call, t, pre),
        }
    }

    /// Runs the program with a register file of `N`; when the entry
    /// dispatch's lists are already selected (`pre`), straight from them
    /// (no rule deciding: the entry chunk's `halt`).
    #[inline]
    fn run_with<'p, const N: usize, const W: usize, T: Sink>(
        &'p self,
        call: &Call,
        t: &mut T,
        pre: Option<Pre<'p>>,
    ) -> Decision<'p> {
        let mut regs: [Val; N] = std::array::from_fn(|_| Val::Missing);
        let mut words = [0u64; W];
        let mut scratch = Scratch::new(&mut words);
        let exit = match pre {
            Some((sel, indexed)) => {
                scratch.tool_indexed = Some(indexed);
                match one_run(sel) {
                    // The whole list is one run: decided by its bits alone,
                    // without the list walk of `dispatch`.
                    Some((run, len)) if !T::ENABLED => {
                        match self.run_bits(run, 0, len, call, &mut scratch) {
                            Some(Some(rule)) => Exit::Decide(rule),
                            Some(None) => Exit::Halt,
                            None => Exit::Fault,
                        }
                    }
                    _ => self
                        .dispatch(sel, call, &mut regs, &mut scratch, t)
                        .unwrap_or(Exit::Halt),
                }
            }
            None => self.exec(0, 0, call, &mut regs, &mut scratch, t),
        };
        self.decision(exit)
    }

    /// What an exit of the entry chunk decides.
    #[inline]
    fn decision(&self, exit: Exit) -> Decision<'_> {
        Decision::new(match exit {
            Exit::Decide(rule) => match self.verdicts.get(rule as usize) {
                Some(v) => v,
                None => &VM_FAULT_VERDICT,
            },
            Exit::DefaultAllow => &DEFAULT_ALLOW_VERDICT,
            Exit::Halt => &DEFAULT_DENY_VERDICT,
            Exit::Return(_) | Exit::Fault => &VM_FAULT_VERDICT,
        })
    }

    fn exec<'a, T: Sink>(
        &'a self,
        chunk: u16,
        start: usize,
        call: &Call<'a>,
        regs: &mut [Val<'a>],
        scratch: &mut Scratch<'_>,
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
            t.step();
            match instr {
                Instr::NameIn { field, list } => {
                    let Some(hit) = self.names_match(field, list, call, scratch) else {
                        return Exit::Fault;
                    };
                    flag = hit;
                    t.test(chunk, pc, flag, &Val::Str(field_of(call, field)));
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
                    let Some(hit) = self.kv_cond(op, field, value, call) else {
                        return Exit::Fault;
                    };
                    flag = hit;
                    if T::ENABLED {
                        let Some(Const::Str(field)) = self.consts.get(field as usize) else {
                            return Exit::Fault;
                        };
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
                    flag = value::test(op, x, y);
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
                Instr::TestSet {
                    set,
                    pattern,
                    negate,
                } => {
                    let Some(Const::RegexSet(rs)) = self.consts.get(set as usize) else {
                        return Exit::Fault;
                    };
                    let slot = rs.slot as usize % MAX_SETS;
                    let hit = scratch.set_bit(rs, pattern, call.args);
                    flag = scratch.states[slot].ran() && hit != negate;
                    if T::ENABLED {
                        t.test(chunk, pc, flag, &set_subject_val(&rs.subject, call.args));
                    }
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
                                match self.exec(body, 0, call, regs, scratch, t) {
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
                    if let Some(exit) = self.dispatch(d.select(call.tool), call, regs, scratch, t) {
                        return exit;
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

    /// Runs the rules of a tool's two dispatch lists, merged in first-match
    /// order: the exit of the first rule that decides, or `None` when none
    /// does (the entry chunk goes on to its end).
    fn dispatch<'a, T: Sink>(
        &'a self,
        ((a, runs_a), (b, runs_b)): Selected<'a>,
        call: &Call<'a>,
        regs: &mut [Val<'a>],
        scratch: &mut Scratch<'_>,
        t: &mut T,
    ) -> Option<Exit> {
        let (mut i, mut j) = (0, 0);
        loop {
            // Merge the two lists by first-match order.
            let from_a = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => x.0 < y.0,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (list, runs, pos, other) = if from_a {
                (a, runs_a, &mut i, b.get(j))
            } else {
                (b, runs_b, &mut j, a.get(i))
            };
            if !T::ENABLED {
                if let Some((run, from, len)) = run_at(runs, *pos, other.map(|o| o.0)) {
                    *pos += len;
                    match self.run_bits(run, from, len, call, scratch) {
                        Some(Some(rule)) => return Some(Exit::Decide(rule)),
                        Some(None) => continue,
                        None => return Some(Exit::Fault),
                    }
                }
            }
            let Some(&(_, step)) = list.get(*pos) else {
                return Some(Exit::Fault);
            };
            *pos += 1;
            match step {
                Step::Rule { rule, chunk, pc } if !T::ENABLED => {
                    if let Some(fast) = self.fast_at(rule, pc) {
                        match self.run_fast(fast, call, scratch) {
                            Some(true) => return Some(Exit::Decide(rule)),
                            Some(false) => continue,
                            None => return Some(Exit::Fault),
                        }
                    }
                    match self.exec(chunk, pc as usize, call, regs, scratch, t) {
                        Exit::Return(true) => return Some(Exit::Decide(rule)),
                        Exit::Return(false) => {}
                        _ => return Some(Exit::Fault),
                    }
                }
                Step::Rule { rule, chunk, .. } => {
                    // Traced runs enter at the top so the tool test shows.
                    match self.exec(chunk, 0, call, regs, scratch, t) {
                        Exit::Return(true) => {
                            t.decide(rule);
                            return Some(Exit::Decide(rule));
                        }
                        Exit::Return(false) => {}
                        _ => return Some(Exit::Fault),
                    }
                }
                Step::DefaultAllow { .. } => return Some(Exit::DefaultAllow),
            }
        }
        None
    }
}

/// The first of `positions` (ascending) in `from..end` for which `may`
/// holds.
#[inline]
fn first_at(
    positions: &[u32],
    from: usize,
    end: usize,
    may: impl Fn(usize) -> bool,
) -> Option<usize> {
    positions
        .iter()
        .map(|&k| k as usize)
        .skip_while(|&k| k < from)
        .take_while(|&k| k < end)
        .find(|&k| may(k))
}

/// The run that holds every step of the selected lists, and their length,
/// when there is one: the tool's own list is a single run from its first
/// step to its last, and the generic list is empty.
#[inline]
fn one_run<'a>(((a, runs), (b, _)): Selected<'a>) -> Option<(&'a Run, usize)> {
    match (runs?.runs.as_slice(), b.is_empty()) {
        ([run], true) if run.first == 0 && run.keys.len() == a.len() => Some((run, a.len())),
        _ => None,
    }
}

/// The run holding position `pos` of a list, if any: the run, the offset of
/// `pos` in it, and how many of its steps from there come before the other
/// list's next step (order key `other`).
#[inline]
fn run_at(runs: Option<&ListRuns>, pos: usize, other: Option<u32>) -> Option<(&Run, usize, usize)> {
    let runs = runs?;
    let r = *runs.start.get(pos)?;
    if r == 0 {
        return None;
    }
    let run = runs.runs.get(r as usize - 1)?;
    let from = pos.checked_sub(run.first as usize)?;
    let keys = run.keys.get(from..)?;
    let len = match other {
        Some(key) => keys.partition_point(|k| *k < key),
        None => keys.len(),
    };
    (len > 0).then_some((run, from, len))
}

impl Program {
    /// Decides a run: its sets run (each at most once per call), then the
    /// first step whose bit is set decides. `Some(None)`: no rule of the run
    /// matched; `None`: a malformed constant (ruled out by verification).
    #[inline]
    fn run_bits(
        &self,
        run: &Run,
        from: usize,
        len: usize,
        call: &Call,
        scratch: &mut Scratch<'_>,
    ) -> Option<Option<u16>> {
        let names_hold = match run.names {
            Some((field, list)) => self.names_match(field, list, call, scratch)?,
            None => true,
        };
        if !names_hold && run.all_named {
            return Some(None);
        }
        let mut found = false;
        for &set in &run.sets {
            let Some(Const::RegexSet(rs)) = self.consts.get(set as usize) else {
                return None;
            };
            scratch.ensure_set(rs, call.args);
            found |= scratch.states[rs.slot as usize % MAX_SETS] == SetState::Found;
        }
        // The first step in range that may decide (its names hold) and
        // either is "always" or tests a set bit: the first "always" one,
        // then, for each set bit of the run's words, its first step.
        let end = from + len;
        let may = |k: usize| names_hold || run.named.get(k) == Some(&false);
        let mut best = first_at(&run.always, from, end, may).unwrap_or(end);
        if found {
            for w in run.words.0..run.words.1 {
                let mut word = *scratch.bits.get(w as usize)?;
                while word != 0 {
                    let bit = w * 64 + word.trailing_zeros();
                    word &= word - 1;
                    let steps = run.steps_of(bit as u16);
                    if let Some(k) = first_at(steps, from, best, may) {
                        best = k;
                    }
                }
            }
        }
        match best < end {
            true => Some(Some(*run.rules.get(best)?)),
            false => Some(None),
        }
    }

    /// A name-list test, memoised for the call (rules often share a list).
    #[inline]
    fn names_match(
        &self,
        field: Field,
        list: u16,
        call: &Call,
        scratch: &mut Scratch<'_>,
    ) -> Option<bool> {
        if let Some((f, l, r)) = scratch.last_name {
            if f == field && l == list {
                return Some(r);
            }
        }
        let Some(Const::Matchers(ms)) = self.consts.get(list as usize) else {
            return None;
        };
        let name = field_of(call, field);
        let r = match (&self.globs, field) {
            // Tool names: exact entries compared, globs all matched at once.
            (Some(g), Field::Tool) => {
                (g.star.get(list as usize) == Some(&true) && !crate::fast::has_lf(name))
                    || (!self.unindexed(list, scratch)
                        && ms
                            .iter()
                            .any(|m| matches!(m, Matcher::Exact(s) if s == name)))
                    || scratch.tool_globs(g, name, list)
            }
            _ => kvlar::name_matches(ms, name),
        };
        scratch.last_name = Some((field, list, r));
        Some(r)
    }

    /// Whether the call's tool is known to equal none of list `list`'s exact
    /// names: the entry's name index holds them all and not the tool.
    #[inline]
    fn unindexed(&self, list: u16, scratch: &Scratch<'_>) -> bool {
        scratch.tool_indexed == Some(false)
            && self
                .entry
                .as_ref()
                .is_some_and(|e| e.exact_indexed.get(list as usize) == Some(&true))
    }

    /// The fast form of `rule` entered at `pc`, if it has one.
    #[inline]
    fn fast_at(&self, rule: u16, pc: u32) -> Option<Fast> {
        self.fast.get(rule as usize)?.at(pc)
    }

    /// Decides a recognised rule shape inline: what its chunk would return
    /// (`None` on a malformed constant, which verification rules out).
    #[inline]
    fn run_fast(&self, fast: Fast, call: &Call, scratch: &mut Scratch<'_>) -> Option<bool> {
        if let Some((field, list)) = fast.names {
            if !self.names_match(field, list, call, scratch)? {
                return Some(false);
            }
        }
        match fast.rest {
            Rest::Always => Some(true),
            Rest::Bit { set, pattern } => {
                let Some(Const::RegexSet(rs)) = self.consts.get(set as usize) else {
                    return None;
                };
                Some(scratch.set_bit(rs, pattern, call.args))
            }
            Rest::Cond { op, field, value } => self.kv_cond(op, field, value, call),
        }
    }

    /// A Kvlar-format condition on the call's arguments (`None` on a
    /// malformed constant, which verification rules out).
    #[inline]
    fn kv_cond(&self, op: KvOp, field: u16, value: u16, call: &Call) -> Option<bool> {
        let Some(Const::Str(field)) = self.consts.get(field as usize) else {
            return None;
        };
        let (value, re) = match self.consts.get(value as usize) {
            Some(Const::Json(v)) => (v, None),
            Some(Const::Regex(re)) if op == KvOp::Matches => (&Value::Null, Some(re)),
            _ => return None,
        };
        Some(kvlar::condition(call.args, op, field, value, re))
    }
}

enum Exit {
    Decide(u16),
    DefaultAllow,
    Halt,
    Return(bool),
    Fault,
}

/// The `_vm_fault` decision.
static VM_FAULT_VERDICT: Verdict = Verdict::new(
    Effect::Deny,
    VM_FAULT,
    Some("internal error while deciding: the call was denied (fail-closed)"),
);

#[inline]
fn field_of<'a>(call: &Call<'a>, field: Field) -> &'a str {
    match field {
        Field::Tool => call.tool,
        Field::Agent => call.agent,
        Field::Action => call.action,
    }
}

#[inline]
fn get<'r, 'a>(regs: &'r [Val<'a>], r: u8) -> &'r Val<'a> {
    // Registers are verified to be < nregs, and the file holds nregs.
    regs.get(r as usize).unwrap_or(&Val::Missing)
}

#[inline]
fn set<'a>(regs: &mut [Val<'a>], r: u8, v: Val<'a>) {
    if let Some(slot) = regs.get_mut(r as usize) {
        *slot = v;
    }
}

fn arg_val<'a>(args: &'a Value, key: &str) -> Val<'a> {
    kvlar::param(args, key).map_or(Val::Missing, Val::from_json)
}

/// Follows a path from a register value (a JSON value, or a scalar with an empty path).
fn lookup<'a>(base: Val<'a>, path: &[PathSeg]) -> Val<'a> {
    match base {
        Val::Json(v) => value::lookup_json(v, path),
        other if path.is_empty() => other,
        _ => Val::Missing,
    }
}

/// The two dispatch lists selected for a call (see `Dispatch::select`).
type Selected<'p> = (SelectedList<'p>, SelectedList<'p>);

/// The entry dispatch already done by `run`: the two lists, and whether the
/// table knows the tool.
type Pre<'p> = (Selected<'p>, bool);

/// Per-call memory: regex-set results and the last name-list test.
struct Scratch<'s> {
    /// Which tool globs match the call's tool (`None`: not computed yet).
    globs: Option<ToolGlobs>,
    states: [SetState; MAX_SETS],
    /// Result bits of every set, each from its `base`.
    bits: &'s mut [u64],
    last_name: Option<(Field, u16, bool)>,
    /// Whether the entry's name index knows the call's tool (`None`: not
    /// looked up).
    tool_indexed: Option<bool>,
}

impl<'s> Scratch<'s> {
    /// `bits` holds zeros, at least one per pattern of the program's sets.
    fn new(bits: &'s mut [u64]) -> Self {
        Scratch {
            globs: None,
            states: [SetState::Unknown; MAX_SETS],
            bits,
            last_name: None,
            tool_indexed: None,
        }
    }
}

impl Scratch<'_> {
    /// Whether a glob of name list `list` matches `tool` (all the program's
    /// tool globs run once per call).
    fn tool_globs(&mut self, g: &GlobIndex, tool: &str, list: u16) -> bool {
        let bits = match &mut self.globs {
            Some(bits) => bits,
            none => {
                let bits = none.insert([0; MAX_TOOL_GLOBS / 64]);
                g.which_into(tool, bits);
                bits
            }
        };
        g.masks
            .get(list as usize)
            .is_some_and(|mask| crate::fast::any_common(mask, bits))
    }

    /// Runs set `rs` on this call if it has not run yet.
    #[inline(always)]
    fn ensure_set(&mut self, rs: &RegexSet, args: &Value) {
        if self.states[rs.slot as usize % MAX_SETS] == SetState::Unknown {
            self.fill_set(rs, args);
        }
    }

    /// Runs set `rs` (not run yet on this call), or its twin pair. Out of
    /// line: the check above is what most tests of a call pay (a call runs
    /// each set once and tests its bits many times).
    #[inline(never)]
    fn fill_set(&mut self, rs: &RegexSet, args: &Value) {
        let slot = rs.slot as usize % MAX_SETS;
        if let Some(tw) = &rs.twin {
            let (a, b) = (
                tw.first.slot as usize % MAX_SETS,
                tw.second.slot as usize % MAX_SETS,
            );
            // Both sets read the same string: one pass fills both.
            if let (Some(Value::String(text)), SetState::Unknown, SetState::Unknown) =
                (kvlar::param(args, &tw.key), self.states[a], self.states[b])
            {
                let part = |p: &crate::program::TwinPart| (p.count as usize, p.base as usize);
                let [sa, sb] = scan_parts(
                    &tw.engine,
                    text,
                    [part(&tw.first), part(&tw.second)],
                    self.bits,
                );
                self.states[a] = sa;
                self.states[b] = sb;
                return;
            }
        }
        self.states[slot] = run_set(rs, args, self.bits);
    }

    /// Whether pattern `pattern` of set `rs` matched, running the set first
    /// if this call has not yet.
    #[inline]
    fn set_bit(&mut self, rs: &RegexSet, pattern: u16, args: &Value) -> bool {
        self.ensure_set(rs, args);
        self.states[rs.slot as usize % MAX_SETS] == SetState::Found
            && self.bit(rs.base as usize + pattern as usize)
    }

    /// Result bit `b` of the per-call array (0 for sets that did not run or
    /// found their subject absent).
    #[inline]
    fn bit(&self, b: usize) -> bool {
        self.bits
            .get(b / 64)
            .is_some_and(|w| w & (1 << (b % 64)) != 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SetState {
    /// Not run yet for this call.
    #[default]
    Unknown,
    /// The subject is absent (or of a type no test accepts): every test is false.
    Absent,
    /// Ran; no pattern matched.
    Empty,
    /// Ran; the set's bits say which patterns matched (at least one).
    Found,
}

impl SetState {
    /// Whether the set ran on a present subject (a negated test can hold).
    #[inline]
    fn ran(self) -> bool {
        matches!(self, SetState::Empty | SetState::Found)
    }
}

/// Capacity classes of the reused result buffers: 64, 128, … patterns, up
/// to [`MAX_SET_PATTERNS`] (clearing a buffer costs its capacity).
const SIZE_CLASSES: usize = (MAX_SET_PATTERNS / 64).ilog2() as usize + 1;

thread_local! {
    /// Reused result buffers of the multi-pattern search, one per capacity
    /// class (no allocation once warm).
    static PATTERN_SETS: std::cell::RefCell<[Option<regex_automata::PatternSet>; SIZE_CLASSES]> =
        const { std::cell::RefCell::new([const { None }; SIZE_CLASSES]) };
}

/// The capacity class of a set of `n` patterns.
fn size_class(n: usize) -> usize {
    (n.max(1).div_ceil(64).next_power_of_two().ilog2() as usize).min(SIZE_CLASSES - 1)
}

/// Runs `f` with an empty reused result buffer of capacity ≥ `n` (no
/// allocation once warm).
pub(crate) fn with_pattern_set<R>(
    n: usize,
    mut f: impl FnMut(&mut regex_automata::PatternSet) -> R,
) -> R {
    let class = size_class(n);
    let reused = PATTERN_SETS.with(|cell| {
        let mut sets = cell.try_borrow_mut().ok()?;
        let ps = sets
            .get_mut(class)?
            .get_or_insert_with(|| regex_automata::PatternSet::new(64 << class));
        Some(use_and_clear(ps, &mut f))
    });
    match reused {
        Some(r) => r,
        None => use_and_clear(&mut regex_automata::PatternSet::new(n.max(1)), &mut f),
    }
}

/// `f(ps)`, leaving `ps` empty (clearing costs the whole capacity, so only
/// when something matched).
fn use_and_clear<R>(
    ps: &mut regex_automata::PatternSet,
    f: &mut impl FnMut(&mut regex_automata::PatternSet) -> R,
) -> R {
    let r = f(ps);
    if !ps.is_empty() {
        ps.clear();
    }
    r
}

/// Runs the set over `text`, setting the bits of the patterns that match.
fn scan(rs: &RegexSet, text: &str, bits: &mut [u64]) -> SetState {
    let [state] = scan_parts(
        &rs.engine,
        text,
        [(rs.patterns.len(), rs.base as usize)],
        bits,
    );
    state
}

/// Runs `engine` over `text`; its patterns are `parts` in order, each
/// `(count, base)`: part `i`'s matching patterns set bits from its `base`.
pub(crate) fn scan_parts<const K: usize>(
    engine: &SetEngine,
    text: &str,
    parts: [(usize, usize); K],
    bits: &mut [u64],
) -> [SetState; K] {
    if engine.surely_none(text) {
        return [SetState::Empty; K];
    }
    let total: usize = parts.iter().map(|p| p.0).sum();
    let (mut found, mut distinct) = ([SetState::Empty; K], 0);
    engine.which(text, |mut p| {
        for (k, &(count, base)) in parts.iter().enumerate() {
            if p < count {
                found[k] = SetState::Found;
                // In range for a verified program (`run_sized` sizes `bits`
                // for every pattern).
                let b = base + p;
                debug_assert!(b / 64 < bits.len(), "result bit {b} out of range");
                if let Some(word) = bits.get_mut(b / 64) {
                    if *word & (1 << (b % 64)) == 0 {
                        *word |= 1 << (b % 64);
                        distinct += 1;
                    }
                }
                break;
            }
            p -= count;
        }
        // Every pattern found: nothing left to learn.
        distinct >= total
    });
    found
}

/// Runs a regex set on its subject, with the subject's Kvlar or native rules
/// for absent and non-string values.
fn run_set(rs: &RegexSet, args: &Value, bits: &mut [u64]) -> SetState {
    match &rs.subject {
        SetSubject::KvField(field) => match kvlar::resolve_field(args, field) {
            Some(v) => scan(rs, v.as_str().unwrap_or(""), bits),
            None => SetState::Absent,
        },
        SetSubject::KvParam(key) => match kvlar::param(args, key) {
            Some(Value::String(s)) => scan(rs, s, bits),
            Some(other) => kvlar::with_json_text(other, |text| scan(rs, text, bits)),
            None => SetState::Absent,
        },
        SetSubject::Args(path) => match lookup(Val::Json(args), path).as_str() {
            Some(s) => scan(rs, s, bits),
            None => SetState::Absent,
        },
    }
}

fn set_subject_val<'a>(subject: &SetSubject, args: &'a Value) -> Val<'a> {
    match subject {
        SetSubject::KvField(field) => {
            kvlar::resolve_field(args, field).map_or(Val::Missing, Val::from_json)
        }
        SetSubject::KvParam(key) => arg_val(args, key),
        SetSubject::Args(path) => lookup(Val::Json(args), path),
    }
}

#[cfg(test)]
mod size_class_tests {
    use super::*;

    #[test]
    fn every_set_fits_its_class() {
        for n in [
            1,
            63,
            64,
            65,
            128,
            129,
            255,
            256,
            257,
            1000,
            1024,
            1025,
            MAX_SET_PATTERNS,
        ] {
            let c = size_class(n);
            assert!(c < SIZE_CLASSES, "{n}");
            assert!(64 << c >= n, "{n} in class {c}");
            assert!(
                c == 0 || 64 << (c - 1) < n,
                "{n} in class {c} is not the smallest"
            );
        }
    }
}

#[cfg(test)]
mod scan_tests {
    use super::*;

    /// A set's scan (with the no-candidate shortcut) reports exactly the
    /// patterns that match, pattern by pattern, including `\b` and `\A`
    /// patterns, where the engine itself does not use the prefilter.
    #[test]
    fn scan_reports_exactly_the_matching_patterns() {
        let pats: Vec<String> = [
            "\\bdrop\\b",
            "\\bdel",
            "word\\b",
            "ab+c",
            "\\Adrx",
            "(?i)dx",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let rs = RegexSet::new(0, SetSubject::KvField("x".into()), pats.clone()).expect("set");
        assert!(
            rs.engine.prefilter.is_some(),
            "every pattern has a literal prefix"
        );
        let single: Vec<regex::Regex> = pats
            .iter()
            .map(|p| regex::Regex::new(p).expect("compiles"))
            .collect();
        let alphabet = ["d", "rop", "el", "word", " ", "ab", "c", "x", "X", "é"];
        let texts = crate::testutil::strings(&alphabet, 4);
        let mut hits = 0;
        for t in &texts {
            let mut bits = [0u64; MAX_TOTAL_SET_PATTERNS / 64];
            let state = scan(&rs, t, &mut bits);
            assert_eq!(state == SetState::Found, bits[0] != 0, "{t:?}");
            assert!(state.ran(), "{t:?}");
            for (i, re) in single.iter().enumerate() {
                let bit = bits[0] & (1 << i) != 0;
                assert_eq!(bit, re.is_match(t), "{t:?} pattern {}", pats[i]);
                hits += usize::from(bit);
            }
        }
        assert!(hits > 1000, "{hits}");
    }
}

/// Hand-assembled programs for the tests below: what a precompiled program
/// file may hold, without the compiler.
#[cfg(test)]
mod assembled {
    use crate::op::{encode, Instr};
    use crate::program::{Chunk, Const, PolicyInfo, ProgramParts, RuleInfo, Step};
    use crate::{Effect, Program};

    /// A chunk of `instrs`.
    pub fn chunk(instrs: &[Instr]) -> Chunk {
        let mut code = Vec::new();
        for i in instrs {
            encode(i, &mut code);
        }
        Chunk { code }
    }

    /// The step that runs rule `rule` from its chunk's top (chunk `rule + 1`;
    /// chunk 0 is the entry).
    pub fn step(rule: u16) -> Step {
        Step::Rule {
            rule,
            chunk: rule + 1,
            pc: 0,
        }
    }

    /// Verifies a one-policy program (default deny) whose entry is
    /// `dispatch #table; halt`, with `rules` in order, rule `i` in chunk
    /// `i + 1`.
    pub fn program(
        consts: Vec<Const>,
        rule_chunks: Vec<Chunk>,
        rules: &[(&str, Effect)],
    ) -> Program {
        let table = consts.len() as u16 - 1;
        assert!(matches!(consts.last(), Some(Const::Dispatch(_))));
        let entry = chunk(&[Instr::Dispatch { table }, Instr::Halt]);
        let mut chunks = vec![entry];
        chunks.extend(rule_chunks);
        Program::new(ProgramParts {
            consts,
            chunks,
            rules: rules
                .iter()
                .map(|(id, effect)| RuleInfo {
                    id: (*id).into(),
                    effect: *effect,
                    reason: None,
                    policy: 0,
                })
                .collect(),
            policies: vec![PolicyInfo {
                name: "p".into(),
                default_allow: false,
            }],
            ..Default::default()
        })
        .expect("verifies")
    }
}

#[cfg(test)]
mod name_list_tests {
    use super::assembled::{chunk, program, step};
    use crate::op::{Field, Instr};
    use crate::program::{Chunk, Const, Dispatch, Matcher};
    use crate::{Call, Effect};

    fn glob(g: &str) -> Matcher {
        let re = crate::kvlar::glob_regex(g).expect("a glob");
        Matcher::Glob {
            glob: g.into(),
            re: regex::Regex::new(&re).expect("compiles"),
        }
    }

    /// A rule chunk: "the tool is in list `list`".
    fn name_rule(list: u16) -> Chunk {
        chunk(&[
            Instr::NameIn {
                field: Field::Tool,
                list,
            },
            Instr::Return,
        ])
    }

    /// A tool the entry's index does not know skips the exact names of a
    /// list only when the index holds them all: a hand-assembled program
    /// whose name list has an exact name the dispatch table lacks still
    /// compares it.
    #[test]
    fn exact_names_outside_the_index_are_still_compared() {
        let table = Dispatch::new(
            vec![("t_a".into(), 0)],
            vec![vec![(0, step(0)), (2, step(1))]],
            Vec::new(),
            vec![(0, step(0)), (2, step(1))],
        );
        let program = program(
            vec![
                // Indexed: t_a; and a glob.
                Const::Matchers(vec![Matcher::Exact("t_a".into()), glob("g_*")]),
                // t_z is not in the index.
                Const::Matchers(vec![Matcher::Exact("t_z".into()), glob("h_*")]),
                Const::Dispatch(table),
            ],
            vec![name_rule(0), name_rule(1)],
            &[("indexed", Effect::Deny), ("outside", Effect::Deny)],
        );
        let entry = program.entry.as_ref().expect("the entry shortcut");
        assert_eq!(entry.exact_indexed, vec![true, false, false]);
        let args = serde_json::json!({});
        for (tool, want) in [
            ("t_a", "indexed"),
            ("g_x", "indexed"),
            ("t_z", "outside"),
            ("h_", "outside"),
            ("t_b", "_default_deny"),
        ] {
            let d = program.evaluate(&Call::mcp(tool, &args));
            assert_eq!(d.rule(), want, "{tool}");
        }
    }
}

#[cfg(test)]
mod one_run_tests {
    use super::assembled::{chunk, program, step};
    use crate::op::Instr;
    use crate::program::{Chunk, Const, Dispatch, RegexSet, SetSubject};
    use crate::{Call, Effect};

    /// A rule chunk: "pattern `pattern` of set 0 matches".
    fn set_rule(pattern: u16) -> Chunk {
        chunk(&[
            Instr::TestSet {
                set: 0,
                pattern,
                negate: false,
            },
            Instr::JumpIfFalse { off: 3 },
            Instr::SetFlag { value: true },
            Instr::Return,
            Instr::SetFlag { value: false },
            Instr::Return,
        ])
    }

    /// A tool whose whole list is one run is decided from the run's bits
    /// alone; when no bit decides, the entry chunk's end (`halt`) does. The
    /// counting path, which walks the list step by step, agrees on every
    /// call.
    #[test]
    fn a_whole_list_run_decides_alone() {
        let set = RegexSet::new(
            0,
            SetSubject::KvParam("sql".into()),
            vec!["drop".into(), "delete".into(), "^select".into()],
        )
        .expect("compiles");
        let table = Dispatch::new(
            vec![("query".into(), 0)],
            vec![vec![(0, step(0)), (2, step(1)), (4, step(2))]],
            Vec::new(),
            Vec::new(),
        );
        let program = program(
            vec![Const::RegexSet(set), Const::Dispatch(table)],
            vec![set_rule(0), set_rule(1), set_rule(2)],
            &[
                ("no-drop", Effect::Deny),
                ("no-delete", Effect::Deny),
                ("read", Effect::Allow),
            ],
        );
        let summary = program.fast_summary();
        assert_eq!((summary.runs, summary.run_steps), (1, 3));
        assert!(summary.entry_shortcut);
        for (args, want) in [
            (serde_json::json!({"sql": "update t"}), "_default_deny"),
            (serde_json::json!({}), "_default_deny"),
            (
                serde_json::json!({"sql": "select 1; delete x; drop y"}),
                "no-drop",
            ),
            (
                serde_json::json!({"sql": "select 1; delete x"}),
                "no-delete",
            ),
            (serde_json::json!({"sql": "select 1"}), "read"),
        ] {
            let call = Call::mcp("query", &args);
            let d = program.evaluate(&call);
            assert_eq!(d.rule(), want, "{args}");
            assert_eq!(d.effect() == Effect::Allow, want == "read", "{args}");
            let (walked, _) = program.evaluate_counting(&call);
            assert_eq!(walked, d, "{args}");
        }
        // Another tool: no rule applies to it.
        let d = program.evaluate(&Call::mcp("other", &serde_json::json!({"sql": "select"})));
        assert_eq!(d.rule(), "_default_deny");
    }
}
