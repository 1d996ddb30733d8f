//! The GitHub Action's scripts (action/start.sh, action/stop.sh), run as the composite action
//! runs them: inputs in `INPUT_*` variables, `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY` set to
//! temporary files. `start` arms the recorder for a container that starts afterwards; `stop`
//! writes the step summary and the outputs, and with `fail-on-new` fails when the workload used
//! a syscall the committed profile does not allow.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::container::docker_busybox_image;
use agent_audit_tests::image::skip_without_docker;
use agent_audit_tests::process::{run, Finished};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name, workspace_root};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);
/// GitHub's limit on one step's summary.
const SUMMARY_LIMIT: u64 = 1024 * 1024;

/// A fake runner: the files GitHub provides, and the inputs of one action step.
struct Runner {
    dir: PathBuf,
}

impl Runner {
    fn output_file(&self) -> PathBuf {
        self.dir.join("github_output")
    }

    fn summary_file(&self) -> PathBuf {
        self.dir.join("step_summary.md")
    }

    fn out_dir(&self) -> PathBuf {
        self.dir.join("agent-audit")
    }

    /// Runs `action/<script>` with `inputs` (names as in action.yml) in a fresh
    /// `GITHUB_OUTPUT`; returns the run and the outputs it set.
    fn step(&self, script: &str, inputs: &[(&str, &str)]) -> (Finished, BTreeMap<String, String>) {
        let _ = fs::remove_file(self.output_file());
        let mut cmd = Command::new(workspace_root().join("action").join(script));
        cmd.current_dir(&self.dir)
            .env("GITHUB_OUTPUT", self.output_file())
            .env("GITHUB_STEP_SUMMARY", self.summary_file())
            .env("INPUT_BINARY", agent_audit_bin())
            .env("INPUT_OUT_DIR", self.out_dir());
        for (name, value) in inputs {
            cmd.env(
                format!("INPUT_{}", name.to_uppercase().replace('-', "_")),
                value,
            );
        }
        let done = run(&mut cmd, TIMEOUT);
        let outputs = fs::read_to_string(self.output_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (done, outputs)
    }

    /// `start` for `container`, then the container (busybox running `ls /`), then `stop`.
    fn record(
        &self,
        container: &str,
        stop: &[(&str, &str)],
    ) -> (Finished, BTreeMap<String, String>) {
        let (started, outputs) = self.step("start.sh", &[("container", container)]);
        started.assert_code(0);
        assert!(started.stdout.contains("armed"), "{started:#?}");
        assert_eq!(outputs["out-dir"], self.out_dir().display().to_string());
        let _rm = Rm(container.to_string());
        run(
            Command::new("docker")
                .args(["run", "--rm", "--network", "none", "--name", container])
                .args([docker_busybox_image(), "sh", "-c", "ls / > /dev/null"]),
            TIMEOUT,
        )
        .assert_code(0);
        let _ = fs::remove_file(self.summary_file());
        self.step("stop.sh", stop)
    }
}

struct Rm(String);

impl Drop for Rm {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.0])
            .output();
    }
}

/// The profile with `name` removed from every rule: what a committed profile looks like when
/// the workload has started to use `name` since.
fn without_syscall(profile: &Path, name: &str, to: &Path) {
    let mut json: Value = serde_json::from_str(&fs::read_to_string(profile).unwrap()).unwrap();
    for rule in json["syscalls"].as_array_mut().unwrap() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| n != name);
        }
    }
    fs::write(to, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

#[test]
fn root_action_scripts_write_summary_outputs_and_fail_on_a_new_syscall() {
    require_root();
    if skip_without_docker("root_action_scripts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner {
        dir: dir.path().to_path_buf(),
    };

    // 1. No committed profile: summary and outputs.
    let (stopped, outputs) = runner.record(&unique_name("aa-action"), &[]);
    stopped.assert_code(0);
    let summary = fs::read_to_string(runner.summary_file()).unwrap();
    assert!(summary.contains("## agent-audit report"), "{summary}");
    assert!(summary.contains("getdents64"), "{summary}");
    assert!(fs::metadata(runner.summary_file()).unwrap().len() <= SUMMARY_LIMIT);
    for file in ["profile", "report-md", "report-json"] {
        assert!(Path::new(&outputs[file]).is_file(), "{file}: {outputs:?}");
    }
    assert!(outputs["calls"].parse::<u64>().unwrap() > 0, "{outputs:?}");
    assert!(
        outputs["distinct"].parse::<u64>().unwrap() > 0,
        "{outputs:?}"
    );
    assert_eq!(outputs["new-count"], "0");
    outputs["findings"].parse::<u64>().unwrap();
    assert!(
        ["unverified", "changes-needed"].contains(&outputs["verdict"].as_str()),
        "{outputs:?}"
    );
    let committed = dir.path().join("committed-profile.json");
    fs::copy(&outputs["profile"], &committed).unwrap();
    let older = dir.path().join("older-profile.json");
    without_syscall(&committed, "getdents64", &older);
    for old in fs::read_dir(runner.out_dir()).unwrap().flatten() {
        if old.file_type().unwrap().is_file() {
            fs::remove_file(old.path()).unwrap();
        }
    }

    // 2. The same workload against its own profile: nothing new, the job passes.
    let committed_str = committed.display().to_string();
    let (stopped, outputs) = runner.record(
        &unique_name("aa-action"),
        &[("profile", &committed_str), ("fail-on-new", "true")],
    );
    stopped.assert_code(0);
    assert_eq!(outputs["new-count"], "0", "{outputs:?}");
    assert_eq!(outputs["new-syscalls"], "");

    // 3. Against a profile from before `ls` was added: getdents64 is new, the job fails.
    let older_str = older.display().to_string();
    let (stopped, outputs) = runner.record(
        &unique_name("aa-action"),
        &[("profile", &older_str), ("fail-on-new", "true")],
    );
    assert_eq!(stopped.code(), 1, "{stopped:#?}");
    assert!(
        stopped.stdout.contains("::error::") && stopped.stdout.contains("getdents64"),
        "{stopped:#?}"
    );
    assert_eq!(outputs["new-syscalls"], "getdents64", "{outputs:?}");
    assert_eq!(outputs["new-count"], "1");
    let summary = fs::read_to_string(runner.summary_file()).unwrap();
    assert!(
        summary.starts_with("> [!WARNING]") && summary.contains("getdents64"),
        "{summary}"
    );
}

/// Bad inputs fail with an error annotation before anything is started.
#[test]
fn action_scripts_refuse_bad_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner {
        dir: dir.path().to_path_buf(),
    };
    for (script, inputs, message) in [
        ("start.sh", &[][..], "start needs container or cgroup-glob"),
        (
            "start.sh",
            &[("container", "a"), ("cgroup-glob", "docker/*")][..],
            "not both",
        ),
        ("stop.sh", &[][..], "no recorder was started"),
        (
            "stop.sh",
            &[("fail-on-new", "true")][..],
            "fail-on-new needs",
        ),
    ] {
        let (done, _) = runner.step(script, inputs);
        assert_eq!(done.code(), 1, "{script} {inputs:?}: {done:#?}");
        assert!(
            done.stdout.contains("::error::agent-audit:") && done.stdout.contains(message),
            "{script} {inputs:?}: {done:#?}"
        );
    }
}

/// Every input the scripts read is passed by action.yml, and every input action.yml declares
/// reaches the scripts.
#[test]
fn action_yml_passes_every_input_the_scripts_read() {
    let root = workspace_root();
    let action = fs::read_to_string(root.join("action.yml")).unwrap();
    let mut scripts = String::new();
    for script in ["common.sh", "start.sh", "stop.sh"] {
        scripts += &fs::read_to_string(root.join("action").join(script)).unwrap();
    }
    let inputs = |text: &str| -> Vec<String> {
        let mut found: Vec<String> = text
            .match_indices("INPUT_")
            .map(|(i, _)| {
                text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect()
            })
            .collect();
        found.sort();
        found.dedup();
        found
    };
    let passed = inputs(&action);
    for var in inputs(&scripts) {
        assert!(passed.contains(&var), "action.yml does not set {var}");
    }
    for var in &passed {
        let name = var["INPUT_".len()..].to_lowercase().replace('_', "-");
        assert!(
            action.contains(&format!("  {name}:\n")),
            "{var} is not a declared input"
        );
        assert!(
            action.contains(&format!("${{{{ inputs.{name} }}}}")),
            "{var} does not come from inputs.{name}"
        );
    }
}

/// `start` with `cgroup-glob`: every new matching cgroup gets its own allowlist, and `stop`
/// merges them all into one profile and report.
#[test]
fn root_action_scripts_record_a_cgroup_pattern() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner {
        dir: dir.path().to_path_buf(),
    };
    let parent = agent_audit_tests::cgroup::ScratchCgroup::new(&unique_name("aa-action-glob"));
    let pattern = format!("{}/job-*", parent.rel.trim_start_matches('/'));
    let (started, _) = runner.step("start.sh", &[("cgroup-glob", &pattern)]);
    started.assert_code(0);
    for job in ["job-a", "job-b"] {
        let child = agent_audit_tests::cgroup::ScratchCgroup::at(&format!("{}/{job}", parent.rel));
        let mut cmd = Command::new("/bin/busybox");
        cmd.args(["ls", "/"]);
        child.contain(&mut cmd);
        run(&mut cmd, TIMEOUT).assert_code(0);
        // The cgroup outlives the recorder's next poll: a cgroup created and removed before
        // the recorder has read its inotify event is not named (a race of `record --wait`
        // itself, outside the action).
        std::thread::sleep(Duration::from_secs(1));
    }
    let (stopped, outputs) = runner.step("stop.sh", &[]);
    stopped.assert_code(0);
    let allowlists: Vec<&str> = outputs["allowlists"].split(' ').collect();
    assert_eq!(allowlists.len(), 2, "{outputs:?}\n{stopped:#?}");
    for (file, job) in allowlists.iter().zip(["job-a", "job-b"]) {
        assert!(file.ends_with(&format!("{job}.allowlist.json")), "{file}");
    }
    let summary = fs::read_to_string(runner.summary_file()).unwrap();
    assert!(summary.contains("2 run(s)"), "{summary}");
}

/// `pin-dir`: a recorder killed between `start` and `stop` is started again by another
/// `start` with the same pin-dir and loses nothing — a cgroup born while none ran included —
/// and `stop` removes the pins.
#[test]
fn root_action_scripts_with_a_pin_dir_survive_a_killed_recorder() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner {
        dir: dir.path().to_path_buf(),
    };
    let pins = std::path::Path::new("/sys/fs/bpf").join(unique_name("aa-action-pin"));
    let pin_dir = pins.to_str().unwrap();
    let parent = agent_audit_tests::cgroup::ScratchCgroup::new(&unique_name("aa-action-pin"));
    let pattern = format!("{}/job-*", parent.rel.trim_start_matches('/'));
    let inputs = [("cgroup-glob", pattern.as_str()), ("pin-dir", pin_dir)];
    runner.step("start.sh", &inputs).0.assert_code(0);
    let pid: i32 = fs::read_to_string(runner.out_dir().join(".recorder/pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) of the recorder this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    agent_audit_tests::process::wait_until("the recorder's end", TIMEOUT, || {
        // SAFETY: kill(2) with signal 0 only checks the pid.
        unsafe { libc::kill(pid, 0) != 0 }
    });
    let child = agent_audit_tests::cgroup::ScratchCgroup::at(&format!("{}/job-gap", parent.rel));
    let mut cmd = Command::new("/bin/busybox");
    cmd.args(["ls", "/"]);
    child.contain(&mut cmd);
    run(&mut cmd, TIMEOUT).assert_code(0);

    runner.step("start.sh", &inputs).0.assert_code(0);
    let (stopped, outputs) = runner.step("stop.sh", &[("pin-dir", pin_dir)]);
    stopped.assert_code(0);
    assert!(
        outputs["allowlists"].ends_with("job-gap.allowlist.json"),
        "{outputs:?}\n{stopped:#?}"
    );
    assert!(!pins.exists(), "stop left {pin_dir}");
}
