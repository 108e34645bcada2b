//! A compiled policy program: constant pool, code chunks, rule and policy
//! tables, and debug information. A `Program` can only be obtained through
//! [`Program::new`] or [`Program::from_bytes`], both of which verify it, so
//! every `Program` in memory is safe to run.

use regex::Regex;
use serde_json::Value;

use crate::format;
use crate::set_engine::SetEngine;
use crate::verify::{self, VerifyError};
use crate::Effect;

/// How many registers a program may use at most.
pub const MAX_REGS: usize = 32;

/// One segment of an argument path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(u64),
}

/// A name matcher (tool, agent or action-type pattern).
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Exact, case-sensitive comparison.
    Exact(String),
    /// Whole-string match against a glob compiled to a regex (`glob` is the
    /// pattern as written, `re` its anchored regex).
    Glob { glob: String, re: Regex },
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Matcher::Exact(a), Matcher::Exact(b)) => a == b,
            (Matcher::Glob { glob: a, re: ra }, Matcher::Glob { glob: b, re: rb }) => {
                a == b && ra.as_str() == rb.as_str()
            }
            _ => false,
        }
    }
}

/// A constant-pool entry.
#[derive(Debug, Clone)]
pub enum Const {
    /// A string (argument names for Kvlar criteria).
    Str(String),
    /// A JSON value (literals, Kvlar condition values).
    Json(Value),
    /// A compiled regex and its source.
    Regex(Regex),
    /// An argument path.
    Path(Vec<PathSeg>),
    /// A list of name matchers (any may match).
    Matchers(Vec<Matcher>),
    /// The tool-name dispatch table of the entry chunk.
    Dispatch(Dispatch),
    /// Several regexes over one subject, run as one multi-pattern pass.
    RegexSet(RegexSet),
}

/// How many regex sets one program may have (each has a slot in the per-call cache).
pub const MAX_SETS: usize = 8;
/// How many patterns one regex set may hold.
pub const MAX_SET_PATTERNS: usize = 2048;
/// How many patterns all the regex sets of a program may hold together (the
/// per-call result bits).
pub const MAX_TOTAL_SET_PATTERNS: usize = 4096;

/// What a regex set reads from the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetSubject {
    /// A Kvlar `conditions[].field` (`matches`): missing → no test holds;
    /// a non-string value is tested as `""`.
    KvField(String),
    /// A Kvlar `parameters` key: missing → no test holds; a non-string value
    /// is tested as its compact JSON text.
    KvParam(String),
    /// A native argument path (`=~`, `!~`): not a string → no test holds.
    Args(Vec<PathSeg>),
}

/// All the regexes of a program that test one subject, compiled into one
/// multi-pattern automaton that reports, in one pass over the text, which of
/// them match. Evaluated at most once per call, when a rule first needs it.
#[derive(Debug, Clone)]
pub struct RegexSet {
    /// Slot in the per-call cache (< [`MAX_SETS`]).
    pub slot: u8,
    pub subject: SetSubject,
    /// Pattern sources, in pattern-id order.
    pub patterns: Vec<String>,
    pub(crate) engine: std::sync::Arc<SetEngine>,
    /// Where the set's result bits start in the per-call bit array (the
    /// pattern counts of the lower slots, summed; set by `Program::new`).
    pub(crate) base: u16,
    /// The set's twin, if another set reads the same argument (see
    /// [`Twin`]; derived by `Program::new`).
    pub(crate) twin: Option<std::sync::Arc<Twin>>,
}

/// A Kvlar `conditions` set and a `parameters` set on the same top-level
/// key (`field: command` and `parameters: {command: …}`, as curated
/// policies mix them) read the same text whenever the argument is a string:
/// their patterns then run as one pass, which fills both sets' bits. When
/// the argument is absent or not a string, the two read different things
/// (nothing, `""`, the JSON text) and each set runs on its own.
#[derive(Debug)]
pub(crate) struct Twin {
    /// The argument both sets read.
    pub key: String,
    /// Both sets' patterns, `first`'s then `second`'s.
    pub engine: SetEngine,
    pub first: TwinPart,
    pub second: TwinPart,
}

/// Where one set of a [`Twin`] keeps its results.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TwinPart {
    pub slot: u8,
    pub base: u16,
    pub count: u16,
}

impl RegexSet {
    /// Builds the automaton; `None` if the patterns do not compile together.
    pub fn new(slot: u8, subject: SetSubject, patterns: Vec<String>) -> Option<RegexSet> {
        let engine = std::sync::Arc::new(SetEngine::new(&patterns)?);
        Some(RegexSet {
            slot,
            subject,
            patterns,
            engine,
            base: 0,
            twin: None,
        })
    }
}

/// Pairs each Kvlar `conditions` set with the `parameters` set of the same
/// top-level key, if any, and gives both their [`Twin`].
fn pair_twins(consts: &mut [Const]) {
    let mut pairs = Vec::new();
    for (i, c) in consts.iter().enumerate() {
        let Const::RegexSet(a) = c else { continue };
        let SetSubject::KvField(key) = &a.subject else {
            continue;
        };
        let other = consts.iter().position(
            |c| matches!(c, Const::RegexSet(b) if b.subject == SetSubject::KvParam(key.clone())),
        );
        if let Some(j) = other {
            pairs.push((i, j));
        }
    }
    for (i, j) in pairs {
        let (Some(Const::RegexSet(a)), Some(Const::RegexSet(b))) = (consts.get(i), consts.get(j))
        else {
            continue;
        };
        let SetSubject::KvField(key) = &a.subject else {
            continue;
        };
        if a.patterns.len() + b.patterns.len() > MAX_SET_PATTERNS {
            continue;
        }
        let both: Vec<String> = a.patterns.iter().chain(&b.patterns).cloned().collect();
        let Some(engine) = SetEngine::new(&both) else {
            continue;
        };
        let part = |s: &RegexSet| TwinPart {
            slot: s.slot,
            base: s.base,
            count: s.patterns.len() as u16,
        };
        let twin = std::sync::Arc::new(Twin {
            key: key.clone(),
            engine,
            first: part(a),
            second: part(b),
        });
        for k in [i, j] {
            if let Some(Const::RegexSet(s)) = consts.get_mut(k) {
                s.twin = Some(twin.clone());
            }
        }
    }
}

/// A dispatch list and its run table.
pub(crate) type SelectedList<'a> = (&'a [(u32, Step)], Option<&'a crate::fast::ListRuns>);

/// One step of a dispatch list: run a rule's chunk from `pc` (and let the
/// rule decide if it returns true), or a policy's `default_outcome: allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Lists pair each step with its position in first-match order: rule `r` is
/// `2r`, a policy's default after its last rule `r` is `2r + 1`.
pub enum Step {
    Rule { rule: u16, chunk: u16, pc: u32 },
    DefaultAllow { policy: u16 },
}

/// Tool-name dispatch: which rules can apply to a call, in first-match order.
///
/// A call whose tool is one of `names` runs the merge (by order key) of that
/// name's list — the rules whose tool patterns match the name, entered past
/// their tool test — and `generic_known` (rules with no tool pattern,
/// defaults). Any other tool runs `generic_unknown` (rules with no tool
/// pattern, rules with glob patterns — their tool test runs —, defaults).
#[derive(Debug, Clone, Default)]
pub struct Dispatch {
    /// Known tool names and the index of their list in `lists`, sorted by name.
    pub names: Vec<(String, u32)>,
    pub lists: Vec<Vec<(u32, Step)>>,
    pub generic_known: Vec<(u32, Step)>,
    pub generic_unknown: Vec<(u32, Step)>,
    /// The lookup of `names` (built from them, not serialised).
    pub(crate) index: Box<NameIndex>,
    /// Runs of fast rules in each list (`lists`, then `generic_known`, then
    /// `generic_unknown`); derived by `Program::new`, not serialised.
    pub(crate) runs: Vec<crate::fast::ListRuns>,
}

impl Dispatch {
    pub fn new(
        names: Vec<(String, u32)>,
        lists: Vec<Vec<(u32, Step)>>,
        generic_known: Vec<(u32, Step)>,
        generic_unknown: Vec<(u32, Step)>,
    ) -> Self {
        let index = Box::new(NameIndex::new(&names));
        Dispatch {
            names,
            lists,
            generic_known,
            generic_unknown,
            index,
            runs: Vec::new(),
        }
    }

    /// `tool`'s entry, if the table knows the name.
    #[inline(always)]
    pub(crate) fn lookup(&self, tool: &str) -> Option<Known> {
        self.index.lookup(tool)
    }

    /// The two lists to merge for a tool name, with their run tables (the
    /// tables are empty until `Program::new` derives them).
    #[inline(always)]
    pub(crate) fn select(&self, tool: &str) -> (SelectedList<'_>, SelectedList<'_>) {
        self.lists_of(self.lookup(tool).map(|k| k.list))
    }

    /// The two lists to merge for a known list (`lookup`) or an unknown tool.
    #[inline(always)]
    pub(crate) fn lists_of(&self, known: Option<u32>) -> (SelectedList<'_>, SelectedList<'_>) {
        let no_runs = |i: usize| self.runs.get(i);
        let n = self.lists.len();
        match known {
            Some(i) => (
                (
                    self.lists.get(i as usize).map_or(&[][..], |l| &l[..]),
                    no_runs(i as usize),
                ),
                (&self.generic_known, no_runs(n)),
            ),
            None => ((&[], None), (&self.generic_unknown, no_runs(n + 1))),
        }
    }

    pub fn all_steps(&self) -> impl Iterator<Item = &(u32, Step)> {
        self.lists
            .iter()
            .flatten()
            .chain(&self.generic_known)
            .chain(&self.generic_unknown)
    }
}

/// The known tool names of a dispatch table, for lookups: a one-probe
/// filter (most unknown tools are told apart without hashing the name),
/// the names of up to 16 bytes in `short` (see `short_names`), and for
/// longer ones a name's 64-bit hash → its `Known` and its bytes in `arena`,
/// with `spill` for a name whose hash equals an earlier name's.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameIndex {
    pub filter: NameFilter,
    /// The names of up to 16 bytes.
    pub short: crate::short_names::ShortNames,
    /// The longer names, by hash.
    pub index: std::collections::HashMap<u64, Slot, HashIsKey>,
    pub spill: rustc_hash::FxHashMap<Box<str>, Known>,
    arena: String,
}

impl NameIndex {
    fn new(names: &[(String, u32)]) -> Self {
        let known = |list: u32| Known {
            list,
            immediate: crate::fast::NO_RULE,
            plan: 0,
        };
        let (short, long): (Vec<_>, Vec<_>) = names
            .iter()
            .partition(|(n, _)| n.len() <= crate::short_names::MAX_LEN);
        let mut out = NameIndex {
            short: crate::short_names::ShortNames::new(
                short.iter().map(|(n, list)| (n.as_str(), known(*list))),
            ),
            ..NameIndex::default()
        };
        for (n, _) in names {
            out.filter.insert(n);
        }
        for (n, list) in long {
            let known = known(*list);
            match out.index.entry(name_hash(n)) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Slot {
                        known,
                        start: out.arena.len() as u32,
                        len: n.len() as u32,
                    });
                    out.arena.push_str(n);
                }
                std::collections::hash_map::Entry::Occupied(_) => {
                    out.spill.insert(n.clone().into_boxed_str(), known);
                }
            }
        }
        out
    }

    /// `tool`'s entry, if it is a known name.
    #[inline(always)]
    pub(crate) fn lookup(&self, tool: &str) -> Option<Known> {
        match self.filter.may_contain(tool) {
            true => self.lookup_unfiltered(tool),
            false => None,
        }
    }

    /// [`NameIndex::lookup`] for a name the filter has let through.
    #[inline(always)]
    pub(crate) fn lookup_unfiltered(&self, tool: &str) -> Option<Known> {
        if tool.len() <= crate::short_names::MAX_LEN {
            return self.short.get(tool);
        }
        if let Some(slot) = self.index.get(&name_hash(tool)) {
            let name = self
                .arena
                .as_bytes()
                .get(slot.start as usize..(slot.start + slot.len) as usize);
            if name == Some(tool.as_bytes()) {
                return Some(slot.known);
            }
        }
        match self.spill.is_empty() {
            true => None,
            false => self.spill.get(tool).copied(),
        }
    }

    /// Every name's entry.
    pub(crate) fn known(&self) -> impl Iterator<Item = &Known> {
        self.short
            .known()
            .chain(self.index.values().map(|s| &s.known))
            .chain(self.spill.values())
    }

    /// Records, per known list, the rule that decides at once (see
    /// [`Known::immediate`]).
    pub(crate) fn set_immediate(&mut self, per_list: &[u16]) {
        self.each_known_mut(|k| {
            k.immediate = per_list
                .get(k.list as usize)
                .copied()
                .unwrap_or(crate::fast::NO_RULE);
        });
    }

    /// Records, per known list, its one-pass plan (see [`Known::plan`]).
    pub(crate) fn set_plans(&mut self, per_list: &[u16]) {
        self.each_known_mut(|k| k.plan = per_list.get(k.list as usize).copied().unwrap_or(0));
    }

    fn each_known_mut(&mut self, mut f: impl FnMut(&mut Known)) {
        self.short
            .known_mut()
            .chain(self.index.values_mut().map(|s| &mut s.known))
            .chain(self.spill.values_mut())
            .for_each(&mut f);
    }
}

/// A known tool name's entry: its list, and the rule that decides any call
/// of that tool at once, if its first step in first-match order has no
/// condition left ([`crate::fast::NO_RULE`] if not; set by `Program::new`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Known {
    pub list: u32,
    pub immediate: u16,
    /// 1 + the index of the list's one-pass plan in the entry's plans, or
    /// 0 for none (set by `Program::new` in the entry's copy of the index;
    /// it fills the struct's padding).
    pub plan: u16,
}

/// An `index` entry: the name's `Known` and where its bytes are in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    known: Known,
    start: u32,
    len: u32,
}

/// The `index` keys are already hashes: used as they are.
pub(crate) type HashIsKey = std::hash::BuildHasherDefault<KeyHasher>;

/// Hashes a `u64` to itself (only ever given `name_hash` values).
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The dispatch hash of a tool name.
#[inline(always)]
pub(crate) fn name_hash(name: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(name)
}

/// A 1,024-bit filter keyed by a name's length, first and last byte: a
/// name whose bit is clear is not in the set (no false negatives); a set bit
/// only means "look it up".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameFilter([u64; 16]);

impl NameFilter {
    #[inline]
    fn bit(name: &str) -> usize {
        let b = name.as_bytes();
        let (first, last) = (
            b.first().copied().unwrap_or(0),
            b.last().copied().unwrap_or(0),
        );
        let h = (b.len() as u32) << 5 ^ u32::from(first) ^ u32::from(last).rotate_left(3);
        h as usize % 1024
    }

    pub(crate) fn insert(&mut self, name: &str) {
        let b = Self::bit(name);
        if let Some(w) = self.0.get_mut(b / 64) {
            *w |= 1 << (b % 64);
        }
    }

    #[inline]
    pub(crate) fn may_contain(&self, name: &str) -> bool {
        let b = Self::bit(name);
        self.0.get(b / 64).is_some_and(|w| w & (1 << (b % 64)) != 0)
    }
}

impl Const {
    pub fn kind(&self) -> &'static str {
        match self {
            Const::Str(_) => "str",
            Const::Json(_) => "json",
            Const::Regex(_) => "regex",
            Const::Path(_) => "path",
            Const::Matchers(_) => "matchers",
            Const::Dispatch(_) => "dispatch",
            Const::RegexSet(_) => "regex set",
        }
    }
}

/// A code chunk. Chunk 0 is the entry point; the others are quantifier
/// bodies, entered only from a chunk with a smaller index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub code: Vec<u8>,
}

/// A rule: what it decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    pub id: String,
    pub effect: Effect,
    pub reason: Option<String>,
    /// Index of the policy the rule was written in (after `extends`, the policy that loaded it).
    pub policy: u16,
}

/// A policy: its name and whether it ends with `default_outcome: allow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    pub name: String,
    pub default_allow: bool,
}

/// Where an instruction came from, for `explain` and the disassembler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugEntry {
    pub chunk: u16,
    pub pc: u32,
    /// The rule the instruction belongs to.
    pub rule: u16,
    /// Human label of the test (the source text of the predicate).
    pub label: String,
    /// Source file index (into [`Program::source_names`]) and byte range.
    pub span: Option<(u16, u32, u32)>,
}

/// The parts a compiler hands over; [`Program::new`] verifies them.
#[derive(Debug, Clone, Default)]
pub struct ProgramParts {
    pub consts: Vec<Const>,
    pub chunks: Vec<Chunk>,
    pub nregs: u8,
    pub rules: Vec<RuleInfo>,
    pub policies: Vec<PolicyInfo>,
    pub debug: Vec<DebugEntry>,
    pub source_names: Vec<String>,
}

/// See [`Program::fast_summary`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastSummary {
    pub inline_rules: usize,
    pub runs: usize,
    pub run_steps: usize,
    /// The entry chunk is only the dispatch: lists are selected before any
    /// per-call state is built, and a tool no rule can apply to is decided
    /// at once.
    pub entry_shortcut: bool,
    /// Known tools whose every call is decided by the dispatch lookup alone
    /// (their first rule has no condition left).
    pub immediate_tools: usize,
    /// Pairs of regex sets (a Kvlar `conditions` field and the `parameters`
    /// key of the same name) scanned in one pass when the argument is a
    /// string.
    pub twin_sets: usize,
    /// A tool the dispatch table does not know is decided by the entry's
    /// end at once when none of the tool globs the rules for unknown tools
    /// need matches it (every one of those rules needs a glob).
    pub unknown_glob_gate: bool,
    /// Known tool names decided by one regex pass over one string argument
    /// without the interpreter's frame (their list has a one-pass plan; see
    /// `plan.rs`).
    pub plans: usize,
}

/// A verified, runnable program.
#[derive(Debug, Clone)]
pub struct Program {
    pub(crate) consts: Vec<Const>,
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) nregs: u8,
    pub(crate) rules: Vec<RuleInfo>,
    /// Per rule: its effect, id and reason, what a [`crate::Decision`]
    /// points at (derived on load).
    pub(crate) verdicts: Vec<crate::decision::Verdict>,
    pub(crate) policies: Vec<PolicyInfo>,
    pub(crate) debug: Vec<DebugEntry>,
    pub(crate) source_names: Vec<String>,
    pub(crate) hash: [u8; 32],
    /// Per rule: its fast forms at the dispatch entry points (derived from
    /// the verified code on load, never serialised).
    pub(crate) fast: Vec<crate::fast::FastRule>,
    /// All glob name patterns in one automaton (derived on load).
    pub(crate) globs: Option<crate::fast::GlobIndex>,
    /// The entry chunk's shape, when it is only the dispatch (derived on load).
    pub(crate) entry: Option<crate::fast::Entry>,
    /// The patterns of all regex sets (the per-call result bits needed).
    pub(crate) set_patterns: usize,
    /// Tool names the dispatch table does not know, with the rules each can
    /// meet, resolved on first use (filled while running, never serialised).
    pub(crate) unknown_names: crate::names_cache::NameCache,
}

impl Program {
    /// Verifies `parts` and builds the program (computing its content hash).
    pub fn new(parts: ProgramParts) -> Result<Program, VerifyError> {
        let mut program = Program {
            consts: parts.consts,
            chunks: parts.chunks,
            nregs: parts.nregs,
            verdicts: parts
                .rules
                .iter()
                .map(|r| crate::decision::Verdict::owned(r.effect, r.id.clone(), r.reason.clone()))
                .collect(),
            rules: parts.rules,
            policies: parts.policies,
            debug: parts.debug,
            source_names: parts.source_names,
            hash: [0; 32],
            fast: Vec::new(),
            globs: None,
            entry: None,
            set_patterns: 0,
            unknown_names: Default::default(),
        };
        verify::verify(&program)?;
        program.hash = format::content_hash(&program);
        program.fast = crate::fast::derive(&program.consts, &program.chunks, program.rules.len());
        program.globs = crate::fast::GlobIndex::build(&program.consts);
        for c in &mut program.consts {
            if let Const::Dispatch(d) = c {
                let per_list = crate::fast::immediates(d, &program.fast);
                d.index.set_immediate(&per_list);
            }
        }
        program.entry = crate::fast::entry(
            &program.chunks,
            &program.consts,
            &program.fast,
            program.globs.as_ref(),
        );
        // Result bits of the sets, slot by slot (verified: distinct slots,
        // at most MAX_TOTAL_SET_PATTERNS patterns in all).
        let mut sizes = [0usize; MAX_SETS];
        for c in &program.consts {
            if let Const::RegexSet(rs) = c {
                sizes[rs.slot as usize % MAX_SETS] = rs.patterns.len();
            }
        }
        for c in &mut program.consts {
            if let Const::RegexSet(rs) = c {
                let base: usize = sizes[..rs.slot as usize % MAX_SETS].iter().sum();
                rs.base = base as u16;
            }
        }
        program.set_patterns = sizes.iter().sum();
        pair_twins(&mut program.consts);
        let mut tables = Vec::new();
        for (i, c) in program.consts.iter().enumerate() {
            if let Const::Dispatch(d) = c {
                let lists = d.lists.iter().chain([&d.generic_known, &d.generic_unknown]);
                let runs = lists
                    .map(|l| crate::fast::runs(l, &program.fast, &program.consts))
                    .collect::<Vec<_>>();
                tables.push((i, runs));
            }
        }
        for (i, runs) in tables {
            if let Some(Const::Dispatch(d)) = program.consts.get_mut(i) {
                d.runs = runs;
            }
        }
        if let Some(entry) = &mut program.entry {
            if let Some(Const::Dispatch(d)) = program.consts.get(entry.table as usize) {
                let (plans, per_list) = crate::plan::plans(d, &program.consts);
                entry.plans = plans;
                entry.names.set_plans(&per_list);
            }
        }
        Ok(program)
    }

    pub fn consts(&self) -> &[Const] {
        &self.consts
    }
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }
    pub fn nregs(&self) -> u8 {
        self.nregs
    }
    pub fn rules(&self) -> &[RuleInfo] {
        &self.rules
    }
    pub fn policies(&self) -> &[PolicyInfo] {
        &self.policies
    }
    pub fn debug(&self) -> &[DebugEntry] {
        &self.debug
    }
    pub fn source_names(&self) -> &[String] {
        &self.source_names
    }
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }
    /// SHA-256 of the serialised program body.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }
    /// The content hash as lowercase hex.
    pub fn hash_hex(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }
    /// Total bytecode size over all chunks.
    pub fn code_size(&self) -> usize {
        self.chunks.iter().map(|c| c.code.len()).sum()
    }
    /// How the interpreter's fast paths cover the program: rules with an
    /// inline form at some dispatch entry, bit runs, and the steps in them.
    pub fn fast_summary(&self) -> FastSummary {
        let mut out = FastSummary {
            entry_shortcut: self.entry.is_some(),
            unknown_glob_gate: self
                .entry
                .as_ref()
                .is_some_and(|e| e.unknown_globs.is_some()),
            twin_sets: self
                .consts
                .iter()
                .filter(|c| matches!(c, Const::RegexSet(rs) if rs.twin.is_some()))
                .count()
                / 2,
            inline_rules: self
                .fast
                .iter()
                .filter(|f| f.top.is_some() || f.past.is_some())
                .count(),
            plans: self
                .entry
                .as_ref()
                .map_or(0, |e| e.names.known().filter(|k| k.plan != 0).count()),
            ..FastSummary::default()
        };
        for c in &self.consts {
            if let Const::Dispatch(d) = c {
                for list in &d.runs {
                    out.runs += list.runs.len();
                    out.run_steps += list.runs.iter().map(|r| r.rules.len()).sum::<usize>();
                }
                out.immediate_tools += d
                    .index
                    .known()
                    .filter(|k| k.immediate != crate::fast::NO_RULE)
                    .count();
            }
        }
        out
    }

    /// How many tool names the dispatch table does not know have been given
    /// a list of their own since the program was built (on their first
    /// call; at most 64, see `names_cache`).
    pub fn resolved_tools(&self) -> usize {
        self.unknown_names.len()
    }

    /// How many of those resolved names' lists have a one-pass plan (see
    /// [`FastSummary::plans`] for the names the table knows).
    pub fn resolved_plans(&self) -> usize {
        self.unknown_names.plans()
    }

    /// The debug entry of an instruction, if any.
    pub fn debug_at(&self, chunk: u16, pc: usize) -> Option<&DebugEntry> {
        self.debug
            .iter()
            .find(|d| d.chunk == chunk && d.pc as usize == pc)
    }
}

#[cfg(test)]
mod dispatch_tests {
    use super::*;

    fn table(names: &[&str]) -> Dispatch {
        let names: Vec<(String, u32)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i as u32))
            .collect();
        let lists = vec![Vec::new(); names.len()];
        Dispatch::new(names, lists, Vec::new(), Vec::new())
    }

    #[test]
    fn lookup_finds_every_name_and_nothing_else() {
        let names: Vec<String> = (0..2000).map(|i| format!("tool_{i}")).collect();
        let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        let d = table(&refs);
        for (i, n) in names.iter().enumerate() {
            assert!(
                d.index.filter.may_contain(n),
                "{n}: the filter has no false negative"
            );
            assert_eq!(d.lookup(n).map(|k| k.list), Some(i as u32), "{n}");
        }
        for n in [
            "",
            "t",
            "tool_",
            "tool_2000",
            "tool_01",
            "Tool_1",
            "tool_1 ",
        ] {
            assert_eq!(d.lookup(n), None, "{n:?}");
        }
    }

    #[test]
    fn names_whose_hashes_collide_are_found_in_the_spill() {
        // Names over 16 bytes go to the hash index (shorter ones to
        // `short_names`).
        let [alpha, beta, gamma] =
            ["alpha", "beta", "gamma"].map(|n| format!("{n}-long-tool-name"));
        let mut d = table(&[&alpha, &beta, &gamma, "short"]);
        assert!(d.index.short.get(&beta).is_none());
        // Move `beta` to the spill, as a hash collision would.
        let h = name_hash(&beta);
        let slot = d.index.index.remove(&h).expect("indexed");
        d.index
            .spill
            .insert(beta.clone().into_boxed_str(), slot.known);
        assert_eq!(d.lookup(&beta).map(|k| k.list), Some(1));
        assert_eq!(d.lookup(&alpha).map(|k| k.list), Some(0));
        assert_eq!(d.lookup("beta-long-tool-namf"), None);
        assert_eq!(d.lookup("short").map(|k| k.list), Some(3));
        d.index.set_immediate(&[7, 8, 9, 10]);
        assert_eq!(d.lookup(&beta).map(|k| k.immediate), Some(8));
        assert_eq!(d.lookup(&gamma).map(|k| k.immediate), Some(9));
        assert_eq!(d.lookup("short").map(|k| k.immediate), Some(10));
    }
}
