//! Busy-polling while the server owes an answer.
//!
//! A call through the proxy is two more pipe hops than a direct connection.
//! When the proxy's thread sleeps between them, the server's answer has to
//! wake it; on a virtual machine whose idle vCPUs halt, that wake-up costs
//! tens of microseconds when the proxy slept on another vCPU (23–33 µs
//! measured here, against 3–7 µs on the waker's own vCPU).
//!
//! So while a request forwarded to the server is unanswered, the runtime,
//! before it sleeps, polls the proxy's two inputs (the client's stdin and the
//! server's stdout) without blocking, for a short budget (`--busy-poll`,
//! 100 µs by default), yielding the CPU between polls to anything else
//! runnable on it. When an input becomes readable within the budget, the
//! runtime's own wait returns at once and the message goes on without a
//! wake-up; after the budget it sleeps as before. With nothing owed (an
//! agent thinking between calls) the proxy sleeps at once: busy-polling
//! costs at most one budget of CPU per message while a request is out.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use smallvec::SmallVec;

/// The inputs to poll and how long to poll them before the runtime sleeps.
pub struct Spin {
    budget: Duration,
    inputs: Mutex<Vec<OwnedFd>>,
}

impl Spin {
    /// A zero `budget` turns busy-polling off.
    pub fn new(budget: Duration) -> Spin {
        Spin {
            budget,
            inputs: Mutex::new(Vec::new()),
        }
    }

    /// Adds an input to poll, through a duplicate of its descriptor: only its
    /// readiness is asked, nothing is read from it.
    pub fn watch(&self, fd: BorrowedFd<'_>) {
        if self.budget.is_zero() {
            return;
        }
        match fd.try_clone_to_owned() {
            Ok(dup) => self
                .inputs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(dup),
            Err(e) => log!("[kvlar] cannot busy-poll an input (it is waited for as usual): {e}"),
        }
    }

    /// Polls the inputs until one is readable (or closed), or the budget is
    /// spent; returns whether one was. A failing poll ends it: the runtime's
    /// own wait is always there behind it.
    pub fn poll_inputs(&self) -> bool {
        if self.budget.is_zero() {
            return false;
        }
        let inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        if inputs.is_empty() {
            return false;
        }
        // Two inputs: no allocation each time the runtime parks.
        let mut set: SmallVec<[PollFd<'_>; 2]> = inputs
            .iter()
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        let start = Instant::now();
        loop {
            match poll(&mut set, PollTimeout::ZERO) {
                Ok(0) => {}
                Ok(_) => return true,
                Err(_) => return false,
            }
            if start.elapsed() >= self.budget {
                return false;
            }
            // Let the process we wait for run here if it is queued on this CPU.
            std::thread::yield_now();
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
        assert!(spin.poll_inputs());
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
        assert!(!spin.poll_inputs());
        assert!(t.elapsed() >= Duration::from_millis(5));
    }

    #[test]
    fn a_closed_input_ends_it() {
        let (a, b) = UnixStream::pair().unwrap();
        let spin = Spin::new(Duration::from_secs(30));
        spin.watch(b.as_fd());
        drop(a);
        assert!(spin.poll_inputs());
    }

    #[test]
    fn a_zero_budget_never_polls_and_keeps_no_descriptor() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let spin = Spin::new(Duration::ZERO);
        spin.watch(b.as_fd());
        a.write_all(b"{}\n").unwrap();
        assert!(!spin.poll_inputs());
        assert!(spin.inputs.lock().unwrap().is_empty());
    }

    #[test]
    fn without_inputs_it_returns_at_once() {
        let spin = Spin::new(Duration::from_secs(30));
        assert!(!spin.poll_inputs());
    }
}
