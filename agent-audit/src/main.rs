//! The `agent-audit` binary: parse the command line, run the library, exit with a documented
//! code.

use std::io::Write;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use agent_audit::cli::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.execute() {
        Ok(code) => std::process::ExitCode::from(code.0),
        Err(err) => {
            let code = err.exit_code();
            // Errors carry their cause in their own message; print it once.
            // Not eprintln!: a closed stderr must not turn the error into a panic.
            let _ = writeln!(std::io::stderr(), "agent-audit: error: {err}");
            if let Some(missing) = agent_audit::sidecar::missing_option(&err) {
                let _ = writeln!(std::io::stderr(), "agent-audit: hint: {}", missing.advice());
            }
            std::process::ExitCode::from(code.0)
        }
    }
}
