//! Where `record` writes: one file or one per target in a directory, checked for writability
//! before anything is attached, snapshots or only the final document for a stream, and each
//! target's file name from its label.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::RecordOptions;
use crate::exit::ExitCode;
use crate::fsutil::{self, OutputError};
use crate::target::{CgroupTarget, TargetSpec};

/// How often the allowlist files are rewritten when `--interval` is not given.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Where allowlists go.
#[derive(Clone, Debug)]
pub enum OutputSpec {
    /// One file (only with one target).
    File(PathBuf),
    /// A directory: one `<label>.allowlist.json` per target.
    Dir(PathBuf),
}

/// Why `record`'s outputs cannot be planned: a combination of options that cannot work (exit
/// 2), or an output that cannot be written (the output's own code).
#[derive(Debug, thiserror::Error)]
pub enum OutputPlanError {
    /// Nothing to record.
    #[error("no target: give --cgroup, --cgroup-id, --pid, --container or --cgroup-glob")]
    NoTarget,
    /// `--wait` with nothing to wait for.
    #[error("--wait needs --cgroup-glob PATTERN (e.g. 'docker/*') or --container NAME")]
    WaitWithoutPattern,
    /// Several targets and one `--out` file.
    #[error("several targets but one --out file: use --out-dir DIR")]
    SeveralTargetsOneFile,
    /// `--out FILE` claimed by a second target (a glob's later match).
    #[error("{} is already used by another target: use --out-dir DIR", .0.display())]
    FileTakenByAnotherTarget(PathBuf),
    /// `--interval` with a stream, which cannot be rewritten.
    #[error(
        "--interval with --out {}: a stream (standard output, a FIFO, a device) cannot be \
         rewritten, so every snapshot would be appended as one more JSON document; without \
         --interval only the final allowlist is written there, or give --out FILE for \
         snapshots",
        .0.display()
    )]
    IntervalOnStream(PathBuf),
    /// The output file or directory.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl OutputPlanError {
    /// The documented exit code: usage (2) for options that cannot work together, the
    /// output's own otherwise.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            OutputPlanError::Output(e) => e.exit_code(),
            OutputPlanError::NoTarget
            | OutputPlanError::WaitWithoutPattern
            | OutputPlanError::SeveralTargetsOneFile
            | OutputPlanError::FileTakenByAnotherTarget(_)
            | OutputPlanError::IntervalOnStream(_) => ExitCode::USAGE,
        }
    }
}

/// Output paths, checked for writability before anything is attached.
pub(super) struct OutputPlan {
    spec: OutputSpec,
    /// Paths handed out, each with the container (as named on the command line) whose file
    /// it is, for a container target.
    used: HashMap<PathBuf, Option<String>>,
    /// How often snapshots are written; `None`: only the final files.
    pub(super) snapshots: Option<Duration>,
}

pub(super) fn plan_outputs(opts: &RecordOptions) -> Result<OutputPlan, OutputPlanError> {
    if opts.targets.is_empty() && opts.globs.is_empty() {
        return Err(OutputPlanError::NoTarget);
    }
    let waits_for_container = opts
        .targets
        .iter()
        .any(|t| matches!(t, TargetSpec::Container { .. }));
    if opts.wait && opts.globs.is_empty() && !waits_for_container {
        return Err(OutputPlanError::WaitWithoutPattern);
    }
    let snapshots = match &opts.output {
        OutputSpec::File(path) => {
            if opts.targets.len() > 1 || (!opts.globs.is_empty() && !opts.wait) {
                return Err(OutputPlanError::SeveralTargetsOneFile);
            }
            fsutil::check_output(path)?;
            snapshot_interval(path, opts.interval)?
        }
        OutputSpec::Dir(dir) => {
            fsutil::ensure_dir_writable(dir)?;
            Some(opts.interval.unwrap_or(DEFAULT_INTERVAL))
        }
    };
    Ok(OutputPlan {
        spec: opts.output.clone(),
        used: HashMap::new(),
        snapshots,
    })
}

/// Snapshots replace the file each time. A stream (`--out -`, a FIFO) cannot be rewritten:
/// each snapshot would follow the last as one more JSON document, so it only gets the final
/// allowlist, and asking for snapshots there is a usage error.
fn snapshot_interval(
    path: &Path,
    given: Option<Duration>,
) -> Result<Option<Duration>, OutputPlanError> {
    if !fsutil::is_stream_output(path)? {
        return Ok(Some(given.unwrap_or(DEFAULT_INTERVAL)));
    }
    match given {
        None => Ok(None),
        Some(_) => Err(OutputPlanError::IntervalOnStream(path.to_path_buf())),
    }
}

impl OutputPlan {
    /// The file for the next target: `--out` for the first one only; in `--out-dir`,
    /// `<label>.allowlist.json`, disambiguated by cgroup id on collision.
    pub(super) fn next_path(&mut self, target: &CgroupTarget) -> Result<PathBuf, OutputPlanError> {
        let path = match &self.spec {
            OutputSpec::File(path) if self.used.is_empty() => path.clone(),
            OutputSpec::File(path) => {
                return Err(OutputPlanError::FileTakenByAnotherTarget(path.clone()))
            }
            OutputSpec::Dir(dir) => {
                let name = file_stem(&target.label());
                let plain = dir.join(format!("{name}.allowlist.json"));
                if self.used.contains_key(&plain) {
                    dir.join(format!("{name}-{}.allowlist.json", target.cgroup.id))
                } else {
                    plain
                }
            }
        };
        self.used.insert(path.clone(), container_named(target));
        Ok(path)
    }

    /// The file of an earlier start of the same container, for a container target that
    /// started again: the same target, recorded into the same file.
    pub(super) fn continued_path(&self, target: &CgroupTarget) -> Option<PathBuf> {
        let name = container_named(target)?;
        self.used
            .iter()
            .find(|(_, owner)| owner.as_deref() == Some(name.as_str()))
            .map(|(path, _)| path.clone())
    }
}

/// The container a target is, as named on the command line (`--container NAME`).
pub(super) fn container_named(target: &CgroupTarget) -> Option<String> {
    target
        .info
        .container
        .as_ref()
        .map(|_| target.info.spec.clone())
}

/// Longest file-name stem used for a target's label: with `.allowlist.json`, a `-<cgroup id>`
/// for a name taken twice, and a writer's temporary-file affixes, it stays well below the 255
/// bytes a file name can have.
const MAX_STEM: usize = 160;

/// The file-name stem for a target's label: the label kept to `[A-Za-z0-9._-]`; one longer than
/// [`MAX_STEM`] bytes (a cgroup name can be 255) is cut and ends in a hash of the whole label,
/// so the name is the same on every run and two long labels with one prefix stay apart.
fn file_stem(label: &str) -> String {
    let safe = sanitize(label);
    let safe = if safe.is_empty() {
        "cgroup".into()
    } else {
        safe
    };
    if safe.len() <= MAX_STEM {
        return safe;
    }
    let mut hasher = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut hasher, label.as_bytes());
    let hash = std::hash::Hasher::finish(&hasher);
    // `sanitize` keeps ASCII only: any byte index is a character boundary.
    format!("{}-{hash:016x}", &safe[..MAX_STEM - 17])
}

/// Keeps file names to `[A-Za-z0-9._-]`.
fn sanitize(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_start_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::{AttachMode, CounterOptions};

    #[test]
    fn long_labels_are_cut_and_hashed_the_same_way_every_time() {
        let long = "x".repeat(240);
        let stem = file_stem(&long);
        assert_eq!(stem.len(), MAX_STEM);
        assert_eq!(stem, file_stem(&long));
        assert!(stem.starts_with(&"x".repeat(MAX_STEM - 17)), "{stem}");
        // One character apart at the end: the same prefix, different names.
        let other = format!("{}y", "x".repeat(239));
        assert_ne!(file_stem(&other), stem);
        assert_eq!(file_stem("short"), "short");
        assert_eq!(file_stem(&"x".repeat(MAX_STEM)), "x".repeat(MAX_STEM));
        assert_eq!(file_stem("..."), "cgroup");
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(sanitize("docker-abc.scope"), "docker-abc.scope");
        assert_eq!(sanitize("../etc/x y"), "_etc_x_y");
    }

    #[test]
    fn a_stream_gets_only_the_final_allowlist_and_refuses_interval() {
        let stdout = Path::new("-");
        assert_eq!(snapshot_interval(stdout, None).unwrap(), None);
        assert_eq!(
            snapshot_interval(Path::new("/dev/stdout"), None).unwrap(),
            None
        );
        let err = snapshot_interval(stdout, Some(Duration::from_secs(1))).unwrap_err();
        assert!(
            matches!(&err, OutputPlanError::IntervalOnStream(p) if p == stdout),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::exit::ExitCode::USAGE);
        assert!(err.to_string().contains("--interval with --out -"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(snapshot_interval(&fifo, Some(Duration::from_secs(1))).is_err());
        // A file is replaced at each snapshot: the default period, or the one given.
        let file = dir.path().join("a.json");
        assert_eq!(
            snapshot_interval(&file, None).unwrap(),
            Some(DEFAULT_INTERVAL)
        );
        assert_eq!(
            snapshot_interval(&file, Some(Duration::from_secs(1))).unwrap(),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn options_that_cannot_work_together_are_each_their_own_usage_error() {
        let opts = RecordOptions {
            targets: vec![TargetSpec::Pid(1), TargetSpec::Pid(2)],
            globs: Vec::new(),
            wait: false,
            keep_waiting: false,
            ready_file: None,
            output: OutputSpec::File(PathBuf::from("x.json")),
            interval: None,
            duration: None,
            counter: CounterOptions::new(AttachMode::Auto),
            metrics: None,
            pin_dir: None,
        };
        let err = plan_outputs(&opts).err().expect("must fail");
        assert!(
            matches!(err, OutputPlanError::SeveralTargetsOneFile),
            "{err}"
        );
        assert!(err.to_string().contains("--out-dir"), "{err}");
        assert_eq!(err.exit_code(), crate::exit::ExitCode::USAGE);

        let opts = RecordOptions {
            targets: vec![TargetSpec::Pid(1)],
            wait: true,
            ..opts
        };
        let err = plan_outputs(&opts).err().expect("must fail");
        assert!(matches!(err, OutputPlanError::WaitWithoutPattern), "{err}");
        assert_eq!(err.exit_code(), crate::exit::ExitCode::USAGE);

        let opts = RecordOptions {
            targets: Vec::new(),
            ..opts
        };
        let err = plan_outputs(&opts).err().expect("must fail");
        assert!(matches!(err, OutputPlanError::NoTarget), "{err}");
        assert!(err.to_string().contains("--cgroup-glob"), "{err}");
    }

    #[test]
    fn an_output_that_cannot_be_written_keeps_its_own_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let opts = RecordOptions {
            targets: vec![TargetSpec::Pid(1)],
            globs: Vec::new(),
            wait: false,
            keep_waiting: false,
            ready_file: None,
            output: OutputSpec::Dir(dir.path().join("missing/dir")),
            interval: None,
            duration: None,
            counter: CounterOptions::new(AttachMode::Auto),
            metrics: None,
            pin_dir: None,
        };
        let err = plan_outputs(&opts).err().expect("a missing directory");
        let OutputPlanError::Output(output) = &err else {
            panic!("not an output error: {err:?}");
        };
        assert_eq!(err.exit_code(), output.exit_code());
        assert_ne!(err.exit_code(), crate::exit::ExitCode::USAGE);
    }
}
