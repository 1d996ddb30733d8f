//! The live status line shown on a terminal while recording.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Redraws one line on stderr, only when stderr is a terminal.
pub struct ProgressLine {
    enabled: bool,
    started: Instant,
    drawn: bool,
}

impl ProgressLine {
    /// A line that draws itself only if stderr is a TTY.
    pub fn new() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
            started: Instant::now(),
            drawn: false,
        }
    }

    /// Whether the line is drawn at all (stderr is a TTY).
    pub fn is_shown(&self) -> bool {
        self.enabled
    }

    /// Shows elapsed time, how many targets are active, distinct syscalls and total calls.
    pub fn update(&mut self, targets: usize, distinct: u64, calls: u64) {
        if !self.enabled {
            return;
        }
        let line = format!(
            "agent-audit: {} recording {targets} target{}: {distinct} distinct syscalls, {calls} calls",
            format_elapsed(self.started.elapsed()),
            if targets == 1 { "" } else { "s" },
        );
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Erases the line so that later messages start on a clean line.
    pub fn clear(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}

impl Default for ProgressLine {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `mm:ss`, or `h:mm:ss` past an hour.
pub fn format_elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_time_is_compact() {
        assert_eq!(format_elapsed(Duration::from_secs(5)), "00:05");
        assert_eq!(format_elapsed(Duration::from_secs(754)), "12:34");
        assert_eq!(format_elapsed(Duration::from_secs(3723)), "1:02:03");
    }
}
