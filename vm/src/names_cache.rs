//! Tool names the dispatch table does not know, resolved once per distinct
//! name.
//!
//! A tool named exactly in the policy has a list of its own: the rules
//! whose patterns match it, entered past their tool test. Any other tool —
//! one that only a glob such as `list_directory*` or `mcp__github__*`
//! matches, or no pattern at all — runs the generic list, where every glob
//! rule tests the name again on every call. The first call of such a name
//! builds what the compiler builds for a known name: the generic steps
//! whose tool test the name passes, entered past it, the steps without a
//! tool test as they are. Later calls of the name find it here and run as
//! fast as a known name.
//!
//! The cache belongs to one [`Program`](crate::Program) (a reload starts an
//! empty one) and holds at most [`SLOTS`] names, each set once and never
//! replaced: a caller sending ever new names fills it and is then served by
//! the generic list, uncached, without allocating. Reads take no lock.
//! Names longer than [`MAX_NAME`] are never resolved: resolving tests the
//! name against each glob rule on its own, where the generic list matches
//! all globs in one pass, and a caller could send a name of megabytes.

use std::sync::OnceLock;

use crate::fast::ListRuns;
use crate::op::{decode, Field, Instr};
use crate::program::{Chunk, Const, Dispatch, Step};

/// The names one program resolves at most.
pub(crate) const SLOTS: usize = 64;
/// Slots tried from a name's home slot.
const PROBES: usize = 4;
/// The longest name resolved, in bytes (MCP asks for tool names of 1 to
/// 128 characters).
pub(crate) const MAX_NAME: usize = 256;

/// One unknown tool name's rules: its dispatch list and that list's runs,
/// the rule that decides every call of it at once, if any, and the list's
/// one-pass plan, if it has one (`crate::plan`).
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    name: Box<str>,
    pub list: Vec<(u32, Step)>,
    pub runs: ListRuns,
    pub immediate: u16,
    pub plan: Option<crate::plan::Plan>,
}

/// See the module docs.
#[derive(Clone)]
pub(crate) struct NameCache {
    slots: Box<[OnceLock<Resolved>]>,
}

impl Default for NameCache {
    fn default() -> Self {
        NameCache {
            slots: (0..SLOTS).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl std::fmt::Debug for NameCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NameCache({} of {SLOTS} names)", self.len())
    }
}

impl NameCache {
    /// `name`'s entry: found, or built by `resolve` and kept when one of the
    /// name's slots is free. `None` when they are all taken by other names
    /// (nothing is built then).
    #[inline]
    pub(crate) fn get_or_resolve(
        &self,
        name: &str,
        hash: u64,
        resolve: impl FnOnce() -> Resolved,
    ) -> Option<&Resolved> {
        let home = hash as usize % SLOTS;
        let slot = |i: usize| self.slots.get((home + i) % SLOTS);
        let mut free = None;
        for i in 0..PROBES {
            match slot(i)?.get() {
                Some(r) if *r.name == *name => return Some(r),
                Some(_) => {}
                None => {
                    free = Some(i);
                    break;
                }
            }
        }
        let free = free?;
        let mut fresh = resolve();
        for i in free..PROBES {
            let cell = slot(i)?;
            match cell.set(fresh) {
                Ok(()) => return cell.get(),
                // Another thread filled the slot first: with this name?
                Err(back) => match cell.get() {
                    Some(r) if *r.name == *name => return Some(r),
                    _ => fresh = back,
                },
            }
        }
        None
    }

    /// How many names are resolved.
    pub(crate) fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.get().is_some()).count()
    }

    /// The resolved names whose list has a one-pass plan.
    pub(crate) fn plans(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.get().is_some_and(|r| r.plan.is_some()))
            .count()
    }
}

/// The pc past a rule chunk's tool test (`name_in tool` then `jump_false`
/// to "return false") and the name-list constant it tests, if the chunk
/// starts with one.
pub(crate) fn past_tool_test(code: &[u8]) -> Option<(u16, u32)> {
    let (
        Instr::NameIn {
            field: Field::Tool,
            list,
        },
        next,
    ) = decode(code, 0).ok()?
    else {
        return None;
    };
    let past = crate::fast::jumps_to_false(code, next)?;
    Some((list, u32::try_from(past).ok()?))
}

/// Builds `name`'s entry from the generic list of `d` (see the module docs).
pub(crate) fn resolve(
    d: &Dispatch,
    name: &str,
    consts: &[Const],
    chunks: &[Chunk],
    fast: &[crate::fast::FastRule],
) -> Resolved {
    let mut list = Vec::new();
    for &(key, step) in &d.generic_unknown {
        let Step::Rule { rule, chunk, pc: 0 } = step else {
            list.push((key, step));
            continue;
        };
        let test = chunks
            .get(chunk as usize)
            .and_then(|c| past_tool_test(&c.code));
        match test.map(|(l, past)| (consts.get(l as usize), past)) {
            Some((Some(Const::Matchers(ms)), past)) => {
                if crate::kvlar::name_matches(ms, name) {
                    list.push((
                        key,
                        Step::Rule {
                            rule,
                            chunk,
                            pc: past,
                        },
                    ));
                }
            }
            // Not a plain tool test: the step runs it.
            _ => list.push((key, step)),
        }
    }
    let runs = crate::fast::runs(&list, fast, consts);
    let immediate = crate::fast::immediate(list.first().map(|s| s.1), fast);
    // The resolved list is the name's only list (the generic one is not
    // merged with it), as for a known tool with no generic rules.
    let plan = crate::plan::plan(&list, &runs, consts);
    Resolved {
        name: name.into(),
        list,
        runs,
        immediate,
        plan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::NO_RULE;

    fn entry(name: &str) -> Resolved {
        Resolved {
            name: name.into(),
            list: Vec::new(),
            runs: ListRuns::default(),
            immediate: NO_RULE,
            plan: None,
        }
    }

    /// A name is resolved once, found again by its exact bytes, and a name
    /// with the same hash gets a slot of its own.
    #[test]
    fn names_are_resolved_once_and_told_apart() {
        let cache = NameCache::default();
        let mut built = 0;
        for _ in 0..3 {
            let r = cache.get_or_resolve("list_dir", 7, || {
                built += 1;
                entry("list_dir")
            });
            assert_eq!(r.map(|r| &*r.name), Some("list_dir"));
        }
        assert_eq!(built, 1);
        let r = cache.get_or_resolve("list_dis", 7, || entry("list_dis"));
        assert_eq!(r.map(|r| &*r.name), Some("list_dis"));
        assert_eq!(cache.len(), 2);
    }

    /// When every slot a name may take holds another name, nothing is built
    /// or kept: the caller takes the uncached path.
    #[test]
    fn a_full_neighbourhood_builds_nothing() {
        let cache = NameCache::default();
        for i in 0..PROBES {
            let n = format!("t{i}");
            assert!(cache.get_or_resolve(&n, 5, || entry(&n)).is_some());
        }
        let mut built = false;
        let r = cache.get_or_resolve("other", 5, || {
            built = true;
            entry("other")
        });
        assert!(r.is_none());
        assert!(!built);
        assert_eq!(cache.len(), PROBES);
        // The names already there are still found.
        assert!(cache.get_or_resolve("t3", 5, || entry("x")).is_some());
        // A neighbourhood that wraps around the end of the table.
        let r = cache.get_or_resolve("wrap", (SLOTS - 1) as u64, || entry("wrap"));
        assert_eq!(r.map(|r| &*r.name), Some("wrap"));
    }
}
