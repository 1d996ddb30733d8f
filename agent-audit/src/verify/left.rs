//! Processes that left the command's cgroup while `verify` ran (seen by the kernel program:
//! `bpf::departures`). What they did afterwards was neither counted nor bounded by the run's
//! end, so the verdict cannot vouch for it: `verify` fails, lists them, and kills those still
//! running, with what they started since.

use serde::Serialize;

use crate::bpf::LeftTask;
use crate::run::Survivor;

/// A process that left the command's cgroup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeftProcess {
    /// Its pid.
    pub pid: u32,
    /// Its program name (`comm`) when it left.
    pub program: String,
    /// The cgroup v2 id it went to.
    pub to_cgroup_id: u64,
    /// It was created outside by a process inside (`clone3(CLONE_INTO_CGROUP)`), not moved.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub born_outside: bool,
    /// Still running when the run ended: it, and the processes below it, were killed (each
    /// listed, itself first). Empty when it had already ended.
    pub killed: Vec<Survivor>,
}

/// Describes each departure and kills what of it still runs.
pub(super) fn end(left: &[LeftTask]) -> Vec<LeftProcess> {
    left.iter()
        .map(|t| LeftProcess {
            pid: t.pid,
            program: t.comm.clone(),
            to_cgroup_id: t.to_cgroup,
            born_outside: t.born_outside,
            killed: kill_if_same(t),
        })
        .collect()
}

/// Kills the process and its descendants when `t.pid` is still the process that left (its
/// start time matches: a pid reused by another process is left alone).
fn kill_if_same(t: &LeftTask) -> Vec<Survivor> {
    if start_ticks(t.pid) != Some(ns_to_ticks(t.start_boottime_ns)) {
        return Vec::new();
    }
    let mut tree = vec![t.pid];
    descendants(t.pid, &mut tree);
    let killed: Vec<Survivor> = tree.iter().map(|&pid| Survivor::of(pid)).collect();
    for &pid in &tree {
        // SAFETY: plain kill(2); a process that ended meanwhile gives ESRCH.
        unsafe { libc::kill(pid.cast_signed(), libc::SIGKILL) };
    }
    killed
}

/// Field 22 of `/proc/<pid>/stat`: its start time in clock ticks since boot.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) is in parentheses and may hold anything: count after its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// `start_boottime` in the ticks `/proc/<pid>/stat` reports it in.
fn ns_to_ticks(ns: u64) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
    ns / (1_000_000_000 / hz.max(1))
}

/// Appends every live descendant of `pid` (by each process's parent in `/proc`).
fn descendants(pid: u32, out: &mut Vec<u32>) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    let parents: Vec<(u32, u32)> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| Some((p, parent_of(p)?)))
        .collect();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(child, _) in parents.iter().filter(|&&(_, pp)| pp == parent) {
            if !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
}

/// Field 4 of `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_start_time_is_read_from_proc() {
        let me = std::process::id();
        let ticks = start_ticks(me).expect("our own stat");
        assert!(ticks > 0);
        assert_eq!(parent_of(me), Some(std::os::unix::process::parent_id()));
    }

    #[test]
    fn a_pid_that_started_at_another_time_is_not_killed() {
        let me = std::process::id();
        let ticks = start_ticks(me).unwrap();
        // One tick later than ours: a different process that reused the pid.
        // SAFETY: sysconf has no preconditions.
        let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap();
        let other = LeftTask {
            pid: me,
            comm: "x".into(),
            from_cgroup: 0,
            to_cgroup: 0,
            ktime_ns: 0,
            start_boottime_ns: (ticks + 1) * (1_000_000_000 / hz),
            born_outside: false,
        };
        assert!(kill_if_same(&other).is_empty());
    }
}
