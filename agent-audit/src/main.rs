//! The `agent-audit` binary: parse the command line, run the library, exit with a documented
//! code.

use std::io::Write;

use clap::Parser;

use agent_audit::cli::Cli;

/// Runs before Rust's runtime reopens a closed standard output on `/dev/null`: the one moment
/// a closed one (`>&-`) can still be told from `>/dev/null`. glibc runs `.init_array` entries
/// before `main`, which starts the runtime.
#[used]
#[link_section = ".init_array"]
static NOTE_STDOUT_BEFORE_RUNTIME: extern "C" fn() = note_stdout_before_runtime;

extern "C" fn note_stdout_before_runtime() {
    agent_audit::fsutil::note_stdout_before_runtime();
}

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return clap_exit(&err),
    };
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

/// What clap's own `exit()` does, with the output checked: `--help` and `--version` go to
/// standard output like any document (closed at start: 73; a reader that left early: 0; any
/// other write error, `>/dev/full`: 74); a usage error goes to standard error, exit 2.
fn clap_exit(err: &clap::Error) -> std::process::ExitCode {
    use agent_audit::exit::ExitCode;
    if !err.use_stderr() {
        if let Err(e) = agent_audit::fsutil::check_stdout() {
            let _ = writeln!(std::io::stderr(), "agent-audit: error: {e}");
            return std::process::ExitCode::from(e.exit_code().0);
        }
    }
    let printed = err.print().and_then(|()| std::io::stdout().flush());
    match printed {
        Err(e) if !err.use_stderr() && e.kind() != std::io::ErrorKind::BrokenPipe => {
            let _ = writeln!(std::io::stderr(), "agent-audit: error: I/O error: {e}");
            std::process::ExitCode::from(ExitCode::IO.0)
        }
        _ => {
            std::process::ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(ExitCode::USAGE.0))
        }
    }
}
