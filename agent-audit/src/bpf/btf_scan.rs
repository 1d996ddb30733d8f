//! The few facts agent-audit needs from the kernel's BTF, read straight from it: member offsets
//! of a few kernel structs, and the type id a `tp_btf` program attaches by.
//!
//! The vmlinux BTF describes every kernel type (over a hundred thousand). A general BTF library
//! builds all of them in memory — about 20 MiB at the daemon's peak, and tens of milliseconds
//! of every start — to answer these questions, so this module walks the type section once
//! instead and keeps only the answers.
//! Format: Documentation/bpf/btf.rst (header, type section, string section).

use std::path::Path;

const BTF_MAGIC: u16 = 0xeb9f;
const HEADER_LEN: u32 = 24;
const KIND_PTR: u32 = 2;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_FUNC: u32 = 12;

/// The kernel's BTF, read once.
pub struct KernelBtf(Vec<u8>);

impl KernelBtf {
    /// Reads the BTF at `path`; `None` if it cannot be read or is not (little-endian) BTF.
    pub fn read(path: &Path) -> Option<Self> {
        let data = std::fs::read(path).ok()?;
        (data.get(..2) == Some(&BTF_MAGIC.to_le_bytes()[..])).then_some(Self(data))
    }

    /// Byte offsets of `(struct, member)` pairs, in the order asked; `None` when the struct or
    /// member is missing or is a bitfield.
    pub fn member_offsets(&self, wanted: &[(&str, &str)]) -> Vec<Option<u32>> {
        let mut found = vec![None; wanted.len()];
        let _ = self.walk(|t| {
            let (KIND_STRUCT | KIND_UNION, Some(struct_name)) = (t.kind, t.name) else {
                return Some(true); // not a struct, or an anonymous one
            };
            for (i, (s, member)) in wanted.iter().enumerate() {
                if found[i].is_some() || s.as_bytes() != struct_name {
                    continue;
                }
                for m in 0..t.vlen {
                    let at = t.trailer + m * 12;
                    if self.name(self.u32_at(at)?)? != member.as_bytes() {
                        continue;
                    }
                    let raw = self.u32_at(at + 8)?;
                    let (bits, bitfield) = if t.kind_flag {
                        (raw & 0x00ff_ffff, raw >> 24)
                    } else {
                        (raw, 0)
                    };
                    if bitfield == 0 && bits % 8 == 0 {
                        found[i] = Some(bits / 8);
                    }
                }
            }
            Some(found.iter().any(Option::is_none))
        });
        found
    }

    /// The id of the typedef called `name` (such as `btf_trace_sys_enter`, what a `tp_btf`
    /// program on `sys_enter` attaches by), if there is one.
    pub fn typedef_id(&self, name: &str) -> Option<u32> {
        self.id_of(KIND_TYPEDEF, name)
    }

    /// The id of the function called `name` (such as `cap_capable`, what an `fexit` program
    /// attaches by), if the kernel's BTF describes it.
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.id_of(KIND_FUNC, name)
    }

    fn id_of(&self, kind: u32, name: &str) -> Option<u32> {
        let mut found = None;
        let _ = self.walk(|t| {
            if t.kind == kind && t.name == Some(name.as_bytes()) {
                found = Some(t.id);
                return Some(false);
            }
            Some(true)
        });
        found
    }

    /// Calls `visit` with each type in id order while it returns `Some(true)`.
    fn walk(&self, mut visit: impl FnMut(&TypeAt<'_>) -> Option<bool>) -> Option<()> {
        let hdr_len = self.u32_at(4)? as usize;
        let (type_off, type_len) = (self.u32_at(8)? as usize, self.u32_at(12)? as usize);
        let types = hdr_len + type_off;
        let mut pos = types;
        let mut id = 1;
        while pos + 12 <= types + type_len {
            let (name_off, info) = (self.u32_at(pos)?, self.u32_at(pos + 4)?);
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let at = TypeAt {
                id,
                kind,
                vlen,
                kind_flag: info >> 31 != 0,
                name: if name_off == 0 {
                    None
                } else {
                    self.name(name_off)
                },
                trailer: pos + 12,
            };
            if !visit(&at)? {
                return Some(());
            }
            pos = at.trailer + trailing_len(kind, vlen)?;
            id += 1;
        }
        Some(())
    }

    fn u32_at(&self, off: usize) -> Option<u32> {
        Some(u32::from_le_bytes(
            self.0.get(off..off + 4)?.try_into().ok()?,
        ))
    }

    /// The string at `off` in the string section.
    fn name(&self, off: u32) -> Option<&[u8]> {
        let strings = self.u32_at(4)? as usize + self.u32_at(16)? as usize;
        let rest = self.0.get(strings + off as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..end])
    }
}

/// One type of the type section, as [`KernelBtf::walk`] shows it.
struct TypeAt<'a> {
    /// Its type id (the first type is 1).
    id: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    name: Option<&'a [u8]>,
    /// Where the bytes after its 12-byte common header start.
    trailer: usize,
}

/// Bytes that follow the 12-byte common header of a type of `kind`.
fn trailing_len(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        1 => 4,                    // INT: encoding
        3 => 12,                   // ARRAY
        4 | 5 => vlen * 12,        // STRUCT, UNION: members
        6 => vlen * 8,             // ENUM
        13 => vlen * 8,            // FUNC_PROTO: params
        14 => 4,                   // VAR
        15 => vlen * 12,           // DATASEC
        17 => 4,                   // DECL_TAG
        19 => vlen * 12,           // ENUM64
        2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
        _ => return None,          // a kind this scanner does not know: stop rather than misread
    })
}

/// A BTF blob whose only named type is the typedef `name`, with id `id` (the ids below it
/// are unnamed pointers to void). aya's `BtfTracePoint::load` needs a BTF only to look the
/// attach point's typedef id up by name; given this one, it finds the id the kernel's BTF
/// gives it without building the kernel's hundred thousand types. `None` if it would not fit
/// BTF's 32-bit section sizes.
pub fn with_typedef_at(id: u32, name: &str) -> Option<Vec<u8>> {
    with_named_type_at(id, name, KIND_TYPEDEF)
}

/// Like [`with_typedef_at`], for the function `name` (an `fexit` program's attach point,
/// which aya's `FExit::load` looks up by name the same way).
pub fn with_func_at(id: u32, name: &str) -> Option<Vec<u8>> {
    with_named_type_at(id, name, KIND_FUNC)
}

fn with_named_type_at(id: u32, name: &str, kind: u32) -> Option<Vec<u8>> {
    let fillers = id.saturating_sub(1) as usize;
    let mut types = Vec::with_capacity((fillers + 1) * 12);
    let mut push_type = |name_off: u32, kind: u32| {
        for word in [name_off, kind << 24, 0] {
            types.extend_from_slice(&word.to_le_bytes());
        }
    };
    for _ in 0..fillers {
        push_type(0, KIND_PTR);
    }
    push_type(1, kind);
    let mut strings = vec![0u8];
    strings.extend_from_slice(name.as_bytes());
    strings.push(0);
    let type_len = u32::try_from(types.len()).ok()?;
    let str_len = u32::try_from(strings.len()).ok()?;
    let mut blob = Vec::with_capacity(HEADER_LEN as usize + types.len() + strings.len());
    blob.extend_from_slice(&BTF_MAGIC.to_le_bytes());
    blob.extend_from_slice(&[1, 0]); // version 1, no flags
    for word in [HEADER_LEN, 0, type_len, type_len, str_len] {
        blob.extend_from_slice(&word.to_le_bytes());
    }
    blob.extend_from_slice(&types);
    blob.extend_from_slice(&strings);
    Some(blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn finds_kernel_struct_members_in_this_kernels_btf() {
        let Some(btf) = KernelBtf::read(Path::new(VMLINUX)) else {
            return; // no BTF on this host: KernelLayout assumes the layout (tested there)
        };
        let offsets = btf.member_offsets(&[
            ("task_struct", "thread_info"),
            ("thread_info", "flags"),
            ("pt_regs", "bx"),
            ("pt_regs", "no_such_member"),
        ]);
        // THREAD_INFO_IN_TASK: thread_info leads task_struct; flags leads thread_info; pt_regs
        // saves r15, r14, r13, r12, bp, then bx.
        assert_eq!(offsets, vec![Some(0), Some(0), Some(40), None]);
    }

    #[test]
    fn the_attach_typedef_has_the_id_a_full_btf_library_gives_it() {
        let Some(btf) = KernelBtf::read(Path::new(VMLINUX)) else {
            return;
        };
        let full = aya::Btf::from_sys_fs().expect("aya parses the kernel's BTF");
        for name in ["btf_trace_sys_enter", "btf_trace_sched_process_exec"] {
            let id = btf.typedef_id(name).expect("the kernel has the typedef");
            let blob = with_typedef_at(id, name).expect("a small BTF");
            let minimal = aya::Btf::parse(&blob, aya::Endianness::default()).expect("a valid BTF");
            assert_eq!(
                btf_id(&full, name),
                Some(id),
                "{name}: the scan and aya disagree"
            );
            assert_eq!(btf_id(&minimal, name), Some(id), "{name} in the small BTF");
        }
        assert_eq!(btf.typedef_id("no_such_typedef_anywhere"), None);
    }

    #[test]
    fn the_attach_function_has_the_id_a_full_btf_library_gives_it() {
        let Some(btf) = KernelBtf::read(Path::new(VMLINUX)) else {
            return;
        };
        let full = aya::Btf::from_sys_fs().expect("aya parses the kernel's BTF");
        let func = |b: &aya::Btf| {
            b.id_by_type_name_kind("cap_capable", aya_obj::btf::BtfKind::Func)
                .ok()
        };
        let id = btf
            .func_id("cap_capable")
            .expect("the kernel describes cap_capable");
        let blob = with_func_at(id, "cap_capable").expect("a small BTF");
        let minimal = aya::Btf::parse(&blob, aya::Endianness::default()).expect("a valid BTF");
        assert_eq!(func(&full), Some(id), "the scan and aya disagree");
        assert_eq!(func(&minimal), Some(id), "cap_capable in the small BTF");
        assert_eq!(btf.func_id("no_such_function_anywhere"), None);
    }

    /// What aya looks up when it loads a tp_btf program.
    fn btf_id(btf: &aya::Btf, name: &str) -> Option<u32> {
        btf.id_by_type_name_kind(name, aya_obj::btf::BtfKind::Typedef)
            .ok()
    }

    #[test]
    fn garbage_is_not_btf() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"not btf at all, just bytes").unwrap();
        assert!(KernelBtf::read(&p).is_none());
        assert!(KernelBtf::read(Path::new("/nonexistent")).is_none());
    }
}
