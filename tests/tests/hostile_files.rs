//! agent-audit runs as root next to untrusted users: an output path in a shared directory must
//! not let them redirect, pre-own or block what root writes. Every plant here is made by
//! `nobody` in a sticky world-writable directory, as in `/tmp` or a shared CI workspace.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent_audit_tests::process::{run, Finished};
use agent_audit_tests::{agent_audit_bin, require_root, workspace_root};

const TIMEOUT: Duration = Duration::from_secs(30);
const CANT_CREATE: i32 = 73;
const NOBODY: u32 = 65534;

fn allowlist() -> PathBuf {
    workspace_root().join("tests/data/allowlists/shell-commands.allowlist.json")
}

/// `agent-audit profile ALLOWLIST -o OUT`, as root.
fn profile_to(out: &Path) -> Finished {
    run(
        Command::new(agent_audit_bin())
            .arg("profile")
            .arg(allowlist())
            .arg("-o")
            .arg(out),
        TIMEOUT,
    )
}

/// Runs a shell command as `nobody`, with no supplementary groups.
fn as_nobody(script: &str) {
    let done = run(
        Command::new("setpriv").args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ]),
        TIMEOUT,
    );
    done.assert_code(0);
}

/// A world-writable directory, and a victim file outside it.
struct Shared {
    dir: tempfile::TempDir,
    victim_dir: tempfile::TempDir,
}

const VICTIM_TEXT: &str = "root's precious file\n";

impl Shared {
    fn new(mode: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
        let victim_dir = tempfile::tempdir().unwrap();
        fs::set_permissions(victim_dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(victim_dir.path().join("victim"), VICTIM_TEXT).unwrap();
        Self { dir, victim_dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn victim(&self) -> PathBuf {
        self.victim_dir.path().join("victim")
    }

    fn assert_victim_untouched(&self) {
        let meta = fs::symlink_metadata(self.victim()).unwrap();
        assert!(meta.is_file());
        assert_eq!(fs::read_to_string(self.victim()).unwrap(), VICTIM_TEXT);
        assert_eq!(meta.mode() & 0o7777, 0o644);
    }
}

fn assert_root_owned_profile(path: &Path) {
    let meta = fs::symlink_metadata(path).unwrap();
    assert!(meta.is_file(), "{} is not a regular file", path.display());
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "{} owner", path.display());
    assert_eq!(meta.mode() & 0o7777, 0o644, "{} mode", path.display());
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains("\"defaultAction\""), "{text}");
}

/// What `nobody` leaves at every name an earlier version derived from its pid.
#[derive(Clone, Copy)]
enum Plant {
    /// A symlink to the victim.
    Link,
    /// An empty regular file, mode 0666.
    File,
}

/// Plants at `.NAME.tmp-PID` (the old temporary file) and `.agent-audit-probe-PID` (the old
/// writability probe) for the next 200 pids, in one process so that planting uses no pid of
/// the range.
fn plant_at_guessable_names(shared: &Shared, name: &str, plant: Plant) {
    let kind = match plant {
        Plant::Link => "link",
        Plant::File => "file",
    };
    let script = r#"
        my ($kind, $victim, $dir, $name) = @ARGV;
        open my $f, '<', '/proc/sys/kernel/ns_last_pid' or die;
        my $last = <$f>;
        for my $pid ($last + 1 .. $last + 200) {
            for my $n (".$name.tmp-$pid", ".agent-audit-probe-$pid") {
                my $path = "$dir/$n";
                if ($kind eq 'link') { symlink($victim, $path) or die "$path: $!" }
                else { open my $g, '>', $path or die "$path: $!"; chmod 0666, $path }
            }
        }"#;
    let done = run(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["perl", "-e", script, kind])
            .arg(shared.victim())
            .arg(shared.dir.path())
            .arg(name),
        TIMEOUT,
    );
    done.assert_code(0);
}

#[test]
fn root_a_symlink_planted_at_the_output_is_refused_and_its_target_untouched() {
    require_root();
    let shared = Shared::new(0o1777);
    let out = shared.path("profile.json");
    as_nobody(&format!(
        "ln -s '{}' '{}'",
        shared.victim().display(),
        out.display()
    ));
    profile_to(&out)
        .assert_code(CANT_CREATE)
        .assert_stderr_mentions(&["symbolic link", "refusing"]);
    shared.assert_victim_untouched();
    assert!(fs::symlink_metadata(&out).unwrap().is_symlink());
}

#[test]
fn root_a_directory_symlink_planted_on_the_way_is_not_followed() {
    require_root();
    let shared = Shared::new(0o1777);
    let build = shared.path("build");
    as_nobody(&format!(
        "ln -s '{}' '{}'",
        shared.victim_dir.path().display(),
        build.display()
    ));
    profile_to(&build.join("victim"))
        .assert_code(CANT_CREATE)
        .assert_stderr_mentions(&["symbolic link", "uid 65534"]);
    shared.assert_victim_untouched();
    let names: Vec<_> = fs::read_dir(shared.victim_dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "written into the link's target: {names:?}");
}

#[test]
fn root_links_and_files_at_guessable_temp_names_are_never_written_through() {
    require_root();
    // Sticky like /tmp, and plain 0777 like a CI workspace opened to every job (where the
    // kernel's fs.protected_* rules, when enabled, do not apply).
    for mode in [0o1777, 0o777] {
        for plant in [Plant::Link, Plant::File] {
            let shared = Shared::new(mode);
            plant_at_guessable_names(&shared, "profile.json", plant);
            let out = shared.path("profile.json");
            profile_to(&out).assert_code(0);
            shared.assert_victim_untouched();
            assert_root_owned_profile(&out);
            // Nothing but the plants and the profile: no temporary file left behind.
            let names: Vec<String> = fs::read_dir(shared.dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != "profile.json" && !n.starts_with(".profile.json.tmp-"))
                .filter(|n| !n.starts_with(".agent-audit-probe-"))
                .collect();
            assert!(names.is_empty(), "left behind: {names:?}");
            // The planted files are still empty: nothing was written into them.
            for entry in fs::read_dir(shared.dir.path()).unwrap() {
                let meta = fs::symlink_metadata(entry.unwrap().path()).unwrap();
                if meta.uid() == NOBODY && meta.is_file() {
                    assert_eq!(meta.len(), 0, "a planted file was written");
                }
            }
        }
    }
}

#[test]
fn root_a_file_planted_at_the_output_is_replaced_by_a_root_owned_0644_file() {
    require_root();
    let shared = Shared::new(0o1777);
    let out = shared.path("profile.json");
    as_nobody(&format!(
        "echo planted > '{0}' && chmod 0666 '{0}'",
        out.display()
    ));
    let planted = fs::metadata(&out).unwrap();
    assert_eq!((planted.uid(), planted.mode() & 0o777), (NOBODY, 0o666));
    profile_to(&out).assert_code(0);
    assert_root_owned_profile(&out);
    assert_ne!(fs::metadata(&out).unwrap().ino(), planted.ino());
    // The planter kept no handle on the new file: it cannot write it.
    let done = run(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
            ])
            .arg(format!("echo '{{}}' > '{}'", out.display())),
        TIMEOUT,
    );
    assert_ne!(done.code(), 0, "nobody could rewrite root's profile");
}

#[test]
fn root_a_fifo_at_the_output_fails_at_once_instead_of_hanging() {
    require_root();
    let shared = Shared::new(0o1777);
    // Planted by nobody: refused like the kernel's fs.protected_fifos refuses it.
    let planted = shared.path("planted.json");
    as_nobody(&format!("mkfifo '{}'", planted.display()));
    // Root's own FIFO that nobody reads: writing would block forever.
    let unread = shared.path("unread.json");
    let done = run(Command::new("mkfifo").arg(&unread), TIMEOUT);
    done.assert_code(0);
    for (fifo, words) in [
        (&planted, ["FIFO", "uid 65534"]),
        (&unread, ["FIFO", "no reader"]),
    ] {
        let started = Instant::now();
        profile_to(fifo)
            .assert_code(CANT_CREATE)
            .assert_stderr_mentions(&words);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(fs::symlink_metadata(fifo).unwrap().file_type().is_fifo());
    }
}

#[test]
fn root_dev_null_stays_a_device_and_stdout_gets_the_profile() {
    require_root();
    profile_to(Path::new("/dev/null")).assert_code(0);
    let meta = fs::symlink_metadata("/dev/null").unwrap();
    assert!(meta.file_type().is_char_device(), "/dev/null was replaced");
    for out in ["/dev/stdout", "-"] {
        let done = profile_to(Path::new(out));
        done.assert_code(0);
        assert!(
            done.stdout.contains("\"defaultAction\""),
            "-o {out} printed:\n{}",
            done.stdout
        );
    }
    assert!(!Path::new("-").exists(), "a file named - was written");
}
