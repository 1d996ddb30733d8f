//! The capability checks a command makes, counted in the kernel (`cap_capable`) by `run`, and
//! the minimal set `profile` writes beside the profile as `capabilities.json`. Real kernel,
//! static C programs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use agent_audit_tests::container::{audit_container_twice, docker_busybox_image};
use agent_audit_tests::process::run_ok;
use agent_audit_tests::{agent_audit_bin, require_root, unique_name};
use serde_json::Value;

/// chown(2) of a file it created, as root: CAP_CHOWN, granted, audited.
const CHOWN_SOURCE: &str = r#"
#include <fcntl.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_CREAT | O_WRONLY, 0644);
    if (fd < 0) return 2;
    close(fd);
    return chown(argv[1], 65534, 65534) == 0 ? 0 : 1;
}
"#;

/// Only private writable memory: the kernel's memory accounting asks for CAP_SYS_ADMIN with
/// a no-audit check (`cap_vm_enough_memory`), which never needs it.
const PROBE_SOURCE: &str = r#"
#include <sys/mman.h>
int main(void) {
    for (int i = 0; i < 4; i++) {
        char *p = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 1;
        p[0] = 1;
    }
    return 0;
}
"#;

fn build(dir: &Path, name: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    let binary = dir.join(name);
    std::fs::write(&c, source).unwrap();
    let out = Command::new("gcc")
        .args(["-static", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&binary)
        .arg(&c)
        .output()
        .expect("gcc runs");
    assert!(out.status.success(), "{out:?}");
    binary
}

fn agent_audit(args: &[&str]) -> Output {
    let out = Command::new(agent_audit_bin())
        .args(args)
        .output()
        .expect("agent-audit runs");
    assert!(out.status.success(), "{args:?}: {out:?}");
    out
}

/// `run -o <dir>/<name>.json -- command…`; returns the allowlist's path and its JSON.
fn run(dir: &Path, name: &str, command: &[&str]) -> (String, Value) {
    let path = dir.join(format!("{name}.json")).display().to_string();
    let mut args = vec!["run", "-o", path.as_str(), "--"];
    args.extend_from_slice(command);
    agent_audit(&args);
    let list: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, list)
}

/// The `capabilities` entry of `cap` (name without `CAP_`), if it was checked.
fn check<'a>(list: &'a Value, cap: &str) -> Option<&'a Value> {
    list["capabilities"]["checks"]
        .as_array()
        .expect("the run counted capability checks")
        .iter()
        .find(|c| c["capability"] == cap)
}

/// `profile` of the allowlists; returns its `capabilities.json`.
fn profile(dir: &Path, lists: &[&str]) -> Value {
    let out_dir = dir.join("profile");
    std::fs::create_dir_all(&out_dir).unwrap();
    let profile = out_dir.join("profile.json").display().to_string();
    let rationale = out_dir.join("rationale.md").display().to_string();
    let mut args = vec![
        "profile",
        "-o",
        profile.as_str(),
        "--rationale",
        rationale.as_str(),
    ];
    args.extend_from_slice(lists);
    agent_audit(&args);
    let md = std::fs::read_to_string(&rationale).unwrap();
    assert!(md.contains("## Capabilities"), "{md}");
    assert!(md.contains("docker run --cap-drop ALL"), "{md}");
    serde_json::from_str(&std::fs::read_to_string(out_dir.join("capabilities.json")).unwrap())
        .unwrap()
}

#[test]
fn root_a_granted_audited_chown_is_the_whole_minimal_set() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let binary = build(dir.path(), "capchown", CHOWN_SOURCE);
    let file = dir.path().join("owned").display().to_string();
    let (path, list) = run(dir.path(), "chown", &[binary.to_str().unwrap(), &file]);
    let chown = check(&list, "CHOWN").expect("CAP_CHOWN was checked");
    assert!(chown["granted"].as_u64().unwrap() >= 1, "{chown}");
    assert_eq!(chown["noaudit_granted"], 0, "{chown}");
    assert!(
        chown["programs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["comm"] == "capchown" && p["granted"].as_u64().unwrap() >= 1),
        "{chown}"
    );
    let caps = profile(dir.path(), &[&path]);
    assert_eq!(caps["drop"], serde_json::json!(["ALL"]));
    assert_eq!(caps["add"], serde_json::json!(["CHOWN"]), "{caps}");
    assert!(
        caps["reasons"]["CHOWN"]["programs"]["capchown"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[test]
fn root_a_no_audit_probe_alone_adds_no_capability() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let binary = build(dir.path(), "capprobe", PROBE_SOURCE);
    let (path, list) = run(dir.path(), "probe", &[binary.to_str().unwrap()]);
    let admin = check(&list, "SYS_ADMIN").expect("memory accounting probed CAP_SYS_ADMIN");
    assert!(admin["noaudit_granted"].as_u64().unwrap() >= 1, "{admin}");
    assert_eq!(admin["granted"], 0, "{admin}");
    let caps = profile(dir.path(), &[&path]);
    assert_eq!(caps["add"], serde_json::json!([]), "{caps}");
    assert!(caps["not_added"]["SYS_ADMIN"].is_string(), "{caps}");
}

#[test]
fn root_a_non_root_program_is_granted_no_capability() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let binary = build(dir.path(), "capnobody", PROBE_SOURCE);
    let (_, list) = run(
        dir.path(),
        "nobody",
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            binary.to_str().unwrap(),
        ],
    );
    // setpriv itself is root until it drops; the program it runs as uid 65534 is what counts.
    let mine: Vec<&Value> = list["capabilities"]["checks"]
        .as_array()
        .expect("the run counted capability checks")
        .iter()
        .flat_map(|c| c["programs"].as_array().unwrap())
        .filter(|p| p["comm"] == "capnobody")
        .collect();
    assert!(
        !mine.is_empty(),
        "the non-root program's probes are counted: {list}"
    );
    for p in &mine {
        assert_eq!(p["granted"], 0, "{p}");
        assert_eq!(p["noaudit_granted"], 0, "{p}");
    }
}

#[test]
fn root_audit_a_container_verifies_it_under_only_its_minimal_capabilities() {
    require_root();
    let timeout = std::time::Duration::from_secs(300);
    let name = unique_name("capabilities-audit");
    // Root in the container, changing a file's owner: CAP_CHOWN is needed, nothing else of
    // Docker's 14.
    run_ok(
        Command::new("docker").args([
            "create",
            "--name",
            &name,
            "--network",
            "none",
            docker_busybox_image(),
            "sh",
            "-c",
            "touch /tmp/owned && chown 65534:65534 /tmp/owned && echo chowned",
        ]),
        timeout,
    );
    let (out, done) = audit_container_twice(&name, timeout);
    let read = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(out.path().join(f)).unwrap()).unwrap()
    };
    let caps = read("capabilities.json");
    let add: Vec<&str> = caps["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(add.contains(&"CHOWN"), "{caps:#}\n{}", done.stderr);
    assert!(add.len() < 14, "fewer than Docker's default 14: {caps:#}");
    let verify = read("verify.json");
    // The copy ran under --cap-drop ALL --cap-add <set> and still did its job.
    assert_eq!(verify["exit_status"], 0, "{verify:#}\n{}", done.stderr);
    let evaluated = verify["container"]["capabilities"].as_str().unwrap();
    assert!(evaluated.contains("CHOWN"), "{verify:#}");
    assert!(!evaluated.contains("NET_RAW"), "{verify:#}");
    assert!(
        done.stderr.contains("--cap-drop ALL --cap-add CHOWN"),
        "{}",
        done.stderr
    );
}

/// `verify --caps-file` of a command: the command runs with only that set, and each
/// capability it checks is set against how the recording saw it.
fn verify_under(dir: &Path, caps_file: &Path, list: &str, command: &[&str]) -> (i32, Value) {
    let profile = dir.join("profile/profile.json");
    let out = dir.join(format!(
        "verify-{}.json",
        caps_file.file_stem().unwrap().to_string_lossy()
    ));
    let mut args: Vec<&str> = vec![
        "verify",
        "--profile",
        profile.to_str().unwrap(),
        "--allowlist",
        list,
        "--caps-file",
        caps_file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--",
    ];
    args.extend_from_slice(command);
    let done = Command::new(agent_audit_bin())
        .args(&args)
        .output()
        .expect("agent-audit runs");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap())
        .unwrap_or_else(|e| panic!("{e}: {done:?}"));
    (done.status.code().unwrap(), result)
}

fn capability<'a>(result: &'a Value, cap: &str) -> &'a Value {
    result["capabilities"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["capability"] == cap))
        .unwrap_or_else(|| panic!("{cap} not checked under verify: {result:#}"))
}

#[test]
fn root_verify_runs_the_command_with_only_its_set_and_flags_a_needed_capability_refused() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let binary = build(dir.path(), "capchown", CHOWN_SOURCE);
    let file = dir.path().join("owned").display().to_string();
    let command = [binary.to_str().unwrap(), file.as_str()];
    let (path, _) = run(dir.path(), "chown", &command);
    let caps = profile(dir.path(), &[&path]);
    assert_eq!(caps["add"], serde_json::json!(["CHOWN"]), "{caps}");
    let minimal = dir.path().join("profile/capabilities.json");

    // Under its minimal set: chown is granted, nothing to say. The file is made afresh each
    // time, as in the recording (owned by 65534 now, root without CAP_DAC_OVERRIDE could not
    // open it for writing).
    std::fs::remove_file(&file).unwrap();
    let (code, result) = verify_under(dir.path(), &minimal, &path, &command);
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(result["capability_set"], "CAP_CHOWN", "{result:#}");
    let chown = capability(&result, "CHOWN");
    assert_eq!(chown["recorded"], "granted", "{chown}");
    assert!(chown["checks"]["granted"].as_u64().unwrap() >= 1, "{chown}");
    assert!(chown.get("finding").is_none(), "{chown}");

    // Under nothing at all: the chown the recording saw granted is refused.
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, r#"{"drop": ["ALL"], "add": []}"#).unwrap();
    std::fs::remove_file(&file).unwrap();
    let (code, result) = verify_under(dir.path(), &empty, &path, &command);
    assert_eq!(code, 1, "{result:#}");
    assert_eq!(result["passed"], false);
    assert_eq!(result["capability_set"], "no capabilities", "{result:#}");
    let chown = capability(&result, "CHOWN");
    assert_eq!(chown["finding"], "capability-refused", "{chown}");
    assert!(chown["checks"]["refused"].as_u64().unwrap() >= 1, "{chown}");
}

#[test]
fn root_a_no_audit_probe_is_no_finding_under_the_empty_set() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let binary = build(dir.path(), "capprobe", PROBE_SOURCE);
    let command = [binary.to_str().unwrap()];
    let (path, _) = run(dir.path(), "probe", &command);
    let caps = profile(dir.path(), &[&path]);
    assert_eq!(caps["add"], serde_json::json!([]), "{caps}");
    let minimal = dir.path().join("profile/capabilities.json");
    let (code, result) = verify_under(dir.path(), &minimal, &path, &command);
    assert_eq!(code, 0, "{result:#}");
    let admin = capability(&result, "SYS_ADMIN");
    assert_eq!(admin["recorded"], "probed-only", "{admin}");
    assert!(
        admin["checks"]["noaudit_refused"].as_u64().unwrap() >= 1,
        "{admin}"
    );
    assert!(admin.get("finding").is_none(), "{admin}");
}

#[test]
fn root_a_set_that_cannot_be_reduced_is_the_start_failure_drop_capabilities() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = run(dir.path(), "true", &["true"]);
    profile(dir.path(), &[&path]);
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, r#"{"drop": ["ALL"], "add": []}"#).unwrap();
    let out = dir.path().join("verify.json");
    // Without CAP_SETPCAP (gone from the bounding set before agent-audit's exec) nothing can
    // be dropped from the bounding set: the launcher's capability stage fails, as a stage.
    let done = Command::new("setpriv")
        .args(["--bounding-set", "-setpcap", "--"])
        .arg(agent_audit_bin())
        .arg("verify")
        .arg("--profile")
        .arg(dir.path().join("profile/profile.json"))
        .arg("--caps-file")
        .arg(&empty)
        .arg("-o")
        .arg(&out)
        .args(["--", "true"])
        .output()
        .expect("setpriv runs");
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        stdout.contains("reducing its capabilities failed"),
        "{stdout}"
    );
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        result["start_failure"]["stage"], "drop-capabilities",
        "{result:#}"
    );
    assert_eq!(result["exit_status"], 126, "{result:#}");
}
