//! Busy-polling while the server owes an answer.
//!
//! A call through the proxy is two more pipe hops than a direct connection.
//! When the proxy's thread sleeps between them, the server's answer has to
//! wake it; on a virtual machine whose idle vCPUs halt, that wake-up costs
//! tens of microseconds when the proxy slept on another vCPU (23–33 µs
//! measured on one host, against 3–7 µs on the waker's own vCPU).
//!
//! So while a request forwarded to the server is unanswered, the runtime,
//! before it sleeps, polls the proxy's two inputs (the client's stdin and the
//! server's stdout) without blocking, for a short window, yielding the CPU
//! between polls to anything else runnable on it. When an input becomes
//! readable within the window, the runtime's own wait returns at once and the
//! message goes on without a wake-up; after the window it sleeps as before.
//! With nothing owed (an agent thinking between calls) the proxy sleeps at
//! once.
//!
//! The window adapts, as the Linux `haltpoll` idle governor's does: each
//! wait is timed from the start of polling to the runtime waking up. A wait
//! longer than the budget (`--busy-poll`, 500 µs by default) could not have
//! been caught by polling, so the window halves, down to none; a wait the
//! budget would have caught, but the window did not, doubles it, up to the
//! budget. Polling for a server that always answers later than the budget
//! only burns CPU: in front of server-filesystem (~210 µs a read here), a
//! fixed 100 µs window cost ~90 µs of CPU per call and changed no latency
//! figure. A budget that covers such a server's answers saves its wake-up
//! instead (its added p50 went from ~+20 to ~0 µs with 300 µs), hence the
//! 500 µs default; a server slower than that is soon waited for without
//! polling (BENCHMARKS.md, "Nineteenth session").

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use smallvec::SmallVec;

/// The inputs to poll, the budget, and the adapted window.
pub struct Spin {
    budget: Duration,
    state: Mutex<State>,
}

struct State {
    inputs: Vec<OwnedFd>,
    /// How long the next wait polls (at most `budget`).
    window: Duration,
    /// When the current wait began, if a request was owed when it did.
    since: Option<Instant>,
}

/// The smallest window polling restarts with, as a fraction of the budget.
const RESTART: u32 = 4;

/// The window after a wait of `waited` (timed from the start of polling to
/// the runtime waking up), given the `budget` (see the module docs).
fn adapt(window: Duration, waited: Duration, budget: Duration) -> Duration {
    if waited > budget {
        let half = window / 2;
        if half < budget / RESTART {
            Duration::ZERO
        } else {
            half
        }
    } else if waited > window {
        (window * 2).max(budget / RESTART).min(budget)
    } else {
        window
    }
}

impl Spin {
    /// A zero `budget` turns busy-polling off.
    pub fn new(budget: Duration) -> Spin {
        Spin {
            budget,
            state: Mutex::new(State {
                inputs: Vec::new(),
                window: budget,
                since: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an input to poll, through a duplicate of its descriptor: only its
    /// readiness is asked, nothing is read from it.
    pub fn watch(&self, fd: BorrowedFd<'_>) {
        if self.budget.is_zero() {
            return;
        }
        match fd.try_clone_to_owned() {
            Ok(dup) => self.state().inputs.push(dup),
            Err(e) => log!("[kvlar] cannot busy-poll an input (it is waited for as usual): {e}"),
        }
    }

    /// The window the next wait polls for.
    #[cfg(test)]
    pub fn window(&self) -> Duration {
        self.state().window
    }

    /// Before the runtime sleeps while a request is owed: starts timing the
    /// wait, then polls the inputs until one is readable (or closed), or the
    /// window is spent; returns whether one was. A failing poll ends it: the
    /// runtime's own wait is always there behind it.
    pub fn park(&self) -> bool {
        if self.budget.is_zero() {
            return false;
        }
        let mut state = self.state();
        let start = Instant::now();
        state.since = Some(start);
        if state.inputs.is_empty() || state.window.is_zero() {
            return false;
        }
        // Two inputs: no allocation each time the runtime parks.
        let mut set: SmallVec<[PollFd<'_>; 2]> = state
            .inputs
            .iter()
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        loop {
            match poll(&mut set, PollTimeout::ZERO) {
                Ok(0) => {}
                Ok(_) => return true,
                Err(_) => return false,
            }
            if start.elapsed() >= state.window {
                return false;
            }
            // Let the process we wait for run here if it is queued on this CPU.
            std::thread::yield_now();
        }
    }

    /// After the runtime wakes up: adapts the window to how long the wait
    /// begun by [`Spin::park`] took.
    pub fn unpark(&self) {
        // Called on every wake-up: with polling off, not even the lock.
        if self.budget.is_zero() {
            return;
        }
        let mut state = self.state();
        if let Some(since) = state.since.take() {
            state.window = adapt(state.window, since.elapsed(), self.budget);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::thread;

    #[test]
    fn returns_as_soon_as_an_input_is_readable() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let (_c, d) = UnixStream::pair().unwrap();
        let spin = Spin::new(Duration::from_secs(30));
        spin.watch(d.as_fd());
        spin.watch(b.as_fd());
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            a.write_all(b"{}\n").unwrap();
            a
        });
        let t = Instant::now();
        assert!(spin.park());
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(20), "{waited:?}");
        assert!(waited < Duration::from_secs(30), "{waited:?}");
        drop(writer.join().unwrap());
    }

    #[test]
    fn gives_up_after_its_budget() {
        let (_a, b) = UnixStream::pair().unwrap();
        let spin = Spin::new(Duration::from_millis(5));
        spin.watch(b.as_fd());
        let t = Instant::now();
        assert!(!spin.park());
        assert!(t.elapsed() >= Duration::from_millis(5));
    }

    #[test]
    fn a_closed_input_ends_it() {
        let (a, b) = UnixStream::pair().unwrap();
        let spin = Spin::new(Duration::from_secs(30));
        spin.watch(b.as_fd());
        drop(a);
        assert!(spin.park());
    }

    #[test]
    fn a_zero_budget_never_polls_and_keeps_no_descriptor() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let spin = Spin::new(Duration::ZERO);
        spin.watch(b.as_fd());
        a.write_all(b"{}\n").unwrap();
        assert!(!spin.park());
        assert!(spin.state().inputs.is_empty());
        spin.unpark();
        assert_eq!(spin.window(), Duration::ZERO);
    }

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn the_window_halves_after_waits_longer_than_the_budget_down_to_none() {
        let budget = 100 * US;
        let slow = 150 * US;
        assert_eq!(adapt(budget, slow, budget), 50 * US);
        assert_eq!(adapt(50 * US, slow, budget), 25 * US);
        // Half of 25 µs is under a quarter of the budget: polling stops.
        assert_eq!(adapt(25 * US, slow, budget), Duration::ZERO);
        assert_eq!(adapt(Duration::ZERO, slow, budget), Duration::ZERO);
        assert_eq!(adapt(40 * US, budget + US, budget), Duration::ZERO);
    }

    #[test]
    fn the_window_doubles_back_after_a_wait_it_would_have_caught() {
        let budget = 100 * US;
        // From none, polling restarts at a quarter of the budget.
        assert_eq!(adapt(Duration::ZERO, 30 * US, budget), 25 * US);
        assert_eq!(adapt(25 * US, 30 * US, budget), 50 * US);
        assert_eq!(adapt(50 * US, 60 * US, budget), budget);
        assert_eq!(adapt(50 * US, budget, budget), budget);
        assert_eq!(adapt(budget, budget, budget), budget);
        // A wait the window caught changes nothing.
        assert_eq!(adapt(50 * US, 40 * US, budget), 50 * US);
        assert_eq!(adapt(50 * US, 50 * US, budget), 50 * US);
    }

    #[test]
    fn slow_waits_turn_polling_off_and_a_quick_one_turns_it_back_on() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let budget = Duration::from_millis(20);
        let spin = Spin::new(budget);
        spin.watch(b.as_fd());
        assert_eq!(spin.window(), budget);
        // Nothing arrives within the window; the runtime then sleeps past the budget.
        for expected in [budget / 2, budget / 4, Duration::ZERO] {
            assert!(!spin.park());
            thread::sleep(budget * 2);
            spin.unpark();
            assert_eq!(spin.window(), expected);
        }
        // With no window, a readable input is not polled for, but the wait is
        // still timed: it ended at once, so polling comes back.
        a.write_all(b"{}\n").unwrap();
        assert!(!spin.park());
        spin.unpark();
        assert_eq!(spin.window(), budget / 4);
        assert!(spin.park());
    }

    #[test]
    fn a_wake_up_without_a_timed_wait_changes_nothing() {
        let spin = Spin::new(100 * US);
        spin.state().window = 50 * US;
        thread::sleep(Duration::from_millis(1));
        spin.unpark();
        assert_eq!(spin.window(), 50 * US);
    }

    #[test]
    fn without_inputs_it_returns_at_once() {
        let spin = Spin::new(Duration::from_secs(30));
        assert!(!spin.park());
    }
}
