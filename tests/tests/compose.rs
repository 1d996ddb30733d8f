//! The compose example (examples/compose) end to end with the compose on these machines
//! (Debian's docker-compose 1.29): `up` starts the sidecar, the agent only once the sidecar is
//! healthy (armed), the allowlist appears in a host directory with the agent's calls from runc's
//! first syscall, and `down` removes everything.

use std::fs;
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::container::docker_busybox_image;
use agent_audit_tests::image::{sidecar_image, skip_without_docker};
use agent_audit_tests::process::run;
use agent_audit_tests::{require_root, unique_name, workspace_root};

const TIMEOUT: Duration = Duration::from_secs(240);

/// `docker-compose -p PROJECT -f examples/compose/docker-compose.yml ARGS` with the example's
/// variables pointing at the test images and directories.
fn compose(project: &str, env: &[(&str, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new("docker-compose");
    cmd.args(["--no-ansi", "-p", project, "-f"])
        .arg(workspace_root().join("examples/compose/docker-compose.yml"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd
}

/// Runs `down` on drop, so that a failed test leaves no containers behind.
struct Down<'a>(&'a str, &'a [(&'a str, String)]);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = compose(self.0, self.1, &["down", "--remove-orphans"]).output();
    }
}

#[test]
fn root_compose_example_records_the_agent_started_after_the_sidecar_is_armed() {
    require_root();
    if skip_without_docker("root_compose_example") {
        return;
    }
    if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("root_compose_example: SKIPPED: docker-compose is not installed (cargo xtask setup installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    fs::create_dir(&audit).unwrap();
    let agent = unique_name("aa-compose-agent");
    let project = agent.replace('-', "");
    let env = [
        ("SIDECAR_IMAGE", sidecar_image().to_string()),
        ("AGENT_IMAGE", docker_busybox_image().to_string()),
        ("AGENT_NAME", agent.clone()),
        ("AUDIT_DIR", audit.display().to_string()),
    ];
    let _down = Down(&project, &env);

    let up = run(&mut compose(&project, &env, &["up"]), TIMEOUT);
    up.assert_code(0);
    let output = format!("{}{}", up.stdout, up.stderr);
    assert!(output.contains("agent done: 2 users"), "{output}");

    let list = Allowlist::read(&audit.join("agent.allowlist.json"));
    let dump = format!("{:#}", list.0);
    assert!(list.complete(), "{dump}");
    assert_eq!(list.target()["container"]["name"], agent.as_str());
    // Started after the sidecar was armed: runc's init is in the recording.
    let init = list.names_in("runtime_init");
    for call in ["pivot_root", "execve"] {
        assert!(init.contains(call), "{call} not in runtime_init:\n{dump}");
    }
    list.assert_has(&["getdents64", "pipe2", "wait4", "write"]);

    let down = run(&mut compose(&project, &env, &["down"]), TIMEOUT);
    down.assert_code(0);
    let left = run(
        Command::new("docker").args(["ps", "-a", "--filter", &format!("name={agent}"), "-q"]),
        TIMEOUT,
    );
    assert_eq!(left.stdout.trim(), "", "containers left after down");
}
