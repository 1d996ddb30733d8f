//! Who made each syscall: per-syscall `programs` (comm, root or not, exact counts, at most 16
//! then `programs_omitted`), the `executables` run with their uid, and the `privilege_drop`
//! split, for a workload that starts as root and drops to nobody.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::{timestamp_ns, Allowlist};
use agent_audit_tests::process::run;
use agent_audit_tests::{agent_audit_bin, require_root};
use serde_json::Value;

const HELPER: &str = env!("CARGO_BIN_EXE_getppid-loop");
/// The helper's task name.
const HELPER_COMM: &str = "getppid-loop";
const TIMEOUT: Duration = Duration::from_secs(60);
/// Programs listed per syscall before the rest are only counted
/// (docs/attribution-and-arguments.md: the first 16).
const LISTED: usize = 16;
const NOBODY: u32 = 65534;

/// Runs `agent-audit run -- argv…` and returns the allowlist.
fn run_recorded(dir: &Path, argv: &[&str]) -> Allowlist {
    let out = dir.join("allowlist.json");
    let done = run(
        Command::new(agent_audit_bin())
            .arg("run")
            .arg("--out")
            .arg(&out)
            .arg("--")
            .args(argv),
        TIMEOUT,
    );
    done.assert_code(0);
    Allowlist::read(&out)
}

/// (comm, as_root) → count of one syscall row's programs.
fn programs(row: &Value) -> BTreeMap<(String, bool), u64> {
    let mut map = BTreeMap::new();
    for p in row["programs"].as_array().into_iter().flatten() {
        let key = (
            p["comm"].as_str().unwrap().to_string(),
            p["as_root"].as_bool().unwrap(),
        );
        assert!(
            map.insert(key, p["count"].as_u64().unwrap()).is_none(),
            "{row}"
        );
    }
    map
}

fn row<'a>(list: &'a Allowlist, name: &str) -> &'a Value {
    let rows: Vec<_> = list
        .syscalls()
        .iter()
        .filter(|s| s["name"] == name)
        .collect();
    assert_eq!(rows.len(), 1, "{name}: {rows:?}");
    rows[0]
}

#[test]
fn root_run_names_the_programs_users_and_privilege_drop() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (as_root, as_nobody) = (3_000u64, 2_000u64);
    let inner = format!("{HELPER} {as_nobody}; /bin/cat /etc/hostname");
    let script = format!(
        "{HELPER} {as_root}; /usr/bin/setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups \
         /bin/sh -c '{inner}'"
    );
    let list = run_recorded(dir.path(), &["/bin/sh", "-c", &script]);
    let dump = format!("{:#}", list.0);

    // Every exec, with the uid it ran as.
    let execs: BTreeSet<(String, u64, u64)> = list
        .rows("executables")
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["uid"].as_u64().unwrap(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let nobody = u64::from(NOBODY);
    let expected: BTreeSet<(String, u64, u64)> = [
        ("/bin/sh", 0),
        (HELPER, 0),
        ("/usr/bin/setpriv", 0),
        ("/bin/sh", nobody),
        (HELPER, nobody),
        ("/bin/cat", nobody),
    ]
    .iter()
    .map(|(p, u)| (p.to_string(), *u, 1))
    .collect();
    assert_eq!(execs, expected, "{dump}");

    // Exact counts per program: the helper's getppid calls, as root and as nobody; the
    // shells (dash reads $PPID) are the only other callers.
    let getppid = programs(row(&list, "getppid"));
    assert_eq!(
        getppid.get(&(HELPER_COMM.into(), true)),
        Some(&as_root),
        "{getppid:?}"
    );
    assert_eq!(
        getppid.get(&(HELPER_COMM.into(), false)),
        Some(&as_nobody),
        "{getppid:?}"
    );
    assert!(
        getppid
            .keys()
            .all(|(comm, _)| comm == HELPER_COMM || comm == "sh"),
        "{getppid:?}"
    );
    // setpriv changes its uid first (as root), then its gid and groups (as nobody, with the
    // capabilities it kept); reading the file is cat's, as nobody.
    for (call, root) in [
        ("setresuid", true),
        ("setresgid", false),
        ("setgroups", false),
    ] {
        let r = row(&list, call);
        assert_eq!(
            programs(r).keys().collect::<Vec<_>>(),
            [&("setpriv".to_string(), root)],
            "{r}"
        );
    }
    assert!(
        programs(row(&list, "openat")).contains_key(&("cat".to_string(), false)),
        "{dump}"
    );

    // Every row: its programs add up to its count, none omitted, first before last.
    let mut root_names = BTreeSet::new();
    let mut user_names = BTreeSet::new();
    let mut first_user_call = i128::MAX;
    for s in list.syscalls() {
        let name = s["name"].as_str().unwrap().to_string();
        let progs = programs(s);
        assert!(!progs.is_empty(), "no programs for {s}");
        assert_eq!(
            progs.values().sum::<u64>(),
            s["count"].as_u64().unwrap(),
            "{s}"
        );
        assert!(s.get("programs_omitted").is_none(), "{s}");
        for p in s["programs"].as_array().unwrap() {
            let (first, last) = (
                timestamp_ns(&p["first_seen"]),
                timestamp_ns(&p["last_seen"]),
            );
            assert!(first <= last, "first_seen after last_seen: {p}");
            if p["as_root"].as_bool().unwrap() {
                root_names.insert(name.clone());
            } else {
                user_names.insert(name.clone());
                first_user_call = first_user_call.min(first);
            }
        }
    }

    // The split is the programs' own.
    let drop = &list.0["privilege_drop"];
    assert!(drop.is_object(), "no privilege_drop:\n{dump}");
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    };
    let root_only: Vec<String> = root_names.difference(&user_names).cloned().collect();
    assert_eq!(names(&drop["root_only"]), root_only, "{drop}");
    assert_eq!(
        names(&drop["unprivileged"]),
        user_names.iter().cloned().collect::<Vec<_>>(),
        "{drop}"
    );
    assert!(root_only.contains(&"setresuid".to_string()), "{drop}");
    assert!(user_names.contains("getppid"), "{drop}");
    assert_eq!(
        timestamp_ns(&drop["first_unprivileged_call"]),
        first_user_call,
        "{drop}"
    );
}

#[test]
fn root_run_lists_16_programs_per_syscall_and_counts_the_rest() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    // 20 names for the helper; program i makes i+1 getppid calls. xargs and env (which
    // launch them, one after another) make none.
    let names: Vec<String> = (0..20).map(|i| format!("pc-{i:02}")).collect();
    let mut lines = String::new();
    for (i, name) in names.iter().enumerate() {
        let link = dir.path().join(name);
        symlink(HELPER, &link).unwrap();
        lines.push_str(&format!("{} {}\n", link.display(), i + 1));
    }
    let list_file = dir.path().join("programs.txt");
    fs::write(&list_file, lines).unwrap();
    let list = run_recorded(
        dir.path(),
        &[
            "/usr/bin/xargs",
            "-a",
            list_file.to_str().unwrap(),
            "-L1",
            "/usr/bin/env",
        ],
    );
    let getppid = row(&list, "getppid");
    let total: u64 = (1..=names.len() as u64).sum();
    assert_eq!(getppid["count"].as_u64(), Some(total), "{getppid}");
    let listed: Vec<(String, u64)> = getppid["programs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["comm"].as_str().unwrap().to_string(),
                p["count"].as_u64().unwrap(),
            )
        })
        .collect();
    // The earliest 16, in the order they ran, each with its exact count.
    let expected: Vec<(String, u64)> = names
        .iter()
        .take(LISTED)
        .enumerate()
        .map(|(i, n)| (n.clone(), i as u64 + 1))
        .collect();
    assert_eq!(listed, expected, "{getppid}");
    assert_eq!(
        getppid["programs_omitted"].as_u64(),
        Some((names.len() - LISTED) as u64),
        "{getppid}"
    );
    // Each ran once, as root.
    let execs = list.rows("executables");
    for name in &names {
        assert!(
            execs
                .iter()
                .any(|e| e["comm"] == name.as_str() && e["uid"] == 0 && e["count"] == 1),
            "{name} missing from {execs:?}"
        );
    }
}
