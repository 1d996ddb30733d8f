//! The one way agent-audit writes a file and the one way it reads one. It runs as root next to
//! untrusted users (shared CI, world-writable `/tmp`), so neither may be turned against the host.
//!
//! Threat model. The invoking user chooses the paths; another local user may own the
//! directories on the way or anything already at those paths (in `/tmp`, in a directory of
//! their own the user writes into, in a CI workspace opened to every job), and tries to make
//! root write where they choose, hand them a file they keep a handle on, or hang root.
//!
//! Writing: a regular file (or a path that does not exist yet) is replaced atomically: the text
//! goes to a temporary file with an unpredictable name created with `O_CREAT|O_EXCL` in the
//! destination's directory (which never follows a planted link), is made 0644, synced, then
//! renamed over the destination. A rename replaces the directory entry, never writes through
//! it, so the result is always a new inode owned by the writer. A symlink at the destination
//! is refused; a device, FIFO or socket is written straight through and never renamed over:
//! refused when it is another user's in a sticky world-writable directory, refused when no
//! one reads it, and when it is another user's elsewhere, written without blocking within
//! [`FOREIGN_NODE_DEADLINE`] (a reader that never reads cannot hold root past it). `-` and
//! `/dev/stdout` mean standard output, the invoking user's own choice, written as any program
//! writes it; one that was closed at start (`>&-`) is refused before any work
//! ([`check_stdout`]) rather than written into the `/dev/null` the runtime puts in its place.
//!
//! Reading: regular files only (or `-`, standard input), opened without blocking so that a
//! FIFO cannot hang the process, at most [`MAX_INPUT_BYTES`], UTF-8.

mod stream;

pub use stream::{check_stdout, note_stdout_before_runtime, write_stdout, FOREIGN_NODE_DEADLINE};

use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use stream::{set_blocking, write_through};

use crate::exit::ExitCode;

/// Largest input file read, in bytes (64 MiB): a real allowlist or profile is well under 1 MiB,
/// and the bound keeps `/dev/zero`-like inputs from eating the host's memory.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// Mode of every file written: readable by all, writable by the writer only.
pub const OUTPUT_MODE: u32 = 0o644;

/// The path that means standard input or output.
pub const STDIO: &str = "-";

/// An output path that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The directory is missing, read-only, or not ours to write.
    #[error(
        "cannot write to {dir}: {source} (choose another --out/--out-dir or fix its permissions)"
    )]
    NotWritable {
        /// Directory that was probed.
        dir: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// Writing or renaming failed part-way; the destination was left untouched.
    #[error("writing {path} failed: {source} (the previous file, if any, is unchanged)")]
    Write {
        /// Destination file.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// The destination is a symbolic link: a root tool writing through a link someone else may
    /// have planted could overwrite any file on the host, so it refuses.
    #[error(
        "{path} is a symbolic link: refusing to write through it (agent-audit runs as root; \
         name the real file instead)"
    )]
    Symlink {
        /// Destination.
        path: PathBuf,
    },
    /// A directory on the way to the destination is a symbolic link that another user planted
    /// in a shared sticky directory (`/tmp/build -> /etc`): following it would let them choose
    /// where root writes.
    #[error(
        "{link} (on the way to {path}) is a symbolic link owned by uid {owner} in a shared \
         directory: refusing to follow it"
    )]
    PlantedLink {
        /// Destination.
        path: PathBuf,
        /// The link.
        link: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// The destination is a directory.
    #[error("{path} is a directory: give a file name")]
    Directory {
        /// Destination.
        path: PathBuf,
    },
    /// A device, FIFO or socket in a shared sticky directory (`/tmp`) that belongs to another
    /// user: the kernel's `fs.protected_fifos` rule, applied to every kind of node.
    #[error(
        "{path} is a {kind} owned by uid {owner} in a shared directory: refusing to write to it"
    )]
    ForeignNode {
        /// Destination.
        path: PathBuf,
        /// What it is.
        kind: NodeKind,
        /// Its owner.
        owner: u32,
    },
    /// A FIFO nobody reads (or a socket, which cannot be opened): writing would block forever.
    #[error("{path} is a {kind} with no reader: nothing to write to")]
    NoReader {
        /// Destination.
        path: PathBuf,
        /// What it is.
        kind: NodeKind,
    },
    /// Another user's device, FIFO or socket whose reader did not take the output in time.
    #[error(
        "{path} is a {kind} owned by uid {owner} whose reader took {written} of {size} bytes in \
         {}s and then stopped reading: gave up (the output there is incomplete; write to a file)",
        deadline.as_secs()
    )]
    Stalled {
        /// Destination.
        path: PathBuf,
        /// What it is.
        kind: NodeKind,
        /// Its owner.
        owner: u32,
        /// Bytes the reader took.
        written: usize,
        /// Bytes of the whole output.
        size: usize,
        /// How long it was given.
        deadline: Duration,
    },
    /// Standard output was closed when agent-audit started (`>&-`).
    #[error(
        "standard output is closed: the output would be lost (redirect it to a file, or to \
         /dev/null to discard it)"
    )]
    StdoutClosed,
}

impl OutputError {
    /// The documented exit code: 73, the output cannot be written.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::CANT_CREATE
    }
}

/// An input file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Opening or reading failed (missing, permission denied, I/O error).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// A device, FIFO, socket or directory: only regular files (or `-`) are read.
    #[error("{path} is a {kind}, not a regular file (give a file, or - for standard input)")]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: NodeKind,
    },
    /// Larger than [`MAX_INPUT_BYTES`].
    #[error("{path} is larger than {} MiB, the input size limit", limit >> 20)]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// Not UTF-8 text.
    #[error("{path} is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Offset of the first invalid byte.
        offset: usize,
    },
}

impl InputError {
    /// The documented exit code: 66 for a missing file, 74 for another read error, 65 for an
    /// input that is not a bounded UTF-8 regular file.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            InputError::Read { source, .. } => ExitCode::for_read_error(source),
            InputError::NotRegular { .. }
            | InputError::TooLarge { .. }
            | InputError::NotUtf8 { .. } => ExitCode::DATA,
        }
    }

    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, InputError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Two paths of one command that name the same file: a usage error, found before anything is
/// written.
#[derive(Debug, thiserror::Error)]
pub enum PathClash {
    /// Writing the output would destroy an input.
    #[error("output {output} is the input {input}: writing it would destroy the input (write elsewhere)")]
    OutputIsInput {
        /// The output path.
        output: PathBuf,
        /// The input path naming the same file.
        input: PathBuf,
    },
    /// One output would overwrite the other.
    #[error("outputs {first} and {second} are the same file: give each its own path")]
    SameOutput {
        /// The first output.
        first: PathBuf,
        /// The second one.
        second: PathBuf,
    },
}

impl PathClash {
    /// The documented exit code: 2, a usage error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::USAGE
    }
}

/// What two paths are compared by.
#[derive(Debug, PartialEq, Eq)]
enum FileId {
    /// Standard output (`-`, `/dev/stdout`).
    Stdout,
    /// An existing regular file: its device and inode, whatever links or `..` lead to it.
    Inode(u64, u64),
    /// A file yet to be made: its canonical directory and its name.
    New(PathBuf),
}

fn input_id(path: &Path) -> Option<FileId> {
    if is_stdio(path) {
        return None;
    }
    let meta = fs::metadata(path).ok().filter(Metadata::is_file)?;
    Some(FileId::Inode(meta.dev(), meta.ino()))
}

fn output_id(path: &Path) -> Option<FileId> {
    if is_stdio(path) || path == Path::new("/dev/stdout") {
        return Some(FileId::Stdout);
    }
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Some(FileId::Inode(meta.dev(), meta.ino())),
        // Writing a device twice (`/dev/null`) destroys nothing.
        Ok(_) => None,
        Err(_) => {
            let dir = parent_dir(path).canonicalize().ok()?;
            Some(FileId::New(dir.join(path.file_name()?)))
        }
    }
}

/// Refuses an output that is also an input, or two outputs that are one file, comparing
/// existing files by device and inode and new ones by canonical path.
pub fn check_distinct(inputs: &[&Path], outputs: &[&Path]) -> Result<(), PathClash> {
    let inputs: Vec<_> = inputs.iter().map(|p| (*p, input_id(p))).collect();
    let outputs: Vec<_> = outputs.iter().map(|p| (*p, output_id(p))).collect();
    for (i, (output, out_id)) in outputs.iter().enumerate() {
        let Some(out_id) = out_id else { continue };
        if let Some((input, _)) = inputs.iter().find(|(_, id)| id.as_ref() == Some(out_id)) {
            return Err(PathClash::OutputIsInput {
                output: output.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
        if let Some((second, _)) = outputs[i + 1..]
            .iter()
            .find(|(_, id)| id.as_ref() == Some(out_id))
        {
            return Err(PathClash::SameOutput {
                first: output.to_path_buf(),
                second: second.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// What a non-regular file system node is, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Directory.
    Directory,
    /// Symbolic link (only seen without following it).
    Symlink,
    /// Regular file.
    File,
}

impl NodeKind {
    fn of(meta: &Metadata) -> Self {
        let t = meta.file_type();
        if t.is_file() {
            NodeKind::File
        } else if t.is_dir() {
            NodeKind::Directory
        } else if t.is_symlink() {
            NodeKind::Symlink
        } else if t.is_char_device() {
            NodeKind::CharDevice
        } else if t.is_block_device() {
            NodeKind::BlockDevice
        } else if t.is_fifo() {
            NodeKind::Fifo
        } else {
            NodeKind::Socket
        }
    }
}

impl std::fmt::Display for NodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeKind::CharDevice => "character device",
            NodeKind::BlockDevice => "block device",
            NodeKind::Fifo => "FIFO",
            NodeKind::Socket => "socket",
            NodeKind::Directory => "directory",
            NodeKind::Symlink => "symbolic link",
            NodeKind::File => "regular file",
        })
    }
}

/// Where the bytes of an output go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Destination {
    /// Standard output (`-`, `/dev/stdout`): the process's own descriptor, no path opened.
    Stdout,
    /// Missing or a regular file: replaced atomically.
    File,
    /// A device, FIFO or socket: opened and written, never replaced.
    Node(NodeKind),
}

/// The directory a file will be written into (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Whether `path` names standard input or output (`-`).
pub fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == STDIO
}

/// Decides how `path` is written, without following a link at it.
fn destination(path: &Path) -> Result<Destination, OutputError> {
    if is_stdio(path) || path == Path::new("/dev/stdout") {
        return Ok(Destination::Stdout);
    }
    refuse_planted_links(path)?;
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Destination::File),
        Err(source) => {
            return Err(OutputError::Write {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let path_buf = || path.to_path_buf();
    match NodeKind::of(&meta) {
        NodeKind::File => Ok(Destination::File),
        NodeKind::Symlink => Err(OutputError::Symlink { path: path_buf() }),
        NodeKind::Directory => Err(OutputError::Directory { path: path_buf() }),
        kind => {
            if planted_in_shared_dir(&meta, parent_dir(path)) {
                return Err(OutputError::ForeignNode {
                    path: path_buf(),
                    kind,
                    owner: meta.uid(),
                });
            }
            Ok(Destination::Node(kind))
        }
    }
}

/// Refuses a directory link on the way to `path` that `planted_in_shared_dir` would call
/// planted: the rule of the kernel's `fs.protected_symlinks`, whether or not it is enabled.
fn refuse_planted_links(path: &Path) -> Result<(), OutputError> {
    refuse_planted_links_in(path.parent().unwrap_or(Path::new("")), path)
}

/// [`refuse_planted_links`] for the directory `dir` itself and every directory above it;
/// `path` is what the error names.
fn refuse_planted_links_in(dir: &Path, path: &Path) -> Result<(), OutputError> {
    let mut prefix = PathBuf::new();
    for component in dir.components() {
        prefix.push(component);
        let Ok(meta) = fs::symlink_metadata(&prefix) else {
            return Ok(()); // missing: writing fails later with the OS's reason
        };
        if meta.file_type().is_symlink() && planted_in_shared_dir(&meta, parent_dir(&prefix)) {
            return Err(OutputError::PlantedLink {
                path: path.to_path_buf(),
                link: prefix,
                owner: meta.uid(),
            });
        }
    }
    Ok(())
}

/// Whether a node belongs to neither us nor the owner of the sticky, world-writable directory
/// it sits in: what the kernel's `fs.protected_fifos`/`protected_regular` treat as planted.
fn planted_in_shared_dir(node: &Metadata, dir: &Path) -> bool {
    let Ok(dir_meta) = fs::metadata(dir) else {
        return false;
    };
    let shared = dir_meta.mode() & 0o1002 == 0o1002;
    // SAFETY: geteuid cannot fail and has no preconditions.
    let me = unsafe { libc::geteuid() };
    shared && node.uid() != me && node.uid() != dir_meta.uid()
}

/// Whether `path` is a stream rather than a file that each write replaces: standard output,
/// a FIFO, a socket or a device. Every write to it comes after the ones before.
pub fn is_stream_output(path: &Path) -> Result<bool, OutputError> {
    Ok(!matches!(destination(path)?, Destination::File))
}

/// Fails early, before any work, if `path` cannot be written: a link or a directory is there,
/// or (for a file) nothing can be created in its directory.
pub fn check_output(path: &Path) -> Result<(), OutputError> {
    match destination(path)? {
        Destination::File => ensure_dir_writable(parent_dir(path)),
        Destination::Stdout => check_stdout(),
        Destination::Node(_) => Ok(()),
    }
}

/// Fails early, before any recording starts, if files cannot be created in `dir`.
pub fn ensure_dir_writable(dir: &Path) -> Result<(), OutputError> {
    let not_writable = |source| OutputError::NotWritable {
        dir: dir.to_path_buf(),
        source,
    };
    refuse_planted_links_in(dir, dir)?;
    let meta = fs::metadata(dir).map_err(not_writable)?;
    if !meta.is_dir() {
        return Err(not_writable(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    // Root passes every permission check, but not a read-only mount: so really create a file,
    // under a name nobody can guess (and so plant in advance); it is removed when dropped.
    temp_builder().tempfile_in(dir).map_err(not_writable)?;
    Ok(())
}

/// Temporary files: `.agent-audit-` and random characters, created with `O_CREAT|O_EXCL`.
fn temp_builder() -> tempfile::Builder<'static, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".agent-audit-").suffix(".tmp");
    builder
}

/// Writes `contents` to `path`: a regular file (or a new one) is replaced atomically, owned by
/// the writer with mode [`OUTPUT_MODE`]; a device, FIFO or socket is written through (within
/// [`FOREIGN_NODE_DEADLINE`] when it is another user's); `-` and `/dev/stdout` go to standard
/// output (see [`write_stdout`]); a symlink or directory is refused.
pub fn write_output(path: &Path, contents: &[u8]) -> Result<(), OutputError> {
    let err = |source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    };
    match destination(path)? {
        Destination::Stdout => {
            check_stdout()?;
            write_stdout(contents).map_err(err)
        }
        Destination::File => replace_file(path, contents).map_err(err),
        Destination::Node(kind) => write_through(path, kind, contents),
    }
}

/// Readers see the old file or the new one, never a mix; a crash leaves at most a stray
/// `.agent-audit-*.tmp` file next to it.
fn replace_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    if path.file_name().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path",
        ));
    }
    let mut tmp = temp_builder().tempfile_in(dir)?;
    // fchmod: the mode is ours whatever the umask, and whatever a planted file had.
    tmp.as_file()
        .set_permissions(Permissions::from_mode(OUTPUT_MODE))?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    // rename(2) replaces the directory entry: a link or file swapped in meanwhile is replaced,
    // never written through. On failure the temporary file is removed when dropped.
    tmp.persist(path).map_err(|e| e.error)?;
    // Make the rename itself durable.
    File::open(dir)?.sync_all()
}

/// Reads an input file as text: a regular file (a link to one is fine), or standard input for
/// `-`; at most [`MAX_INPUT_BYTES`]; UTF-8.
pub fn read_input(path: &Path) -> Result<String, InputError> {
    let err = |source| InputError::Read {
        path: path.to_path_buf(),
        source,
    };
    let limit = MAX_INPUT_BYTES;
    let bytes = if is_stdio(path) {
        read_bounded(io::stdin().lock(), limit).map_err(err)?
    } else {
        // O_NONBLOCK: opening a FIFO does not wait for a writer; it is refused below.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        if !meta.is_file() {
            return Err(InputError::NotRegular {
                path: path.to_path_buf(),
                kind: NodeKind::of(&meta),
            });
        }
        if meta.len() > limit {
            return Err(InputError::TooLarge {
                path: path.to_path_buf(),
                limit,
            });
        }
        set_blocking(&file).map_err(err)?;
        read_bounded(file, limit).map_err(err)?
    };
    // A file that grew past the limit while being read is cut at limit + 1 bytes.
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    String::from_utf8(bytes).map_err(|e| InputError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Up to `limit + 1` bytes, so that a longer input can be told from one of exactly `limit`.
fn read_bounded(reader: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests;
