use std::collections::BTreeSet;

use super::model::{errno, AllowedBy, Notice, Reason, Section, Verdict};
use super::*;
use crate::seccomp::spo::SpoVersion;
use crate::seccomp::{Action, SeccompProfile};
use std::path::Path;

/// An allowlist that saw `calls` (arch, name, count).
fn recording(spec: &str, calls: &[(Arch, &str, u64)]) -> Allowlist {
    Allowlist::for_tests_of_command(spec, calls)
}

fn two_runs() -> Vec<(String, Allowlist)> {
    use Arch::X86_64 as X;
    vec![
        (
            "b.json".into(),
            recording("b", &[(X, "read", 5), (X, "write", 2), (X, "ptrace", 1)]),
        ),
        (
            "a.json".into(),
            recording("a", &[(X, "read", 3), (X, "openat", 4), (X, "execve", 1)]),
        ),
    ]
}

fn options() -> ProfileOptions {
    ProfileOptions {
        baseline: true,
        ..Default::default()
    }
}

fn generate(inputs: Vec<(String, Allowlist)>, options: &ProfileOptions) -> ProfilePlan {
    build::plan(&Merged::new(inputs), options).unwrap()
}

#[test]
fn merge_sums_counts_keeps_inputs_and_ignores_order() {
    let merged = Merged::new(two_runs());
    let mut reversed = two_runs();
    reversed.reverse();
    assert_eq!(merged, Merged::new(reversed));
    assert_eq!(merged.inputs[0].label, "a.json");
    let read = &merged.syscalls[&(Arch::X86_64, "read".to_string())];
    assert_eq!(read.count, 8);
    assert_eq!(read.seen_in, BTreeSet::from([0, 1]));
    assert_eq!(merged.seen_in("write"), BTreeSet::from([1]));
}

#[test]
fn generated_profile_has_the_documented_shape() {
    let plan = generate(two_runs(), &options());
    let profile = oci::to_seccomp_profile(&plan);
    assert_eq!(profile.default_action, Action::Errno);
    assert_eq!(profile.default_errno_ret, Some(1));
    assert_eq!(profile.architectures, vec!["SCMP_ARCH_X86_64"]);
    let mut seen = BTreeSet::new();
    for rule in &profile.syscalls {
        assert!(rule
            .comment
            .as_deref()
            .is_some_and(|c| !c.trim().is_empty()));
        for name in &rule.names {
            assert!(seen.insert(name.clone()), "{name} is in two rules");
        }
    }
    // Rule order: observed first, clone3 last.
    assert_eq!(plan.rules[0].section, Section::Observed);
    assert_eq!(
        plan.rules[0].names,
        vec!["execve", "openat", "read", "write"]
    );
    let last = plan.rules.last().unwrap();
    assert_eq!(last.names, vec!["clone3"]);
    assert_eq!(
        last.verdict,
        Verdict::Deny {
            errno: errno::ENOSYS
        }
    );
    // Baseline entries, each with its own reason.
    let futex = plan
        .rules
        .iter()
        .find(|r| r.names == ["futex"])
        .expect("baseline futex");
    assert!(futex.comment.starts_with("Baseline ("), "{}", futex.comment);
    assert!(plan.allowed_names().contains(&"clock_gettime"));
}

#[test]
fn observed_dangerous_syscall_stays_denied_and_is_reported() {
    let plan = generate(two_runs(), &options());
    assert!(!plan.allowed_names().contains(&"ptrace"));
    let deny = plan
        .rules
        .iter()
        .find(|r| r.names.contains(&"ptrace".to_string()))
        .unwrap();
    assert_eq!(
        deny.section,
        Section::DenyCategory("process-inspection".into())
    );
    assert!(deny.comment.contains("OBSERVED") && deny.comment.contains("ptrace (1 calls)"));
    assert!(plan.notices.contains(&Notice::DangerousObserved {
        name: "ptrace".into(),
        count: 1,
        allowed: false
    }));
    assert!(matches!(
        plan.reasons["ptrace"],
        Reason::Dangerous { observed: 1, .. }
    ));
}

#[test]
fn allow_with_reason_lets_a_dangerous_call_through_loudly() {
    let mut opts = options();
    opts.allows.push(ExplicitAllow {
        name: "ptrace".into(),
        reason: "the debugger under test needs it".into(),
    });
    let plan = generate(two_runs(), &opts);
    let rule = plan.rules.iter().find(|r| r.names == ["ptrace"]).unwrap();
    assert_eq!(rule.verdict, Verdict::Allow);
    assert!(
        rule.comment.starts_with("ACCEPTED RISK: ptrace"),
        "{}",
        rule.comment
    );
    assert!(rule.comment.contains("the debugger under test needs it"));
    assert!(plan.notices.contains(&Notice::DangerousObserved {
        name: "ptrace".into(),
        count: 1,
        allowed: true
    }));
    assert!(!plan.denied_names().contains(&"ptrace"));
}

#[test]
fn a_timing_allowance_is_audits_and_a_flag_the_users() {
    // audit allows rt_sigsuspend, never recorded, as a timing allowance: nothing may say the
    // user passed --allow for it. A user's --allow of an unrecorded call still says so.
    let mut opts = options();
    opts.timing_allows.push(ExplicitAllow {
        name: "rt_sigsuspend".into(),
        reason: "timing-dependent, allowed by `audit` because wait4 was recorded: why".into(),
    });
    opts.allows.push(ExplicitAllow {
        name: "chmod".into(),
        reason: "the installer needs it".into(),
    });
    let plan = generate(two_runs(), &opts);
    let rule = |name: &str| plan.rules.iter().find(|r| r.names == [name]).unwrap();
    let timing = rule("rt_sigsuspend");
    assert_eq!(timing.verdict, Verdict::Allow);
    assert_eq!(
        timing.comment,
        "Allowed although never observed: timing-dependent, allowed by `audit` because wait4 \
         was recorded: why"
    );
    assert_eq!(
        timing.section,
        Section::ExplicitAllow("rt_sigsuspend".into(), AllowedBy::TimingAllowance)
    );
    assert!(rule("chmod")
        .comment
        .starts_with("Allowed with --allow although never observed"));
    assert_eq!(
        plan.notices
            .iter()
            .filter(|n| matches!(n, Notice::AllowedUnobserved { .. }))
            .collect::<Vec<_>>(),
        [&Notice::AllowedUnobserved {
            name: "chmod".into()
        }]
    );
    let md = rationale::render(&plan, "profile.json");
    let line = md.lines().find(|l| l.contains("`rt_sigsuspend`")).unwrap();
    assert!(!line.contains("--allow"), "{line}");
    assert!(
        md.contains("allow: timing-dependent rt\\_sigsuspend"),
        "{md}"
    );
}

#[test]
fn allow_errors_are_clear() {
    let mut opts = options();
    opts.allows.push(ExplicitAllow {
        name: "frobnicate".into(),
        reason: "x".into(),
    });
    let err = build::plan(&Merged::new(two_runs()), &opts).unwrap_err();
    assert!(err.to_string().contains("frobnicate"), "{err}");
    opts.allows[0] = ExplicitAllow {
        name: "ptrace".into(),
        reason: " ".into(),
    };
    let err = build::plan(&Merged::new(two_runs()), &opts).unwrap_err();
    assert!(matches!(err, ProfileError::EmptyReason { .. }), "{err}");
    let err = build::plan(&Merged::new(Vec::new()), &options()).unwrap_err();
    assert!(matches!(err, ProfileError::NothingObserved));
}

#[test]
fn clone3_fails_with_enosys_even_when_observed_and_clone_stands_in() {
    let mut runs = two_runs();
    runs.push((
        "c.json".into(),
        recording("c", &[(Arch::X86_64, "clone3", 2)]),
    ));
    let plan = generate(runs.clone(), &options());
    assert!(!plan.allowed_names().contains(&"clone3"));
    let clone3 = plan
        .rules
        .iter()
        .find(|r| r.section == Section::Clone3)
        .unwrap();
    assert_eq!(
        clone3.verdict,
        Verdict::Deny {
            errno: errno::ENOSYS
        }
    );
    assert!(plan.notices.contains(&Notice::Clone3Observed { count: 2 }));
    // glibc falls back to clone: allowed, without namespace flags.
    assert_eq!(
        plan.reasons["clone"],
        Reason::Clone3Fallback { clone3_calls: 2 }
    );
    let profile = oci::to_seccomp_profile(&plan);
    assert!(allows(&profile, "clone", 0x3d0f00));
    assert!(!allows(&profile, "clone", 0x1000_0011));
    // --allow overrides.
    let mut opts = options();
    opts.allows.push(ExplicitAllow {
        name: "clone3".into(),
        reason: "the runtime needs it".into(),
    });
    let plan = generate(runs, &opts);
    assert!(plan.allowed_names().contains(&"clone3"));
    assert!(!plan.rules.iter().any(|r| r.section == Section::Clone3));
}

/// Whether `profile` lets `name` run with first argument `arg0`, as the filter libseccomp
/// compiles for x86_64 decides it (run by `seccomp::interpret`), which must be what
/// `seccomp::evaluate` says too.
fn allows(profile: &SeccompProfile, name: &str, arg0: u64) -> bool {
    use crate::seccomp::compile::SyscallLayout;
    use crate::seccomp::cost::FilterCost;
    let args = [arg0, 0, 0, 0, 0, 0];
    let filter = FilterCost::compile(profile, Arch::X86_64, SyscallLayout::Linear).unwrap();
    let compiled = filter
        .call(name, args)
        .unwrap()
        .expect("an x86_64 syscall")
        .outcome;
    if Arch::native() == Some(Arch::X86_64) {
        let model = crate::seccomp::evaluate::outcome(profile, name, &args);
        assert_eq!(
            model, compiled,
            "{name}({arg0:#x}): model and filter differ"
        );
    }
    compiled.allows()
}

fn with_args(mut list: Allowlist, name: &str, args: Vec<crate::allowlist::ArgRecord>) -> Allowlist {
    for entry in list
        .syscalls
        .iter_mut()
        .filter(|s| s.name.as_deref() == Some(name))
    {
        entry.args = args.clone();
    }
    list
}

fn workload() -> Allowlist {
    use Arch::X86_64 as X;
    recording(
        "w",
        &[
            (X, "read", 5),
            (X, "socket", 3),
            (X, "clone", 2),
            (X, "clone3", 4),
            (X, "personality", 1),
            (X, "ioctl", 7),
        ],
    )
}

#[test]
fn without_recorded_arguments_the_rules_are_at_least_dockers() {
    let plan = generate(vec![("w.json".into(), workload())], &options());
    let profile = oci::to_seccomp_profile(&plan);
    for rule in profile.syscalls.iter().filter(|r| r.args.is_empty()) {
        for name in ["socket", "clone", "personality"] {
            assert!(
                !rule.all_names().any(|n| n == name) || rule.action.denies(),
                "{name}"
            );
        }
    }
    for (name, arg, allowed) in [
        ("socket", 1, true),
        ("socket", 2, true),
        ("socket", 10, true),
        ("socket", 16, true),
        ("socket", 38, false),
        ("socket", 40, false),
        ("socket", 17, false),
        ("socket", 0x1_0000_0028, false),
        ("clone", 0x1200011, true),
        ("clone", 0x1000_0011, false),
        ("clone", 0x20011, false),
        ("personality", 0xffff_ffff, true),
        ("personality", 0, true),
        ("personality", 0x40_0000, false),
        ("clone3", 0, false),
    ] {
        assert_eq!(allows(&profile, name, arg), allowed, "{name}({arg:#x})");
    }
    // One index per rule, so runc does not split (and loosen) any of them.
    for rule in &profile.syscalls {
        assert!(rule.repeated_indexes().is_empty(), "{:?}", rule.names);
    }
    assert!(plan.arguments.contains_key("socket"));
    assert_compiles_whole(&profile, &[Arch::X86_64]);
    // With x86 listed, libseccomp copies socket rules onto socketcall without their
    // conditions: refusal rules would clash there, so the families are only allowed.
    let mut opts = options();
    opts.extra_arches = vec![Arch::X86];
    let plan = generate(vec![("w.json".into(), workload())], &opts);
    let profile = oci::to_seccomp_profile(&plan);
    assert_compiles_whole(&profile, &[Arch::X86_64, Arch::X86]);
    assert!(allows(&profile, "socket", 2) && !allows(&profile, "socket", 38));
}

/// libseccomp takes every rule of `profile` for `arches` (none refused, as runc would refuse
/// the whole profile for it).
fn assert_compiles_whole(profile: &SeccompProfile, arches: &[Arch]) {
    let compiled = crate::seccomp::compile::build_filter(profile, arches);
    let refused: Vec<_> = compiled
        .unwrap()
        .skipped
        .into_iter()
        .filter(|s| s.reason != crate::seccomp::compile::SkipReason::SameAsDefault)
        .collect();
    assert!(refused.is_empty(), "{arches:?}: {refused:?}");
}

#[test]
fn recorded_arguments_narrow_the_rules_to_what_was_seen() {
    use crate::allowlist::{ArgField, ArgRecord};
    let list = workload();
    let list = with_args(
        list,
        "socket",
        vec![ArgRecord::values(0, None, [(1, 2), (2, 1)], false)],
    );
    let list = with_args(
        list,
        "clone",
        vec![ArgRecord::flags(0, None, 0x1200000, false)],
    );
    let list = with_args(
        list,
        "clone3",
        vec![ArgRecord::flags(
            0,
            Some(ArgField::CloneArgsFlags),
            0x3d0f00,
            false,
        )],
    );
    let list = with_args(
        list,
        "personality",
        vec![ArgRecord::values(0, None, [(0x40000, 1)], false)],
    );
    let plan = generate(vec![("w.json".into(), list)], &options());
    let md = rationale::render(&plan, "p.json");
    let section = &md[md.find("## Argument rules").expect("argument section")..];
    assert!(
        section.contains(r"AF\_UNIX (1) ×2, AF\_INET (2) ×1"),
        "{section}"
    );
    assert!(
        section.contains("| `clone` | flags 0x1200000 |"),
        "{section}"
    );
    let profile = oci::to_seccomp_profile(&plan);
    for (name, arg, allowed) in [
        ("socket", 1, true),
        ("socket", 2, true),
        ("socket", 10, false),
        ("socket", 16, false),
        ("socket", 38, false),
        ("clone", 0x1200011, true),
        ("clone", 0x3d0f00, true),
        ("clone", 0x1000_0011, false),
        ("personality", 0x40000, true),
        ("personality", 0xffff_ffff, true),
        ("personality", 0x40_0000, false),
    ] {
        assert_eq!(allows(&profile, name, arg), allowed, "{name}({arg:#x})");
    }
    assert!(plan.notices.iter().any(|n| matches!(n,
        Notice::DangerousArgumentObserved { name, .. } if name == "personality")));
    // An overflowing set narrows nothing beyond the defaults.
    let list = with_args(
        workload(),
        "socket",
        vec![ArgRecord::values(0, None, [(1, 2)], true)],
    );
    let profile = oci::to_seccomp_profile(&generate(vec![("w.json".into(), list)], &options()));
    assert!(allows(&profile, "socket", 10) && !allows(&profile, "socket", 40));
}

#[test]
fn socketcall_is_not_translated_without_32_bit_socket_calls() {
    let mut opts = options();
    opts.extra_arches = vec![Arch::X86];
    let plan = generate(vec![("w.json".into(), workload())], &opts);
    assert!(!plan.allowed_names().contains(&"socketcall"));
    assert!(plan
        .notices
        .contains(&Notice::SocketcallNotFiltered { allowed: false }));
}

#[test]
fn no_baseline_drops_it() {
    let mut opts = options();
    opts.baseline = false;
    let plan = generate(two_runs(), &opts);
    assert!(!plan
        .rules
        .iter()
        .any(|r| matches!(r.section, Section::Baseline(_))));
    assert!(!plan.allowed_names().contains(&"clock_gettime"));
}

#[test]
fn added_arch_is_translated_and_noted() {
    let mut opts = options();
    opts.extra_arches = vec![Arch::X86, Arch::Aarch64];
    let mut runs = two_runs();
    runs.push((
        "c.json".into(),
        recording(
            "c",
            &[
                (Arch::X86_64, "lseek", 1),
                (Arch::X86_64, "open", 1),
                (Arch::X86_64, "arch_prctl", 1),
            ],
        ),
    ));
    let plan = generate(runs, &opts);
    let profile = oci::to_seccomp_profile(&plan);
    assert_eq!(
        profile.architectures,
        vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"]
    );
    let x86 = plan
        .rules
        .iter()
        .find(|r| r.section == Section::Translated(Arch::X86))
        .unwrap();
    assert!(
        x86.names.contains(&"_llseek".to_string()),
        "{:?}",
        x86.names
    );
    assert!(x86.comment.contains("_llseek for lseek"), "{}", x86.comment);
    // arch_prctl: x86 has set_thread_area; aarch64 needs nothing, and says so.
    assert!(plan.allowed_names().contains(&"set_thread_area"));
    assert!(plan.notices.iter().any(|n| matches!(n,
        Notice::NoEquivalent { name, arch: Arch::Aarch64, harmless: Some(_) } if name == "arch_prctl")));
}

#[test]
fn base_profile_denies_are_kept_and_unobserved_allows_listed() {
    let base = crate::seccomp::SeccompProfile::parse(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["read","write","chmod"],"action":"SCMP_ACT_ALLOW","comment":"tools"},
            {"names":["uname","ptrace","clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":1,"comment":"no uname here"}]}"#,
        std::path::Path::new("base.json"),
    )
    .unwrap();
    let mut opts = options();
    opts.base = Some(BaseProfile {
        label: "base.json".into(),
        profile: base,
    });
    let plan = generate(two_runs(), &opts);
    let kept = plan
        .rules
        .iter()
        .find(|r| r.section == Section::BaseDeny(1))
        .unwrap();
    // ptrace went to its category, clone3 to the ENOSYS rule.
    assert_eq!(kept.names, vec!["uname"]);
    assert!(kept.comment.contains("no uname here"));
    assert!(plan.notices.contains(&Notice::BaseAllowsUnobserved {
        names: vec!["chmod".into()],
        kept: false
    }));
    assert!(!plan.allowed_names().contains(&"chmod"));
    opts.keep_base_allows = true;
    let plan = generate(two_runs(), &opts);
    assert!(plan.allowed_names().contains(&"chmod"));
}

#[test]
fn output_is_byte_identical_across_runs_and_input_order() {
    let mut opts = options();
    opts.extra_arches = vec![Arch::Arm];
    let a = oci::to_seccomp_profile(&generate(two_runs(), &opts)).to_json();
    let mut reversed = two_runs();
    reversed.reverse();
    let b = oci::to_seccomp_profile(&generate(reversed, &opts)).to_json();
    assert_eq!(a, b);
    let plan = generate(two_runs(), &opts);
    assert_eq!(
        rationale::render(&plan, "p.json"),
        rationale::render(&generate(two_runs(), &opts), "p.json")
    );
}

/// The SeccompProfile CRD's schema for `version`, from SPO's own CRD file.
fn spo_crd_schema(version: &str) -> serde_json::Value {
    let crd: serde_json::Value = serde_yaml_ng::from_str(include_str!(
        "../../../tests/data/schemas/spo-seccompprofile-crd.yaml"
    ))
    .unwrap();
    let versions = crd["spec"]["versions"].as_array().unwrap();
    let entry = versions.iter().find(|v| v["name"] == version).unwrap();
    entry["schema"]["openAPIV3Schema"].clone()
}

fn spo_target(version: SpoVersion) -> spo::SpoTarget<'static> {
    spo::SpoTarget {
        name: "my-agent",
        namespace: (version == SpoVersion::V1beta1).then_some("ci"),
        version,
    }
}

#[test]
fn spo_objects_validate_against_the_crd_schema() {
    // A workload that opens sockets, forks and queries its personality: its profile carries
    // argument rules (socket families, clone namespace flags, personality values).
    let mut inputs = two_runs();
    inputs.push((
        "c.json".into(),
        recording(
            "c",
            &[
                (Arch::X86_64, "socket", 4),
                (Arch::X86_64, "clone", 2),
                (Arch::X86_64, "personality", 1),
            ],
        ),
    ));
    let plan = generate(inputs, &options());
    assert!(
        plan.rules.iter().any(|r| !r.args.is_empty()),
        "the plan has argument rules"
    );
    for (version, name) in [(SpoVersion::V1, "v1"), (SpoVersion::V1beta1, "v1beta1")] {
        let object = spo::to_spo_object(&plan, &spo_target(version)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&object.to_json()).unwrap();
        let schema = spo_crd_schema(name);
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        let with_args = value["spec"]["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["args"].is_array())
            .count();
        assert!(with_args > 0, "argument rules reach the object");
        assert_eq!(value["apiVersion"], version.api_version());
        let rules = value["spec"]["syscalls"].as_array().unwrap();
        assert_eq!(rules.len(), plan.rules.len());
        assert!(
            rules.last().unwrap()["errnoRet"].is_u64(),
            "errnoRet is an integer"
        );
        let annotations = value["metadata"]["annotations"].as_object().unwrap();
        assert_eq!(annotations.len(), plan.rules.len() + 1);
        // A wrong type is caught by the same validator, so the check above has teeth.
        let mut broken = value.clone();
        broken["spec"]["syscalls"][0]["errnoRet"] = serde_json::json!("1");
        assert!(!validator.is_valid(&broken));
    }
}

#[test]
fn spo_yaml_reads_back_as_the_same_profile() {
    let plan = generate(two_runs(), &options());
    let object = spo::to_spo_object(&plan, &spo_target(SpoVersion::V1)).unwrap();
    let oci = oci::to_seccomp_profile(&plan);
    for text in [object.to_yaml(), object.to_json()] {
        let read = SeccompProfile::parse(&text, Path::new("p.yaml")).unwrap();
        assert_eq!(read.default_action, oci.default_action);
        assert_eq!(read.architectures, oci.architectures);
        assert_eq!(read.syscalls.len(), oci.syscalls.len());
        for (a, b) in read.syscalls.iter().zip(&oci.syscalls) {
            assert_eq!(
                (&a.names, a.action, a.errno_ret, &a.args),
                (&b.names, b.action, b.errno_ret, &b.args)
            );
            assert_eq!(
                a.comment, b.comment,
                "comments come back from the annotations"
            );
        }
    }
}

#[test]
fn spo_v1_refuses_a_namespace() {
    let plan = generate(two_runs(), &options());
    let target = spo::SpoTarget {
        name: "a",
        namespace: Some("ci"),
        version: SpoVersion::V1,
    };
    assert!(spo::to_spo_object(&plan, &target).is_err());
}

/// Attributes `name`'s calls in `list` to these (comm, as_root, count) programs.
fn with_programs(mut list: Allowlist, name: &str, programs: &[(&str, bool, u64)]) -> Allowlist {
    let entry = list
        .syscalls
        .iter_mut()
        .find(|s| s.name.as_deref() == Some(name))
        .expect(name);
    entry.programs = programs
        .iter()
        .map(|&(comm, as_root, count)| crate::allowlist::ProgramCount {
            comm: comm.into(),
            as_root,
            count,
            first_seen: time::OffsetDateTime::UNIX_EPOCH,
            last_seen: time::OffsetDateTime::UNIX_EPOCH,
        })
        .collect();
    list
}

#[test]
fn rationale_explains_every_allowed_and_denied_name_and_who_needed_it() {
    let mut runs = two_runs();
    runs[0].1 = with_programs(runs[0].1.clone(), "read", &[("cat", true, 5)]);
    runs[1].1 = with_programs(
        runs[1].1.clone(),
        "read",
        &[("sh", false, 2), ("cat", false, 1)],
    );
    let plan = generate(runs, &options());
    let md = rationale::render(&plan, "profile.json");
    for name in plan.allowed_names().into_iter().chain(plan.denied_names()) {
        assert!(md.contains(&format!("| `{name}` |")), "{name} missing");
    }
    // Root is marked because the runs saw both root and non-root callers.
    assert!(
        md.contains(
            "| `read` | Read bytes from a file descriptor. | observed (x86_64 ×8) | 8 | 1, 2 | \
             cat ×5 (root), sh ×2, cat ×1 |"
        ),
        "{md}"
    );
    assert!(md.contains("DANGEROUS syscall `ptrace`"));
}

#[test]
fn program_lists_are_bounded_like_the_allowlist() {
    let programs: Vec<(String, bool, u64)> = (0..20)
        .map(|i| (format!("p{i:02}"), true, 100 - i))
        .collect();
    let borrowed: Vec<(&str, bool, u64)> = programs
        .iter()
        .map(|(c, r, n)| (c.as_str(), *r, *n))
        .collect();
    let total: u64 = borrowed.iter().map(|p| p.2).sum();
    let list = with_programs(
        recording("a", &[(Arch::X86_64, "read", total)]),
        "read",
        &borrowed,
    );
    let merged = Merged::new([("a.json".to_string(), list)]);
    let read = merged.programs("read");
    assert_eq!(read.listed.len(), crate::allowlist::MAX_PROGRAMS_LISTED);
    assert_eq!(read.listed[0].comm, "p00", "most calls first");
    assert_eq!(
        read.omitted,
        20 - crate::allowlist::MAX_PROGRAMS_LISTED as u64
    );
    assert_eq!(read.summary(2, false), "p00 ×100, p01 ×99, and 18 more");
    assert!(!merged.mixed_privileges());
}

#[test]
fn reads_inputs_and_rejects_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    two_runs()[0].1.write(&path).unwrap();
    let merged = read_and_merge(std::slice::from_ref(&path)).unwrap();
    assert_eq!(merged.inputs.len(), 1);
    let err = read_and_merge(&[path.clone(), path]).unwrap_err();
    assert!(matches!(err, ProfileError::DuplicateInput { .. }));
    let err = read_and_merge(&[dir.path().join("missing.json")]).unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

/// On every axis where Docker's current default restricts arguments, the
/// generated profile is at least as strict, and it allows far fewer names. Docker's default is
/// evaluated as Docker hands it to runc for a container without CAP_SYS_ADMIN on x86_64.
#[test]
fn at_least_as_strict_as_dockers_default_on_every_argument_axis() {
    use crate::seccomp::evaluate::{outcome, without_capability_rules};
    let docker = SeccompProfile::parse(
        include_str!("../../../tests/data/profiles/docker-default.json"),
        Path::new("docker-default.json"),
    )
    .unwrap();
    let docker = without_capability_rules(&docker);
    // The axes Docker restricts: the names with argument conditions.
    let axes: BTreeSet<&str> = docker
        .syscalls
        .iter()
        .filter(|r| !r.args.is_empty())
        .flat_map(|r| r.all_names())
        .collect();
    assert_eq!(axes, BTreeSet::from(["clone", "personality", "socket"]));
    let mut flags: Vec<u64> = (0..64).map(|b| 1u64 << b).collect();
    flags.extend([0, 0x7E02_0000, 0x3d0f00, 0x1200011]);
    let mut values: Vec<u64> = (0..64).collect();
    values.extend([
        0x20000,
        0x20008,
        0xffff_ffff,
        0x40_0000,
        0x40000,
        0x1_0000_0026,
    ]);
    values.extend([0x1_0000_0028, u64::MAX]);
    for (label, list) in [
        ("no argument values", workload()),
        ("recorded", {
            use crate::allowlist::ArgRecord;
            let l = with_args(
                workload(),
                "socket",
                vec![ArgRecord::values(0, None, [(1, 2), (2, 1)], false)],
            );
            let l = with_args(
                l,
                "clone",
                vec![ArgRecord::flags(0, None, 0x1200000, false)],
            );
            with_args(
                l,
                "personality",
                vec![ArgRecord::values(0, None, [(0xffff_ffff, 1)], false)],
            )
        }),
    ] {
        let plan = generate(vec![("w.json".into(), list)], &options());
        let ours = oci::to_seccomp_profile(&plan);
        for &name in &axes {
            let probes = if name == "clone" { &flags } else { &values };
            for &arg0 in probes {
                let args = [arg0, 0, 0, 0, 0, 0];
                if !outcome(&docker, name, &args).allows() {
                    assert!(
                        !outcome(&ours, name, &args).allows(),
                        "{label}: Docker refuses {name}({arg0:#x}) but the profile allows it"
                    );
                }
            }
        }
        // clone3: Docker fails it with ENOSYS without CAP_SYS_ADMIN; so do we.
        assert_eq!(outcome(&docker, "clone3", &[0; 6]).errno, Some(38));
        assert_eq!(outcome(&ours, "clone3", &[0; 6]).errno, Some(38), "{label}");
        let allowed_by = |p: &SeccompProfile| -> BTreeSet<String> {
            p.syscalls
                .iter()
                .filter(|r| !r.action.denies())
                .flat_map(|r| r.all_names().map(str::to_owned))
                .collect()
        };
        let (mine, theirs) = (allowed_by(&ours).len(), allowed_by(&docker).len());
        assert!(
            mine * 4 < theirs,
            "{label}: {mine} names allowed, Docker {theirs}"
        );
    }
}

/// Podman's default denies `socket` only for NETLINK_AUDIT: that must not deny an observed
/// `socket` outright (it did: every socket call of the workload got EPERM).
#[test]
fn a_conditional_base_deny_does_not_deny_the_name() {
    let base = SeccompProfile::parse(
        include_str!("../../../tests/data/profiles/podman-default.json"),
        Path::new("podman-default.json"),
    )
    .unwrap();
    let mut opts = options();
    opts.base = Some(BaseProfile {
        label: "podman-default.json".into(),
        profile: base,
    });
    let plan = generate(vec![("w.json".into(), workload())], &opts);
    assert!(plan.allowed_names().contains(&"socket"));
    let profile = oci::to_seccomp_profile(&plan);
    assert!(allows(&profile, "socket", 2) && !allows(&profile, "socket", 40));
    // Podman's NETLINK_AUDIT rule would overlap the socket argument rules, and libseccomp
    // keeps only one of two overlapping conditional rules: it is left out, and said so.
    assert!(!plan
        .rules
        .iter()
        .any(|r| matches!(r.section, Section::BaseDeny(_)) && r.names == ["socket"]));
    assert!(plan.notices.iter().any(|n| matches!(n,
        Notice::BaseRuleDropped { names, .. } if names == &["socket".to_string()])));
}

/// 13.12: names, labels, targets and reasons from the inputs are quoted, never markup.
#[test]
fn the_rationale_escapes_what_it_quotes() {
    let mut list = recording("<img src=x onerror=alert(1)>", &[(Arch::X86_64, "read", 3)]);
    list.syscalls[0].programs = vec![crate::allowlist::ProgramCount {
        comm: "<b>X".into(),
        as_root: false,
        count: 3,
        first_seen: time::OffsetDateTime::UNIX_EPOCH,
        last_seen: time::OffsetDateTime::UNIX_EPOCH,
    }];
    let mut opts = options();
    opts.allows.push(ExplicitAllow {
        name: "ptrace".into(),
        reason: "[trust me](http://evil.example) <script>x</script> | cell".into(),
    });
    let plan = generate(vec![("in|put`s.json".into(), list)], &opts);
    let md = rationale::render(&plan, "<i>p</i>.json");
    for raw in ["<b>", "<img", "<script>", "[trust me]("] {
        assert!(!md.contains(raw), "{raw} reached the Markdown:\n{md}");
    }
    assert!(md.contains("&lt;b&gt;X ×3"), "{md}");
    assert!(md.contains("``in\\|put`s.json``"), "{md}");
    assert!(
        md.contains("\\[trust me\\](http://evil.example) &lt;script&gt;"),
        "{md}"
    );
    // Inside a code span markup is text already.
    assert!(
        md.contains("# Seccomp profile rationale: `<i>p</i>.json`"),
        "{md}"
    );
    // Every table row still has its columns: no quoted `|` split a cell.
    for line in md
        .lines()
        .filter(|l| l.starts_with("| `read`") || l.starts_with("| `ptrace`"))
    {
        let cells = line.replace("\\|", "").matches('|').count();
        assert_eq!(cells, 7, "{line}");
    }
}

/// The argument rules decide in the kernel what the plan says they decide (`Narrowed`'s
/// first-match order is libseccomp's), and the BPF interpreter predicts the kernel: ioctl's
/// refusals catch TIOCSTI and TIOCLINUX with any upper bits and nothing else, socket's LT
/// boundaries refuse each dangerous family between allowed ones and anything with upper bits.
#[test]
fn argument_rules_decide_in_the_kernel_as_planned() {
    use super::args::ArgVerdict;
    use crate::seccomp::compile::{tests::errno_under, SyscallLayout};
    use crate::seccomp::cost::FilterCost;
    if Arch::native() != Some(Arch::X86_64) {
        return;
    }
    let plan = generate(vec![("w.json".into(), workload())], &options());
    let profile = oci::to_seccomp_profile(&plan);
    let filter = FilterCost::compile(&profile, Arch::X86_64, SyscallLayout::Linear).unwrap();
    let cases: [(&str, libc::c_long, usize, &[u64]); 2] = [
        (
            "ioctl",
            libc::SYS_ioctl,
            1,
            &[
                0x5401,
                0x5412,
                0x541c,
                0x1_0000_5412,
                0xffff_ffff_0000_541c,
                0x5413,
                0xffff_ffff_8004_5430,
                0,
                1,
            ],
        ),
        (
            "socket",
            libc::SYS_socket,
            0,
            &[
                0,
                1,
                2,
                3,
                4,
                10,
                16,
                17,
                29,
                30,
                31,
                38,
                40,
                41,
                45,
                46,
                0x1_0000_0002,
            ],
        ),
    ];
    for (name, nr, index, values) in cases {
        let narrowed = &plan.arguments[name];
        for &value in values {
            let mut args = [u64::MAX, 1, 0, 0, 0, 0];
            args[index] = value;
            let compiled = filter.call(name, args).unwrap().unwrap().outcome;
            let planned = match narrowed.verdict_for(value) {
                Some(ArgVerdict::Allow) => None,
                Some(ArgVerdict::Refuse { errno }) => Some(errno),
                None => Some(errno::EPERM),
            };
            let what = format!("{name}({value:#x})");
            assert_eq!(compiled.errno, planned, "{what}: filter vs plan");
            let kernel = errno_under(&profile, nr, [args[0], args[1], args[2]]);
            match compiled.errno {
                Some(errno) => assert_eq!(i64::from(kernel), i64::from(errno), "{what}"),
                None => assert!(![1, 13].contains(&kernel), "{what}: kernel errno {kernel}"),
            }
        }
    }
}

/// An allowlist recorded under a profile that refused `refused` (name, count, filter).
fn refused_under_profile(refused: &[(&str, u64, crate::allowlist::RefusingFilter)]) -> Allowlist {
    use crate::allowlist::{RefusalAction, RefusedCall};
    let mut list = recording("w", &[(Arch::X86_64, "read", 5)]);
    list.refused = refused
        .iter()
        .map(|&(name, count, filter)| RefusedCall {
            name: Some(name.into()),
            arch: Arch::X86_64,
            nr: Arch::X86_64.syscall_nr(name).expect(name),
            count,
            action: RefusalAction::Errno,
            filter,
            runtime_init: false,
            programs: Vec::new(),
        })
        .collect();
    list
}

/// A call the profile in force refused is allowed with its reason when that stays
/// at least as strict as Docker's default; what stays denied on purpose is said so.
#[test]
fn refused_calls_are_allowed_as_observed_ones_and_never_looser_than_docker() {
    use super::model::RefusedDenial;
    use crate::allowlist::RefusingFilter::{Runtime, Unknown, WithOwn};
    use crate::seccomp::evaluate::{outcome, without_capability_rules};
    let list = refused_under_profile(&[
        ("mkdir", 3, Runtime),
        ("socket", 2, Unknown),
        ("personality", 1, Runtime),
        ("ptrace", 4, Runtime),
        ("clone3", 5, Runtime),
        ("chmod", 6, WithOwn),
    ]);
    let plan = generate(vec![("w.json".into(), list)], &options());
    assert_eq!(
        plan.reasons.get("mkdir"),
        Some(&Reason::Refused {
            count: 3,
            inputs: vec![0]
        })
    );
    let allowed = plan.allowed_names();
    for name in ["mkdir", "socket", "personality"] {
        assert!(allowed.contains(&name), "{name}");
    }
    for name in ["ptrace", "clone3", "chmod"] {
        assert!(!allowed.contains(&name), "{name}");
    }
    for (name, count, why) in [
        ("ptrace", 4, RefusedDenial::Dangerous),
        ("clone3", 5, RefusedDenial::Clone3),
        ("chmod", 6, RefusedDenial::OwnFilter),
    ] {
        let notice = Notice::RefusedStaysDenied {
            name: name.into(),
            count,
            why,
        };
        assert!(plan.notices.contains(&notice), "{notice:?}");
    }
    let rationale = rationale::render(&plan, "profile.json");
    assert!(rationale.contains("refused 3 times under the previous profile"));
    // Unknown argument values: socket and personality get the data's rules, which refuse
    // whatever Docker's default refuses.
    let docker = without_capability_rules(
        &SeccompProfile::parse(
            include_str!("../../../tests/data/profiles/docker-default.json"),
            Path::new("docker-default.json"),
        )
        .unwrap(),
    );
    let ours = oci::to_seccomp_profile(&plan);
    let mut values: Vec<u64> = (0..64).collect();
    values.extend([0x20000, 0x20008, 0xffff_ffff, 0x40_0000, u64::MAX]);
    for name in ["socket", "personality", "mkdir", "ptrace"] {
        for &arg0 in &values {
            let args = [arg0, 0, 0, 0, 0, 0];
            if !outcome(&docker, name, &args).allows() {
                assert!(
                    !outcome(&ours, name, &args).allows(),
                    "Docker refuses {name}({arg0:#x}) but the profile allows it"
                );
            }
        }
    }
}

#[test]
fn a_notice_is_a_danger_exactly_when_its_line_shouts() {
    use super::model::Severity;
    use crate::syscalls::Arch;
    // The words `profile` used to match in the rendered line: the severity and the wording
    // must keep agreeing, so a reader of stderr sees the same thing the tag says.
    let notices = [
        Notice::DangerousObserved {
            name: "ptrace".into(),
            count: 1,
            allowed: true,
        },
        Notice::DangerousObserved {
            name: "ptrace".into(),
            count: 1,
            allowed: false,
        },
        Notice::DangerousArgumentObserved {
            name: "socket".into(),
            what: "AF_PACKET".into(),
        },
        Notice::NoEquivalent {
            name: "fork".into(),
            arch: Arch::Aarch64,
            harmless: None,
        },
        Notice::NoEquivalent {
            name: "arch_prctl".into(),
            arch: Arch::Aarch64,
            harmless: Some("x86 only".into()),
        },
        Notice::BaseDeniedObserved {
            name: "mount".into(),
            count: 2,
        },
        Notice::Clone3Observed { count: 3 },
        Notice::SocketcallNotFiltered { allowed: true },
        Notice::AllowedUnobserved {
            name: "chmod".into(),
        },
    ];
    for notice in &notices {
        let line = rationale::notice_line(notice);
        let shouts = line.starts_with("DANGEROUS") || line.contains("NO EQUIVALENT");
        assert_eq!(
            notice.severity() == Severity::Danger,
            shouts,
            "{notice:?}: {line}"
        );
    }
}
