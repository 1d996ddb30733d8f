//! The one owner of the status lines agent-audit writes for the person running it (what is
//! recorded, where a file went, warnings), as cargo's `Shell` is cargo's: standard error,
//! beside the logs, never standard output (that is for documents, see `cli::print_stdout`).
//!
//! One rule holds for every line: a standard error that cannot be written — closed (`2>&-`),
//! a full device (`2>/dev/full`), a pipe whose reader has gone — loses the line, never the
//! run. `eprintln!` panics on a failed write (exit 101), which would replace the exit code a
//! script relies on (the command's own under `run`, the verdict under `verify` and `audit`)
//! and skip the clean-up of a recording.

use std::fmt;
use std::io::Write;

/// Writes one status line (`status!("agent-audit: …")`) to standard error; see the module.
macro_rules! status {
    ($($arg:tt)*) => {
        $crate::shell::write_status(format_args!($($arg)*))
    };
}
pub(crate) use status;

/// Writes `line` to standard error; a write that fails is dropped. Use [`status!`].
pub fn write_status(line: fmt::Arguments<'_>) {
    write_line(&mut std::io::stderr().lock(), line);
}

/// Writes `line` and its newline to `out` and flushes it, dropping any error: there is
/// nowhere left to report it.
fn write_line(out: &mut impl Write, line: fmt::Arguments<'_>) {
    let _ = out
        .write_fmt(format_args!("{line}\n"))
        .and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A standard error whose descriptor was closed: every write fails with `EBADF`.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(libc::EBADF))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::from_raw_os_error(libc::EBADF))
        }
    }

    #[test]
    fn status_lines_into_a_closed_full_or_broken_standard_error_never_panic() {
        let mut written = Vec::new();
        write_line(&mut written, format_args!("agent-audit: {} calls", 3));
        assert_eq!(written, b"agent-audit: 3 calls\n");

        write_line(&mut Closed, format_args!("agent-audit: lost"));

        let mut full = std::fs::File::options()
            .write(true)
            .open("/dev/full")
            .unwrap();
        assert_eq!(
            full.write_all(b"x").unwrap_err().raw_os_error(),
            Some(libc::ENOSPC),
            "/dev/full refuses writes"
        );
        write_line(&mut full, format_args!("agent-audit: lost"));

        let (reader, mut broken) = std::io::pipe().unwrap();
        drop(reader);
        assert_eq!(
            broken.write_all(b"x").unwrap_err().kind(),
            std::io::ErrorKind::BrokenPipe,
            "the pipe's reader is gone (and SIGPIPE is ignored, as Rust's runtime sets it)"
        );
        write_line(&mut broken, format_args!("agent-audit: lost"));
    }
}
