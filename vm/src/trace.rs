//! Tracing: what `kvlar explain` shows. The interpreter reports every test it
//! runs (chunk, pc, result, the value it looked at); the debug table of the
//! program maps `(chunk, pc)` back to the rule and the source of the test.

use crate::value::Val;

/// Receives the events of a traced evaluation.
pub trait Tracer {
    /// A test instruction ran: `passed` is its result, `actual` the value tested.
    fn test(&mut self, chunk: u16, pc: usize, passed: bool, actual: &Val);
    /// Rule `rule` decided.
    fn decide(&mut self, rule: u16);
}

/// One recorded test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    pub chunk: u16,
    pub pc: usize,
    pub passed: bool,
    /// The tested value, rendered as JSON (`missing` when absent).
    pub actual: String,
}

/// A tracer that records everything.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub events: Vec<TraceEvent>,
    pub decided: Option<u16>,
}

impl Tracer for Trace {
    fn test(&mut self, chunk: u16, pc: usize, passed: bool, actual: &Val) {
        self.events.push(TraceEvent {
            chunk,
            pc,
            passed,
            actual: actual.to_string(),
        });
    }
    fn decide(&mut self, rule: u16) {
        self.decided = Some(rule);
    }
}

/// Internal, statically dispatched sink (so the untraced path compiles to nothing).
pub(crate) trait Sink {
    const ENABLED: bool;
    /// One instruction is about to run.
    #[inline(always)]
    fn step(&mut self) {}
    fn test(&mut self, chunk: u16, pc: usize, passed: bool, actual: &Val);
    fn decide(&mut self, rule: u16);
}

pub(crate) struct NoTrace;

impl Sink for NoTrace {
    const ENABLED: bool = false;
    #[inline(always)]
    fn test(&mut self, _: u16, _: usize, _: bool, _: &Val) {}
    #[inline(always)]
    fn decide(&mut self, _: u16) {}
}

pub(crate) struct TracerRef<'t>(pub &'t mut dyn Tracer);

impl Sink for TracerRef<'_> {
    const ENABLED: bool = true;
    fn test(&mut self, chunk: u16, pc: usize, passed: bool, actual: &Val) {
        self.0.test(chunk, pc, passed, actual);
    }
    fn decide(&mut self, rule: u16) {
        self.0.decide(rule);
    }
}

/// Counts executed instructions (for [`crate::Program::evaluate_counting`]).
pub(crate) struct StepCounter(pub u64);

impl Sink for StepCounter {
    const ENABLED: bool = false;
    #[inline(always)]
    fn step(&mut self) {
        self.0 += 1;
    }
    #[inline(always)]
    fn test(&mut self, _: u16, _: usize, _: bool, _: &Val) {}
    #[inline(always)]
    fn decide(&mut self, _: u16) {}
}
