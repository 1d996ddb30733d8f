//! Member offsets of a few kernel structs, read straight from the kernel's BTF.
//!
//! The vmlinux BTF describes every kernel type (tens of thousands). A general BTF library
//! builds all of them in memory — about 20 MiB at the daemon's peak — to answer three
//! questions, so this module walks the type section once instead and keeps only the answers.
//! Format: Documentation/bpf/btf.rst (header, type section, string section).

use std::path::Path;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

/// Byte offsets of `(struct, member)` pairs, in the order asked; `None` when the struct or
/// member is missing, is a bitfield, or the file is not BTF.
pub fn member_offsets(path: &Path, wanted: &[(&str, &str)]) -> Vec<Option<u32>> {
    let mut found = vec![None; wanted.len()];
    if let Ok(data) = std::fs::read(path) {
        scan(&data, wanted, &mut found);
    }
    found
}

fn scan(data: &[u8], wanted: &[(&str, &str)], found: &mut [Option<u32>]) -> Option<()> {
    let u16_at = |off: usize| Some(u16::from_le_bytes(data.get(off..off + 2)?.try_into().ok()?));
    let u32_at = |off: usize| Some(u32::from_le_bytes(data.get(off..off + 4)?.try_into().ok()?));
    if u16_at(0)? != BTF_MAGIC {
        return None; // big-endian BTF is not used on the supported hosts
    }
    let hdr_len = u32_at(4)? as usize;
    let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
    let str_off = u32_at(16)? as usize;
    let types = hdr_len + type_off;
    let strings = hdr_len + str_off;
    let name = |off: u32| -> Option<&[u8]> {
        let start = strings + off as usize;
        let rest = data.get(start..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..end])
    };

    let mut pos = types;
    while pos + 12 <= types + type_len {
        let (name_off, info) = (u32_at(pos)?, u32_at(pos + 4)?);
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        let kind_flag = info >> 31 != 0;
        let members = pos + 12;
        if kind == KIND_STRUCT || kind == KIND_UNION {
            let struct_name = name(name_off)?;
            for (i, (s, member)) in wanted.iter().enumerate() {
                if found[i].is_some() || s.as_bytes() != struct_name {
                    continue;
                }
                for m in 0..vlen {
                    let at = members + m * 12;
                    if name(u32_at(at)?)? != member.as_bytes() {
                        continue;
                    }
                    let raw = u32_at(at + 8)?;
                    let (bits, bitfield) = if kind_flag {
                        (raw & 0x00ff_ffff, raw >> 24)
                    } else {
                        (raw, 0)
                    };
                    if bitfield == 0 && bits % 8 == 0 {
                        found[i] = Some(bits / 8);
                    }
                }
            }
        }
        pos = members + trailing_len(kind, vlen)?;
    }
    Some(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn finds_kernel_struct_members_in_this_kernels_btf() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        let offsets = member_offsets(
            path,
            &[
                ("task_struct", "thread_info"),
                ("thread_info", "flags"),
                ("pt_regs", "bx"),
                ("pt_regs", "no_such_member"),
            ],
        );
        if !path.exists() {
            assert!(offsets.iter().all(Option::is_none));
            return;
        }
        // THREAD_INFO_IN_TASK: thread_info leads task_struct; flags leads thread_info; pt_regs
        // saves r15, r14, r13, r12, bp, then bx.
        assert_eq!(offsets, vec![Some(0), Some(0), Some(40), None]);
    }

    #[test]
    fn garbage_is_not_btf() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"not btf at all, just bytes").unwrap();
        assert_eq!(member_offsets(&p, &[("a", "b")]), vec![None]);
        assert_eq!(
            member_offsets(Path::new("/nonexistent"), &[("a", "b")]),
            vec![None]
        );
    }
}
