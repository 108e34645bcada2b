//! The engine of a regex set: which of its patterns match somewhere in a
//! text, written straight into the call's result bits.
//!
//! `meta::Regex::which_overlapping_matches` reports into a `PatternSet`, a
//! flag per pattern that has to be walked and cleared after every call; for
//! a 15-byte shell command that bookkeeping cost about as much as the scan
//! itself. The set's own lazy DFA, searched the way the meta engine searches
//! it (overlapping, every match kind), reports each match's pattern as it is
//! found, so the bits are set directly and nothing is left to clear.
//!
//! The lazy DFA gives up on some texts: a non-ASCII byte when a pattern has
//! a Unicode `\b`, or a cache thrashed by a huge text. The meta engine then
//! runs the same patterns (its own lazy DFA, then its PikeVM), so every text
//! gets the meta engine's answer.

mod memo;
mod scan;

use regex_automata::hybrid::dfa::DFA;
use regex_automata::meta;
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::util::pool::Pool;
use regex_automata::util::prefilter::Prefilter;
use regex_automata::{Input, MatchKind, PatternSet};

use memo::ScanCache;

type CacheFn =
    Box<dyn Fn() -> ScanCache + Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>;

/// A compiled multi-pattern set (every match reported).
pub(crate) struct SetEngine {
    /// Decides every text the lazy DFA gives up on.
    pub meta: meta::Regex,
    /// Short literals every match starts with (see `prefilter`), if the
    /// patterns have them: a text with none of them matches no pattern.
    pub prefilter: Option<Prefilter>,
    /// The fast path, if the patterns build one.
    lazy: Option<Lazy>,
}

/// The lazy DFA of a set, its caches, and how to scan with it (see
/// [`scan::scan_lazy`]).
struct Lazy {
    dfa: DFA,
    pool: Pool<ScanCache, CacheFn>,
    /// The patterns can match the empty string and the automaton works on
    /// UTF-8 (what regex-automata's own search checks): an empty match may
    /// then end inside a multi-byte character (`(?-u:\B)` between its
    /// bytes), and such a match does not count.
    utf8empty: bool,
    /// Texts this long or longer are scanned in two halves at once
    /// ([`scan::SPLIT_MIN`]; tests split shorter texts).
    split_min: usize,
}

impl std::fmt::Debug for SetEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetEngine")
            .field("patterns", &self.meta.pattern_len())
            .field("prefilter", &self.prefilter.is_some())
            .field("lazy", &self.lazy.is_some())
            .finish()
    }
}

impl SetEngine {
    /// Compiles `patterns`; `None` if they do not compile.
    pub fn new(patterns: &[String]) -> Option<SetEngine> {
        Self::build(patterns, None, scan::SPLIT_MIN)
    }

    /// [`SetEngine::new`] with the lazy DFA's cache capacity in bytes
    /// (`None`: regex-automata's default, 2 MiB), and the text length from
    /// which scans split.
    fn build(
        patterns: &[String],
        cache_capacity: Option<usize>,
        split_min: usize,
    ) -> Option<SetEngine> {
        let prefilter = crate::prefilter::for_set(patterns);
        let config = meta::Regex::config()
            .match_kind(MatchKind::All)
            .prefilter(prefilter.clone());
        let meta = meta::Regex::builder()
            .configure(config)
            .build_many(patterns)
            .ok()?;
        // The same syntax, match kind and give-up rule (a cache cleared 3
        // times with under 10 bytes searched per state) as the meta
        // engine's lazy DFA. (Our scan counts every byte it searched; the
        // library's overlapping search drops one per match, so it gives up
        // a little sooner on texts full of matches. The answers agree.)
        let mut dfa_config = DFA::config()
            .match_kind(MatchKind::All)
            .unicode_word_boundary(true)
            .minimum_cache_clear_count(Some(3))
            .minimum_bytes_per_state(Some(10));
        if let Some(bytes) = cache_capacity {
            dfa_config = dfa_config
                .cache_capacity(bytes)
                .skip_cache_capacity_check(true);
        }
        let lazy = DFA::builder()
            .configure(dfa_config)
            .thompson(thompson::Config::new().which_captures(WhichCaptures::None))
            .build_many(patterns)
            .ok()
            .map(|dfa| {
                let owned = dfa.clone();
                let create: CacheFn = Box::new(move || ScanCache::new(&owned));
                let utf8empty = dfa.get_nfa().has_empty() && dfa.get_nfa().is_utf8();
                Lazy {
                    dfa,
                    pool: Pool::new(create),
                    utf8empty,
                    split_min,
                }
            });
        Some(SetEngine {
            meta,
            prefilter,
            lazy,
        })
    }

    /// Whether no pattern can match `text` (the prefilter finds no
    /// candidate start). `false` says nothing.
    #[inline]
    pub fn surely_none(&self, text: &str) -> bool {
        // The engine itself may not use its prefilter (`\b`, `\A`).
        self.prefilter.as_ref().is_some_and(|pre| {
            let span = regex_automata::Span::from(0..text.len());
            pre.find(text.as_bytes(), span).is_none()
        })
    }

    /// Calls `found(p)` for every pattern `p` that matches somewhere in
    /// `text` (a pattern may be reported more than once); stops early once
    /// `found` returns `true` ("every pattern is known").
    pub fn which(&self, text: &str, mut found: impl FnMut(usize) -> bool) {
        if self.lazy_which(text, &mut found) {
            return;
        }
        // Given up (or never built): the meta engine decides. What was
        // reported so far were true matches; reporting them again is harmless.
        let input = Input::new(text);
        crate::eval::with_pattern_set(self.meta.pattern_len(), |ps: &mut PatternSet| {
            self.meta.which_overlapping_matches(&input, ps);
            for pid in ps.iter() {
                if found(pid.as_usize()) {
                    break;
                }
            }
        })
    }

    /// `which` on the lazy DFA alone: `false` if it gave up (or was never
    /// built) before the end of the text.
    ///
    /// The search loop is the lazy DFA's overlapping forward search, written
    /// out: one transition per byte, and the state's tag (unknown, match,
    /// dead, quit) tested only after the load. regex-automata's own
    /// overlapping loop returns to its caller at every match and records its
    /// progress on every byte; on a stretch without matches both run at the
    /// same rate (one dependent load per byte, BENCHMARKS.md), so the gain is
    /// in the per-match and per-call work.
    fn lazy_which(&self, text: &str, found: &mut impl FnMut(usize) -> bool) -> bool {
        let Some(Lazy {
            dfa,
            pool,
            utf8empty,
            split_min,
        }) = &self.lazy
        else {
            return false;
        };
        let mut cache = pool.get();
        match scan::scan_lazy(dfa, &mut cache, *utf8empty, *split_min, text, found) {
            Ok(done) => done,
            Err(gave_up) => {
                // A thrashed cache keeps its clear count: without a reset,
                // every later text that fills it would give up at once. (A
                // non-ASCII byte under a Unicode `\b` leaves it sound.)
                if gave_up {
                    cache.reset(dfa);
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn which(e: &SetEngine, text: &str) -> Vec<usize> {
        let mut out = Vec::new();
        e.which(text, |p| {
            out.push(p);
            false
        });
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Both paths report exactly the patterns the meta engine reports, over
    /// every text of up to 4 pieces, ASCII and not.
    #[test]
    fn both_paths_agree_with_the_meta_engine() {
        let p = pats(&[
            "\\bdrop\\b",
            "(?i)\\bdel",
            "^\\s*ls\\b",
            "ab+c$",
            "(?s)x.*y",
            "é",
            "\\w+",
            "",
        ]);
        let e = SetEngine::new(&p).expect("compiles");
        let alphabet = ["drop", "DEL", " ", "ls", "ab", "c", "x", "y", "é", "\n"];
        let (mut lazy_done, mut gave_up) = (0, 0);
        for t in crate::testutil::strings(&alphabet, 4) {
            let mut want: Vec<usize> = Vec::new();
            let mut ps = PatternSet::new(p.len());
            e.meta.which_overlapping_matches(&Input::new(&t), &mut ps);
            want.extend(ps.iter().map(|p| p.as_usize()));
            assert_eq!(which(&e, &t), want, "{t:?}");
            let mut lazy = Vec::new();
            if e.lazy_which(&t, &mut |p| {
                lazy.push(p);
                false
            }) {
                lazy.sort_unstable();
                lazy.dedup();
                assert_eq!(lazy, want, "{t:?}");
                lazy_done += 1;
            } else {
                gave_up += 1;
            }
        }
        // The lazy DFA decides ASCII texts and gives up on `é` (Unicode `\b`).
        assert!(
            lazy_done > 5000 && gave_up > 1000,
            "{lazy_done} / {gave_up}"
        );
        assert!(!e.lazy_which("é drop", &mut |_| false));
        assert!(e.lazy_which("e drop", &mut |_| false));
    }

    /// `n` pseudo-random `a`s and `b`s (xorshift from state `x`).
    fn ab_text(x: &mut u32, n: usize) -> String {
        (0..n)
            .map(|_| {
                *x ^= *x << 13;
                *x ^= *x >> 17;
                *x ^= *x << 5;
                if *x & 1 == 0 {
                    'a'
                } else {
                    'b'
                }
            })
            .collect()
    }

    /// `found` returning `true` stops the search.
    #[test]
    fn the_search_stops_when_asked() {
        let e = SetEngine::new(&pats(&["a", "b"])).expect("compiles");
        let mut calls = 0;
        e.which("aaaaabbbbb", |_| {
            calls += 1;
            true
        });
        assert_eq!(calls, 1);
        let mut all = 0;
        e.which("aaaaabbbbb", |_| {
            all += 1;
            false
        });
        assert_eq!(all, 10, "every match position is reported");
    }

    /// A text that keeps making new DFA states thrashes the cache: the lazy
    /// DFA gives up (3 clears at under 10 bytes per state) and the meta
    /// engine's answer is the one reported. (A small cache makes the
    /// thrash quick; the rule is the same at the default 2 MiB.)
    #[test]
    fn a_thrashed_cache_hands_over_to_the_meta_engine() {
        // `[ab]*a[ab]{10}` needs a state per distinct 11-byte window.
        let p = pats(&["[ab]*a[ab]{10}c", "b{3}", "ab{5}a", "zz"]);
        let e = SetEngine::build(&p, Some(16 * 1024), scan::SPLIT_MIN).expect("compiles");
        // A fixed pseudo-random a/b text (xorshift), then a match of the
        // first pattern.
        let mut x: u32 = 0x9e37_79b9;
        let mut text = ab_text(&mut x, 20_000);
        text.push_str("abbbbbbbbbbc");
        assert!(
            !e.lazy_which(&text, &mut |_| false),
            "the lazy DFA should have given up"
        );
        let mut ps = PatternSet::new(p.len());
        e.meta
            .which_overlapping_matches(&Input::new(&text), &mut ps);
        let want: Vec<usize> = ps.iter().map(|p| p.as_usize()).collect();
        assert_eq!(want, vec![0, 1, 2], "the text has every pattern but `zz`");
        assert_eq!(which(&e, &text), want);
        // The cache starts afresh after giving up: a short text is the lazy
        // DFA's again (without the reset it would give up at once).
        assert!(e.lazy_which("abbbbba", &mut |_| false));
        assert_eq!(which(&e, "abbbbba"), vec![1, 2]);
    }

    /// A reset cache hands out its state ids again from the start, so what
    /// the memo of match states held goes with it: `y`'s match state gets
    /// the id `x`'s had, and must report `y`'s pattern.
    #[test]
    fn a_reset_cache_forgets_its_match_states() {
        let p = pats(&["[ab]*a[ab]{10}c", "x", "y"]);
        let e = SetEngine::build(&p, Some(16 * 1024), scan::SPLIT_MIN).expect("compiles");
        assert_eq!(lazy_agrees(&e, "x"), vec![1]);
        // A thrash with no match on the way: the memo still belongs to
        // clear count 0, the count the reset sets again.
        let mut x: u32 = 0x9e37_79b9;
        let text = ab_text(&mut x, 20_000);
        assert!(!e.lazy_which(&text, &mut |_| false), "gave up");
        assert_eq!(lazy_agrees(&e, "y"), vec![2]);
        assert_eq!(lazy_agrees(&e, "x"), vec![1]);
    }

    /// A long text that clears the cache many times, but searches enough
    /// bytes per state between clears, stays with the lazy DFA: the search
    /// reports its progress before every transition it computes, so the
    /// give-up rule counts the bytes of the text being searched.
    #[test]
    fn a_long_text_that_reuses_its_states_keeps_the_lazy_dfa() {
        let p = pats(&["[ab]*a[ab]{10}c", "zz"]);
        let e = SetEngine::build(&p, Some(16 * 1024), scan::SPLIT_MIN).expect("compiles");
        // 60 blocks of 60 pseudo-random a/b bytes, each repeated 20 times:
        // every block brings new states (the cache fills and is cleared
        // again and again), then is searched with the states it made.
        let mut x: u32 = 0x2545_f491;
        let mut text = String::new();
        for _ in 0..60 {
            text.push_str(&ab_text(&mut x, 60).repeat(20));
        }
        text.push_str("abbbbbbbbbbc");
        let mut got = Vec::new();
        assert!(
            e.lazy_which(&text, &mut |p| {
                got.push(p);
                false
            }),
            "the lazy DFA gave up"
        );
        got.sort_unstable();
        got.dedup();
        assert_eq!(got, vec![0]);
        let clears = e.lazy.as_ref().expect("built").pool.get().dfa.clear_count();
        assert!(clears >= 10, "the cache was cleared only {clears} times");
    }

    /// The lazy DFA and the meta engine report the same patterns for
    /// `text`, and the lazy DFA did not give up.
    fn lazy_agrees(e: &SetEngine, text: &str) -> Vec<usize> {
        let mut ps = PatternSet::new(e.meta.pattern_len());
        e.meta.which_overlapping_matches(&Input::new(text), &mut ps);
        let want: Vec<usize> = ps.iter().map(|p| p.as_usize()).collect();
        let mut got = Vec::new();
        assert!(
            e.lazy_which(text, &mut |p| {
                got.push(p);
                false
            }),
            "gave up on {text:?}"
        );
        got.sort_unstable();
        got.dedup();
        assert_eq!(got, want, "{text:?}");
        got
    }

    /// An empty match can end between the bytes of a character (an ASCII
    /// `\B` holds between two non-word bytes); regex-automata does not count
    /// it, and neither does the scan.
    #[test]
    fn empty_matches_inside_a_character_do_not_count() {
        let e = SetEngine::new(&pats(&["(?-u:\\B)", "x"])).expect("compiles");
        assert_eq!(lazy_agrees(&e, "aéa"), Vec::<usize>::new());
        assert_eq!(lazy_agrees(&e, "a☃x"), vec![1]);
        assert_eq!(lazy_agrees(&e, "aa"), vec![0], "between two word bytes");
        assert_eq!(lazy_agrees(&e, "a  a"), vec![0], "between two spaces");
        for t in crate::testutil::strings(&["a", "é", "☃", " ", "x"], 4) {
            lazy_agrees(&e, &t);
        }
    }

    /// A set whose patterns are all anchored at the start reaches the dead
    /// state once none can match: the scan stops there with every answer.
    #[test]
    fn a_dead_state_ends_the_scan() {
        let e = SetEngine::new(&pats(&["^ls\\b", "^rm ", "^r"])).expect("compiles");
        assert_eq!(lazy_agrees(&e, "ls -la /srv"), vec![0]);
        assert_eq!(lazy_agrees(&e, "rm -rf /"), vec![1, 2]);
        assert_eq!(lazy_agrees(&e, "x ls rm"), Vec::<usize>::new());
        assert_eq!(lazy_agrees(&e, ""), Vec::<usize>::new());
    }

    /// A match found by the end-of-input transition is reported, and asking
    /// to stop there stops.
    #[test]
    fn a_match_at_the_end_of_input_is_reported() {
        let e = SetEngine::new(&pats(&["a$", "b"])).expect("compiles");
        let mut seen = Vec::new();
        assert!(e.lazy_which("ba", &mut |p| {
            seen.push(p);
            p == 0
        }));
        assert_eq!(seen, vec![1, 0]);
    }

    /// The split scan (every text of 2 bytes or more split here) reports
    /// exactly the meta engine's patterns, on texts where the halves meet
    /// and texts where a match under way across the cut keeps them apart.
    #[test]
    fn split_scans_agree_with_the_meta_engine() {
        let p = pats(&[
            "(?is)\\bupdate\\b.*\\bset\\b",
            "\\bdrop\\s+table\\b",
            "^\\s*ls\\b",
            "ab+c$",
            "(?-u:\\B)",
            "x\\z",
            ";\\s*\\S",
            "é",
        ]);
        let e = SetEngine::build(&p, None, 2).expect("compiles");
        let alphabet = [
            "update ", "set", " ", "drop", " table", "ls", "abbc", "x", ";", "é",
        ];
        scan::MEETINGS.with(|m| m.set((0, 0)));
        let mut gave_up = 0;
        for t in crate::testutil::strings(&alphabet, 4) {
            let mut ps = PatternSet::new(p.len());
            e.meta.which_overlapping_matches(&Input::new(&t), &mut ps);
            let want: Vec<usize> = ps.iter().map(|p| p.as_usize()).collect();
            assert_eq!(which(&e, &t), want, "{t:?}");
            if !t.contains('é') {
                assert_eq!(lazy_agrees(&e, &t), want, "{t:?}");
            } else if !e.lazy_which(&t, &mut |_| false) {
                gave_up += 1;
            }
        }
        let (met, apart) = scan::MEETINGS.with(|m| m.get());
        assert!(met > 1000 && apart > 1000, "met {met}, apart {apart}");
        assert!(
            gave_up > 100,
            "`é` under a Unicode `\\b` stops the lazy DFA"
        );
    }

    /// A match that starts in the first half and ends in the second is
    /// found by the first half going on past the cut; one that starts in
    /// the second half, by the second half alone.
    #[test]
    fn matches_across_the_cut_are_found() {
        let p = pats(&["(?s)update.*where", "drop table", "where"]);
        let e = SetEngine::build(&p, None, 2).expect("compiles");
        let pad = "-".repeat(40);
        // Cut in the middle of the padding: the first half is under way
        // (`update.*`), the halves do not meet.
        let t = format!("update{pad}{pad}where");
        scan::MEETINGS.with(|m| m.set((0, 0)));
        assert_eq!(lazy_agrees(&e, &t), vec![0, 2]);
        assert_eq!(scan::MEETINGS.with(|m| m.get()), (0, 1));
        // `drop table` across the cut: the halves meet after it.
        let t = format!("{}drop table{}", "-".repeat(15), "-".repeat(20));
        assert_eq!(
            (t.len() / 2, &t[20..25]),
            (22, "table"),
            "the cut is inside `table`"
        );
        scan::MEETINGS.with(|m| m.set((0, 0)));
        assert_eq!(lazy_agrees(&e, &t), vec![1]);
        assert_eq!(scan::MEETINGS.with(|m| m.get()), (1, 0));
        // A match in the second half only, and the halves meet at once.
        let t = format!("{pad}where{pad}");
        scan::MEETINGS.with(|m| m.set((0, 0)));
        assert_eq!(lazy_agrees(&e, &t), vec![2]);
        assert_eq!(scan::MEETINGS.with(|m| m.get()), (1, 0));
    }

    /// `found` asking to stop on a match of the second half stops the scan.
    #[test]
    fn the_split_scan_stops_when_asked() {
        let e = SetEngine::build(&pats(&["a", "b"]), None, 2).expect("compiles");
        let t = format!("{}{}", "-".repeat(50), "b".repeat(50));
        let mut calls = 0;
        assert!(e.lazy_which(&t, &mut |p| {
            calls += 1;
            assert_eq!(p, 1);
            true
        }));
        assert_eq!(calls, 1);
        let mut all = 0;
        e.which(&t, |_| {
            all += 1;
            false
        });
        assert_eq!(all, 50, "every match position is reported once");
    }

    /// A non-ASCII byte in the second half under a Unicode `\b` stops the
    /// lazy DFA there, as it would stop the one-pass scan: the meta engine
    /// decides.
    #[test]
    fn a_quit_byte_in_the_second_half_hands_over() {
        let e = SetEngine::build(&pats(&["\\bdrop\\b", "x"]), None, 2).expect("compiles");
        let t = format!("{}drop{}é", "-".repeat(30), "-".repeat(30));
        assert!(!e.lazy_which(&t, &mut |_| false));
        assert_eq!(which(&e, &t), vec![0]);
        let t = format!("{}drop{}e", "-".repeat(30), "-".repeat(30));
        assert_eq!(lazy_agrees(&e, &t), vec![0]);
    }

    /// Texts long enough to split by default take the split scan.
    #[test]
    fn long_texts_split_by_default() {
        let e = SetEngine::new(&pats(&["(?i)\\bdrop\\b", "ab"])).expect("compiles");
        let short = "-".repeat(scan::SPLIT_MIN - 1);
        let long = "-".repeat(scan::SPLIT_MIN);
        scan::MEETINGS.with(|m| m.set((0, 0)));
        assert_eq!(lazy_agrees(&e, &short), Vec::<usize>::new());
        assert_eq!(scan::MEETINGS.with(|m| m.get()), (0, 0));
        assert_eq!(lazy_agrees(&e, &format!("{long}DROP")), vec![0]);
        assert_eq!(scan::MEETINGS.with(|m| m.get()), (1, 0));
    }

    #[test]
    fn a_set_that_does_not_compile_is_none() {
        assert!(SetEngine::new(&pats(&["a", "("])).is_none());
    }
}
