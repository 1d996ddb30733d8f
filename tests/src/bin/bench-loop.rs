//! `bench-loop MODE N [BATCHES]`: times `N` calls of one cheap syscall in `BATCHES` equal batches
//! (default 5) and prints the fastest and the median batch's nanoseconds per call. Other tasks
//! can only add time to a batch (preemption, cache thrashing), never remove it, so on a busy
//! machine the fastest batch is the best estimate of the call's own cost. Used by `cargo xtask bench`;
//! the timing happens here, inside the measured process, so that starting a tracer or a
//! container is never part of the figure.
//!
//! Modes: `getppid` (the cheapest real syscall: no locks, no copies), `fstat` (a file syscall
//! that copies a struct to userspace), `pread` (1 byte from the page cache), and calls whose
//! arguments agent-audit records or a profile compares: `fcntl` (F_GETFL), `ioctl` (TCGETS on a
//! file, which fails with ENOTTY), `personality` (the 0xffffffff query), `prctl`
//! (PR_GET_DUMPABLE) and `socket` (an AF_UNIX datagram socket, closed again: two calls).

use std::hint::black_box;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!(
            "usage: bench-loop getppid|fstat|pread|fcntl|ioctl|personality|prctl|socket N [BATCHES]"
        );
        std::process::exit(2);
    }
    let mode = args[1].as_str();
    let n: u64 = args[2].parse().expect("N must be a number");
    let batches: u64 = args.get(3).map_or(5, |b| b.parse().expect("BATCHES"));
    let call = syscall(mode);
    // Warm caches, the branch predictor and the tracer's per-cgroup verdict first.
    for _ in 0..(n / 20).max(100) {
        call();
    }
    let per_batch = (n / batches).max(1);
    let mut ns: Vec<f64> = (0..batches)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                call();
            }
            start.elapsed().as_nanos() as f64 / per_batch as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    println!("{:.2} {:.2}", ns[0], ns[ns.len() / 2]);
}

/// The measured call; results are checked so a failing syscall cannot pass for a fast one.
fn syscall(mode: &str) -> Box<dyn Fn()> {
    match mode {
        // The raw syscall bypasses any libc caching.
        "getppid" => Box::new(|| {
            // SAFETY: getppid has no preconditions.
            black_box(unsafe { libc::syscall(libc::SYS_getppid) });
        }),
        "fstat" | "pread" => {
            let file = std::fs::File::open("/proc/self/exe").expect("open /proc/self/exe");
            let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
            if mode == "fstat" {
                Box::new(move || {
                    // SAFETY: `stat` is plain C data (integers): all zeroes is a valid value.
                    let mut st: libc::stat = unsafe { std::mem::zeroed() };
                    // SAFETY: `st` is a valid out-pointer; `fd` stays open for the process.
                    let r = unsafe { libc::fstat(fd, &mut st) };
                    assert_eq!(r, 0, "fstat failed");
                    black_box(st.st_size);
                })
            } else {
                Box::new(move || {
                    let mut b = [0u8; 1];
                    // SAFETY: one byte into a one-byte buffer.
                    let r = unsafe { libc::pread(fd, b.as_mut_ptr().cast(), 1, 0) };
                    assert_eq!(r, 1, "pread failed");
                    black_box(b);
                })
            }
        }
        "fcntl" | "ioctl" => {
            let file = std::fs::File::open("/proc/self/exe").expect("open /proc/self/exe");
            let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
            if mode == "fcntl" {
                Box::new(move || {
                    // SAFETY: F_GETFL on a descriptor this process keeps open.
                    let r = unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_GETFL) };
                    assert!(r >= 0, "fcntl failed");
                    black_box(r);
                })
            } else {
                Box::new(move || {
                    // SAFETY: `termios` is plain C data (integers): all zeroes is a valid value.
                    let mut t: libc::termios = unsafe { std::mem::zeroed() };
                    // SAFETY: `t` is a valid out-pointer; a regular file is not a terminal.
                    let r = unsafe { libc::syscall(libc::SYS_ioctl, fd, libc::TCGETS, &mut t) };
                    assert_eq!(r, -1, "TCGETS on a regular file must fail");
                    black_box(t.c_iflag);
                })
            }
        }
        // One capability check per call, outside any need: a private writable mapping is
        // accounted memory, and the accounting asks for CAP_SYS_ADMIN (`cap_vm_enough_memory`,
        // a no-audit check). For the capability hook's cost.
        "mmap" => Box::new(|| {
            // SAFETY: a new anonymous mapping, unmapped at once; no existing memory is touched.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED, "mmap failed");
            // SAFETY: the mapping just made, of that length.
            let r = unsafe { libc::munmap(p, 4096) };
            assert_eq!(r, 0, "munmap failed");
        }),
        "personality" => Box::new(|| {
            // SAFETY: 0xffffffff only reads the current personality.
            let r = unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) };
            assert!(r >= 0, "personality query failed");
            black_box(r);
        }),
        "prctl" => Box::new(|| {
            // SAFETY: PR_GET_DUMPABLE reads a flag.
            let r = unsafe { libc::syscall(libc::SYS_prctl, libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
            assert!(r >= 0, "prctl failed");
            black_box(r);
        }),
        "socket" => Box::new(|| {
            // SAFETY: socket(2) with constant arguments.
            let fd = unsafe { libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_DGRAM, 0) };
            let fd = libc::c_int::try_from(fd).expect("socket failed");
            assert!(fd >= 0, "socket failed");
            // SAFETY: the descriptor just opened, closed once.
            unsafe { libc::close(black_box(fd)) };
        }),
        other => {
            eprintln!(
                "unknown mode {other}: getppid, fstat, pread, fcntl, ioctl, personality, prctl \
                 or socket"
            );
            std::process::exit(2);
        }
    }
}
