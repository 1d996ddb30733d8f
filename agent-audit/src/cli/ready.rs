use std::path::PathBuf;

use clap::Args;

use crate::exit::ExitCode;
use crate::ready;
use crate::Error;

/// Arguments of `ready`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit 0 when FILE was written by `record --ready-file FILE` and that recorder \
                  is still running (armed), 1 otherwise. Made for container health checks: \
                  the sidecar image has no shell."
)]
pub struct ReadyArgs {
    /// The readiness file given to `record --ready-file`.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

impl ReadyArgs {
    pub(super) fn execute(self) -> Result<ExitCode, Error> {
        let pid = ready::check(&self.file)?;
        // Not println!, which panics (101) when the reader has gone: the exit code is the answer.
        crate::fsutil::write_stdout(format!("armed: recorder pid {pid}\n").as_bytes())
            .map_err(Error::Io)?;
        Ok(ExitCode::OK)
    }
}
