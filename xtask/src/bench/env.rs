//! The bench's own corner of the machine: cgroup v2 directories to place loops in and to give
//! agent-audit as targets, a tmpfs holding the workload's generated source tree, and the
//! machine facts printed with every result.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Directory created below the cgroup v2 root (and, by Docker, in the v1 hierarchies).
pub const CGROUP_DIR: &str = "agent-audit-bench";
/// Idle cgroups created besides the loop's one for the scale cases (the largest has 255 more).
pub const EXTRA_TARGETS: usize = 255;

/// Cgroups, tmpfs and binaries of one bench run. Dropping it removes the cgroups and the tmpfs.
pub struct BenchEnv {
    /// cgroup v2 mount point, from /proc/self/mountinfo.
    pub cgroup2: PathBuf,
    /// Where the timed loops run, in every case.
    pub loop_cgroup: PathBuf,
    /// A target nothing runs in: agent-audit "outside every target".
    pub idle_cgroup: PathBuf,
    /// Parent of the containers whose syscalls become the generated profile.
    pub gen_cgroup: PathBuf,
    /// tmpfs with the workload script and its tree.
    pub work: PathBuf,
    /// Results, allowlists and profiles.
    pub out: PathBuf,
    /// target/release, holding agent-audit and the bench-* programs.
    pub bin: PathBuf,
}

impl BenchEnv {
    pub fn create(root: &Path, files: usize) -> Result<Self> {
        let cgroup2 = cgroup2_mount()?;
        let base = cgroup2.join(CGROUP_DIR);
        let out = root.join("target/bench");
        let work = out.join("tmpfs");
        let env = Self {
            loop_cgroup: base.join("loop"),
            idle_cgroup: base.join("idle"),
            gen_cgroup: base.join("gen"),
            cgroup2,
            work,
            out,
            bin: root.join("target/release"),
        };
        env.cleanup(); // a previous run that was killed
        for dir in [&env.loop_cgroup, &env.idle_cgroup, &env.gen_cgroup] {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        for i in 1..=EXTRA_TARGETS {
            fs::create_dir_all(env.extra_target(i))?;
        }
        fs::create_dir_all(&env.work)?;
        // A tmpfs of our own: the workload measures syscalls, not the disk, and needs no
        // assumption about /dev/shm.
        crate::run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=1g", "agent-audit-bench"])
                .arg(&env.work),
        )?;
        crate::bench::workload::generate(&env.work, files)?;
        Ok(env)
    }

    /// The `i`-th idle extra target (1-based).
    pub fn extra_target(&self, i: usize) -> PathBuf {
        self.cgroup2.join(CGROUP_DIR).join(format!("t{i:03}"))
    }

    /// `path` relative to the cgroup v2 root, as `--cgroup` and `--cgroup-parent` take it.
    pub fn rel(&self, cgroup: &Path) -> String {
        format!(
            "/{}",
            cgroup
                .strip_prefix(&self.cgroup2)
                .unwrap_or(cgroup)
                .display()
        )
    }

    /// A command that moves itself into `cgroup` and then execs `program args…`, so the
    /// program's very first instruction already runs there.
    pub fn in_cgroup(&self, cgroup: &Path, program: &Path, args: &[String]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#)
            .arg("sh")
            .arg(cgroup)
            .arg(program)
            .args(args);
        cmd
    }

    fn cleanup(&self) {
        if self.work.exists() {
            let _ = Command::new("umount")
                .arg(&self.work)
                .stderr(Stdio::null())
                .status();
        }
        // Docker's cgroupfs driver also creates our directories in every v1 hierarchy.
        let mut roots = cgroup_mounts("cgroup");
        roots.push(self.cgroup2.clone());
        for root in roots {
            remove_cgroup_tree(&root.join(CGROUP_DIR));
        }
    }
}

impl Drop for BenchEnv {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Removes a cgroup directory tree, deepest first (cgroup directories are removed with rmdir).
fn remove_cgroup_tree(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_cgroup_tree(&entry.path());
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Mount points of filesystems of type `fstype`, from /proc/self/mountinfo.
fn cgroup_mounts(fstype: &str) -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split_whitespace().nth(4)?;
            (right.split_whitespace().next()? == fstype).then(|| PathBuf::from(mount_point))
        })
        .collect()
}

/// The cgroup v2 mount: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones.
fn cgroup2_mount() -> Result<PathBuf> {
    match cgroup_mounts("cgroup2").into_iter().next() {
        Some(m) => Ok(m),
        None => bail!("no cgroup2 filesystem in /proc/self/mountinfo: agent-audit needs cgroup v2"),
    }
}

/// Machine facts named with every result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub loadavg_start: String,
    pub loadavg_end: String,
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map_or("unknown".into(), |(_, m)| m.trim().to_string()),
            kernel: read_trim("/proc/sys/kernel/osrelease"),
            loadavg_start: read_trim("/proc/loadavg"),
            loadavg_end: String::new(),
        }
    }
}

pub fn read_trim(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// VmRSS and VmHWM of a process, in KiB.
pub fn memory_kib(pid: u32) -> Option<(f64, f64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Waits until process `pid` holds a BPF link or perf event fd (its program is attached), or
/// fails after `timeout_ms`.
pub fn wait_attached(pid: u32, timeout_ms: u64) -> Result<()> {
    for _ in 0..timeout_ms / 20 {
        if let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) {
            let attached = fds.flatten().any(|fd| {
                fs::read_link(fd.path())
                    .map(|t| {
                        let t = t.to_string_lossy();
                        t == "anon_inode:bpf_link" || t == "anon_inode:[perf_event]"
                    })
                    .unwrap_or(false)
            });
            if attached {
                return Ok(());
            }
        } else {
            bail!("process {pid} exited before attaching");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    bail!("process {pid} did not attach within {timeout_ms} ms")
}

/// Waits until the log file of process `pid` contains `needle` (its readiness line).
pub fn wait_for_line(pid: u32, log: &Path, needle: &str, timeout_ms: u64) -> Result<()> {
    for _ in 0..timeout_ms / 20 {
        if fs::read_to_string(log).is_ok_and(|text| text.contains(needle)) {
            return Ok(());
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            bail!(
                "process {pid} exited before it was ready (see {})",
                log.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    bail!(
        "process {pid} was not ready within {timeout_ms} ms (see {})",
        log.display()
    )
}

/// Reads the first line a child prints (its "ready" signal) and leaves the rest unread.
pub fn first_line(child: &mut std::process::Child) -> Result<String> {
    let stdout = child.stdout.as_mut().context("stdout not piped")?;
    let mut line = String::new();
    BufReader::new(stdout.by_ref().take(4096)).read_line(&mut line)?;
    Ok(line.trim().to_string())
}
