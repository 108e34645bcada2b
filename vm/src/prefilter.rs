//! A prefilter for a regex set: the short literals one of which every match
//! of every pattern starts with.
//!
//! The multi-pattern engine skips text with a prefilter while it is in its
//! start state, but the engine derives one only while the patterns' prefix
//! literals stay few: a set of hundreds of `contains` literals and regexes
//! (`needle-17`, `pat3[0-9]+x`, …) gets none and walks every byte. Cut to
//! their first few bytes, those prefixes are often a handful of strings
//! (`nee`, `pat`), which a vectorised search finds fast. A cut prefix is
//! still a prefix of every match, so the prefilter can report false
//! candidates but never miss a match; sets where some pattern has no
//! literal prefix (`.*x`, `\w+`, a pattern that matches empty) get none.

use regex_automata::util::prefilter::Prefilter;
use regex_automata::MatchKind;
use regex_syntax::hir::literal::{ExtractKind, Extractor};

/// At most this many distinct cut prefixes (longer cuts first).
const MAX_NEEDLES: usize = 16;
/// Single-byte prefixes are only worth it when this few (a `memchr3`).
const MAX_ONE_BYTE: usize = 3;

/// The prefilter for `patterns`, if every pattern has a literal prefix and
/// the prefixes cut short are few; `None` leaves the engine's own choice.
pub(crate) fn for_set(patterns: &[String]) -> Option<Prefilter> {
    let needles = needles(patterns)?;
    Prefilter::new(MatchKind::All, &needles)
}

/// The cut prefixes (see the module docs), longest cut that stays few.
pub(crate) fn needles(patterns: &[String]) -> Option<Vec<Vec<u8>>> {
    let mut prefixes: Vec<Vec<u8>> = Vec::new();
    let mut extractor = Extractor::new();
    extractor.kind(ExtractKind::Prefix);
    for p in patterns {
        let hir = regex_syntax::ParserBuilder::new().build().parse(p).ok()?;
        let seq = extractor.extract(&hir);
        let lits = seq.literals()?;
        if lits.is_empty() || lits.iter().any(|l| l.as_bytes().is_empty()) {
            return None;
        }
        prefixes.extend(lits.iter().map(|l| l.as_bytes().to_vec()));
    }
    for cut in (1..=4).rev() {
        let mut cuts: Vec<Vec<u8>> = prefixes
            .iter()
            .map(|p| p[..p.len().min(cut)].to_vec())
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        // A cut that is a prefix of another covers it: keep the shorter.
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for c in cuts {
            if !kept.iter().any(|k| c.starts_with(k)) {
                kept.push(c);
            }
        }
        let limit = if kept.iter().all(|k| k.len() == 1) {
            MAX_ONE_BYTE
        } else {
            MAX_NEEDLES
        };
        if kept.len() <= limit {
            return Some(kept);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn text(n: Option<Vec<Vec<u8>>>) -> Option<Vec<String>> {
        n.map(|v| {
            v.into_iter()
                .map(|b| String::from_utf8(b).expect("utf-8"))
                .collect()
        })
    }

    #[test]
    fn many_literal_prefixes_cut_to_a_few() {
        let mut pats = Vec::new();
        for i in 0..500 {
            pats.push(format!("needle\\-{i}"));
            pats.push(format!("pat{i}[0-9]+x"));
        }
        let mut want = vec!["need".to_string()];
        want.extend((0..10).map(|d| format!("pat{d}")));
        assert_eq!(text(needles(&pats)), Some(want));
    }

    #[test]
    fn a_pattern_without_a_literal_prefix_means_no_prefilter() {
        assert_eq!(needles(&strs(&["abc", ".*x"])), None);
        assert_eq!(needles(&strs(&["abc", "\\w+"])), None);
        assert_eq!(needles(&strs(&["abc", "x*"])), None, "matches empty");
        assert_eq!(needles(&strs(&["abc", "("])), None, "does not parse");
    }

    #[test]
    fn anchors_and_case_folding_keep_the_prefix_property() {
        // `\A` and `^` are zero-width: the literal after them starts the match.
        assert_eq!(
            text(needles(&strs(&["\\Afoo", "(?m)^bar"]))),
            Some(vec!["bar".to_string(), "foo".to_string()])
        );
        // Case folding expands to every casing of the cut.
        let n = needles(&strs(&["(?i)drop"])).expect("a prefilter");
        assert_eq!(n.len(), 16, "{n:?}");
        assert!(n.contains(&b"DrOp".to_vec()));
    }

    #[test]
    fn too_many_distinct_starts_means_no_prefilter() {
        let pats: Vec<String> = (b'a'..=b'z').map(|c| format!("{}x", c as char)).collect();
        assert_eq!(needles(&pats), None);
        assert_eq!(
            text(needles(&strs(&["ab", "cd", "ef"]))),
            Some(vec!["ab".to_string(), "cd".to_string(), "ef".to_string()])
        );
    }

    /// Every match of every pattern starts with a needle (checked by brute
    /// force on texts built from the patterns' alphabet).
    #[test]
    fn every_match_starts_with_a_needle() {
        let pats = strs(&["ab+c", "(?i)xy", "q[0-9]{2}", "\\bword\\b", "abd"]);
        let n = needles(&pats).expect("a prefilter");
        let re = regex_automata::meta::Regex::new_many(&pats).expect("compiles");
        let alphabet = ["a", "b", "c", "d", "X", "y", "q", "1", "2", " ", "word"];
        let texts = crate::testutil::strings(&alphabet, 4);
        let mut matches = 0;
        for t in &texts {
            for m in re.find_iter(t.as_str()) {
                matches += 1;
                let rest = &t.as_bytes()[m.start()..];
                assert!(
                    n.iter().any(|k| rest.starts_with(k)),
                    "{t:?} matches at {} with no needle {n:?}",
                    m.start()
                );
            }
        }
        assert!(matches > 500, "{matches}");
    }

    /// A set with the prefilter reports the same patterns as without it.
    #[test]
    fn a_set_with_the_prefilter_finds_what_it_finds_without() {
        let mut pats = strs(&["ab+c", "(?i)xy", "q1[0-9]", "\\bword\\b", "abd", "y\\z"]);
        // (No `\A` pattern: with one, the engine does not use a prefilter.)
        for i in 0..40 {
            pats.push(format!("ab{i}"));
        }
        let pre = for_set(&pats).expect("a prefilter");
        let build = |pre: Option<Prefilter>| {
            regex_automata::meta::Regex::builder()
                .configure(
                    regex_automata::meta::Regex::config()
                        .match_kind(MatchKind::All)
                        .prefilter(pre),
                )
                .build_many(&pats)
                .expect("compiles")
        };
        let (with, without) = (build(Some(pre)), build(None));
        let alphabet = [
            "a", "b", "c", "d", "X", "y", "q", "1", "2", " ", "word", "ab1",
        ];
        let texts = crate::testutil::strings(&alphabet, 4);
        let mut found = 0;
        for t in &texts {
            let mut a = regex_automata::PatternSet::new(pats.len());
            let mut b = regex_automata::PatternSet::new(pats.len());
            with.which_overlapping_matches(&regex_automata::Input::new(t), &mut a);
            without.which_overlapping_matches(&regex_automata::Input::new(t), &mut b);
            assert_eq!(a, b, "{t:?}");
            found += a.len();
        }
        assert!(found > 5000, "{found}");
    }
}
