//! `agent-audit record --wait …` started before the container it records: the test waits for
//! the recorder's readiness line on stderr (everything created after it is recorded from its
//! first syscall), starts the container, and then waits for the recorder to exit by itself
//! when the container's cgroup is gone.

use std::process::Command;
use std::time::Duration;

use crate::agent_audit_bin;
use crate::process::{wait_until, Finished, Running};

/// What `record --wait` prints on stderr once the kernel program is armed.
const READY_PREFIX: &str = "agent-audit: recording ";
const READY_WORD: &str = "armed for new cgroups";

/// A `record --wait` process that is armed; killed on drop (by [`Running`]'s drop).
pub struct ArmedRecorder {
    running: Option<Running>,
}

impl ArmedRecorder {
    /// Starts `agent-audit record --wait <args>` and waits (at most `timeout`) for its
    /// readiness line; panics with its output if it exits first.
    pub fn start(args: &[&str], timeout: Duration) -> Self {
        let mut running = Running::spawn(
            Command::new(agent_audit_bin())
                .arg("record")
                .arg("--wait")
                .args(args),
        );
        let mut exited = false;
        wait_until("the recorder's readiness line", timeout, || {
            exited = running.has_exited();
            exited
                || running
                    .stderr_so_far()
                    .lines()
                    .any(|l| l.starts_with(READY_PREFIX) && l.contains(READY_WORD))
        });
        if exited {
            let done = running.finish(timeout, "agent-audit record --wait");
            panic!("agent-audit record --wait exited before it was armed: {done:#?}");
        }
        Self {
            running: Some(running),
        }
    }

    /// Ends the recorder with SIGTERM (a `--keep-waiting` one does not end by itself); asserts
    /// it exited 0.
    pub fn stop(mut self, timeout: Duration) -> Finished {
        let running = self.running.take().expect("stopped once");
        running.signal(libc::SIGTERM);
        let done = running.finish(timeout, "agent-audit record --wait (SIGTERM)");
        done.assert_code(0);
        done
    }

    /// Waits for the recorder to exit on its own (every recorded cgroup gone); asserts it
    /// exited 0.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let done = self
            .running
            .take()
            .expect("finished once")
            .finish(timeout, "agent-audit record --wait (its containers ended)");
        done.assert_code(0);
        done
    }
}
