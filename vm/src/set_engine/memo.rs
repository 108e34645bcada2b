//! The patterns of a lazy DFA's match states, remembered between scans.
//!
//! Reporting a match state asks the lazy DFA for its patterns: the cached
//! state's bytes, behind two pointers, decoded one pattern at a time. That
//! was about a hundred instructions and a chain of three loads per match
//! state entered, the largest cost after the scan itself on the postgres
//! policy's `UPDATE … SET … WHERE` call (BENCHMARKS.md, fourteenth session).
//! A scan enters few distinct match states, and mostly the same ones from
//! one call to the next, so their patterns are kept here, next to the cache
//! whose states they describe.
//!
//! A state id names the same state only until its cache is cleared (a clear
//! reuses ids), so the memo belongs to one clear count of one cache, and is
//! emptied when that count moves or the cache is reset.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;

/// Match states remembered (the oldest is replaced when all are taken).
const SLOTS: usize = 8;
/// A match state with more patterns than this is not remembered.
const MAX_PATTERNS: usize = 4;

/// A lazy DFA cache and the memo of its match states (the pooled value).
#[derive(Debug, Clone)]
pub(super) struct ScanCache {
    pub dfa: Cache,
    pub memo: MatchMemo,
}

impl ScanCache {
    pub fn new(dfa: &DFA) -> ScanCache {
        ScanCache {
            dfa: Cache::new(dfa),
            memo: MatchMemo::default(),
        }
    }

    /// Empties the lazy DFA's cache (its clear count back to 0) and the memo.
    pub fn reset(&mut self, dfa: &DFA) {
        self.dfa.reset(dfa);
        self.memo = MatchMemo::default();
    }
}

/// The patterns of up to [`SLOTS`] match states of one cache.
#[derive(Debug, Clone, Default)]
pub(super) struct MatchMemo {
    /// The cache's clear count when the entries were made.
    clears: usize,
    /// Entries in use.
    len: usize,
    /// The entry replaced next once all are in use.
    next: usize,
    ids: [LazyStateID; SLOTS],
    entries: [Entry; SLOTS],
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    len: u8,
    patterns: [u32; MAX_PATTERNS],
}

impl Entry {
    fn patterns(&self) -> &[u32] {
        &self.patterns[..usize::from(self.len).min(MAX_PATTERNS)]
    }
}

impl MatchMemo {
    /// Calls `found` for each pattern of match state `sid` of `cache`;
    /// `true` as soon as it asks to stop.
    #[inline]
    pub fn report(
        &mut self,
        dfa: &DFA,
        cache: &Cache,
        sid: LazyStateID,
        found: &mut impl FnMut(usize) -> bool,
    ) -> bool {
        let entry = match self.get(cache, sid) {
            Some(entry) => entry,
            None => match self.learn(dfa, cache, sid) {
                Some(entry) => entry,
                // Too many patterns to remember: straight from the state.
                None => {
                    return (0..dfa.match_len(cache, sid))
                        .any(|i| found(dfa.match_pattern(cache, sid, i).as_usize()))
                }
            },
        };
        entry.patterns().iter().any(|&p| found(p as usize))
    }

    /// The remembered patterns of `sid`, if it is remembered for the
    /// cache's current clear count.
    #[inline]
    fn get(&self, cache: &Cache, sid: LazyStateID) -> Option<Entry> {
        if self.clears != cache.clear_count() {
            return None;
        }
        let used = &self.ids[..self.len.min(SLOTS)];
        let i = used.iter().position(|&id| id == sid)?;
        self.entries.get(i).copied()
    }

    /// Asks the lazy DFA for the patterns of `sid` and remembers them
    /// (`None`: more than [`MAX_PATTERNS`], not remembered). Entries of an
    /// older clear count are dropped first.
    #[cold]
    #[inline(never)]
    fn learn(&mut self, dfa: &DFA, cache: &Cache, sid: LazyStateID) -> Option<Entry> {
        if self.clears != cache.clear_count() {
            *self = MatchMemo {
                clears: cache.clear_count(),
                ..MatchMemo::default()
            };
        }
        let len = dfa.match_len(cache, sid);
        if len > MAX_PATTERNS {
            return None;
        }
        let mut entry = Entry {
            len: len as u8,
            ..Entry::default()
        };
        for (i, slot) in entry.patterns.iter_mut().enumerate().take(len) {
            *slot = dfa.match_pattern(cache, sid, i).as_u32();
        }
        let i = match self.len < SLOTS {
            true => {
                self.len += 1;
                self.len - 1
            }
            false => {
                let oldest = self.next;
                self.next = (oldest + 1) % SLOTS;
                oldest
            }
        };
        self.ids[i] = sid;
        self.entries[i] = entry;
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::Input;

    /// The match states `text` enters on `dfa`, in order (forward,
    /// overlapping, end of input included).
    fn match_states(dfa: &DFA, cache: &mut Cache, text: &str) -> Vec<LazyStateID> {
        let mut sid = dfa
            .start_state_forward(cache, &Input::new(text))
            .expect("start");
        let mut out = Vec::new();
        for &b in text.as_bytes() {
            sid = dfa.next_state(cache, sid, b).expect("no give-up");
            if sid.is_match() {
                out.push(sid);
            }
        }
        let eoi = dfa.next_eoi_state(cache, sid).expect("no give-up");
        if eoi.is_match() {
            out.push(eoi);
        }
        out
    }

    fn patterns_of(memo: &mut MatchMemo, dfa: &DFA, cache: &Cache, sid: LazyStateID) -> Vec<usize> {
        let mut out = Vec::new();
        memo.report(dfa, cache, sid, &mut |p| {
            out.push(p);
            false
        });
        out
    }

    fn lazy(patterns: &[&str]) -> DFA {
        DFA::builder()
            .configure(DFA::config().match_kind(regex_automata::MatchKind::All))
            .build_many(patterns)
            .expect("compiles")
    }

    /// Remembered or not, a state reports what the lazy DFA says it holds;
    /// a second report of the same state comes from the memo.
    #[test]
    fn remembered_patterns_are_the_states_patterns() {
        let dfa = lazy(&[
            "ab", "b", "[a-c]b", "xyz", "y", "abcdef", "cdef", "def", "ef", "f",
        ]);
        let mut cache = Cache::new(&dfa);
        let mut memo = MatchMemo::default();
        let mut states = 0;
        for text in ["ab", "xyz", "abcdef", "zzabzz", "ccbxyzf"] {
            for sid in match_states(&dfa, &mut cache, text) {
                let want: Vec<usize> = (0..dfa.match_len(&cache, sid))
                    .map(|i| dfa.match_pattern(&cache, sid, i).as_usize())
                    .collect();
                assert!(!want.is_empty());
                assert_eq!(patterns_of(&mut memo, &dfa, &cache, sid), want, "{text:?}");
                let held = memo.ids[..memo.len].contains(&sid);
                assert_eq!(held, want.len() <= MAX_PATTERNS, "{text:?} {want:?}");
                assert_eq!(patterns_of(&mut memo, &dfa, &cache, sid), want, "{text:?}");
                states += 1;
            }
        }
        // `abcdef` ends in a state with five patterns: reported, not held.
        assert!(states >= 10, "{states}");
        assert_eq!(memo.len, SLOTS, "more states than slots were seen");
    }

    /// `found` asking to stop stops the report, remembered or not.
    #[test]
    fn a_report_stops_when_asked() {
        let dfa = lazy(&["a", "[ab]", "."]);
        let mut cache = Cache::new(&dfa);
        let mut memo = MatchMemo::default();
        let sid = match_states(&dfa, &mut cache, "a")[0];
        for _ in 0..2 {
            let mut seen = Vec::new();
            let stopped = memo.report(&dfa, &cache, sid, &mut |p| {
                seen.push(p);
                true
            });
            assert!(stopped);
            assert_eq!(seen, vec![0]);
        }
    }

    /// After the cache is cleared, an id that was a match state names
    /// another state: the memo forgets what it held.
    #[test]
    fn a_cleared_cache_empties_the_memo() {
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(regex_automata::MatchKind::All)
                    .cache_capacity(0)
                    .skip_cache_capacity_check(true),
            )
            .build_many(&["a", "b"])
            .expect("compiles");
        let mut cache = Cache::new(&dfa);
        let mut memo = MatchMemo::default();
        let sid = match_states(&dfa, &mut cache, "a")[0];
        assert_eq!(patterns_of(&mut memo, &dfa, &cache, sid), vec![0]);
        assert_eq!(memo.len, 1);
        // A tiny cache clears on (nearly) every new state.
        let before = cache.clear_count();
        let b = match_states(&dfa, &mut cache, "zzzb");
        assert!(cache.clear_count() > before, "cleared");
        assert_eq!(patterns_of(&mut memo, &dfa, &cache, b[0]), vec![1]);
        assert_eq!((memo.len, memo.clears), (1, cache.clear_count()));
        assert_eq!(memo.ids[0], b[0]);
    }
}
