//! The recorder's memory as a node agent: `record --wait --keep-waiting --cgroup-glob` with 256
//! live targets, its BPF maps from the kernel's own accounting (`bench-memory`: each map's
//! `memlock`, split into the share every possible CPU adds and the rest, with the kernel's
//! formula per map type) and its resident memory, projected to 2, 16, 64 and 192 CPUs.

use std::fmt::Write as _;
use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::env::{self, BenchEnv, CGROUP_DIR, EXTRA_TARGETS};
use super::samples::Samples;
use crate::step;

/// The CPU counts of the table.
pub const CPUS: [u64; 4] = [2, 16, 64, 192];
/// Sample case and metrics.
pub const CASE: &str = "memory";
pub const RSS: &str = "rss_bytes";
/// The metric of the maps' bytes projected to `cpus` CPUs.
pub fn maps_metric(cpus: u64) -> String {
    format!("maps_bytes_at_{cpus}")
}
/// The goals: (CPUs, MiB the whole recorder may take).
pub const GOALS: [(u64, f64); 2] = [(64, 64.0), (192, 128.0)];

const MIB: f64 = 1024.0 * 1024.0;

/// One map as `bench-memory` reports it.
#[derive(Debug, serde::Deserialize)]
struct MapRow {
    name: String,
    memlock: u64,
    per_cpu: u64,
}

/// What `bench-memory` prints.
#[derive(Debug, serde::Deserialize)]
struct Measured {
    possible_cpus: u64,
    rss: u64,
    shared: u64,
    /// (CPUs, what each adds, all maps) for each of [`CPUS`].
    at: Vec<(u64, u64, u64)>,
    maps: Vec<MapRow>,
}

/// Starts the node-wide recorder on 256 targets, lets every target count calls (so that the
/// attribution and argument tables hold entries, and snapshots have run), measures it, stops
/// it; returns the Markdown table and adds the totals to `samples`.
pub fn measure(env: &BenchEnv, samples: &mut Samples) -> Result<String> {
    step("memory: record --wait --keep-waiting --cgroup-glob with 256 live targets");
    let dir = env.out.join("memory");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let log_path = env.out.join("memory.log");
    // The extra targets (t001…t255) match the pattern; the idle cgroup is the 256th.
    let pattern = format!("/{CGROUP_DIR}/t*");
    let mut child = Command::new(env.bin.join("agent-audit"))
        .args(["record", "--wait", "--keep-waiting", "--interval", "1"])
        .arg("--cgroup-glob")
        .arg(pattern)
        .arg("--cgroup")
        .arg(env.rel(&env.idle_cgroup))
        .arg("--out-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(File::create(&log_path)?)
        .spawn()
        .context("cannot start agent-audit record")?;
    let pid = child.id();
    let result = (|| {
        env::wait_for_line(pid, &log_path, "agent-audit: recording 256 target", 60_000)?;
        for i in 1..=EXTRA_TARGETS {
            let status = env
                .in_cgroup(
                    &env.extra_target(i),
                    &env.bin.join("bench-loop"),
                    &["fcntl".into(), "2000".into(), "1".into()],
                )
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("bench-loop in target {i}: {status}");
            }
        }
        // Two snapshots: every file written, the tables read.
        std::thread::sleep(Duration::from_millis(2500));
        let out = Command::new(env.bin.join("bench-memory"))
            .arg(pid.to_string())
            .args(CPUS.map(|c| c.to_string()))
            .output()
            .context("running bench-memory")?;
        if !out.status.success() {
            bail!(
                "bench-memory failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice::<Measured>(&out.stdout)?)
    })();
    // SAFETY: signalling the recorder this function started.
    unsafe { libc::kill(pid.cast_signed(), libc::SIGTERM) };
    let status = child.wait()?;
    let m = result?;
    if !status.success() {
        bail!(
            "the recorder exited with {status} (see {})",
            log_path.display()
        );
    }
    samples.add(CASE, RSS, 0, m.rss as f64);
    for &(cpus, _, maps) in &m.at {
        samples.add(CASE, &maps_metric(cpus), 0, maps as f64);
    }
    Ok(markdown(&m))
}

fn markdown(m: &Measured) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n### Memory of a node-wide recorder: 256 live targets\n\n\
         `record --wait --keep-waiting --cgroup-glob` holding 256 targets that each made calls \
         (attribution and argument tables in use). BPF maps from the kernel's accounting \
         (`memlock` of each map descriptor, `bench-memory`): the share every possible CPU adds \
         (kernel formula per map type; the per-CPU tables the loader sizes from the CPU count at \
         the size it gives them there) and the rest; RSS as measured. This host: {} possible \
         CPUs.\n\n\
         | CPUs | per-CPU maps MiB | other maps MiB | RSS MiB | total MiB |\n|---:|---:|---:|---:|---:|",
        m.possible_cpus
    );
    for &(cpus, per_cpu, maps) in &m.at {
        let _ = writeln!(
            o,
            "| {cpus} | {:.1} | {:.1} | {:.1} | {:.1} |",
            (per_cpu * cpus) as f64 / MIB,
            m.shared as f64 / MIB,
            m.rss as f64 / MIB,
            (maps + m.rss) as f64 / MIB
        );
    }
    let _ = writeln!(
        o,
        "\nEach map (bytes on this host; what each CPU adds):\n\n\
         | map | KiB here | per CPU KiB |\n|---|---:|---:|"
    );
    for map in &m.maps {
        let _ = writeln!(
            o,
            "| {} | {:.1} | {:.2} |",
            map.name,
            map.memlock as f64 / 1024.0,
            map.per_cpu as f64 / 1024.0
        );
    }
    o
}
