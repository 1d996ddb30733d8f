//! TEMPORARY: a minimal deny-by-default profile writer, standing in for `agent-audit profile`
//! (being written) so that the "generated" enforcement row measures something real. It allows
//! exactly the named syscalls of the allowlist, on the architectures the allowlist saw, and
//! answers everything else with EPERM. Replace with a call to `agent-audit profile` when it
//! lands; `profile_subcommand_available` tells the report which one produced the profile.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde_json::json;

/// Whether the binary already has the real `profile` subcommand.
pub fn profile_subcommand_available(agent_audit: &Path) -> bool {
    Command::new(agent_audit)
        .args(["profile", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Writes the OCI/Docker seccomp profile for the allowlist at `allowlist` to `out`.
pub fn write_profile(allowlist: &Path, out: &Path) -> Result<()> {
    let text =
        std::fs::read(allowlist).with_context(|| format!("cannot read {}", allowlist.display()))?;
    let json: serde_json::Value = serde_json::from_slice(&text)?;
    let mut names = BTreeSet::new();
    let mut arches = BTreeSet::new();
    for s in json["syscalls"].as_array().into_iter().flatten() {
        if let (Some(name), Some(arch)) = (s["name"].as_str(), s["arch"].as_str()) {
            names.insert(name.to_string());
            arches.insert(arch.to_string());
        }
    }
    anyhow::ensure!(
        !names.is_empty(),
        "{} names no syscall",
        allowlist.display()
    );
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": arches,
        "syscalls": [{ "names": names, "action": "SCMP_ACT_ALLOW" }],
    });
    std::fs::write(out, serde_json::to_vec_pretty(&profile)?)?;
    Ok(())
}
