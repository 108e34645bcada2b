//! One-pass plans: a known tool decided by one regex pass over one string
//! argument, without the interpreter's per-call frame.
//!
//! On the curated policies most tools are a single run (see
//! [`crate::fast::Run`]) of rules that are each "always" or one pattern of a
//! regex set, and every set the run reads tests the same string argument
//! (`parameters: {sql: …}` and `field: sql`, paired as a [`Twin`]). Such a
//! call is the argument's lookup, one pass of the lazy DFA and a pick of the
//! first deciding step. Through the interpreter it also pays the frame
//! (register file, result words, set states), the walk from the dispatch
//! constant to the run and from the run to each set, each a chain of
//! dependent loads: about 35 ns on an empty `sql`, a third of the postgres
//! `update` row (BENCHMARKS.md, seventeenth session). A plan holds what that
//! walk finds, next to the tool's entry, so the call goes straight to the
//! pass.
//!
//! A plan is derived from the verified program's runs, on load for the
//! tools the dispatch table knows, and on a name's first call for a tool
//! only globs name (with its resolved list, `names_cache`). It decides
//! exactly what [`Program::run_bits`](crate::Program) decides for the same
//! run: the first step, in list order, that is "always" or whose bit the
//! pass set. When the argument is absent or not a string the sets read
//! different texts (nothing, `""`, the JSON text): the plan declines and the
//! interpreter decides, as it does for the sets a native expression tests
//! (`=~`), and for runs that read two arguments or test tool names.

use std::sync::Arc;

use serde_json::Value;

use crate::fast::ListRuns;
use crate::program::{Const, Dispatch, RegexSet, SetSubject, Step, Twin};
use crate::set_engine::SetEngine;

/// The result bits a plan reads: one word.
const WORD: usize = 64;
/// No step tests this bit.
const NO_STEP: u16 = u16::MAX;

/// What one pass runs: a twin pair's merged engine, or one Kvlar set's
/// (`parameters` or `conditions`).
#[derive(Debug, Clone)]
enum Pass {
    Twin(Arc<Twin>),
    Single(Arc<SetEngine>),
}

/// How the run's sets find their text in the arguments.
#[derive(Debug, Clone)]
enum Subject {
    /// A top-level key (`parameters`, or a twin pair's).
    Param(Box<str>),
    /// A Kvlar `conditions` field (a dotted path reaches into objects).
    Field(Box<str>),
}

/// The one-pass form of a tool's list.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The argument every set of the run reads.
    subject: Subject,
    pass: Pass,
    /// Per part of the pass (`Single` uses the first): its pattern count and
    /// where its bits start in the plan's word.
    parts: [(usize, usize); 2],
    /// Per bit of the word: the position of the first step that tests it,
    /// or [`NO_STEP`].
    first: [u16; WORD],
    /// The position of the first "always" step, or the run's length.
    always: u16,
    /// Per step: the rule it decides.
    rules: Box<[u16]>,
}

impl Plan {
    /// The decision of the plan's run on `args`: `Some(Some(rule))`, or
    /// `Some(None)` when no step decides (the entry's `halt`). `None` when
    /// the argument is absent or not a string: the interpreter decides.
    #[inline]
    pub fn decide(&self, args: &Value) -> Option<Option<u16>> {
        let value = match &self.subject {
            Subject::Param(key) => crate::kvlar::param(args, key),
            Subject::Field(field) => crate::kvlar::resolve_field(args, field),
        };
        let Some(Value::String(text)) = value else {
            return None;
        };
        let mut bits = [0u64; 1];
        match &self.pass {
            Pass::Twin(tw) => {
                crate::eval::scan_parts(&tw.engine, text, self.parts, &mut bits);
            }
            Pass::Single(engine) => {
                crate::eval::scan_parts(engine, text, [self.parts[0]], &mut bits);
            }
        }
        let mut best = self.always;
        let mut word = bits[0];
        while word != 0 {
            let bit = word.trailing_zeros() as usize;
            word &= word - 1;
            if let Some(&k) = self.first.get(bit) {
                best = best.min(k);
            }
        }
        Some(self.rules.get(best as usize).copied())
    }
}

/// The plans of the known-tool lists of `d` (the entry's dispatch table)
/// that have one (see [`plan`]), and per list 1 + the index of its plan, or
/// 0, which `Program::new` records in each tool's name entry. A list
/// without a plan costs nothing (a slot per list would hold 10,000 empty
/// plans for the synthetic 10,000-tool policy, which has no regex set).
pub(crate) fn plans(d: &Dispatch, consts: &[Const]) -> (Vec<Plan>, Vec<u16>) {
    let mut plans = Vec::new();
    let mut per_list = vec![0u16; d.lists.len()];
    if !d.generic_known.is_empty() {
        return (plans, per_list);
    }
    for ((list, runs), slot) in d.lists.iter().zip(&d.runs).zip(&mut per_list) {
        // Past 65,535 plans, the remaining lists go to the interpreter.
        let Ok(id) = u16::try_from(plans.len() + 1) else {
            break;
        };
        if let Some(p) = plan(list, runs, consts) {
            plans.push(p);
            *slot = id;
        }
    }
    (plans, per_list)
}

/// The plan of one list: the whole list is one run, no step has a name
/// test, and the run's sets are one Kvlar set (`parameters` or
/// `conditions`) or the two sets of one twin, whose result bits all fall in
/// one word. The list must be the tool's only one: a known tool's with no
/// generic rules ([`plans`]), or an unknown name's resolved list
/// (`names_cache`).
pub(crate) fn plan(list: &[(u32, Step)], runs: &ListRuns, consts: &[Const]) -> Option<Plan> {
    let [run] = runs.runs.as_slice() else {
        return None;
    };
    if run.first != 0 || run.keys.len() != list.len() || run.names.is_some() {
        return None;
    }
    if run.named.iter().any(|&n| n) || run.rules.len() >= NO_STEP as usize {
        return None;
    }
    let sets: Vec<&RegexSet> = run
        .sets
        .iter()
        .map(|&s| match consts.get(s as usize) {
            Some(Const::RegexSet(rs)) => Some(rs),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let (subject, pass, parts) = pass_of(&sets)?;
    // The word starts at the lowest part's first bit; every part ends in it.
    let lo = parts.iter().map(|p| p.1).min()?;
    if parts.iter().any(|&(count, base)| base + count - lo > WORD) {
        return None;
    }
    // From the run's own index, as `run_bits` reads it: its first
    // unconditional step, and per bit the first step that tests it.
    let always = run.always.first().map_or(run.rules.len(), |&k| k as usize) as u16;
    let mut first = [NO_STEP; WORD];
    for &(bit, _, _) in &run.by_bit {
        let k = *run.steps_of(bit).first()?;
        *first.get_mut((bit as usize).checked_sub(lo)?)? = k as u16;
    }
    let parts = parts.map(|(count, base)| (count, base - lo));
    Some(Plan {
        subject,
        pass,
        parts,
        first,
        always,
        rules: run.rules.clone().into_boxed_slice(),
    })
}

/// Where a pass's text is, what runs over it, and each part's (pattern
/// count, first global bit).
type PassOf = (Subject, Pass, [(usize, usize); 2]);

/// What one pass over the argument runs for `sets` (the run's sets): where
/// the text is, the engine, and each part's (pattern count, first global
/// bit).
fn pass_of(sets: &[&RegexSet]) -> Option<PassOf> {
    match sets {
        [rs] => {
            if let Some(tw) = &rs.twin {
                return twin_pass(tw);
            }
            let subject = match &rs.subject {
                SetSubject::KvParam(key) => Subject::Param(key.as_str().into()),
                SetSubject::KvField(field) => Subject::Field(field.as_str().into()),
                SetSubject::Args(_) => return None,
            };
            let part = (rs.patterns.len(), rs.base as usize);
            Some((subject, Pass::Single(rs.engine.clone()), [part, part]))
        }
        [a, b] => match (&a.twin, &b.twin) {
            (Some(ta), Some(tb)) if Arc::ptr_eq(ta, tb) => twin_pass(ta),
            _ => None,
        },
        _ => None,
    }
}

/// A twin pair's pass: both sets read the key's string (as `fill_set`
/// runs them).
fn twin_pass(tw: &Arc<Twin>) -> Option<PassOf> {
    let part = |p: &crate::program::TwinPart| (p.count as usize, p.base as usize);
    Some((
        Subject::Param(tw.key.as_str().into()),
        Pass::Twin(tw.clone()),
        [part(&tw.first), part(&tw.second)],
    ))
}
