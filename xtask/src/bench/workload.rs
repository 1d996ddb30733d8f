//! The syscall-heavy workload: git init/add/commit/log/status and tar over a generated source
//! tree of a few thousand small files, all in a tmpfs. It uses only tools found on the machine
//! (git, tar, cp, rm) and runs unchanged on the host, under `agent-audit run` and in a
//! container that bind-mounts the tmpfs at /work.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::Result;

/// Name of the script inside the work directory; it finds its tree next to itself.
pub const SCRIPT: &str = "workload.sh";

const SCRIPT_TEXT: &str = r#"#!/bin/sh
# agent-audit bench workload. Output goes to /dev/null; errors fail the run.
set -eu
base=$(cd "$(dirname "$0")" && pwd)
export HOME="$base" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null LC_ALL=C
rm -rf "$base/scratch"
mkdir "$base/scratch"
cp -r "$base/tree" "$base/scratch/repo"
cd "$base/scratch/repo"
git init -q
git add -A
git -c user.name=bench -c user.email=bench@localhost commit -q -m "generated tree"
git log --stat >/dev/null
echo change >> src/d00/f0000.rs
git status --porcelain >/dev/null
git diff >/dev/null
cd "$base/scratch"
tar cf repo.tar repo
mkdir unpacked
tar xf repo.tar -C unpacked
cd "$base"
rm -rf "$base/scratch"
"#;

/// Writes the script and a deterministic tree of `files` files (about 1–3 KiB each, 100 per
/// directory) under `work`.
pub fn generate(work: &Path, files: usize) -> Result<()> {
    let script = work.join(SCRIPT);
    fs::write(&script, SCRIPT_TEXT)?;
    let tree = work.join("tree/src");
    let mut text = String::new();
    for i in 0..files {
        let dir = tree.join(format!("d{:02}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&dir)?;
        }
        text.clear();
        // Different sizes and contents so git's delta and zlib paths do real work.
        for line in 0..(20 + (i * 7919) % 60) {
            let _ = writeln!(text, "fn item_{i}_{line}() -> u64 {{ {} }}", i * line);
        }
        fs::write(dir.join(format!("f{i:04}.rs")), &text)?;
    }
    Ok(())
}
