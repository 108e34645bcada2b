//! The output of an evaluation.

use std::borrow::Cow;
use std::fmt;

/// What a rule (or a default) decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
    RequireApproval,
}

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

/// What a rule (or a default) decides, stored once: a [`Decision`] points
/// at one of these (the program holds one per rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    effect: Effect,
    rule: Cow<'static, str>,
    reason: Option<Cow<'static, str>>,
}

impl Verdict {
    /// A verdict of static text (the defaults, a caller's own denials).
    pub const fn new(effect: Effect, rule: &'static str, reason: Option<&'static str>) -> Verdict {
        Verdict {
            effect,
            rule: Cow::Borrowed(rule),
            reason: match reason {
                Some(r) => Some(Cow::Borrowed(r)),
                None => None,
            },
        }
    }

    /// A verdict that owns its text (a program's rules).
    pub fn owned(effect: Effect, rule: String, reason: Option<String>) -> Verdict {
        Verdict {
            effect,
            rule: Cow::Owned(rule),
            reason: reason.map(Cow::Owned),
        }
    }
}

/// The `_default_deny` decision: no policy decided.
pub(crate) static DEFAULT_DENY_VERDICT: Verdict =
    Verdict::new(Effect::Deny, DEFAULT_DENY, Some(DEFAULT_DENY_REASON));
/// The `_default_allow` decision: a policy with `default_outcome: allow`
/// matched nothing.
pub(crate) static DEFAULT_ALLOW_VERDICT: Verdict = Verdict::new(Effect::Allow, DEFAULT_ALLOW, None);

/// A decision: the effect, the id of the rule that decided and its reason,
/// borrowed from the program (or from a caller's own [`Verdict`]).
///
/// One pointer wide, so it comes back from an evaluation in a register.
/// It used to hold the three fields (40 bytes, returned through memory):
/// copying them was half of the 3.3 ns an unknown tool cost then; 1.9 ns
/// now (BENCHMARKS.md, sixteenth session).
#[derive(Clone, Copy)]
pub struct Decision<'p>(&'p Verdict);

// The layout the note above relies on.
const _: () = assert!(std::mem::size_of::<Decision<'static>>() == 8);

impl<'p> Decision<'p> {
    /// The decision `verdict` states.
    #[inline]
    pub const fn new(verdict: &'p Verdict) -> Decision<'p> {
        Decision(verdict)
    }

    /// Allow, deny or require approval.
    #[inline]
    pub fn effect(self) -> Effect {
        self.0.effect
    }

    /// The id of the rule that decided, or `_default_allow` /
    /// `_default_deny` (`_vm_fault` for a program that cannot run).
    #[inline]
    pub fn rule(self) -> &'p str {
        &self.0.rule
    }

    /// The rule's reason (`None` for allow and for rules without one).
    #[inline]
    pub fn reason(self) -> Option<&'p str> {
        self.0.reason.as_deref()
    }
}

impl PartialEq for Decision<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Decision<'_> {}

impl fmt::Debug for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("effect", &self.effect())
            .field("rule", &self.rule())
            .field("reason", &self.reason())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The accessors give the verdict's parts; decisions compare by
    /// content, whichever verdict they point at, and print their parts.
    #[test]
    fn a_decision_is_its_verdicts_parts() {
        static STATIC: Verdict = Verdict::new(Effect::Deny, "no-env", Some("secrets"));
        let owned = Verdict::owned(Effect::Deny, "no-env".into(), Some("secrets".into()));
        let (a, b) = (Decision::new(&STATIC), Decision::new(&owned));
        assert_eq!(
            (a.effect(), a.rule(), a.reason()),
            (Effect::Deny, "no-env", Some("secrets"))
        );
        assert_eq!(a, b);
        let other = Verdict::owned(Effect::Deny, "no-env".into(), None);
        assert_ne!(a, Decision::new(&other));
        assert_eq!(
            format!("{b:?}"),
            r#"Decision { effect: Deny, rule: "no-env", reason: Some("secrets") }"#
        );
        let allow = Decision::new(&DEFAULT_ALLOW_VERDICT);
        assert_eq!(
            (allow.effect(), allow.rule(), allow.reason()),
            (Effect::Allow, DEFAULT_ALLOW, None)
        );
        let deny = Decision::new(&DEFAULT_DENY_VERDICT);
        assert_eq!(
            (deny.effect(), deny.rule(), deny.reason()),
            (Effect::Deny, DEFAULT_DENY, Some(DEFAULT_DENY_REASON))
        );
    }
}
