//! How long `check` and `verify` take on profiles with very many rules:
//! libseccomp snapshots the whole filter on every rule it is given, so its cost grows with the
//! square of the rules. agent-audit merges identical rules before compiling and refuses more
//! than 4096 distinct ones when it reads a profile; these rows show what that leaves.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::env::BenchEnv;
use super::samples::Samples;
use crate::step;

/// The profiles timed: (case, what it is).
pub const CASES: [(&str, &str); 4] = [
    (
        "rules-cycle-40000",
        "40 000 rules, one name each, cycling through every name of the project's table, each \
         with its own comment (3.1 MB JSON)",
    ),
    (
        "rules-anchor-100000",
        "100 000 rules of 6 names aliasing one YAML anchor (700 KB SPO YAML)",
    ),
    (
        "rules-distinct-4096",
        "4 096 distinct conditional rules (each name with argument 0 == k): the most read",
    ),
    (
        "rules-distinct-4097",
        "4 097 distinct conditional rules: refused when read (exit 65)",
    ),
];

/// Writes the profiles, then times `check` and `verify -- /bin/true` on each, `reps` times.
pub fn run(env: &BenchEnv, root: &Path, reps: usize, samples: &mut Samples) -> Result<()> {
    step("many rules: check and verify on profiles of 4 096 to 100 000 rules");
    let dir = env.out.join("rules");
    std::fs::create_dir_all(&dir)?;
    let names = syscall_names(root)?;
    let profiles = write_profiles(&dir, &names)?;
    let bin = env.bin.join("agent-audit");
    for rep in 0..reps {
        for (case, path) in &profiles {
            let check = timed(Command::new(&bin).arg("check").arg(path))?;
            samples.add(case, "check_s", rep, check.0);
            samples.add(case, "check_exit", rep, f64::from(check.1));
            let verify = timed(
                Command::new(&bin)
                    .args(["verify", "--profile"])
                    .arg(path)
                    .args(["--", "/bin/true"]),
            )?;
            samples.add(case, "verify_s", rep, verify.0);
            samples.add(case, "verify_exit", rep, f64::from(verify.1));
        }
    }
    Ok(())
}

/// Wall time and exit code of one run; a crash or a signal is an error.
fn timed(cmd: &mut Command) -> Result<(f64, u8)> {
    let started = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running agent-audit")?;
    let seconds = started.elapsed().as_secs_f64();
    match status.code().and_then(|c| u8::try_from(c).ok()) {
        Some(code @ (0 | 1 | 65)) => Ok((seconds, code)),
        _ => bail!("{cmd:?} ended with {status}"),
    }
}

/// Every syscall name of the project's description table (all five arches).
fn syscall_names(root: &Path) -> Result<Vec<String>> {
    let path = root.join("agent-audit/data/syscall-descriptions.json");
    let table: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let names: Vec<String> = table["descriptions"]
        .as_object()
        .with_context(|| format!("{}: no descriptions", path.display()))?
        .keys()
        .cloned()
        .collect();
    Ok(names)
}

fn write_profiles(dir: &Path, names: &[String]) -> Result<Vec<(&'static str, PathBuf)>> {
    let rule = |name: &str, comment: String, value: Option<usize>| {
        let mut rule = serde_json::json!({
            "names": [name], "action": "SCMP_ACT_ALLOW", "comment": comment,
        });
        if let Some(value) = value {
            rule["args"] = serde_json::json!([{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]);
        }
        rule
    };
    let profile = |rules: Vec<serde_json::Value>| {
        serde_json::to_vec(&serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": rules,
        }))
    };
    let cycle = (0..40_000)
        .map(|i| rule(&names[i % names.len()], format!("rule {i}"), None))
        .collect();
    let distinct = |n: usize| {
        (0..n)
            .map(|i| {
                rule(
                    &names[i % names.len()],
                    format!("rule {i}"),
                    Some(i / names.len()),
                )
            })
            .collect()
    };
    let mut anchors = String::from(
        "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\n\
         metadata:\n  name: anchors\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  \
         architectures: [SCMP_ARCH_X86_64]\n  syscalls:\n  - &r {names: [read, write, openat, \
         close, mmap, exit_group], action: SCMP_ACT_ALLOW}\n",
    );
    anchors.push_str(&"  - *r\n".repeat(100_000 - 1));
    let files = [
        ("rules-cycle-40000", "cycle-40000.json", profile(cycle)?),
        (
            "rules-anchor-100000",
            "anchors-100000.yaml",
            anchors.into_bytes(),
        ),
        (
            "rules-distinct-4096",
            "distinct-4096.json",
            profile(distinct(4096))?,
        ),
        (
            "rules-distinct-4097",
            "distinct-4097.json",
            profile(distinct(4097))?,
        ),
    ];
    let mut written = Vec::new();
    for (case, file, bytes) in files {
        let path = dir.join(file);
        std::fs::write(&path, bytes)?;
        written.push((case, path));
    }
    Ok(written)
}

/// Markdown of the rows.
pub fn markdown(s: &Samples, o: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(
        o,
        "\n### Many rules: `check PROFILE` and `verify --profile PROFILE -- /bin/true`\n\n\
         Wall time, median of {} runs (verify includes loading the kernel program, about 0.1 s, \
         and running `/bin/true`).\n\n\
         | profile | check s | exit | verify s | exit |\n|---|---:|---:|---:|---:|",
        s.values(CASES[0].0, "check_s").len()
    );
    let secs = |case: &str, metric: &str| {
        s.median(case, metric)
            .map_or("—".into(), |v| format!("{v:.3}"))
    };
    let code = |case: &str, metric: &str| {
        s.median(case, metric)
            .map_or("—".into(), |v| format!("{v:.0}"))
    };
    for (case, label) in CASES {
        let _ = writeln!(
            o,
            "| {label} | {} | {} | {} | {} |",
            secs(case, "check_s"),
            code(case, "check_exit"),
            secs(case, "verify_s"),
            code(case, "verify_exit"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The profiles are what the rows say: 40 000 cycled rules, 100 000 aliases, 4 096 and
    /// 4 097 distinct conditional rules.
    #[test]
    fn the_profiles_have_the_rules_the_rows_name() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let dir = std::env::temp_dir().join(format!("xtask-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let names = syscall_names(root).unwrap();
        let written = write_profiles(&dir, &names).unwrap();
        let cases: Vec<&str> = written.iter().map(|(case, _)| *case).collect();
        assert_eq!(cases, CASES.map(|(case, _)| case));
        let rules = |path: &Path| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            v["syscalls"].as_array().unwrap().len()
        };
        assert_eq!(rules(&written[0].1), 40_000);
        let yaml = std::fs::read_to_string(&written[1].1).unwrap();
        assert_eq!(
            yaml.lines().filter(|l| l.starts_with("  - ")).count(),
            100_000
        );
        assert_eq!(rules(&written[2].1), 4096);
        assert_eq!(rules(&written[3].1), 4097);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
