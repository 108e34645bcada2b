//! The output of an evaluation.

use std::fmt;

/// What a rule (or a default) decides.
///
/// A whole word: a [`Decision`] is then written with word stores only, so
/// a caller that copies it word by word right after the return (a move
/// does) reads it from the store buffer. With a one-byte effect that read
/// waits until the byte store reaches the cache (a store-forwarding stall):
/// postgres' unknown-tool case, decided in [`Program::evaluate`] itself,
/// took 8.9 ns instead of 3.3–4.2 (criterion, fifteenth session in
/// BENCHMARKS.md).
///
/// [`Program::evaluate`]: crate::Program::evaluate
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum Effect {
    Allow,
    Deny,
    RequireApproval,
}

// The layout the note on `Effect` relies on.
const _: () = assert!(std::mem::size_of::<Effect>() == 8);

impl Effect {
    /// `allow`, `deny` or `require_approval`: the spelling used in policies and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::RequireApproval => "require_approval",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rule id of the decision taken when a policy with `default_outcome: allow` matched nothing.
pub const DEFAULT_ALLOW: &str = "_default_allow";
/// Rule id of the decision taken when no policy decided.
pub const DEFAULT_DENY: &str = "_default_deny";
/// Reason of the `_default_deny` decision (same text as Kvlar's).
pub const DEFAULT_DENY_REASON: &str = "no matching policy rule — denied by default (fail-closed)";

/// A decision, borrowing its rule id and reason from the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'p> {
    pub effect: Effect,
    /// The id of the rule that decided, or `_default_allow` / `_default_deny`.
    pub rule: &'p str,
    /// The rule's reason (`None` for allow).
    pub reason: Option<&'p str>,
}
