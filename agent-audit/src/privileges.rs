//! Checks, before touching the kernel, that this process may load and attach BPF tracing
//! programs, so that the user gets a sentence instead of `EPERM` from `bpf(2)`.

use std::fs;

/// Capability numbers from `linux/capability.h`.
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Missing privileges.
#[derive(Debug, thiserror::Error)]
#[error(
    "missing {missing}: loading and attaching the sys_enter program needs CAP_BPF and \
     CAP_PERFMON (Linux 5.8+) or CAP_SYS_ADMIN. Run as root (`sudo agent-audit …`) or grant \
     them: `sudo setcap cap_bpf,cap_perfmon,cap_dac_override+ep $(command -v agent-audit)`"
)]
pub struct PrivilegeError {
    /// The capabilities lacking, e.g. `CAP_BPF and CAP_PERFMON`.
    pub missing: String,
}

/// Effective capabilities of this process, from /proc/self/status.
fn effective_caps() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

/// Ok when the effective set allows loading tracing programs.
pub fn check_bpf_privileges() -> Result<(), PrivilegeError> {
    check_caps(effective_caps())
}

fn check_caps(caps: u64) -> Result<(), PrivilegeError> {
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(c, _)| !has(*c))
        .map(|(_, n)| n)
        .collect();
    Err(PrivilegeError {
        missing: missing.join(" and "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_exactly_the_missing_capabilities() {
        assert!(check_caps(1 << CAP_SYS_ADMIN).is_ok());
        assert!(check_caps((1 << CAP_BPF) | (1 << CAP_PERFMON)).is_ok());
        let err = check_caps(1 << CAP_BPF).unwrap_err();
        assert_eq!(err.missing, "CAP_PERFMON");
        let err = check_caps(0).unwrap_err();
        assert_eq!(err.missing, "CAP_BPF and CAP_PERFMON");
        assert!(err.to_string().contains("sudo"));
    }
}
