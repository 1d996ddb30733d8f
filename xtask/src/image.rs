//! `cargo xtask image`: the `agent-audit` container image, built offline. These machines reach
//! no image registry, so nothing is pulled: the image is `FROM scratch` with the release binary
//! and exactly the shared libraries the dynamic loader needs for it (as `ldd` lists them), each
//! at the path the loader looks for it. The `Dockerfile` at the repository root builds the same
//! image from the build context this prepares, for people who build images in their own CI.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{build, run, step};

/// Where the binary is installed inside the image (the Dockerfile's ENTRYPOINT).
const BINARY_IN_IMAGE: &str = "usr/local/bin/agent-audit";

/// Options of `cargo xtask image`.
#[derive(Args)]
pub struct ImageOptions {
    /// Image name and tag.
    #[arg(long, default_value = "agent-audit:latest")]
    tag: String,
    /// Put this binary in the image instead of building the release one (the tests use the
    /// binary under test).
    #[arg(long, value_name = "FILE")]
    binary: Option<PathBuf>,
    /// Build context directory (its `rootfs/` is replaced).
    #[arg(long, value_name = "DIR", default_value = "target/image")]
    context: PathBuf,
    /// Only prepare the build context; build it with
    /// `docker build -f Dockerfile -t agent-audit:latest target/image`.
    #[arg(long)]
    context_only: bool,
}

/// Builds the image (and the release binary unless `--binary`), then prints its size.
pub fn image(root: &Path, opts: ImageOptions) -> Result<()> {
    let binary = match opts.binary {
        Some(b) => b,
        None => build(root)?,
    };
    let context = root.join(&opts.context);
    step(&format!(
        "preparing the image's build context in {}",
        context.display()
    ));
    let libs = prepare_context(&binary, &context)?;
    for lib in &libs {
        eprintln!("  {}", lib.display());
    }
    if opts.context_only {
        step(&format!(
            "build it with: docker build -f {} -t {} {}",
            root.join("Dockerfile").display(),
            opts.tag,
            context.display()
        ));
        return Ok(());
    }
    step(&format!("docker build -t {} (FROM scratch)", opts.tag));
    run(Command::new("docker")
        .args(["build", "--quiet", "--file"])
        .arg(root.join("Dockerfile"))
        .args(["--tag", &opts.tag])
        .arg(&context))?;
    let size = image_size(&opts.tag)?;
    println!(
        "{}: {size} bytes ({:.1} MiB)",
        opts.tag,
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// Fills `context/rootfs` with the binary, the libraries it loads and an empty `/tmp`; returns
/// the libraries' paths inside the image.
fn prepare_context(binary: &Path, context: &Path) -> Result<Vec<PathBuf>> {
    let rootfs = context.join("rootfs");
    if rootfs.exists() {
        fs::remove_dir_all(&rootfs)
            .with_context(|| format!("cannot remove {}", rootfs.display()))?;
    }
    let libs = shared_libraries(binary)?;
    copy_into(&rootfs, binary, Path::new(BINARY_IN_IMAGE))?;
    for lib in &libs {
        copy_into(&rootfs, lib, lib.strip_prefix("/").unwrap_or(lib))?;
    }
    // The atomic writer's temporary files go next to their target, but other tools and
    // `--ready-file /tmp/…` expect a world-writable /tmp.
    let tmp = rootfs.join("tmp");
    fs::create_dir_all(&tmp)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))?;
    Ok(libs)
}

/// Copies `from` (following symlinks: the image gets the library itself under the name the
/// loader asks for) to `rootfs/rel`, keeping its mode.
fn copy_into(rootfs: &Path, from: &Path, rel: &Path) -> Result<()> {
    let to = rootfs.join(rel);
    fs::create_dir_all(to.parent().expect("a file path has a parent"))?;
    fs::copy(from, &to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// The shared libraries `binary` loads, the dynamic loader included, as absolute paths.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("cannot run ldd (Debian: libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A static binary needs nothing; ldd says so and fails.
        if text.contains("not a dynamic executable") || text.contains("statically linked") {
            return Ok(Vec::new());
        }
        bail!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_ldd(&text)
}

/// Parses `ldd` output: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and the loader's
/// `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no file and is skipped.
fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let path = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    bail!("ldd: {} not found", name.trim());
                }
                rest.split_whitespace().next()
            }
            None => line.split_whitespace().next(),
        };
        match path {
            Some(p) if p.starts_with('/') => libs.push(PathBuf::from(p)),
            _ => {} // linux-vdso.so.1: provided by the kernel
        }
    }
    Ok(libs)
}

fn image_size(tag: &str) -> Result<u64> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", tag])
        .output()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| format!("docker image inspect {tag}: no size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_every_library_and_the_loader_but_not_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibseccomp.so.2 => /lib/x86_64-linux-gnu/libseccomp.so.2 (0x00007f)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libseccomp.so.2",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }
}
