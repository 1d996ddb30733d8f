//! The signals that would end the process: `record` and `run` catch every one of them that can
//! be caught, so that whichever arrives, the final allowlist is written first.
//!
//! Caught: every signal whose default action ends the process and that is sent to ask it to
//! stop — SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF,
//! SIGXCPU, SIGIO, SIGPWR, SIGSTKFLT and the real-time signals. Not caught: SIGKILL and SIGSTOP
//! (impossible), and the signals of a fault in the process itself (SIGSEGV, SIGBUS, SIGILL,
//! SIGFPE, SIGTRAP, SIGABRT, SIGSYS), after which nothing it would write can be trusted.
//! Ignored: SIGPIPE (Rust's default: a closed pipe is an `EPIPE` error) and, by `record` (which
//! starts no command that would inherit it), SIGXFSZ, so that a file over the size limit is a
//! failed write, reported and retried like a full disk.

use std::io;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// The named signals caught (the real-time ones are added at run time).
const NAMED: [libc::c_int; 13] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGXCPU,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGSTKFLT,
];

/// Every stop signal, caught from [`StopSignals::install`] on.
pub struct StopSignals {
    received: mpsc::UnboundedReceiver<libc::c_int>,
}

impl StopSignals {
    /// Catches every stop signal. Must run inside a Tokio runtime.
    pub fn install() -> io::Result<Self> {
        let (sender, received) = mpsc::unbounded_channel();
        // Tokio handles signals below SIGRTMAX.
        let realtime = libc::SIGRTMIN()..libc::SIGRTMAX();
        for number in NAMED.into_iter().chain(realtime) {
            let mut stream = signal(SignalKind::from_raw(number))?;
            let sender = sender.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if sender.send(number).is_err() {
                        return;
                    }
                }
            });
        }
        Ok(Self { received })
    }

    /// The number of the next stop signal received.
    pub async fn recv(&mut self) -> libc::c_int {
        match self.received.recv().await {
            Some(number) => number,
            // Every forwarding task holds a sender and none ends first.
            None => std::future::pending().await,
        }
    }
}

/// A file written past `RLIMIT_FSIZE` fails with `EFBIG` instead of ending the process.
/// Not for a process that starts commands: an ignored signal stays ignored across exec.
pub fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to "ignore" has no preconditions.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
}

/// Whether a terminal sends `number` to the whole foreground process group (Ctrl-C, Ctrl-\),
/// so a command run in that group has received it already.
pub fn is_from_terminal(number: libc::c_int) -> bool {
    number == libc::SIGINT || number == libc::SIGQUIT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_signal_is_received_instead_of_ending_the_process() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut signals = StopSignals::install().unwrap();
            for number in [libc::SIGUSR2, libc::SIGRTMIN() + 1] {
                // SAFETY: raise(3) sends a signal to this thread; it is caught above.
                assert_eq!(unsafe { libc::raise(number) }, 0);
                assert_eq!(signals.recv().await, number);
            }
        });
    }
}
