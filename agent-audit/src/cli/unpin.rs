use std::path::PathBuf;

use clap::Args;

use crate::bpf::pin::{self, UnpinWhen, Unpinned};
use crate::bpf::BpfError;
use crate::exit::ExitCode;
use crate::Error;

/// Arguments of `unpin`.
#[derive(Debug, Args)]
#[command(
    after_help = "Removes every pin `record --pin-dir DIR` left in DIR: the links first (which \
                  detaches the programs), then the maps, then DIR. The counts since the last \
                  snapshot are lost. Run by an uninstall on every node, or by a DaemonSet's \
                  init container with --if-other-build before an upgraded recorder starts."
)]
pub struct UnpinArgs {
    /// The directory given to `record --pin-dir`.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Only when DIR holds another build's (or other options') programs: this build's are
    /// kept for the recorder to adopt.
    #[arg(long)]
    if_other_build: bool,
}

impl UnpinArgs {
    pub(super) fn execute(self) -> Result<ExitCode, Error> {
        let when = match self.if_other_build {
            true => UnpinWhen::OtherBuild,
            false => UnpinWhen::Always,
        };
        let message = match pin::unpin(&self.dir, when).map_err(BpfError::Pin)? {
            Unpinned::Removed(n) => {
                format!("agent-audit: {}: {n} pin(s) removed", self.dir.display())
            }
            Unpinned::KeptOwnBuild => format!(
                "agent-audit: {}: this build's pins, kept",
                self.dir.display()
            ),
        };
        crate::shell::status!("{message}");
        Ok(ExitCode::OK)
    }
}
