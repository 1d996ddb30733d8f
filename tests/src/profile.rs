//! Reading seccomp profiles as plain JSON (the tests check the documented file, not the
//! library's types): what a profile allows, which errno it gives a syscall, editing it, and
//! whether it can go into an OCI `config.json` unchanged.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

/// Reads and parses a profile, panicking with its text if it is not JSON.
pub fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read profile {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()))
}

/// The `syscalls` rules.
pub fn rules(profile: &Value) -> &Vec<Value> {
    profile["syscalls"]
        .as_array()
        .unwrap_or_else(|| panic!("no syscalls array in {profile:#}"))
}

/// Every name of a rule (`names`, and Docker's single `name`).
pub fn rule_names(rule: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = rule["names"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    names.extend(rule["name"].as_str());
    names
}

/// Names allowed by an unconditional `SCMP_ACT_ALLOW` rule.
pub fn allowed_names(profile: &Value) -> BTreeSet<String> {
    rules(profile)
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none_or(is_empty))
        .flat_map(|r| rule_names(r).into_iter().map(str::to_string))
        .collect()
}

fn is_empty(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(Vec::is_empty)
}

/// What the filter does to `name` with any arguments: `None` if it is allowed, else the errno
/// it fails with. The first unconditional rule naming it decides (the generated profiles have
/// one rule per name); else the default action. Panics on actions that are neither allow nor
/// errno (kill, trap…): the round-trip tests do not expect them.
pub fn errno_for(profile: &Value, name: &str) -> Option<i32> {
    let rule = rules(profile)
        .iter()
        .find(|r| rule_names(r).contains(&name) && r.get("args").is_none_or(is_empty));
    let (action, errno) = match rule {
        Some(r) => (&r["action"], &r["errnoRet"]),
        None => (&profile["defaultAction"], &profile["defaultErrnoRet"]),
    };
    match action.as_str() {
        Some("SCMP_ACT_ALLOW") => None,
        // runc, crun and Docker use EPERM when no errno is given.
        Some("SCMP_ACT_ERRNO") => Some(errno.as_i64().map_or(libc::EPERM, |e| {
            i32::try_from(e).unwrap_or_else(|_| panic!("{name}: errno {e} is out of range"))
        })),
        other => panic!("{name}: unexpected action {other:?} in {profile:#}"),
    }
}

/// The errnos of the conditional `SCMP_ACT_ERRNO` rules naming `name`: the values its argument
/// rules refuse with an errno of their own.
pub fn refusal_errnos(profile: &Value, name: &str) -> Vec<i32> {
    rules(profile)
        .iter()
        .filter(|r| rule_names(r).contains(&name) && !r.get("args").is_none_or(is_empty))
        .filter(|r| r["action"] == "SCMP_ACT_ERRNO")
        .filter_map(|r| r["errnoRet"].as_i64())
        .filter_map(|e| i32::try_from(e).ok())
        .collect()
}

/// A copy of `profile` in which no allow rule names `name` any more (rules left empty are
/// dropped); panics if nothing allowed it.
pub fn without_allowed(profile: &Value, name: &str) -> Value {
    let mut edited = profile.clone();
    let mut removed = false;
    let rules = edited["syscalls"].as_array_mut().expect("syscalls array");
    for rule in rules.iter_mut() {
        if rule["action"] != "SCMP_ACT_ALLOW" {
            continue;
        }
        if let Some(names) = rule["names"].as_array_mut() {
            let before = names.len();
            names.retain(|n| n != name);
            removed |= names.len() != before;
        }
        if rule["name"] == name {
            rule.as_object_mut().unwrap().remove("name");
            removed = true;
        }
    }
    rules.retain(|r| !rule_names(r).is_empty());
    assert!(removed, "no allow rule names {name}");
    assert!(!allowed_names(&edited).contains(name));
    edited
}

/// Fields of `linux.seccomp` in the OCI runtime spec (config.json).
pub const OCI_TOP_LEVEL: &[&str] = &[
    "defaultAction",
    "defaultErrnoRet",
    "architectures",
    "flags",
    "listenerPath",
    "listenerMetadata",
    "syscalls",
];
/// Fields of one `linux.seccomp.syscalls[]` entry in the OCI runtime spec.
pub const OCI_RULE: &[&str] = &["names", "action", "errnoRet", "args"];

/// The fields of a profile that the OCI runtime spec does not define, as `path.field`
/// (`archMap`, a rule's `comment`, `name`, `includes`…). runc and crun decode config.json with
/// decoders that ignore unknown fields, so such a field is harmless unless it carries meaning
/// the runtime would then miss (Docker's `name`, `archMap`, `includes`/`excludes`).
pub fn fields_outside_oci(profile: &Value) -> BTreeSet<String> {
    let mut extra = BTreeSet::new();
    for key in profile.as_object().expect("profile is an object").keys() {
        if !OCI_TOP_LEVEL.contains(&key.as_str()) {
            extra.insert(key.clone());
        }
    }
    for rule in rules(profile) {
        for key in rule.as_object().expect("rule is an object").keys() {
            if !OCI_RULE.contains(&key.as_str()) {
                extra.insert(format!("syscalls[].{key}"));
            }
        }
    }
    extra
}
