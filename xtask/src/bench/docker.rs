//! Enforcement: the loops and the workload in a Docker container under no seccomp filter, under
//! Docker's built-in default profile, under Podman's default profile (if Debian's
//! golang-github-containers-common installed it) and under the profile generated from
//! agent-audit's recording of that very container.
//!
//! The image is empty but for mount points: the host's /usr (so the container runs the same
//! git, tar and sh binaries as the host cases), the bench programs at /bench and the workload
//! tmpfs at /work are bind-mounted, read-only where possible.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::env::BenchEnv;
use super::tracer::{self, Tracer};
use super::workload::SCRIPT;
use super::LoopSizes;

const IMAGE: &str = "agent-audit-bench:latest";
/// Podman's default profile (Docker's default, in the same file format), from Debian.
pub const PODMAN_PROFILE: &str = "/usr/share/containers/seccomp.json";

/// A seccomp setting for `docker run`.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Stable name used in results.
    pub name: &'static str,
    /// `--security-opt` value, or none for Docker's built-in default.
    pub security_opt: Option<String>,
}

/// The seccomp settings compared, in the order of the table.
pub fn profiles(generated: Option<&Path>) -> Vec<Profile> {
    let mut list = vec![
        Profile {
            name: "unconfined",
            security_opt: Some("seccomp=unconfined".into()),
        },
        Profile {
            name: "docker-default",
            security_opt: None,
        },
    ];
    if Path::new(PODMAN_PROFILE).exists() {
        list.push(Profile {
            name: "podman-default",
            security_opt: Some(format!("seccomp={PODMAN_PROFILE}")),
        });
    }
    if let Some(path) = generated {
        list.push(Profile {
            name: "generated",
            security_opt: Some(format!("seccomp={}", path.display())),
        });
    }
    list
}

/// Builds the image: a tarball of empty directories and the usr-merge symlinks.
pub fn build_image(env: &BenchEnv) -> Result<()> {
    let rootfs = env.out.join("rootfs");
    let _ = std::fs::remove_dir_all(&rootfs);
    for dir in ["usr", "work", "bench", "tmp", "proc", "sys", "dev", "etc"] {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    for (link, to) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        std::os::unix::fs::symlink(to, rootfs.join(link))?;
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()?;
    let status = Command::new("docker")
        .args(["import", "-", IMAGE])
        .stdin(tar.stdout.context("tar stdout")?)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("docker import failed: {status}");
    }
    Ok(())
}

/// What one container run measured.
#[derive(Debug)]
pub struct ContainerRun {
    /// (fastest batch, median batch) ns per getppid.
    pub getppid: (f64, f64),
    /// The same for fstat.
    pub fstat: (f64, f64),
    /// Workload wall time in ns, measured inside the container.
    pub workload_ns: f64,
}

/// Runs the loops and the workload in one container under `profile`.
pub fn run_container(
    env: &BenchEnv,
    profile: &Profile,
    sizes: &LoopSizes,
    cgroup_parent: Option<&Path>,
) -> Result<ContainerRun> {
    let script = format!(
        "/bench/bench-loop getppid {g} {b} && /bench/bench-loop fstat {f} {b} && \
         /bench/bench-time sh /work/{SCRIPT}",
        g = sizes.getppid,
        f = sizes.fstat,
        b = sizes.batches,
    );
    let text = run_script(env, profile, &script, cgroup_parent)?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() < 3 {
        bail!("container under {} printed {text:?}", profile.name);
    }
    Ok(ContainerRun {
        getppid: super::parse_loop(lines[0])?,
        fstat: super::parse_loop(lines[1])?,
        workload_ns: lines[2].trim().parse()?,
    })
}

/// Runs `sh -c script` in a container of the bench image under `profile` (the bench programs
/// at /bench, the host's /usr, the workload tmpfs at /work) and returns what it printed.
pub fn run_script(
    env: &BenchEnv,
    profile: &Profile,
    script: &str,
    cgroup_parent: Option<&Path>,
) -> Result<String> {
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--network", "none"])
        .arg("-v")
        .arg("/usr:/usr:ro")
        .arg("-v")
        .arg(format!("{}:/bench:ro", env.bin.display()))
        .arg("-v")
        .arg(format!("{}:/work", env.work.display()));
    if let Some(opt) = &profile.security_opt {
        cmd.args(["--security-opt", opt]);
    }
    if let Some(parent) = cgroup_parent {
        cmd.arg("--cgroup-parent").arg(env.rel(parent));
    }
    let out = cmd
        .args([IMAGE, "sh", "-c", script])
        .stderr(Stdio::piped())
        .output()
        .context("cannot run docker")?;
    if !out.status.success() {
        bail!(
            "container under {} failed ({}): {}",
            profile.name,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Records one unconfined run of the container with `agent-audit record` (the container's
/// cgroup is created below a recorded cgroup, so it is counted from runc's first syscall in
/// it, before seccomp would apply) and turns the allowlist into a profile.
pub fn generated_profile(env: &BenchEnv) -> Result<PathBuf> {
    let allowlist = env.out.join("container.allowlist.json");
    let tracer = Tracer::AgentAudit {
        attach: "auto",
        inside: true,
        targets: 1,
        attribution: true,
    };
    let recorder = tracer::record(
        env,
        tracer,
        "auto",
        std::slice::from_ref(&env.gen_cgroup),
        &allowlist,
    )?;
    let unconfined = &profiles(None)[0];
    let small = LoopSizes {
        getppid: 1000,
        fstat: 1000,
        batches: 2,
        strace: 0,
    };
    let run = run_container(env, unconfined, &small, Some(&env.gen_cgroup));
    // Let the daemon see the container's cgroup go; then stop it, which writes the file.
    std::thread::sleep(Duration::from_millis(300));
    recorder.stop()?;
    run?;
    let profile = env.out.join("generated.seccomp.json");
    crate::run(
        Command::new(env.bin.join("agent-audit"))
            .arg("profile")
            .arg(&allowlist)
            .arg("--out")
            .arg(&profile),
    )?;
    Ok(profile)
}
