use super::LintCode;
use std::path::Path;

use super::*;
use crate::profile::{build, oci, Merged, ProfileOptions};
use crate::seccomp::MAX_FILTER_INSTRUCTIONS;

const AGENT: &str = include_str!("../../../tests/data/profiles/gh-aw-firewall-agent-seccomp.json");
const ENCLAVE: &str =
    include_str!("../../../tests/data/profiles/gh-aw-firewall-enclave-seccomp.json");

fn check_json(json: &str) -> CheckReport {
    let profile = SeccompProfile::parse(json, Path::new("t.json")).unwrap();
    check(&profile, Path::new("t.json")).unwrap()
}

fn names_of(report: &CheckReport, code: LintCode) -> Vec<String> {
    report
        .with_code(code)
        .flat_map(|f| f.names.clone())
        .collect()
}

fn severity_of(report: &CheckReport, code: LintCode) -> Option<Severity> {
    report.with_code(code).map(|f| f.severity).min()
}

/// A small clean profile to break one defect at a time.
fn clean() -> serde_json::Value {
    let plan = build::plan(
        &Merged::new([(
            "a.json".to_string(),
            crate::allowlist::Allowlist::parse(
                r#"{"schema":"agent-audit/allowlist/v1","target":{"kind":"command","spec":"x","cgroup_path":"/","cgroup_id":1},
                "started_at":"1970-01-01T00:00:00Z","ended_at":"1970-01-01T00:00:00Z","complete":true,
                "host":{"kernel":"6","machine":"x86_64"},"recorder":{"version":"0","attach":"tp_btf"},
                "totals":{"calls":3,"distinct":3,"out_of_range":0},
                "syscalls":[{"name":"clock_gettime","arch":"SCMP_ARCH_X86","nr":265,"count":1},
                            {"name":"read","arch":"SCMP_ARCH_X86_64","nr":0,"count":1},
                            {"name":"write","arch":"SCMP_ARCH_X86_64","nr":1,"count":1}]}"#,
                Path::new("a.json"),
            )
            .unwrap(),
        )]),
        &ProfileOptions {
            baseline: true,
            extra_arches: vec![crate::syscalls::Arch::Aarch64],
            ..Default::default()
        },
    )
    .unwrap();
    serde_json::to_value(oci::to_seccomp_profile(&plan)).unwrap()
}

fn check_value(v: &serde_json::Value) -> CheckReport {
    check_json(&v.to_string())
}

#[test]
fn generated_profile_checks_clean() {
    let report = check_value(&clean());
    assert_eq!(
        (report.errors, report.warnings),
        (0, 0),
        "{}",
        report.to_text()
    );
    assert_eq!(report.with_code(LintCode::Compiles).count(), 3);
    // Explicit denies equal the default: reported, as notes.
    assert_eq!(
        severity_of(&report, LintCode::SameAsDefault),
        Some(Severity::Note)
    );
}

#[test]
fn each_defect_is_reported() {
    // Default allows.
    let mut v = clean();
    v["defaultAction"] = "SCMP_ACT_ALLOW".into();
    let r = check_value(&v);
    assert_eq!(
        severity_of(&r, LintCode::DefaultAllows),
        Some(Severity::Error)
    );

    // A dangerous syscall allowed, and one no longer denied explicitly.
    let mut v = clean();
    v["syscalls"][0]["names"]
        .as_array_mut()
        .unwrap()
        .push("mount".into());
    let rules = v["syscalls"].as_array_mut().unwrap();
    for rule in rules.iter_mut() {
        let names = rule["names"].as_array_mut().unwrap();
        names.retain(|n| n != "bpf");
    }
    let r = check_value(&v);
    assert!(names_of(&r, LintCode::DangerousAllowed).contains(&"mount".into()));
    assert!(names_of(&r, LintCode::AllowedAndDenied).contains(&"mount".into()));
    assert_eq!(names_of(&r, LintCode::DangerousNotDenied), vec!["bpf"]);
    assert!(r.has_errors());

    // Unknown names, names for other arches, a rule without comment.
    let mut v = clean();
    v["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
        {"names":["opne","read","s390_pci_mmio_read"],"action":"SCMP_ACT_ALLOW"}));
    let r = check_value(&v);
    assert_eq!(names_of(&r, LintCode::UnknownSyscall), vec!["opne"]);
    assert_eq!(names_of(&r, LintCode::NameInTwoRules), vec!["read"]);
    assert_eq!(
        names_of(&r, LintCode::NotOnListedArches),
        vec!["s390_pci_mmio_read"]
    );
    assert_eq!(
        severity_of(&r, LintCode::RuleWithoutComment),
        Some(Severity::Warning)
    );

    // clone3 with EPERM.
    let mut v = clean();
    let last = v["syscalls"].as_array_mut().unwrap().last_mut().unwrap();
    assert_eq!(last["names"][0], "clone3");
    last["errnoRet"] = 1.into();
    let r = check_value(&v);
    assert_eq!(
        severity_of(&r, LintCode::Clone3NotEnosys),
        Some(Severity::Error)
    );
    v["syscalls"].as_array_mut().unwrap().pop();
    let r = check_value(&v);
    let f = r.with_code(LintCode::Clone3NotEnosys).next().unwrap();
    assert!(f.message.contains("by the default action"), "{}", f.message);

    // x86 listed, time64 twin missing.
    let mut v = clean();
    v["architectures"]
        .as_array_mut()
        .unwrap()
        .push("SCMP_ARCH_X86".into());
    for rule in v["syscalls"].as_array_mut().unwrap() {
        rule["names"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n != "clock_gettime64");
    }
    let r = check_value(&v);
    let f = r
        .with_code(LintCode::Time64TwinMissing)
        .next()
        .expect("twin finding");
    assert_eq!(f.arch.as_deref(), Some("SCMP_ARCH_X86"));
    assert!(f.names.contains(&"clock_gettime64".into()));

    // A non-deny rule equal to an allow default is a warning.
    let r = check_json(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","comment":"x"}]}"#,
    );
    assert_eq!(
        severity_of(&r, LintCode::SameAsDefault),
        Some(Severity::Warning)
    );
}

#[test]
fn real_agent_profile_gets_sensible_answers() {
    let r = check_json(AGENT);
    assert_eq!(
        r.architectures,
        vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"]
    );
    // It allows mount, unshare, setns, chroot, kcmp and pidfd_getfd outright.
    let allowed = names_of(&r, LintCode::DangerousAllowed);
    for name in ["mount", "unshare", "setns", "chroot", "kcmp", "pidfd_getfd"] {
        assert!(allowed.contains(&name.to_string()), "{name}: {allowed:?}");
    }
    // Its explicit denies equal the default (ERRNO without defaultErrnoRet = EPERM).
    assert!(r.with_code(LintCode::SameAsDefault).count() >= 3);
    // bpf, perf_event_open, userfaultfd are only denied by default.
    let implicit = names_of(&r, LintCode::DangerousNotDenied);
    for name in ["bpf", "perf_event_open", "userfaultfd"] {
        assert!(implicit.contains(&name.to_string()), "{name}: {implicit:?}");
    }
    // chown32 & co. are i386 names: noted per arch, not errors.
    let x86_64_missing: Vec<String> = r
        .with_code(LintCode::UnknownOnArch)
        .filter(|f| f.arch.as_deref() == Some("SCMP_ARCH_X86_64"))
        .flat_map(|f| f.names.clone())
        .collect();
    assert!(x86_64_missing.contains(&"chown32".into()));
    assert_eq!(r.with_code(LintCode::Compiles).count(), 3);
    assert!(r.has_errors());
}

#[test]
fn real_enclave_profile_gets_sensible_answers() {
    let r = check_json(ENCLAVE);
    // Stricter: its deny list covers mounts, namespaces, modules and tracing, but io_uring
    // (which bypasses seccomp for the operations it runs) is still allowed.
    assert_eq!(
        names_of(&r, LintCode::DangerousAllowed),
        vec!["io_uring_enter", "io_uring_register", "io_uring_setup"]
    );
    // Its deny list misses the newer and the 32-bit forms: clock_settime64 on x86 sets the
    // host clock just like clock_settime, mount_setattr changes mounts like mount.
    let implicit = names_of(&r, LintCode::DangerousNotDenied);
    for name in ["clock_settime64", "mount_setattr", "open_tree_attr", "vm86"] {
        assert!(implicit.contains(&name.to_string()), "{name}: {implicit:?}");
    }
    assert!(!implicit.contains(&"mount".to_string()));
    // It allows clone3, so glibc is fine.
    assert!(r.with_code(LintCode::Clone3NotEnosys).next().is_none());
    // x86 is listed and it allows clock_gettime but not clock_gettime64.
    let twins: Vec<String> = r
        .with_code(LintCode::Time64TwinMissing)
        .flat_map(|f| f.names.clone())
        .collect();
    assert!(twins.contains(&"clock_gettime64".into()), "{twins:?}");
    // Its rules carry comments.
    assert!(r.with_code(LintCode::RuleWithoutComment).next().is_none());
}

#[test]
fn bad_input_is_a_clear_error() {
    let p = Path::new("bad.json");
    let err = SeccompProfile::parse("{", p).unwrap_err();
    assert!(err.to_string().contains("bad.json"));
    // The reader refuses an unknown arch for every command; `check` refuses it in a profile
    // built in memory too.
    let vax =
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_VAX"],"syscalls":[]}"#;
    let err = SeccompProfile::parse(vax, p).unwrap_err();
    assert!(
        matches!(err, ProfileFileError::UnknownArch { ref name, .. } if name == "SCMP_ARCH_VAX")
    );
    let profile: SeccompProfile = serde_json::from_str(vax).unwrap();
    let err = check(&profile, p).unwrap_err();
    assert!(matches!(err, CheckError::UnknownArch { ref name, .. } if name == "SCMP_ARCH_VAX"));
    assert!(err.to_string().contains("SCMP_ARCH_VAX") && err.to_string().contains("bad.json"));
    let err = SeccompProfile::parse(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_PERHAPS"}]}"#,
        p,
    )
    .unwrap_err();
    assert!(err.to_string().contains("SCMP_ACT_PERHAPS"));
    // An arch libseccomp knows but agent-audit has no table for is a note, not an error.
    let profile = SeccompProfile::parse(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_S390X"],"syscalls":[]}"#,
        p,
    )
    .unwrap();
    let r = check(&profile, p).unwrap();
    assert_eq!(
        names_of(&r, LintCode::ArchNotAnalysed),
        vec!["SCMP_ARCH_S390X"]
    );
}

#[test]
fn json_output_is_machine_readable() {
    let r = check_json(AGENT);
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["errors"], r.errors);
    assert!(v["findings"][0]["severity"] == "error");
    assert!(r.to_text().contains(LintCode::DangerousAllowed.as_str()));
}

/// `clean()` with one more rule.
fn with_rule(rule: serde_json::Value) -> CheckReport {
    let mut v = clean();
    v["syscalls"].as_array_mut().unwrap().push(rule);
    check_value(&v)
}

#[test]
fn each_argument_defect_is_reported() {
    let allow = |names: &[&str], args: serde_json::Value| serde_json::json!({"names": names, "action": "SCMP_ACT_ALLOW", "args": args, "comment": "x"});
    let r = with_rule(allow(&["socket"], serde_json::json!([])));
    assert_eq!(
        severity_of(&r, LintCode::SocketFamilyUnrestricted),
        Some(Severity::Error)
    );
    assert!(r
        .with_code(LintCode::SocketFamilyUnrestricted)
        .any(|f| f.message.contains("CVE-2026-31431")));
    // Docker's shape: refuses 38 and 40 but lets them through with upper bits.
    let mut v = clean();
    for (value, op) in [
        (38, "SCMP_CMP_LT"),
        (39, "SCMP_CMP_EQ"),
        (40, "SCMP_CMP_GT"),
    ] {
        v["syscalls"].as_array_mut().unwrap().push(allow(
            &["socket"],
            serde_json::json!([{"index": 0, "value": value, "op": op}]),
        ));
    }
    let r = check_value(&v);
    assert_eq!(names_of(&r, LintCode::SocketFamilyUpperBits), ["socket"]);
    assert_eq!(r.with_code(LintCode::SocketFamilyUnrestricted).count(), 0);

    let r = with_rule(allow(&["clone"], serde_json::json!([])));
    assert_eq!(names_of(&r, LintCode::CloneNamespacesAllowed), ["clone"]);
    let r = with_rule(allow(
        &["clone"],
        serde_json::json!([{"index": 0, "value": 0x7E02_0000u64, "op": "SCMP_CMP_MASKED_EQ"}]),
    ));
    assert_eq!(r.with_code(LintCode::CloneNamespacesAllowed).count(), 0);

    let mut v = clean();
    for rule in v["syscalls"].as_array_mut().unwrap() {
        let names = rule["names"].as_array_mut().unwrap();
        names.retain(|n| n != "clone3");
    }
    v["syscalls"]
        .as_array_mut()
        .unwrap()
        .retain(|r| !r["names"].as_array().unwrap().is_empty());
    v["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(allow(&["clone3"], serde_json::json!([])));
    let r = check_value(&v);
    assert_eq!(names_of(&r, LintCode::Clone3Allowed), ["clone3"]);

    let mut v = clean();
    v["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(allow(&["personality"], serde_json::json!([])));
    v["syscalls"].as_array_mut().unwrap().push(allow(
        &["personality"],
        serde_json::json!([{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]),
    ));
    let r = check_value(&v);
    assert_eq!(
        names_of(&r, LintCode::ConditionalAndUnconditional),
        ["personality"]
    );

    let r = with_rule(allow(
        &["socket"],
        serde_json::json!([{"index": 0, "value": 38, "op": "SCMP_CMP_NE"}, {"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]),
    ));
    assert_eq!(names_of(&r, LintCode::IndexComparedTwice).len(), 1);
    // runc ORs them: AF_ALG and AF_VSOCK stay reachable, which check sees too.
    assert_eq!(names_of(&r, LintCode::SocketFamilyUnrestricted), ["socket"]);

    let r = with_rule(
        serde_json::json!({"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
        "args": [{"index": 1, "value": 0x5412, "op": "SCMP_CMP_EQ"}], "comment": "TIOCSTI"}),
    );
    assert_eq!(
        severity_of(&r, LintCode::IoctlRequestUnmasked),
        Some(Severity::Error)
    );
    let r = with_rule(
        serde_json::json!({"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
        "args": [{"index": 1, "value": 0xffff_ffffu64, "valueTwo": 0x5412, "op": "SCMP_CMP_MASKED_EQ"}], "comment": "TIOCSTI"}),
    );
    assert_eq!(r.with_code(LintCode::IoctlRequestUnmasked).count(), 0);
}

#[test]
fn real_profiles_are_flagged_for_their_argument_gaps() {
    let r = check_json(AGENT);
    assert_eq!(names_of(&r, LintCode::SocketFamilyUnrestricted), ["socket"]);
    assert_eq!(names_of(&r, LintCode::Clone3Allowed), ["clone3"]);
    let docker = check_json(include_str!(
        "../../../tests/data/profiles/docker-default.json"
    ));
    assert_eq!(
        names_of(&docker, LintCode::SocketFamilyUpperBits),
        ["socket"]
    );
    for code in [
        LintCode::SocketFamilyUnrestricted,
        LintCode::CloneNamespacesAllowed,
        LintCode::Clone3Allowed,
    ] {
        assert_eq!(
            docker.with_code(code).count(),
            0,
            "{code}: {}",
            docker.to_text()
        );
    }
}

#[test]
fn every_profile_of_the_corpus_is_checked() {
    for (name, text) in crate::seccomp::tests::CORPUS {
        let profile = SeccompProfile::parse(text, Path::new(name)).unwrap();
        let report = check(&profile, Path::new(name)).unwrap();
        assert!(report.to_json().contains("\"findings\""), "{name}");
    }
}

/// The clean profile plus one allow rule per value of argument 1 of `name`: the shape of a
/// profile that allows a long list of ioctl requests or socket options.
fn with_conditional_rules(
    mut v: serde_json::Value,
    name: &str,
    values: std::ops::Range<u64>,
) -> serde_json::Value {
    let rules = v["syscalls"].as_array_mut().unwrap();
    for value in values {
        // Two conditions, each with a value of its own: about 6 instructions per rule, so a
        // filter passes the kernel's limit with fewer rules than the 4096 distinct ones a
        // profile may have.
        rules.push(serde_json::json!({
            "names": [name],
            "action": "SCMP_ACT_ALLOW",
            "args": [
                {"index": 1, "value": 0x5400 + value, "op": "SCMP_CMP_EQ"},
                {"index": 2, "value": value, "op": "SCMP_CMP_EQ"}
            ],
            "comment": format!("request {value}"),
        }));
    }
    v
}

fn size_of(finding: &Finding) -> usize {
    finding
        .message
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no size in {:?}", finding.message))
}

#[test]
fn a_filter_longer_than_the_kernel_takes_is_an_error_with_its_size() {
    let mut v = with_conditional_rules(clean(), "ioctl", 0..800);
    v["architectures"] = serde_json::json!(["SCMP_ARCH_X86_64"]);
    let r = check_value(&v);
    let too_large: Vec<&Finding> = r.with_code(LintCode::FilterTooLarge).collect();
    assert_eq!(too_large.len(), 1, "{}", r.to_text());
    assert_eq!(too_large[0].severity, Severity::Error);
    assert_eq!(too_large[0].arch.as_deref(), Some("SCMP_ARCH_X86_64"));
    assert!(size_of(too_large[0]) > MAX_FILTER_INSTRUCTIONS);
    assert!(
        too_large[0].message.contains("4096"),
        "{}",
        too_large[0].message
    );
    // It is not also said to compile.
    assert_eq!(
        r.with_code(LintCode::Compiles).count(),
        0,
        "{}",
        r.to_text()
    );
    assert!(r.has_errors());

    // A long filter under the limit is fine: a note with its size.
    let mut v = with_conditional_rules(clean(), "ioctl", 0..500);
    v["architectures"] = serde_json::json!(["SCMP_ARCH_X86_64"]);
    let r = check_value(&v);
    assert_eq!(r.with_code(LintCode::FilterTooLarge).count(), 0);
    let size = size_of(r.with_code(LintCode::Compiles).next().unwrap());
    assert!((2500..=MAX_FILTER_INSTRUCTIONS).contains(&size), "{size}");
}

#[test]
fn all_arches_in_one_filter_can_be_too_large_when_each_is_not() {
    // tuxcall exists on x86_64 only, socketcall on x86 only: each arch's filter carries
    // one list of conditions, the filter runtimes load for both carries both (different
    // values: libseccomp shares identical chains between arches).
    let v = with_conditional_rules(clean(), "tuxcall", 0..500);
    let mut v = with_conditional_rules(v, "socketcall", 10_000..10_500);
    v["architectures"] = serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]);
    let r = check_value(&v);
    assert_eq!(
        r.with_code(LintCode::Compiles).count(),
        2,
        "{}",
        r.to_text()
    );
    let too_large: Vec<&Finding> = r.with_code(LintCode::FilterTooLarge).collect();
    assert_eq!(too_large.len(), 1, "{}", r.to_text());
    assert_eq!(too_large[0].arch, None);
    assert!(size_of(too_large[0]) > MAX_FILTER_INSTRUCTIONS);
    assert!(too_large[0]
        .message
        .contains("SCMP_ARCH_X86_64, SCMP_ARCH_X86"));
}

/// 13.15: the text form used to list every offending rule (4 500 lines for a large profile).
/// It shows ten names per finding and ten findings per code, then how many more; the JSON
/// form keeps them all.
#[test]
fn long_lists_are_summarised_in_text_and_complete_in_json() {
    let documented = check_value(&clean())
        .with_code(LintCode::SameAsDefault)
        .count();
    let mut v = clean();
    let rules = v["syscalls"].as_array_mut().unwrap();
    for _ in 0..4500 {
        rules.push(serde_json::json!({"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"}));
    }
    let r = check_value(&v);
    let bare = r.with_code(LintCode::RuleWithoutComment).next().unwrap();
    assert_eq!(bare.names.len(), 4500);
    assert_eq!(
        r.with_code(LintCode::SameAsDefault).count(),
        4500 + documented
    );
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    let listed = json["findings"].as_array().unwrap();
    assert_eq!(listed.len(), r.findings.len());

    let text = r.to_text();
    assert!(text.lines().count() < 60, "{text}");
    let names_line = text
        .lines()
        .skip_while(|l| !l.starts_with("  rule-without-comment"))
        .nth(1)
        .unwrap();
    assert_eq!(
        names_line.matches("rule ").count(),
        TEXT_LIST_LIMIT,
        "{names_line}"
    );
    assert!(names_line.ends_with(", and 4490 more"), "{names_line}");
    let shown = text
        .lines()
        .filter(|l| l.starts_with("  same-as-default: rule"))
        .count();
    assert_eq!(shown, TEXT_LIST_LIMIT);
    let more = 4500 + documented - TEXT_LIST_LIMIT;
    assert!(
        text.contains(&format!(
            "  same-as-default: and {more} more (--format json lists them all)"
        )),
        "{text}"
    );
}

#[test]
fn clone3_saved_only_by_runcs_enosys_stub_is_a_warning() {
    let profile = |names: &str| {
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": serde_json::from_str::<serde_json::Value>(names).unwrap(),
                          "action": "SCMP_ACT_ALLOW", "comment": "the workload"}]
        })
    };
    if Arch::native() != Some(Arch::X86_64) {
        return;
    }
    // Nothing newer than clone3 (435): runc's stub answers it ENOSYS, by accident.
    let r = check_value(&profile(r#"["read","write","exit_group"]"#));
    assert_eq!(
        severity_of(&r, LintCode::Clone3NotEnosys),
        Some(Severity::Warning)
    );
    let f = r.with_code(LintCode::Clone3NotEnosys).next().unwrap();
    assert!(f.message.contains("stub"), "{}", f.message);
    // openat2 (437) is newer: clone3 gets the default's EPERM.
    let r = check_value(&profile(r#"["read","write","exit_group","openat2"]"#));
    assert_eq!(
        severity_of(&r, LintCode::Clone3NotEnosys),
        Some(Severity::Error)
    );
}

/// Every ioctl but TIOCSTI and TIOCLINUX, as agent-audit wrote it before argument rules were
/// shaped for their cost: one MASKED_EQ rule per common bit, then the patterns of the bits
/// where the two differ.
fn ioctl_one_rule_per_bit() -> String {
    let (tiocsti, tioclinux) = (0x5412u64, 0x541cu64);
    let differing = tiocsti ^ tioclinux;
    let mut args: Vec<(u64, u64)> = (0..32)
        .map(|b| 1u64 << b)
        .filter(|b| differing & b == 0)
        .map(|b| (b, !tiocsti & b))
        .collect();
    for pattern in [0x5410, 0x5414, 0x5416, 0x5418, 0x541a, 0x541e] {
        args.push((0xffff_ffff, pattern));
    }
    let rules: Vec<String> = args
        .iter()
        .map(|(mask, datum)| {
            format!(
                r#"{{"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[{{"index":1,"value":{mask},"valueTwo":{datum},"op":"SCMP_CMP_MASKED_EQ"}}]}}"#
            )
        })
        .collect();
    format!(
        r#"{{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[
            {{"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"}},{}]}}"#,
        rules.join(",")
    )
}

#[test]
fn argument_rules_report_their_worst_walk_and_warn_past_the_bound() {
    use crate::syscalls::Arch;
    if Arch::native() != Some(Arch::X86_64) {
        return;
    }
    let report = check_json(&ioctl_one_rule_per_bit());
    assert_eq!(
        severity_of(&report, LintCode::ArgumentWalkLong),
        Some(Severity::Warning)
    );
    let long = names_of(&report, LintCode::ArgumentWalkLong);
    assert_eq!(long.len(), 1, "{long:?}");
    let walked: usize = long[0]
        .strip_prefix("ioctl (")
        .and_then(|s| s.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{long:?}"));
    assert!(walked > ARGUMENT_WALK_BOUND, "{walked}");
    // A warning only: the exit code stays 0.
    assert!(!report.has_errors());
    // The same refusals as a generated profile writes them now stay under the bound.
    let ours = r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[
        {"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"},
        {"names":["ioctl"],"action":"SCMP_ACT_ERRNO","errnoRet":13,"args":[{"index":1,"value":4294967295,"valueTwo":21522,"op":"SCMP_CMP_MASKED_EQ"}]},
        {"names":["ioctl"],"action":"SCMP_ACT_ERRNO","errnoRet":13,"args":[{"index":1,"value":4294967295,"valueTwo":21532,"op":"SCMP_CMP_MASKED_EQ"}]},
        {"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":1,"valueTwo":1,"op":"SCMP_CMP_MASKED_EQ"}]},
        {"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":1,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#;
    let report = check_json(ours);
    assert_eq!(report.with_code(LintCode::ArgumentWalkLong).count(), 0);
    let note = report
        .with_code(LintCode::ArgumentWalk)
        .next()
        .expect("a note");
    assert!(note.message.contains("ioctl "), "{}", note.message);
    // Docker's current default: every argument syscall within the bound, on every arch.
    let docker = check_json(include_str!(
        "../../../tests/data/profiles/docker-default.json"
    ));
    assert_eq!(docker.with_code(LintCode::ArgumentWalkLong).count(), 0);
    assert!(docker.with_code(LintCode::ArgumentWalk).count() >= 4);
}
