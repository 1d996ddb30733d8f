//! Which language runtime an executable is, recognised from what the recorder already sees
//! of each exec: the program's name, and for a Go binary a section of its ELF file
//! (`.go.buildinfo`, which every Go linker since 1.13 writes, stripped or not). The names and
//! sections are data (`runtimes` in `data/timing-dependent.json`): `audit` allows a runtime's
//! timing-dependent calls when it ran.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use object::read::ReadCache;
use object::{Object, ObjectSection};

use crate::policy;

pub use crate::allowlist::Runtime;

/// Whether the path an exec was given names the same file in the recorder's mount namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExecPaths {
    /// Yes: a command agent-audit launched itself (`run`, `audit`), on the host.
    Host,
    /// Not known (a container's paths are in its own mount namespace): only the process's
    /// own `/proc/<pid>/exe` is read, while it still runs that program.
    #[default]
    ProcessOnly,
}

/// What one look at an exec found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recognition {
    /// The runtime, if it is one.
    pub runtime: Option<Runtime>,
    /// The answer is final: the name matched, or the file was read. `false`: the file could
    /// not be read (the process had exited or exec'd again): look again at its next exec.
    pub settled: bool,
}

/// Recognises the program a process exec'd (`path` as passed to exec, `comm` after it) as a
/// runtime: by name, else by its ELF sections, read from `/proc/<tgid>/exe` while the process
/// still has that name, or from `path` when it names a host file.
pub fn recognise(path: &str, comm: &str, tgid: u32, paths: ExecPaths) -> Recognition {
    let signatures = &policy::timing_dependent().runtimes;
    let program = path.rsplit('/').next().unwrap_or(path);
    if let Some(s) = signatures.iter().find(|s| s.matches_program(program)) {
        return Recognition {
            runtime: Some(s.runtime),
            settled: true,
        };
    }
    let Some(file) = open_executable(path, comm, tgid, paths) else {
        return Recognition {
            runtime: None,
            settled: false,
        };
    };
    Recognition {
        runtime: elf_runtime(file, signatures),
        settled: true,
    }
}

/// The running program's file, or the host file `path` names.
fn open_executable(path: &str, comm: &str, tgid: u32, paths: ExecPaths) -> Option<File> {
    let proc = Path::new("/proc").join(tgid.to_string());
    // The pid may have exec'd something else since (or be another process): its name says.
    let same = std::fs::read_to_string(proc.join("comm"))
        .is_ok_and(|c| c.strip_suffix('\n').unwrap_or(&c) == comm);
    if same {
        if let Some(f) = open_regular(&proc.join("exe")) {
            return Some(f);
        }
    }
    match paths {
        ExecPaths::Host if path.starts_with('/') => open_regular(Path::new(path)),
        _ => None,
    }
}

/// Opens a regular file for reading; non-blocking, so a FIFO put in its place cannot hang us.
fn open_regular(path: &Path) -> Option<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    file.metadata().ok()?.is_file().then_some(file)
}

/// The runtime whose ELF section the file has. The parser reads only the header, the section
/// headers and the section-name table, through a cache of the ranges it asked for.
fn elf_runtime(file: File, signatures: &[policy::RuntimeSignature]) -> Option<Runtime> {
    let cache = ReadCache::new(file);
    let elf = object::File::parse(&cache).ok()?;
    signatures.iter().find_map(|s| {
        s.elf_sections
            .iter()
            .any(|name| elf.section_by_name(name).is_some_and(|sec| sec.size() > 0))
            .then_some(s.runtime)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runtime_has_one_signature() {
        let signatures = &policy::timing_dependent().runtimes;
        for r in Runtime::ALL {
            let n = signatures.iter().filter(|s| s.runtime == r).count();
            assert_eq!(n, 1, "{r:?}");
        }
    }

    #[test]
    fn programs_are_recognised_by_name() {
        let by_name = |path: &str| recognise(path, "x", u32::MAX, ExecPaths::ProcessOnly);
        for (path, runtime) in [
            ("/usr/bin/node", Runtime::Node),
            ("/usr/bin/python3.11", Runtime::Cpython),
            ("python3", Runtime::Cpython),
            ("/usr/lib/jvm/java-17-openjdk-amd64/bin/java", Runtime::Jvm),
            ("/usr/share/dotnet/dotnet", Runtime::Dotnet),
            ("/usr/lib/erlang/erts-13.1.5/bin/beam.smp", Runtime::Erlang),
        ] {
            let r = by_name(path);
            assert_eq!(r.runtime, Some(runtime), "{path}");
            assert!(r.settled);
        }
        // Not a runtime by name, and no such process to read: asked again at the next exec.
        let unknown = by_name("/bin/nodejs-helper");
        assert_eq!(unknown.runtime, None);
        assert!(!unknown.settled);
    }

    #[test]
    fn a_host_path_is_read_only_for_commands_launched_on_the_host() {
        // Our own test binary: an ELF file without Go's section.
        let me = std::env::current_exe().unwrap();
        let me = me.to_str().unwrap();
        let host = recognise(me, "not-our-comm", u32::MAX, ExecPaths::Host);
        assert_eq!(
            host,
            Recognition {
                runtime: None,
                settled: true
            }
        );
        let contained = recognise(me, "not-our-comm", u32::MAX, ExecPaths::ProcessOnly);
        assert!(!contained.settled);
        // A file that is not ELF at all (a script) is settled as no runtime.
        let script = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(script.path(), "#!/bin/sh\necho hi\n").unwrap();
        let path = script.path().to_str().unwrap();
        let r = recognise(path, "x", u32::MAX, ExecPaths::Host);
        assert_eq!(
            r,
            Recognition {
                runtime: None,
                settled: true
            }
        );
    }

    /// A minimal ELF64 file: the null section, `section` (16 bytes) and `.shstrtab`.
    fn elf_with_section(section: &str) -> Vec<u8> {
        let names = format!("\0{section}\0.shstrtab\0");
        let (data_at, names_at) = (64u64, 80u64);
        let len = |n: usize| u64::try_from(n).unwrap();
        let headers_at = (names_at + len(names.len())).next_multiple_of(8);
        let mut f = Vec::new();
        f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&[0; 16]); // entry, program headers
        f.extend_from_slice(&headers_at.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        for half in [64u16, 56, 0, 64, 3, 2] {
            f.extend_from_slice(&half.to_le_bytes());
        }
        f.extend_from_slice(&[0xab; 16]);
        f.extend_from_slice(names.as_bytes());
        f.resize(usize::try_from(headers_at).unwrap(), 0);
        let mut header = |name: u32, kind: u32, offset: u64, size: u64| {
            f.extend_from_slice(&name.to_le_bytes());
            f.extend_from_slice(&kind.to_le_bytes());
            f.extend_from_slice(&[0; 16]); // flags, address
            f.extend_from_slice(&offset.to_le_bytes());
            f.extend_from_slice(&size.to_le_bytes());
            f.extend_from_slice(&[0; 24]); // link, info, alignment, entry size
        };
        header(0, 0, 0, 0);
        header(1, 1, data_at, 16); // SHT_PROGBITS
        let shstrtab_name = u32::try_from(section.len() + 2).unwrap();
        header(shstrtab_name, 3, names_at, len(names.len())); // SHT_STRTAB
        f
    }

    #[test]
    fn a_go_binary_is_recognised_by_its_buildinfo_section() {
        let dir = tempfile::tempdir().unwrap();
        for (section, runtime) in [(".go.buildinfo", Some(Runtime::Go)), (".data", None)] {
            let path = dir.path().join("server");
            std::fs::write(&path, elf_with_section(section)).unwrap();
            let r = recognise(path.to_str().unwrap(), "x", u32::MAX, ExecPaths::Host);
            assert_eq!(
                r,
                Recognition {
                    runtime,
                    settled: true
                },
                "{section}"
            );
        }
    }

    #[test]
    fn a_running_process_is_read_through_proc() {
        // This process, through /proc/self's pid: not a Go binary, but read (settled).
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let r = recognise(
            "/no/such/path/in/our/namespace",
            comm.trim_end(),
            std::process::id(),
            ExecPaths::ProcessOnly,
        );
        assert_eq!(
            r,
            Recognition {
                runtime: None,
                settled: true
            }
        );
    }
}
