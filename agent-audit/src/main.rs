//! The `agent-audit` binary: parse the command line, run the library, exit with a documented
//! code.

use std::io::Write;

use clap::Parser;

use agent_audit::cli::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    agent_audit::logging::init(cli.verbose, cli.log_format);
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
