//! The scans of a set's lazy DFA: which patterns match somewhere in a text.
//!
//! [`scan_from`] is the one-pass scan: one transition per byte, the state's
//! tag (unknown, match, dead, quit) tested only after the load.
//! [`scan_split`] scans a long text as two halves at once, because one pass
//! is bound by the latency of its chain of loads, not by its instructions.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::{Input, MatchErrorKind};

use super::memo::ScanCache;

/// Why the lazy DFA stopped short of the end of a text: `true` if it gave
/// up on its cache, `false` on a quit byte.
pub(super) type Stopped = bool;

/// Texts at least this long are scanned in two halves at once
/// ([`scan_split`]); shorter ones in one pass. On shorter texts the second
/// half's start and the meeting cost about what the halving saves, and a
/// text the halves do not meet in loses it (BENCHMARKS.md, tenth session).
pub(super) const SPLIT_MIN: usize = 64;
/// The split scan records this many of the second half's first states: the
/// first half must meet it within this many bytes of the cut. Halves that
/// meet do so within a few bytes (a match under way across the cut ends or
/// fails); halves kept apart by a pattern with an unbounded gap never do,
/// and the attempt is paid for. With 32, such texts (64–220 bytes) were
/// 15–38 ns slower than one pass; 8 takes a quarter to a half of that off,
/// and the texts that meet keep their gain (CHANGELOG, seventeenth
/// session).
const MEET: usize = 8;

/// The overlapping search of `lazy_which`: reports the patterns of every
/// match state the text reaches (a match state entered on the byte at `at`
/// holds the matches that end at `at`: regex-automata's DFAs report a match
/// one byte late; the end of input is a last transition). With `utf8empty`,
/// a match that ends inside a character is skipped, as regex-automata's own
/// search skips it. `Ok(true)` when the text is done or `found` asked to
/// stop. Texts of `split_min` bytes or more take the split scan.
#[inline]
pub(super) fn scan_lazy(
    dfa: &DFA,
    sc: &mut ScanCache,
    utf8empty: bool,
    split_min: usize,
    text: &str,
    found: &mut impl FnMut(usize) -> bool,
) -> Result<bool, Stopped> {
    if text.len() >= split_min {
        if let Some(done) = scan_split(dfa, sc, utf8empty, text, found) {
            return done;
        }
    }
    let sid = match dfa.start_state_forward(&mut sc.dfa, &Input::new(text)) {
        Ok(sid) => sid,
        Err(e) => return Err(matches!(e.kind(), MatchErrorKind::GaveUp { .. })),
    };
    sc.dfa.search_start(0);
    scan_from(dfa, sc, utf8empty, text, 0, sid, found)
}

/// The one-pass scan of `text` from position `at` in state `sid` (a search
/// already started on `sc`) to the end of input.
#[inline]
fn scan_from(
    dfa: &DFA,
    sc: &mut ScanCache,
    utf8empty: bool,
    text: &str,
    mut at: usize,
    mut sid: LazyStateID,
    found: &mut impl FnMut(usize) -> bool,
) -> Result<bool, Stopped> {
    let hay = text.as_bytes();
    while let Some(&byte) = hay.get(at) {
        let mut next = match sid.is_tagged() {
            // Only a match state is left tagged below; the checked
            // transition strips its tag.
            true => {
                sc.dfa.search_update(at);
                dfa.next_state(&mut sc.dfa, sid, byte).map_err(|_| true)?
            }
            false => dfa.next_state_untagged(&sc.dfa, sid, byte),
        };
        if next.is_tagged() {
            if next.is_unknown() {
                // Not computed yet: the checked transition computes it, and
                // may clear the cache, which counts the bytes searched so
                // far.
                sc.dfa.search_update(at);
                next = dfa.next_state(&mut sc.dfa, sid, byte).map_err(|_| true)?;
            }
            if let Some(done) = settle(dfa, sc, utf8empty, text, at, next, found) {
                sc.dfa.search_finish(at);
                return done;
            }
        }
        sid = next;
        at += 1;
    }
    sc.dfa.search_finish(at);
    end_of_input(dfa, sc, sid, found)
}

/// What the tagged state `next`, entered on the byte at `at` of `text`,
/// does to a scan: a match state's patterns are reported (not those of a
/// match that ends inside a character, with `utf8empty`). `Some` ends the
/// scan, and the caller finishes the search: `found` asked to stop or the
/// dead state (`Ok(true)`), a quit byte (`Err(false)`).
#[inline(always)]
fn settle(
    dfa: &DFA,
    sc: &mut ScanCache,
    utf8empty: bool,
    text: &str,
    at: usize,
    next: LazyStateID,
    found: &mut impl FnMut(usize) -> bool,
) -> Option<Result<bool, Stopped>> {
    if next.is_match() && (!utf8empty || text.is_char_boundary(at)) {
        sc.memo
            .report(dfa, &sc.dfa, next, found)
            .then_some(Ok(true))
    } else if next.is_dead() {
        Some(Ok(true))
    } else if next.is_quit() {
        Some(Err(false))
    } else {
        None
    }
}

/// The end-of-input transition from `sid` (a search finished on `sc`):
/// reports the matches that end with the text.
#[inline]
fn end_of_input(
    dfa: &DFA,
    sc: &mut ScanCache,
    sid: LazyStateID,
    found: &mut impl FnMut(usize) -> bool,
) -> Result<bool, Stopped> {
    let eoi = dfa.next_eoi_state(&mut sc.dfa, sid).map_err(|_| true)?;
    if eoi.is_match() {
        sc.memo.report(dfa, &sc.dfa, eoi, found);
    }
    Ok(true)
}

#[cfg(test)]
thread_local! {
    /// How this thread's split scans that reached the cut ended: (the
    /// halves met, they did not).
    pub(super) static MEETINGS: std::cell::Cell<(usize, usize)> =
        const { std::cell::Cell::new((0, 0)) };
}

/// Why one checked step of [`scan_split`] cannot go on: the cache was
/// cleared (`None`: every state id held is stale), or the lazy DFA gave up.
type Halt = Option<Stopped>;

/// One transition of a split scan: the known transition of an untagged
/// state inline, anything else through [`split_step`].
#[inline(always)]
fn advance(
    dfa: &DFA,
    cache: &mut Cache,
    clears: usize,
    sid: LazyStateID,
    byte: u8,
    work: usize,
) -> Result<LazyStateID, Halt> {
    if !sid.is_tagged() {
        let next = dfa.next_state_untagged(cache, sid, byte);
        if !next.is_unknown() {
            return Ok(next);
        }
    }
    split_step(dfa, cache, clears, sid, byte, work)
}

/// One transition of a split scan, computed if need be. `work` is the
/// number of bytes both halves have searched, what the give-up rule counts.
#[cold]
#[inline(never)]
fn split_step(
    dfa: &DFA,
    cache: &mut Cache,
    clears: usize,
    sid: LazyStateID,
    byte: u8,
    work: usize,
) -> Result<LazyStateID, Halt> {
    let mut next = if sid.is_tagged() {
        cache.search_update(work);
        dfa.next_state(cache, sid, byte).map_err(|_| Some(true))?
    } else {
        dfa.next_state_untagged(cache, sid, byte)
    };
    if next.is_unknown() {
        cache.search_update(work);
        next = dfa.next_state(cache, sid, byte).map_err(|_| Some(true))?;
    }
    if cache.clear_count() != clears {
        return Err(None);
    }
    Ok(next)
}

/// The scan of `scan_lazy` as two dependent chains of loads instead of one.
///
/// Each byte of a DFA scan waits for the state the previous byte loaded
/// (one load and one add, ~5 cycles), however few instructions the loop
/// has. So the text is cut in two: the first half runs from the start state,
/// and at the same time the second half runs from the state a search would
/// start in at the cut (the start state given the byte before it). The two
/// chains are independent, and the processor overlaps them.
///
/// The second half's start is a guess: it is the true state only if no
/// match is under way across the cut. What the guess gets right either way:
/// its matches are matches of the text (they start in the second half,
/// and the look-behind at the cut is the text's), so they are reported as
/// found. What it can miss: a match that starts in the first half and ends
/// in the second. So its first [`MEET`] states are recorded, and when the
/// first half reaches the cut, it goes on one byte at a time until its
/// state equals the second half's state at the same position. From there
/// the two runs are the same run: the second half has found everything.
/// (This happens within a few bytes of the cut, as soon as no pattern is
/// part-way through a match.) If they do not meet, as after `update` under
/// `\bupdate\b.*\bset\b`, the first half's run finishes the text alone
/// and the second half's work is lost. Either way the answer is the one-pass
/// scan's.
///
/// `None` when the cache was cleared on the way (every state id held is
/// stale): the caller starts again in one pass.
#[inline]
fn scan_split(
    dfa: &DFA,
    sc: &mut ScanCache,
    utf8empty: bool,
    text: &str,
    found: &mut impl FnMut(usize) -> bool,
) -> Option<Result<bool, Stopped>> {
    let hay = text.as_bytes();
    let n = hay.len();
    let mid = n / 2;
    let clears = sc.dfa.clear_count();
    let input = Input::new(text);
    let mut s1 = dfa.start_state_forward(&mut sc.dfa, &input).ok()?;
    let mut s2 = dfa
        .start_state_forward(&mut sc.dfa, &input.clone().range(mid..))
        .ok()?;
    if sc.dfa.clear_count() != clears {
        return None;
    }
    macro_rules! step {
        ($sid:expr, $byte:expr, $work:expr) => {
            match advance(dfa, &mut sc.dfa, clears, $sid, $byte, $work) {
                Ok(next) => next,
                Err(None) => return None,
                Err(Some(gave_up)) => return Some(Err(gave_up)),
            }
        };
    }
    sc.dfa.search_start(0);
    let (left, right) = hay.split_at(mid);
    let pairs = &right[..mid];
    // `first[k]`: the second half's state at `mid + k`, for `k < seen` and
    // `k < MEET`.
    let mut first = [s2; MEET];
    let mut seen = 0;
    // The second half reached the dead state (at `mid + seen`).
    let mut dead = false;
    let mut i = 0;
    loop {
        if i < mid && !dead && !s1.is_tagged() && !s2.is_tagged() {
            // Both halves in untagged states: one known transition each.
            for (&b1, &b2) in left[i..].iter().zip(&pairs[i..]) {
                let t1 = dfa.next_state_untagged(&sc.dfa, s1, b1);
                let t2 = dfa.next_state_untagged(&sc.dfa, s2, b2);
                if t1.is_tagged() || t2.is_tagged() {
                    break;
                }
                if let Some(slot) = first.get_mut(i) {
                    *slot = s2;
                }
                s1 = t1;
                s2 = t2;
                i += 1;
            }
            seen = i;
        }
        let Some(&b2) = right.get(i) else { break };
        // A tagged state, the odd last byte of the second half, or the
        // first half alone: each half on its own, checked.
        if let Some(&b1) = left.get(i) {
            let t1 = step!(s1, b1, 2 * i);
            if let Some(done) = settle(dfa, sc, utf8empty, text, i, t1, found) {
                sc.dfa.search_finish(2 * i);
                return Some(done);
            }
            s1 = t1;
        }
        if !dead {
            if let Some(slot) = first.get_mut(i) {
                *slot = s2;
            }
            seen = i + 1;
            let t2 = step!(s2, b2, 2 * i + 1);
            if t2.is_match() && (!utf8empty || text.is_char_boundary(mid + i)) {
                // A match that starts in the second half: a match of the
                // text, whatever the first half finds.
                if sc.memo.report(dfa, &sc.dfa, t2, found) {
                    sc.dfa.search_finish(2 * i + 1);
                    return Some(Ok(true));
                }
            } else if t2.is_quit() {
                // A byte the lazy DFA stops at, whatever the state: the
                // one-pass scan would stop there too.
                sc.dfa.search_finish(2 * i + 1);
                return Some(Err(false));
            }
            dead = t2.is_dead();
            s2 = t2;
        }
        i += 1;
    }
    // The first half, at the cut, goes on until it meets the second, or
    // until there is nothing recorded left to meet.
    let meet = &first[..seen.min(MEET)];
    let mut at = mid;
    let mut met = meet.first() == Some(&s1);
    if !met {
        // `meet[k + 1]` is the state after the byte at `mid + k`.
        for (&want, &byte) in meet.iter().skip(1).zip(&hay[mid..]) {
            let next = step!(s1, byte, n + at - mid);
            if next.is_tagged() {
                if let Some(done) = settle(dfa, sc, utf8empty, text, at, next, found) {
                    sc.dfa.search_finish(n + at - mid);
                    return Some(done);
                }
            }
            s1 = next;
            at += 1;
            if want == s1 {
                met = true;
                break;
            }
        }
    }
    #[cfg(test)]
    MEETINGS.with(|m| {
        let (yes, no) = m.get();
        m.set(if met { (yes + 1, no) } else { (yes, no + 1) });
    });
    if !met {
        return Some(scan_from(dfa, sc, utf8empty, text, at, s1, found));
    }
    // Met at `at`: the second half's run is the text's from there, and its
    // matches are reported.
    sc.dfa.search_finish(n + at - mid);
    if dead {
        return Some(Ok(true));
    }
    Some(end_of_input(dfa, sc, s2, found))
}
