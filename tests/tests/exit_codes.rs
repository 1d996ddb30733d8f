//! The exit-code table of docs/exit-codes.md, pinned: one case per error class and command,
//! each run through the real binary, checking the code, a word of the message, and that nothing
//! hangs.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent_audit_tests::process::run;
use agent_audit_tests::{agent_audit_bin, require_root, workspace_root};

const TIMEOUT: Duration = Duration::from_secs(30);

/// One row of the table: the arguments, the code, and words the message must contain.
struct Case {
    args: Vec<String>,
    code: i32,
    mentions: Vec<&'static str>,
    /// What standard output is.
    stdout: Stdout,
    /// Environment added.
    env: Vec<(&'static str, String)>,
    /// How long it may take (an engine socket is given 10 s per request).
    within: Duration,
}

/// Standard output of a case.
#[derive(Clone, Copy)]
enum Stdout {
    /// A pipe the test reads.
    Piped,
    /// Closed, as `>&-` leaves it.
    Closed,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
}

fn case(args: &[&dyn AsRef<std::ffi::OsStr>], code: i32, mentions: &[&'static str]) -> Case {
    Case {
        args: args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect(),
        code,
        mentions: mentions.to_vec(),
        stdout: Stdout::Piped,
        env: Vec::new(),
        within: Duration::from_secs(10),
    }
}

impl Case {
    fn stdout(mut self, stdout: Stdout) -> Self {
        self.stdout = stdout;
        self
    }

    fn env(mut self, name: &'static str, value: String, within: Duration) -> Self {
        self.env.push((name, value));
        self.within = within;
        self
    }
}

/// Hostile and broken inputs, made once in a temporary directory.
struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);
        fs::write(p("latin1.json"), b"{\"defaultAction\": \"\xe9\"}").unwrap();
        File::create(p("huge.json"))
            .unwrap()
            .set_len((64 << 20) + 1)
            .unwrap();
        std::os::unix::fs::symlink("/dev/zero", p("zero.json")).unwrap();
        let fifo =
            std::ffi::CString::new(p("fifo.json").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        fs::write(p("broken.json"), "{\"defaultAction\": ").unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn allowlist() -> PathBuf {
    workspace_root().join("tests/data/allowlists/shell-commands.allowlist.json")
}

fn profile() -> PathBuf {
    workspace_root().join("tests/data/profiles/gh-aw-firewall-agent-seccomp.json")
}

/// Makes descriptor 1 of `cmd` what `stdout` says, between fork and exec (after `run` has set
/// up its pipes).
fn set_stdout(cmd: &mut Command, stdout: Stdout) {
    let full = std::ffi::CString::new("/dev/full").unwrap();
    // SAFETY: only async-signal-safe calls (open, dup2, close) on memory prepared before fork.
    unsafe {
        cmd.pre_exec(move || {
            match stdout {
                Stdout::Piped => {}
                Stdout::Closed => {
                    libc::close(1);
                }
                Stdout::Full => {
                    let fd = libc::open(full.as_ptr(), libc::O_WRONLY);
                    if fd < 0 || libc::dup2(fd, 1) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
            }
            Ok(())
        });
    }
}

fn run_case(case: &Case) {
    let started = Instant::now();
    let mut cmd = Command::new(agent_audit_bin());
    cmd.args(&case.args).envs(case.env.iter().cloned());
    set_stdout(&mut cmd, case.stdout);
    let done = run(&mut cmd, TIMEOUT);
    assert!(
        started.elapsed() < case.within,
        "{:?} took {:?}",
        case.args,
        started.elapsed()
    );
    assert_eq!(
        done.status.code(),
        Some(case.code),
        "agent-audit {:?}: expected exit {}; stderr:\n{}",
        case.args,
        case.code,
        done.stderr
    );
    for word in &case.mentions {
        assert!(
            done.stderr.contains(word),
            "agent-audit {:?}: stderr does not mention {word:?}:\n{}",
            case.args,
            done.stderr
        );
    }
}

/// Every bad input a reader can meet, given to every command that reads that kind of input.
fn input_cases(inputs: &Inputs, out: &Path) -> Vec<Case> {
    let missing = inputs.path("missing.json");
    let bad: [(PathBuf, i32, &'static str); 6] = [
        (missing, 66, "No such file"),
        (inputs.path("broken.json"), 65, "broken.json"),
        (inputs.path("latin1.json"), 65, "not UTF-8"),
        (inputs.path("huge.json"), 65, "64 MiB"),
        (inputs.path("zero.json"), 65, "character device"),
        (inputs.path("fifo.json"), 65, "FIFO"),
    ];
    let (allowlist, profile) = (allowlist(), profile());
    let mut cases = Vec::new();
    for (path, code, word) in &bad {
        cases.push(case(&[&"check", path], *code, &[word]));
        cases.push(case(&[&"diff", path, &profile], *code, &[word]));
        cases.push(case(&[&"profile", path, &"-o", &out], *code, &[word]));
        cases.push(case(
            &[&"profile", &allowlist, &"--base", path, &"-o", &out],
            *code,
            &[word],
        ));
        cases.push(case(
            &[
                &"report",
                &allowlist,
                &"--format",
                &"json",
                &"--verify",
                path,
            ],
            *code,
            &[word],
        ));
    }
    cases
}

/// An architecture libseccomp does not know is malformed input for every command reading a
/// profile, not only for `check` and `verify`.
fn unknown_arch_cases(inputs: &Inputs) -> Vec<Case> {
    let bogus = inputs.path("bogus-arch.json");
    fs::write(
        &bogus,
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_BOGUS"],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let bogus_spo = inputs.path("bogus-arch.spo.yaml");
    fs::write(
        &bogus_spo,
        "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\n\
         metadata:\n  name: bogus\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  \
         architectures: [SCMP_ARCH_BOGUS]\n",
    )
    .unwrap();
    let (list, out) = (allowlist(), inputs.path("out.json"));
    let word = ["SCMP_ARCH_BOGUS"];
    vec![
        case(&[&"check", &bogus], 65, &word),
        case(&[&"check", &bogus_spo], 65, &word),
        case(&[&"diff", &bogus_spo, &list], 65, &word),
        case(
            &[&"verify", &"--profile", &bogus, &"--", &"/bin/true"],
            65,
            &word,
        ),
        case(&[&"diff", &bogus, &list], 65, &word),
        case(&[&"diff", &list, &bogus], 65, &word),
        case(
            &[&"report", &list, &"--format", &"md", &"--base", &bogus],
            65,
            &word,
        ),
        case(
            &[&"report", &list, &"--format", &"md", &"--profile", &bogus],
            65,
            &word,
        ),
        case(
            &[&"profile", &list, &"--base", &bogus, &"-o", &out],
            65,
            &word,
        ),
    ]
}

/// Outputs that cannot be written: a missing directory, a symlink, a directory.
fn unwritable_cases(inputs: &Inputs) -> Vec<Case> {
    let (list, prof) = (allowlist(), profile());
    let link = inputs.path("link.json");
    std::os::unix::fs::symlink(inputs.path("target.json"), &link).unwrap();
    let missing_dir = inputs.path("no-such-dir/out.json");
    let dir = inputs.dir.path().to_path_buf();
    let mut cases = Vec::new();
    for (out, word) in [
        (&missing_dir, "no-such-dir"),
        (&link, "symbolic link"),
        (&dir, "directory"),
    ] {
        cases.push(case(&[&"profile", &list, &"-o", out], 73, &[word]));
        cases.push(case(
            &[&"profile", &list, &"-o", &"/dev/null", &"--rationale", out],
            73,
            &[word],
        ));
        cases.push(case(
            &[&"report", &list, &"--format", &"md", &"-o", out],
            73,
            &[word],
        ));
        cases.push(case(
            &[
                &"verify",
                &"--profile",
                &prof,
                &"-o",
                out,
                &"--",
                &"/bin/true",
            ],
            73,
            &[word],
        ));
        cases.push(case(
            &[&"run", &"--out", out, &"--", &"/bin/true"],
            73,
            &[word],
        ));
    }
    cases
}

/// Targets that do not exist: a path climbing out of the cgroup mount is no cgroup (66), not
/// an unsupported host (69).
fn target_cases(inputs: &Inputs) -> Vec<Case> {
    let out = inputs.path("out.json");
    let escaping = format!("{}etc", "../".repeat(16));
    vec![
        case(
            &[&"record", &"--cgroup", &escaping, &"--out", &out],
            66,
            &["not a cgroup"],
        ),
        case(
            &[&"record", &"--cgroup", &"/etc", &"--out", &out],
            66,
            &["not a cgroup"],
        ),
        case(
            &[&"record", &"--pid", &"2147483646", &"--out", &out],
            66,
            &["2147483646"],
        ),
        // A pattern whose parent exists but nothing matches, without --wait: usage.
        case(
            &[
                &"record",
                &"--cgroup-glob",
                &"agent-audit-exit-codes-nothing-*",
                &"--out-dir",
                &inputs.path("."),
            ],
            2,
            &["no cgroup matches", "--wait"],
        ),
    ]
}

/// `record --pin-dir`: a directory holding another build's pins (75, naming `unpin`), and one
/// not on bpffs (69). `other_build` is prepared by [`OtherBuildPins`].
fn pin_cases(inputs: &Inputs, other_build: &Path) -> Vec<Case> {
    let out = inputs.path("out.json");
    vec![
        case(
            &[
                &"record",
                &"--cgroup",
                &"/",
                &"--pin-dir",
                &other_build,
                &"--out",
                &out,
            ],
            75,
            &["another agent-audit build", "agent-audit unpin"],
        ),
        case(
            &[
                &"record",
                &"--cgroup",
                &"/",
                &"--pin-dir",
                &inputs.path("pins"),
                &"--out",
                &out,
            ],
            69,
            &["not on a BPF file system"],
        ),
    ]
}

/// A pin directory on bpffs whose state names another build (a link entry stands for the
/// pinned links: bpffs takes directories, not files); removed on drop.
struct OtherBuildPins(PathBuf);

impl OtherBuildPins {
    fn new() -> Self {
        let dir = Path::new("/sys/fs/bpf").join(format!("exit-codes-pin-{}", std::process::id()));
        for sub in ["links/0", "maps", "state/fingerprint=0123456789abcdef"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        Self(dir)
    }
}

impl Drop for OtherBuildPins {
    fn drop(&mut self) {
        for sub in [
            "links/0",
            "links",
            "maps",
            "state/fingerprint=0123456789abcdef",
            "state",
            "",
        ] {
            let _ = fs::remove_dir(self.0.join(sub));
        }
    }
}

/// `--caps-file` of `check`, `diff` and `verify`: a name that is no capability (65), a file
/// that is not there (66), the file together with `--caps` (2).
fn caps_file_cases(inputs: &Inputs) -> Vec<Case> {
    let bad = inputs.path("bad-capabilities.json");
    fs::write(&bad, r#"{"drop": ["ALL"], "add": ["CHOWN", "SYS_WIZARD"]}"#).unwrap();
    let missing = inputs.path("missing-capabilities.json");
    let profile = profile();
    let mut cases = Vec::new();
    for (file, code, word) in [(&bad, 65, "SYS_WIZARD"), (&missing, 66, "No such file")] {
        cases.push(case(
            &[&"check", &profile, &"--caps-file", file],
            code,
            &[word],
        ));
        cases.push(case(
            &[&"diff", &profile, &profile, &"--caps-file", file],
            code,
            &[word],
        ));
        cases.push(case(
            &[
                &"verify",
                &"--profile",
                &profile,
                &"--caps-file",
                file,
                &"--",
                &"true",
            ],
            code,
            &[word],
        ));
    }
    cases.push(case(
        &[&"check", &profile, &"--caps-file", &bad, &"--caps", &"all"],
        2,
        &["--caps"],
    ));
    cases
}

/// Usage errors of clap's own.
fn usage_cases() -> Vec<Case> {
    vec![
        case(&[&"profile", &"--no-such-flag"], 2, &["--no-such-flag"]),
        case(&[&"check"], 2, &["PROFILE"]),
    ]
}

/// An output on an input, or two outputs on one path: usage errors, before anything is written.
fn clash_cases(inputs: &Inputs) -> Vec<Case> {
    let list = inputs.path("in.allowlist.json");
    fs::copy(allowlist(), &list).unwrap();
    let prof = inputs.path("in.profile.json");
    fs::copy(profile(), &prof).unwrap();
    let new = inputs.path("new.json");
    let via_dotdot = inputs.path("sub/../in.allowlist.json");
    fs::create_dir_all(inputs.path("sub")).unwrap();
    let clash = ["is the input"];
    vec![
        case(&[&"profile", &list, &"-o", &list], 2, &clash),
        case(&[&"profile", &list, &"-o", &via_dotdot], 2, &clash),
        case(
            &[&"profile", &list, &"--base", &prof, &"-o", &prof],
            2,
            &clash,
        ),
        case(
            &[&"profile", &list, &"-o", &new, &"--rationale", &new],
            2,
            &["same file"],
        ),
        case(
            &[
                &"report",
                &list,
                &"--format",
                &"md",
                &"--profile",
                &prof,
                &"-o",
                &prof,
            ],
            2,
            &clash,
        ),
        case(
            &[
                &"verify",
                &"--profile",
                &prof,
                &"-o",
                &prof,
                &"--",
                &"/bin/true",
            ],
            2,
            &clash,
        ),
    ]
}

/// Allowlists a reader used to resolve silently: a key given twice, an
/// (arch, nr) listed twice, `name: null` for a number that has a name. Profiles past the
/// distinct-rule bound (item 5).
fn lenient_input_cases(inputs: &Inputs) -> Vec<Case> {
    let text = fs::read_to_string(allowlist()).unwrap();
    let mut list: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = list["syscalls"][0].clone();
    let write = |file: &str, text: String| {
        let path = inputs.path(file);
        fs::write(&path, text).unwrap();
        path
    };
    let key_twice = write(
        "key-twice.allowlist.json",
        text.replacen(
            "\"complete\": true",
            "\"complete\": true, \"complete\": false",
            1,
        ),
    );
    let mut twice = list.clone();
    twice["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(entry.clone());
    let count = entry["count"].as_u64().unwrap();
    let calls = twice["totals"]["calls"].as_u64().unwrap();
    twice["totals"]["calls"] = (calls + count).into();
    let distinct = twice["totals"]["distinct"].as_u64().unwrap();
    twice["totals"]["distinct"] = (distinct + 1).into();
    let entry_twice = write("entry-twice.allowlist.json", twice.to_string());
    list["syscalls"][0]["name"] = serde_json::Value::Null;
    let unnamed = write("unnamed.allowlist.json", list.to_string());
    let rules: Vec<String> = (0..=4096)
        .map(|v| {
            format!(
                r#"{{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{{"index":0,"value":{v},"op":"SCMP_CMP_EQ"}}]}}"#
            )
        })
        .collect();
    let too_many = write(
        "too-many-rules.json",
        format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{}]}}"#,
            rules.join(",")
        ),
    );
    let out = inputs.path("out.json");
    let (list, prof) = (allowlist(), profile());
    let mut cases = Vec::new();
    for (bad, word) in [
        (&key_twice, "duplicate field `complete`"),
        (&entry_twice, "repeats syscalls[0]"),
        (&unnamed, "has name null"),
    ] {
        cases.push(case(&[&"profile", bad, &"-o", &out], 65, &[word]));
        cases.push(case(&[&"report", bad, &"--format", &"md"], 65, &[word]));
        cases.push(case(&[&"diff", bad, &prof], 65, &[word]));
    }
    let bound = ["4097 distinct rules"];
    cases.extend([
        case(&[&"check", &too_many], 65, &bound),
        case(&[&"diff", &too_many, &list], 65, &bound),
        case(
            &[
                &"report",
                &list,
                &"--format",
                &"md",
                &"--profile",
                &too_many,
            ],
            65,
            &bound,
        ),
        case(
            &[&"profile", &list, &"--base", &too_many, &"-o", &out],
            65,
            &bound,
        ),
        case(
            &[&"verify", &"--profile", &too_many, &"--", &"/bin/true"],
            65,
            &bound,
        ),
    ]);
    cases
}

/// Outputs that vanish: a closed standard output is 73 before any work; a
/// full one for `--help` is 74; an engine socket that never answers is 69, named.
fn vanishing_output_cases(inputs: &Inputs) -> Vec<Case> {
    let (list, prof) = (allowlist(), profile());
    let closed = ["standard output is closed"];
    let socket = inputs.path("silent.sock");
    let host = format!("unix://{}", socket.display());
    let engine_wait = Duration::from_secs(30);
    let absent = "agent-audit-exit-codes-absent-container";
    vec![
        case(&[&"run", &"--out", &"-", &"--", &"/bin/true"], 73, &closed).stdout(Stdout::Closed),
        case(&[&"report", &list, &"--format", &"md"], 73, &closed).stdout(Stdout::Closed),
        case(
            &[
                &"verify",
                &"--profile",
                &prof,
                &"-o",
                &"-",
                &"--",
                &"/bin/true",
            ],
            73,
            &closed,
        )
        .stdout(Stdout::Closed),
        case(
            &[
                &"record",
                &"--pid",
                &"1",
                &"--duration",
                &"30",
                &"--out",
                &"-",
            ],
            73,
            &closed,
        )
        .stdout(Stdout::Closed),
        case(&[&"--help"], 74, &["No space left"]).stdout(Stdout::Full),
        case(&[&"check", &"--help"], 74, &["No space left"]).stdout(Stdout::Full),
        case(
            &[
                &"record",
                &"--wait",
                &"--container",
                &absent,
                &"--out-dir",
                &inputs.dir.path(),
            ],
            69,
            &["silent.sock", "no answer"],
        )
        .env("DOCKER_HOST", host.clone(), engine_wait),
        case(
            &[
                &"verify",
                &"--profile",
                &prof,
                &"--docker-container",
                &absent,
            ],
            69,
            &["silent.sock", "no answer"],
        )
        .env("DOCKER_HOST", host, engine_wait),
    ]
}

#[test]
fn root_each_error_class_exits_with_its_documented_code() {
    require_root();
    let inputs = Inputs::new();
    let out = inputs.path("out.json");
    let mut cases = input_cases(&inputs, &out);
    cases.extend(clash_cases(&inputs));
    cases.extend(unknown_arch_cases(&inputs));
    cases.extend(unwritable_cases(&inputs));
    cases.extend(target_cases(&inputs));
    cases.extend(usage_cases());
    cases.extend(caps_file_cases(&inputs));
    cases.extend(lenient_input_cases(&inputs));
    cases.extend(vanishing_output_cases(&inputs));
    let other_build = OtherBuildPins::new();
    cases.extend(pin_cases(&inputs, &other_build.0));
    // Takes connections and never answers them (nothing accepts).
    let _silent = std::os::unix::net::UnixListener::bind(inputs.path("silent.sock")).unwrap();
    for case in &cases {
        run_case(case);
    }
    assert!(!out.exists(), "an output was written by a failing command");
    assert!(!inputs.path("new.json").exists(), "an output was written");
    assert!(
        !inputs.path("target.json").exists(),
        "written through a symlink"
    );
    let unchanged = |copy: &str, original: PathBuf| {
        assert_eq!(
            fs::read(inputs.path(copy)).unwrap(),
            fs::read(original).unwrap(),
            "input {copy} was overwritten"
        );
    };
    unchanged("in.allowlist.json", allowlist());
    unchanged("in.profile.json", profile());
}
