//! Fast paths for the commonest rule shapes, derived from verified bytecode.
//!
//! Most rules, once the dispatch table has picked them for a tool, are
//! "always" (no condition left) or "one regex-set bit" (a single `matches`,
//! `parameters` regex or `=~`). Entering the rule's chunk for those costs more
//! than the test itself, so [`Program::new`](crate::Program::new) recognises
//! the shapes in the code of each dispatch entry and the interpreter decides
//! them inline. Nothing here is serialised: the shapes are recomputed from
//! the (verified) code on every load, so a fast path always means exactly
//! what its chunk means. Traced runs still execute the chunks.

use crate::op::{decode, Field, Instr, KvOp};
use crate::program::{Chunk, Const, Dispatch, Matcher, NameIndex, Step};

/// What is left of a rule's condition from a dispatch entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rest {
    /// Nothing: the rule decides.
    Always,
    /// One positive regex-set test (`set` is the constant index).
    Bit { set: u16, pattern: u16 },
    /// One Kvlar-format condition (`field` and `value` are constant indexes).
    Cond { op: KvOp, field: u16, value: u16 },
}

/// A recognised entry: an optional name-list test, then [`Rest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fast {
    pub names: Option<(Field, u16)>,
    pub rest: Rest,
}

/// Fast forms of one rule at its two dispatch entry points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FastRule {
    /// Entry at pc 0 (tool test included).
    pub top: Option<Fast>,
    /// Entry past the tool test, at `past_pc`.
    pub past_pc: u32,
    pub past: Option<Fast>,
}

impl FastRule {
    /// The fast form when entered at `pc`, if there is one.
    #[inline]
    pub fn at(&self, pc: u32) -> Option<Fast> {
        if pc == 0 {
            self.top
        } else if pc == self.past_pc {
            self.past
        } else {
            None
        }
    }
}

/// Does the code at `pc` make the chunk return false (`set_flag false; return`)?
fn returns_false(code: &[u8], pc: usize) -> bool {
    match decode(code, pc) {
        Ok((Instr::SetFlag { value: false }, next)) => {
            matches!(decode(code, next), Ok((Instr::Return, _)))
        }
        _ => false,
    }
}

/// The jump target of a `jump_false` decoded at `pc`, if it returns false.
pub(crate) fn jumps_to_false(code: &[u8], pc: usize) -> Option<usize> {
    match decode(code, pc) {
        Ok((Instr::JumpIfFalse { off }, next)) if returns_false(code, next + off as usize) => {
            Some(next)
        }
        _ => None,
    }
}

/// Recognises the code of a rule chunk from `pc`.
pub(crate) fn recognise(code: &[u8], pc: usize) -> Option<Fast> {
    let mut pc = pc;
    let mut names = None;
    if let Ok((Instr::NameIn { field, list }, next)) = decode(code, pc) {
        pc = jumps_to_false(code, next)?;
        names = Some((field, list));
    }
    let rest = match decode(code, pc).ok()? {
        (Instr::SetFlag { value: true }, next) => {
            matches!(decode(code, next), Ok((Instr::Return, _))).then_some(Rest::Always)?
        }
        (
            Instr::TestSet {
                set,
                pattern,
                negate: false,
            },
            next,
        ) => returns_true_if(code, next, Rest::Bit { set, pattern })?,
        (Instr::KvCond { op, field, value }, next) => {
            returns_true_if(code, next, Rest::Cond { op, field, value })?
        }
        _ => return None,
    };
    Some(Fast { names, rest })
}

/// `rest` if the code at `pc` (after its test) is `jump_false` to "return
/// false", then "return true".
fn returns_true_if(code: &[u8], pc: usize, rest: Rest) -> Option<Rest> {
    let after = jumps_to_false(code, pc)?;
    match decode(code, after) {
        Ok((Instr::SetFlag { value: true }, ret))
            if matches!(decode(code, ret), Ok((Instr::Return, _))) =>
        {
            Some(rest)
        }
        _ => None,
    }
}

/// The entry chunk when it is nothing but the tool dispatch and `halt`
/// (what the compiler emits for every policy set; verification requires the
/// entry chunk to end with `halt`, so a call no rule decides gets
/// `_default_deny`). The interpreter then selects the tool's lists before
/// building any per-call state, and decides calls that meet no rule, or an
/// unconditional one first, right there.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The dispatch table (constant index).
    pub table: u16,
    /// The table's name lookup (a copy, so that a call reaches it without
    /// going through the constant pool), and whether tools it does not know
    /// meet no rule at all (then a filter miss decides `_default_deny` at once).
    pub names: NameIndex,
    pub unknown_empty: bool,
    /// For tools the table does not know: the rule that decides at once
    /// (see [`immediates`]), or [`NO_RULE`].
    pub unknown_immediate: u16,
    /// Per constant: whether it is a name list whose exact names are all in
    /// `names`, so a tool `names` does not know equals none of them.
    pub exact_indexed: Vec<bool>,
    /// For tools the table does not know, when every rule they can meet
    /// needs one of its tool globs to match (see [`unknown_globs`]): the
    /// mask of those globs. A tool that matches none meets no rule: `end`
    /// decides without visiting them.
    pub unknown_globs: Option<Vec<u64>>,
    /// The one-pass plans of the known-tool lists that have one (see
    /// [`crate::plan`]; set once the runs are derived). A tool's
    /// [`Known::plan`](crate::program::Known) points here.
    pub plans: Vec<crate::plan::Plan>,
}

/// The first step of the merge of two dispatch lists (by order key).
#[inline]
pub(crate) fn first_step(a: &[(u32, Step)], b: &[(u32, Step)]) -> Option<Step> {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) => Some(if x.0 < y.0 { x.1 } else { y.1 }),
        (x, y) => x.or(y).map(|s| s.1),
    }
}

/// No rule (see [`immediates`]).
pub(crate) const NO_RULE: u16 = u16::MAX;

/// Recognises the entry chunk (chunk 0) as `dispatch #t` then `halt` or
/// `default_allow`, and nothing else, `#t` being a dispatch table.
pub(crate) fn entry(
    chunks: &[Chunk],
    consts: &[Const],
    fast: &[FastRule],
    globs: Option<&GlobIndex>,
) -> Option<Entry> {
    let code = &chunks.first()?.code;
    let (Instr::Dispatch { table }, next) = decode(code, 0).ok()? else {
        return None;
    };
    let (Instr::Halt, after) = decode(code, next).ok()? else {
        return None;
    };
    let Some(Const::Dispatch(d)) = consts.get(table as usize) else {
        return None;
    };
    if after != code.len() {
        return None;
    }
    let exact_indexed: Vec<bool> = consts
        .iter()
        .map(|c| match c {
            Const::Matchers(ms) => ms.iter().all(|m| match m {
                Matcher::Exact(name) => d.index.lookup(name).is_some(),
                Matcher::Glob { .. } => true,
            }),
            _ => false,
        })
        .collect();
    Some(Entry {
        table,
        names: (*d.index).clone(),
        unknown_empty: d.generic_unknown.is_empty(),
        unknown_immediate: immediate(first_step(&[], &d.generic_unknown), fast),
        unknown_globs: globs.and_then(|g| unknown_globs(d, fast, g, &exact_indexed)),
        exact_indexed,
        plans: Vec::new(),
    })
}

/// The mask of the tool globs that rules for unknown tools (`d`'s
/// `generic_unknown`) need, when each of them needs one: every step is a
/// rule whose fast form at its entry point tests a tool name list without
/// `*` and whose exact names the table all knows (so an unknown tool passes
/// the list only through a glob). `None` when any step could decide
/// without a glob matching.
fn unknown_globs(
    d: &Dispatch,
    fast: &[FastRule],
    g: &GlobIndex,
    exact_indexed: &[bool],
) -> Option<Vec<u64>> {
    // As long as the longest list mask: the per-call check reads no more.
    let mut mask: Vec<u64> = Vec::new();
    for (_, step) in &d.generic_unknown {
        let Step::Rule { rule, pc, .. } = *step else {
            return None;
        };
        let (Field::Tool, list) = fast.get(rule as usize)?.at(pc)?.names? else {
            return None;
        };
        let list = list as usize;
        if g.star.get(list) != Some(&false) || exact_indexed.get(list) != Some(&true) {
            return None;
        }
        let list_mask = g.masks.get(list)?;
        if mask.len() < list_mask.len() {
            mask.resize(list_mask.len(), 0);
        }
        for (m, w) in mask.iter_mut().zip(list_mask) {
            *m |= w;
        }
    }
    Some(mask)
}

/// Per known-tool list of `d`: the rule that decides every call of that
/// tool at once (the first step of the list merged with `generic_known` is a
/// rule with no condition left past its tool test), or [`NO_RULE`].
pub(crate) fn immediates(d: &Dispatch, fast: &[FastRule]) -> Vec<u16> {
    d.lists
        .iter()
        .map(|list| immediate(first_step(list, &d.generic_known), fast))
        .collect()
}

/// The rule of `first` if it decides with no condition left (its fast form
/// at its entry point is "always", with no name test), else [`NO_RULE`].
pub(crate) fn immediate(first: Option<Step>, fast: &[FastRule]) -> u16 {
    let always = Some(Fast {
        names: None,
        rest: Rest::Always,
    });
    match first {
        Some(Step::Rule { rule, pc, .. })
            if fast.get(rule as usize).and_then(|f| f.at(pc)) == always =>
        {
            rule
        }
        _ => NO_RULE,
    }
}

/// The fast forms of every rule entered from a dispatch table.
pub(crate) fn derive(consts: &[Const], chunks: &[Chunk], rules: usize) -> Vec<FastRule> {
    let mut out = vec![FastRule::default(); rules];
    for c in consts {
        let Const::Dispatch(d) = c else { continue };
        for (_, step) in d.all_steps() {
            let Step::Rule { rule, chunk, pc } = *step else {
                continue;
            };
            let (Some(slot), Some(ch)) = (out.get_mut(rule as usize), chunks.get(chunk as usize))
            else {
                continue;
            };
            if pc == 0 {
                slot.top = recognise(&ch.code, 0);
                // A glob rule is entered past its test too, by the lists of
                // the names it matches that no rule names exactly
                // (`names_cache`): unless a known list enters it, there.
                if slot.past_pc == 0 {
                    if let Some((_, past)) = crate::names_cache::past_tool_test(&ch.code) {
                        slot.past_pc = past;
                        slot.past = recognise(&ch.code, past as usize);
                    }
                }
            } else {
                slot.past_pc = pc;
                slot.past = recognise(&ch.code, pc as usize);
            }
        }
    }
    out
}

/// A stretch of a dispatch list whose rules all have a fast form without a
/// name test: decided by a tight loop over their result bits once the regex
/// sets they read have run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Run {
    /// Position of the run's first step in the list.
    pub first: u32,
    /// The name test some steps share (a glob tool list, for tools without
    /// a list of their own): tested once per call (memoised).
    pub names: Option<(Field, u16)>,
    /// Per step: whether it needs `names` to hold.
    pub named: Vec<bool>,
    /// Whether every step needs `names`: when the name test fails, no step
    /// can decide and the run's sets need not run (an unknown tool against
    /// rules on tool globs).
    pub all_named: bool,
    /// Per step: its order key (a step of the other list with a smaller key
    /// than a step of the run cuts the run there).
    pub keys: Vec<u32>,
    /// The regex-set constants the run reads.
    pub sets: Vec<u16>,
    /// Per step: the rule that decides if its bit is set.
    pub rules: Vec<u16>,
    /// The positions (in the run) of its [`ALWAYS`] steps: when the run's
    /// sets found nothing, only those can decide.
    pub always: Vec<u32>,
    /// The result words (by index) that hold the run's bits: `words.0` up
    /// to `words.1`. The set bits found there are few; walking them finds
    /// the first deciding step without testing every step's bit.
    pub words: (u32, u32),
    /// The distinct bits the steps test, ascending, each with its range of
    /// `bit_steps`: the positions of the steps that test it, ascending.
    pub by_bit: Vec<(u16, u32, u32)>,
    pub bit_steps: Vec<u32>,
    /// When the run's bits span at most [`DENSE_SPAN`] bits: per bit from
    /// the first one (`words.0 * 64`), 1 + its index in `by_bit`, or 0 for a
    /// bit no step tests. Otherwise empty (`by_bit` is searched).
    pub dense: Vec<u16>,
}

/// The widest span of result bits a run indexes with a table (2 KiB).
const DENSE_SPAN: usize = 1024;

impl Run {
    /// Fills `always`, `words`, `by_bit`, `bit_steps` and `dense` from
    /// `bits`: per step, the global result bit it tests or [`ALWAYS`].
    fn index_bits(&mut self, bits: &[u16]) {
        self.always = (0..bits.len() as u32)
            .filter(|&k| bits.get(k as usize) == Some(&ALWAYS))
            .collect();
        let mut pairs: Vec<(u16, u32)> = bits
            .iter()
            .enumerate()
            .filter(|(_, &b)| b != ALWAYS)
            .map(|(k, &b)| (b, k as u32))
            .collect();
        pairs.sort_unstable();
        self.bit_steps = pairs.iter().map(|p| p.1).collect();
        self.by_bit.clear();
        for (i, &(bit, _)) in pairs.iter().enumerate() {
            match self.by_bit.last_mut() {
                Some(last) if last.0 == bit => last.2 = i as u32 + 1,
                _ => self.by_bit.push((bit, i as u32, i as u32 + 1)),
            }
        }
        self.words = match (self.by_bit.first(), self.by_bit.last()) {
            (Some(lo), Some(hi)) => (lo.0 as u32 / 64, hi.0 as u32 / 64 + 1),
            _ => (0, 0),
        };
        let span = (self.words.1 - self.words.0) as usize * 64;
        self.dense.clear();
        if span <= DENSE_SPAN {
            self.dense = vec![0; span];
            let lo = self.words.0 as usize * 64;
            for (i, &(bit, _, _)) in self.by_bit.iter().enumerate() {
                if let Some(d) = self.dense.get_mut(bit as usize - lo) {
                    *d = i as u16 + 1;
                }
            }
        }
    }

    /// The positions of the steps that test result bit `bit`, ascending.
    #[inline]
    pub fn steps_of(&self, bit: u16) -> &[u32] {
        let i = if self.dense.is_empty() {
            self.by_bit.binary_search_by_key(&bit, |e| e.0).ok()
        } else {
            let lo = self.words.0 as usize * 64;
            let d = (bit as usize)
                .checked_sub(lo)
                .and_then(|k| self.dense.get(k))
                .copied()
                .unwrap_or(0);
            (d as usize).checked_sub(1)
        };
        match i.and_then(|i| self.by_bit.get(i)) {
            Some(&(_, from, to)) => self
                .bit_steps
                .get(from as usize..to as usize)
                .unwrap_or(&[]),
            None => &[],
        }
    }
}

/// The bit value of an "always" step.
pub(crate) const ALWAYS: u16 = u16::MAX;

/// The runs of one dispatch list: `start[i]` is 1 + the index in `runs` of
/// the run holding position `i`, or 0 (a run can be entered mid-way, after
/// a step of the other list cut it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListRuns {
    pub start: Vec<u32>,
    pub runs: Vec<Run>,
}

/// Runs of at least this many steps are worth the set-up.
const MIN_RUN: usize = 3;

/// The runs of `list` (steps with their order keys).
pub(crate) fn runs(list: &[(u32, Step)], fast: &[FastRule], consts: &[Const]) -> ListRuns {
    let global_bit = |set: u16, pattern: u16| -> Option<u16> {
        match consts.get(set as usize) {
            Some(Const::RegexSet(rs)) => u16::try_from(rs.base as usize + pattern as usize).ok(),
            _ => None,
        }
    };
    // The fast form of each step, if it can be in a run: (names, set, global bit).
    type Form = (Option<(Field, u16)>, Option<u16>, u16);
    let form: Vec<Option<Form>> = list
        .iter()
        .map(|(_, step)| {
            let Step::Rule { rule, pc, .. } = *step else {
                return None;
            };
            let fast = fast.get(rule as usize)?.at(pc)?;
            match fast.rest {
                Rest::Always => Some((fast.names, None, ALWAYS)),
                Rest::Bit { set, pattern } => {
                    let bit = global_bit(set, pattern).filter(|b| *b != ALWAYS)?;
                    Some((fast.names, Some(set), bit))
                }
                Rest::Cond { .. } => None,
            }
        })
        .collect();
    let mut out = ListRuns {
        start: vec![0; list.len()],
        runs: Vec::new(),
    };
    let mut i = 0;
    while i < list.len() {
        let Some((first_names, _, _)) = form[i] else {
            i += 1;
            continue;
        };
        // A run shares at most one name test.
        let mut names = first_names;
        let mut j = i;
        while let Some(Some((n, _, _))) = form.get(j) {
            match (names, *n) {
                (_, None) => {}
                (None, Some(x)) => names = Some(x),
                (Some(a), Some(b)) if a == b => {}
                _ => break,
            }
            j += 1;
        }
        if j - i >= MIN_RUN {
            let mut run = Run {
                first: i as u32,
                names,
                ..Run::default()
            };
            let mut bits = Vec::with_capacity(j - i);
            for k in i..j {
                let (Some((n, set, bit)), Step::Rule { rule, .. }) = (form[k], list[k].1) else {
                    continue;
                };
                if let Some(s) = set {
                    if !run.sets.contains(&s) {
                        run.sets.push(s);
                    }
                }
                run.named.push(n.is_some());
                run.keys.push(list[k].0);
                bits.push(bit);
                run.rules.push(rule);
            }
            run.all_named = run.named.iter().all(|&n| n);
            run.index_bits(&bits);
            out.runs.push(run);
            let id = out.runs.len() as u32;
            out.start[i..j].iter_mut().for_each(|s| *s = id);
        }
        i = j.max(i + 1);
    }
    out
}

/// How many distinct tool globs the combined automaton takes.
pub(crate) const MAX_TOOL_GLOBS: usize = 1024;

/// Every glob tool pattern of the program in one automaton: a tool name
/// unknown to the dispatch table is matched against all of them in one pass,
/// once per call, and each name list's test becomes a mask check.
#[derive(Debug, Clone)]
pub(crate) struct GlobIndex {
    pub engine: std::sync::Arc<crate::set_engine::SetEngine>,
    /// Per constant: the mask of its globs (empty for non-`Matchers`).
    pub masks: Vec<Vec<u64>>,
    /// Per constant: whether it holds the glob `*` ([`STAR`]), which matches
    /// every name without a line feed: no automaton needed.
    pub star: Vec<bool>,
    /// When every glob has only `*` wildcards: each one's literal pieces
    /// (split at `*`), by pattern id. A name without a line feed is then
    /// matched piece by piece, much faster than the automaton's overlapping
    /// search on a short name.
    pub simple: Option<Vec<Vec<String>>>,
}

/// Whether a `*`-only glob, as its pieces (split at `*`, so at least two),
/// matches `name`, which has no line feed (what `*` does not match): the
/// first piece starts it, the last ends it, and the others occur in order
/// between them (leftmost occurrence first, which loses no match).
pub(crate) fn pieces_match(pieces: &[String], name: &str) -> bool {
    let [first, middle @ .., last] = pieces else {
        return false;
    };
    // Empty pieces are not compared: a zero-length comparison still calls
    // `memcmp`, whose masked load from an empty string's dangling pointer
    // costs ~80 ns on this project's machine (BENCHMARKS.md).
    if (!first.is_empty() && !name.starts_with(first.as_str()))
        || (!last.is_empty() && !name.ends_with(last.as_str()))
    {
        return false;
    }
    // Between the first and the last piece (`None`: they would overlap).
    let Some(mut hay) = name.get(first.len()..name.len() - last.len()) else {
        return false;
    };
    for piece in middle.iter().filter(|p| !p.is_empty()) {
        match hay.find(piece.as_str()) {
            Some(at) => hay = &hay[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// The regex of the glob `*` (see `kvlar::glob_regex`): `.` is any
/// character but `\n`.
pub(crate) const STAR: &str = "^.*$";

impl GlobIndex {
    /// `None` when the program has no glob, too many, or they do not compile
    /// together (name lists are then tested one by one).
    pub fn build(consts: &[Const]) -> Option<GlobIndex> {
        let mut patterns: Vec<&str> = Vec::new();
        let mut masks = vec![Vec::new(); consts.len()];
        let mut star = vec![false; consts.len()];
        let mut simple = Some(Vec::new());
        for (i, c) in consts.iter().enumerate() {
            let Const::Matchers(ms) = c else { continue };
            for m in ms {
                let Matcher::Glob { re, glob } = m else {
                    continue;
                };
                star[i] |= re.as_str() == STAR;
                let id = match patterns.iter().position(|p| *p == re.as_str()) {
                    Some(id) => id,
                    None => {
                        patterns.push(re.as_str());
                        simple = simple.and_then(|mut v: Vec<Vec<String>>| {
                            let plain = !glob.contains(['?', '[', '\n']) && glob.contains('*');
                            plain.then(|| {
                                v.push(glob.split('*').map(str::to_owned).collect());
                                v
                            })
                        });
                        patterns.len() - 1
                    }
                };
                if id >= MAX_TOOL_GLOBS {
                    return None;
                }
                let mask: &mut Vec<u64> = &mut masks[i];
                if mask.len() <= id / 64 {
                    mask.resize(id / 64 + 1, 0);
                }
                mask[id / 64] |= 1 << (id % 64);
            }
        }
        if patterns.is_empty() {
            return None;
        }
        let patterns: Vec<String> = patterns.into_iter().map(str::to_owned).collect();
        let engine = std::sync::Arc::new(crate::set_engine::SetEngine::new(&patterns)?);
        Some(GlobIndex {
            engine,
            masks,
            star,
            simple,
        })
    }

    /// Which globs match `name`, as bits by pattern id.
    pub fn which(&self, name: &str) -> ToolGlobs {
        let mut bits = [0u64; MAX_TOOL_GLOBS / 64];
        self.which_into(name, &mut bits);
        bits
    }

    /// Sets the bits of the globs that match `name` in `bits` (zeros).
    pub fn which_into(&self, name: &str, bits: &mut ToolGlobs) {
        let mut set = |id: usize| {
            if let Some(w) = bits.get_mut(id / 64) {
                *w |= 1 << (id % 64);
            }
        };
        match &self.simple {
            Some(simple) if !has_lf(name) => {
                for (id, pieces) in simple.iter().enumerate() {
                    if pieces_match(pieces, name) {
                        set(id);
                    }
                }
            }
            _ => self.engine.which(name, |id| {
                set(id);
                false
            }),
        }
    }
}

/// Whether a name has a line feed, which no glob's `*` matches (a byte
/// loop: tool names are short, and `str::contains` costs more to set up).
#[inline]
pub(crate) fn has_lf(name: &str) -> bool {
    name.bytes().any(|b| b == b'\n')
}

/// The tool globs that match a name, as bits by pattern id.
pub(crate) type ToolGlobs = [u64; MAX_TOOL_GLOBS / 64];

/// Whether a mask and a glob result share a bit.
#[inline]
pub(crate) fn any_common(mask: &[u64], bits: &ToolGlobs) -> bool {
    mask.iter().zip(bits.iter()).any(|(m, b)| m & b != 0)
}

#[cfg(test)]
mod tests {
    use super::pieces_match;

    /// Piece-by-piece matching agrees with the glob's regex on every name
    /// of up to 5 characters over a small alphabet (with a 2-byte one).
    #[test]
    fn pieces_match_like_the_glob_regex() {
        let globs = [
            "*", "**", "a*", "*a", "a*b", "a*b*a", "ab*ba", "*ab*", "é*", "*_*_*", "a**b", "*b*",
        ];
        let names: Vec<String> = (0..=5)
            .flat_map(|n| crate::testutil::strings(&["a", "b", "_", "é"], n))
            .collect();
        for g in globs {
            let re =
                regex::Regex::new(&crate::kvlar::glob_regex(g).expect("a glob")).expect("compiles");
            let pieces: Vec<String> = g.split('*').map(str::to_owned).collect();
            let mut hits = 0;
            for n in &names {
                assert_eq!(pieces_match(&pieces, n), re.is_match(n), "{g} {n:?}");
                hits += usize::from(re.is_match(n));
            }
            assert!(hits > 0, "{g} matches some name");
        }
    }
}
