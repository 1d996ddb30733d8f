//! Whole-map reads in a few syscalls: `BPF_MAP_LOOKUP_BATCH` (Linux 5.6+) for per-CPU arrays,
//! which aya 0.14 does not wrap. Reading the 8 192-entry attribution table one element at a
//! time took 8 192 `bpf()` calls per snapshot; a batch read takes one per 1 024 elements.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use aya::maps::MapData;
use aya::Pod;

/// `BPF_MAP_LOOKUP_BATCH` from `include/uapi/linux/bpf.h`.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Elements asked for per call: bounds the buffer, not the result.
const CHUNK: u32 = 1024;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every element of a per-CPU array with `entries` elements of `V`, as one `Vec` per CPU
/// slice: element `i`'s value on CPU `c` is at `i * cpus + c`. `cpus` is the number of
/// possible CPUs (`aya::util::nr_cpus`), which is how the kernel lays per-CPU values out.
pub(super) fn lookup_percpu_array<V: Pod>(
    map: &MapData,
    entries: u32,
    cpus: usize,
) -> io::Result<Vec<V>> {
    // The kernel copies each CPU's value rounded up to 8 bytes.
    let stride = std::mem::size_of::<V>().next_multiple_of(8);
    if stride != std::mem::size_of::<V>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "per-CPU value size is not a multiple of 8",
        ));
    }
    let capacity = usize::try_from(entries).map_err(io::Error::other)?;
    let mut out: Vec<V> = Vec::with_capacity(capacity * cpus);
    let mut keys = vec![0u32; CHUNK as usize];
    let mut values: Vec<V> = Vec::with_capacity(CHUNK as usize * cpus);
    let mut next_key: u32 = 0;
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                std::ptr::addr_of!(next_key) as u64
            },
            out_batch: std::ptr::addr_of_mut!(next_key) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK,
            map_fd: u32::try_from(map.fd().as_fd().as_raw_fd()).map_err(io::Error::other)?,
            ..BatchAttr::default()
        };
        first = false;
        // SAFETY: `attr` is a valid `bpf_attr.batch` for this map: `keys` holds CHUNK u32 keys,
        // `values` has room for CHUNK elements of `cpus` values each (the kernel writes at most
        // `count` elements), and `next_key` outlives the call. The size passed is the struct's.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                std::ptr::addr_of_mut!(attr),
                std::mem::size_of::<BatchAttr>(),
            )
        };
        let done = rc < 0;
        if done {
            let err = io::Error::last_os_error();
            // ENOENT: the last batch, `attr.count` elements were still copied.
            if err.raw_os_error() != Some(libc::ENOENT) {
                return Err(err);
            }
        }
        let filled = usize::try_from(attr.count).map_err(io::Error::other)? * cpus;
        // SAFETY: the kernel initialised the first `count * cpus` values, and `V: Pod`
        // accepts any bit pattern.
        unsafe { values.set_len(filled) };
        out.append(&mut values);
        if done || out.len() >= capacity * cpus {
            return Ok(out);
        }
    }
}
