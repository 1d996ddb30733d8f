//! `bench-time CMD [ARGS…]`: runs a command and prints its wall time in nanoseconds on stdout
//! (the command's own output is left alone). Timing inside the container or the recorded
//! cgroup keeps their start-up out of the workload figure.

use std::process::Command;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("usage: bench-time CMD [ARGS…]");
        std::process::exit(2);
    };
    let start = Instant::now();
    let status = Command::new(cmd).args(rest).status().unwrap_or_else(|e| {
        eprintln!("bench-time: cannot run {cmd}: {e}");
        std::process::exit(127);
    });
    println!("{}", start.elapsed().as_nanos());
    std::process::exit(status.code().unwrap_or(1));
}
