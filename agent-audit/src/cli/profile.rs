use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::capabilities::minimal;
use crate::exit::ExitCode;
use crate::fsutil;
use crate::profile::args::ArgsMode;
use crate::profile::model::Severity;
use crate::profile::{self, oci, rationale, spo, ExplicitAllow, ProfileError, ProfileOptions};
use crate::seccomp::spo::{is_dns_subdomain, SpoVersion};
use crate::shell::status;
use crate::syscalls::Arch;
use crate::Error;

/// Output format of `profile`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProfileFormat {
    /// Docker/OCI seccomp JSON (docker --security-opt seccomp=FILE, linux.seccomp in config.json).
    Oci,
    /// Kubernetes Security Profiles Operator `SeccompProfile` object, JSON.
    Spo,
    /// The same object as YAML (what `kubectl apply -f` users keep in Git).
    SpoYaml,
}

/// `--args`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ArgsModeArg {
    /// Dangerous argument values refused unless observed.
    Default,
    /// Only observed ioctl requests allowed.
    Strict,
}

/// Arguments of `profile`.
#[derive(Debug, Args)]
#[command(
    after_help = "Rules, in order: 1. allow what was observed (then one rule per \
                  translated arch, --allow exceptions, kept base allows); 2. the baseline \
                  (runtime after the filter is installed, vDSO fallbacks), one rule per \
                  syscall with its reason; 3. explicit denies by dangerous category, then the \
                  base profile's denies; 4. clone3 -> ENOSYS (even when observed: glibc falls back \
                  to clone). socket, socketpair, clone, personality and ioctl are allowed only \
                  for argument values that are observed or safe. Every \
                  rule has a comment. Same inputs give a byte-identical file."
)]
pub struct ProfileArgs {
    /// Allowlist files to merge (union of syscalls, counts summed; order does not matter).
    #[arg(required = true, value_name = "ALLOWLIST")]
    allowlists: Vec<PathBuf>,
    /// Profile file to write.
    #[arg(long, short = 'o', value_name = "FILE", default_value = "profile.json")]
    out: PathBuf,
    /// Also list these architectures (x86_64, x86, x32, aarch64, arm; comma-separated or
    /// repeated); observed calls are translated to their names. By default only the observed
    /// architectures are listed.
    #[arg(long = "arch", value_name = "ARCH,…", value_delimiter = ',')]
    arches: Vec<Arch>,
    /// Leave out the baseline (runtime and vDSO-fallback syscalls that were not observed).
    #[arg(long)]
    no_baseline: bool,
    /// Allow this syscall although it is dangerous or was never observed; needs a --reason
    /// (pair them in order: --allow A --reason "…" --allow B --reason "…").
    #[arg(long = "allow", value_name = "NAME")]
    allows: Vec<String>,
    /// Why the preceding --allow is acceptable; written into the rule's comment.
    #[arg(long = "reason", value_name = "TEXT")]
    reasons: Vec<String>,
    /// Start from this profile: its explicit denies and comments are kept; what it allowed but
    /// was never observed is listed and dropped (see --keep-base-allows).
    #[arg(long, value_name = "PROFILE")]
    base: Option<PathBuf>,
    /// Keep what --base allowed even if it was never observed.
    #[arg(long, requires = "base")]
    keep_base_allows: bool,
    /// Also write a Markdown rationale: every allowed syscall with what it does, how often and
    /// in which runs it was seen, or why it is in the baseline; every explicit deny with its
    /// reason.
    #[arg(long, value_name = "FILE.md")]
    rationale: Option<PathBuf>,
    /// How far recorded argument values narrow ioctl: `default` refuses the dangerous requests
    /// (TIOCSTI, TIOCLINUX) unless observed; `strict` allows only the observed requests.
    #[arg(long = "args", value_enum, default_value_t = ArgsModeArg::Default)]
    args_mode: ArgsModeArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ProfileFormat::Oci)]
    format: ProfileFormat,
    /// metadata.name of the SPO object (default: the output file's stem); a DNS subdomain.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// metadata.namespace of the SPO object: only with --spo-version v1beta1 (v1 objects are
    /// cluster-scoped).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Version of the SPO object: v1 (the storage version) or v1beta1.
    #[arg(long, value_enum, default_value_t = SpoVersion::V1)]
    spo_version: SpoVersion,
}

impl ProfileArgs {
    pub(super) fn execute(self) -> Result<ExitCode, Error> {
        if self.allows.len() != self.reasons.len() {
            return Err(Error::Usage(format!(
                "every --allow needs its own --reason ({} --allow, {} --reason)",
                self.allows.len(),
                self.reasons.len()
            )));
        }
        let spo_name = self.spo_name()?;
        // Fail before any work if an output would destroy an input or cannot be written.
        let inputs: Vec<&Path> = self
            .allowlists
            .iter()
            .map(PathBuf::as_path)
            .chain(self.base.as_deref())
            .collect();
        let capabilities = minimal::path_beside(&self.out);
        let outputs: Vec<&Path> = std::iter::once(self.out.as_path())
            .chain(self.rationale.as_deref())
            .chain(capabilities.as_deref())
            .collect();
        fsutil::check_distinct(&inputs, &outputs)?;
        for out in outputs {
            fsutil::check_output(out).map_err(ProfileError::from)?;
        }
        let merged = profile::read_and_merge(&self.allowlists)?;
        let base = self.base.as_deref().map(profile::read_base).transpose()?;
        let options = ProfileOptions {
            extra_arches: self.arches,
            baseline: !self.no_baseline,
            allows: self
                .allows
                .into_iter()
                .zip(self.reasons)
                .map(|(name, reason)| ExplicitAllow { name, reason })
                .collect(),
            timing_allows: Vec::new(),
            base,
            keep_base_allows: self.keep_base_allows,
            args_mode: match self.args_mode {
                ArgsModeArg::Default => ArgsMode::Default,
                ArgsModeArg::Strict => ArgsMode::Strict,
            },
        };
        let plan = profile::build::plan(&merged, &options)?;
        for notice in &plan.notices {
            let tag = match notice.severity() {
                Severity::Danger => "DANGER",
                Severity::Note => "note",
            };
            let line = rationale::notice_line(notice);
            status!("agent-audit: {tag}: {}", line.replace('`', ""));
        }
        let spo_target = spo::SpoTarget {
            name: &spo_name,
            namespace: self.namespace.as_deref(),
            version: self.spo_version,
        };
        let text = match self.format {
            ProfileFormat::Oci => oci::to_seccomp_profile(&plan).to_json(),
            ProfileFormat::Spo => spo::to_spo_object(&plan, &spo_target)
                .map_err(ProfileError::from)?
                .to_json(),
            ProfileFormat::SpoYaml => spo::to_spo_object(&plan, &spo_target)
                .map_err(ProfileError::from)?
                .to_yaml(),
        };
        fsutil::write_output(&self.out, text.as_bytes()).map_err(ProfileError::from)?;
        if let Some(path) = &self.rationale {
            let md = rationale::render(&plan, &self.out.display().to_string());
            fsutil::write_output(path, md.as_bytes()).map_err(ProfileError::from)?;
        }
        plan.capabilities
            .write(capabilities.as_deref())
            .map_err(ProfileError::from)?;
        status!(
            "agent-audit: wrote {} ({} allowed, {} denied explicitly, {} rules, {})",
            self.out.display(),
            plan.allowed_names().len(),
            plan.denied_names().len(),
            plan.rules.len(),
            plan.architectures
                .iter()
                .map(|a| a.arch.scmp_name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(ExitCode::OK)
    }
}

impl ProfileArgs {
    /// The SPO object's name, checked before any work: a usage error if it cannot be one.
    fn spo_name(&self) -> Result<String, Error> {
        let name = self.name.clone().unwrap_or_else(|| stem(&self.out));
        let is_spo = matches!(self.format, ProfileFormat::Spo | ProfileFormat::SpoYaml);
        if is_spo && !is_dns_subdomain(&name) {
            return Err(Error::Usage(format!(
                "--name {name:?}: a SeccompProfile's name must be a DNS subdomain (lowercase \
                 letters, digits, '-' and '.'; at most 253 characters)"
            )));
        }
        if is_spo && self.namespace.is_some() && self.spo_version == SpoVersion::V1 {
            return Err(Error::Usage(
                "--namespace: SeccompProfile v1 objects are cluster-scoped; drop --namespace \
                 or add --spo-version v1beta1"
                    .into(),
            ));
        }
        Ok(name)
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().replace(['_', '.'], "-").to_lowercase())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "agent-audit".into())
}
