//! Which target slots counted a call since userspace last looked: the kernel program's
//! `DIRTY` array ([`agent_audit_ebpf::MAP_DIRTY`]), mapped into this process so that checking
//! every slot costs no syscall. A snapshot of idle targets then reads no counters at all.

use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use aya::maps::MapData;

/// A BPF array lays its values out `round_up(value_size, 8)` bytes apart (`array_map_alloc`),
/// also in the mmap-ed view: the kernel program's `u32` for slot `i` is at byte `8 * i`.
const ELEMENT_STRIDE: usize = 8;

/// The mapped words, one per slot, each at the start of its 8-byte element.
pub(super) struct DirtyWords {
    words: NonNull<AtomicU32>,
    len: usize,
    mapped_bytes: usize,
}

impl DirtyWords {
    /// Maps the array (`len` `u32` elements, created `BPF_F_MMAPABLE`).
    pub(super) fn map(map: &MapData, len: u32) -> std::io::Result<Self> {
        let len = len as usize;
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .map_err(|_| std::io::Error::last_os_error())?;
        let mapped_bytes = (len * ELEMENT_STRIDE).next_multiple_of(page);
        // SAFETY: a shared mapping of a BPF array map's values, offset 0, no larger than the
        // map's (page-rounded) value area; the kernel refuses anything else.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let words = NonNull::new(addr.cast::<AtomicU32>())
            .ok_or_else(|| std::io::Error::other("mmap returned NULL"))?;
        Ok(Self {
            words,
            len,
            mapped_bytes,
        })
    }

    /// Whether `slot` counted a call since the last call for it; clears its word. Cleared
    /// before its counters are read: a call that lands after the clear sets it again.
    pub(super) fn take(&self, slot: u32) -> bool {
        let Some(word) = self.word(slot) else {
            return true;
        };
        word.swap(0, Ordering::AcqRel) != 0
    }

    /// Marks every slot as changed: a recorder that adopts pinned maps has read none of them.
    pub(super) fn mark_all(&self) {
        for slot in (0u32..).take(self.len) {
            if let Some(word) = self.word(slot) {
                word.store(1, Ordering::Release);
            }
        }
    }

    fn word(&self, slot: u32) -> Option<&AtomicU32> {
        let index = slot as usize;
        let words_per_element = ELEMENT_STRIDE / std::mem::size_of::<u32>();
        // SAFETY: `index < len` elements of ELEMENT_STRIDE bytes lie in the mapping, which lives
        // as long as `self`; `AtomicU32` has the layout of the kernel's `u32` at the start of
        // each element, and every access is atomic.
        (index < self.len).then(|| unsafe { &*self.words.as_ptr().add(index * words_per_element) })
    }
}

// SAFETY: the mapping belongs to the process, not to a thread, and is only accessed atomically.
unsafe impl Send for DirtyWords {}
// SAFETY: as above.
unsafe impl Sync for DirtyWords {}

impl Drop for DirtyWords {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.words.as_ptr().cast(), self.mapped_bytes) };
    }
}
