//! The writer and reader of user-named files, against planted and blocking nodes.

use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use super::*;

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
}

#[test]
fn replaces_whole_file_with_a_new_inode_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    fs::write(&path, b"first").unwrap();
    fs::set_permissions(&path, Permissions::from_mode(0o666)).unwrap();
    let before = fs::metadata(&path).unwrap().ino();
    write_output(&path, b"second").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second");
    let after = fs::metadata(&path).unwrap();
    assert_ne!(after.ino(), before, "written in place, not replaced");
    assert_eq!(after.mode() & 0o7777, OUTPUT_MODE);
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "stray files: {names:?}");
}

#[test]
fn a_symlink_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let link = dir.path().join("out.json");
    symlink(&victim, &link).unwrap();
    let err = write_output(&link, b"profile").unwrap_err();
    assert!(matches!(err, OutputError::Symlink { .. }), "{err}");
    assert!(check_output(&link).is_err());
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
}

#[test]
fn a_link_planted_on_the_way_is_refused_and_an_own_link_followed() {
    let shared = tempfile::tempdir().unwrap();
    fs::set_permissions(shared.path(), Permissions::from_mode(0o1777)).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let own = shared.path().join("own");
    symlink(elsewhere.path(), &own).unwrap();
    write_output(&own.join("a.json"), b"x").unwrap();
    assert_eq!(fs::read(elsewhere.path().join("a.json")).unwrap(), b"x");
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return; // planting as another user needs root
    }
    let planted = shared.path().join("planted");
    symlink(elsewhere.path(), &planted).unwrap();
    let c = std::ffi::CString::new(planted.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::lchown(c.as_ptr(), 65534, 65534) }, 0);
    let err = write_output(&planted.join("b.json"), b"x").unwrap_err();
    assert!(
        matches!(err, OutputError::PlantedLink { owner: 65534, .. }),
        "{err}"
    );
    assert!(check_output(&planted.join("b.json")).is_err());
    // `record --out-dir` checks its directory the same way before recording starts.
    let err = ensure_dir_writable(&planted).unwrap_err();
    assert!(matches!(err, OutputError::PlantedLink { .. }), "{err}");
    assert!(!elsewhere.path().join("b.json").exists());
}

#[test]
fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_output(dir.path(), b"x").unwrap_err();
    assert!(matches!(err, OutputError::Directory { .. }), "{err}");
}

#[test]
fn dev_null_is_written_through_and_stays_a_device() {
    write_output(Path::new("/dev/null"), b"x").unwrap();
    check_output(Path::new("/dev/null")).unwrap();
    let meta = fs::symlink_metadata("/dev/null").unwrap();
    assert!(meta.file_type().is_char_device());
}

#[test]
fn a_fifo_without_reader_fails_fast_and_one_with_a_reader_gets_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("p");
    mkfifo(&fifo);
    let started = Instant::now();
    let err = write_output(&fifo, b"x").unwrap_err();
    assert!(matches!(err, OutputError::NoReader { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    write_output(&fifo, b"text").unwrap();
    let mut got = String::new();
    (&reader).read_to_string(&mut got).unwrap();
    assert_eq!(got, "text");
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn missing_directory_is_reported_by_name() {
    let err = ensure_dir_writable(Path::new("/nonexistent/agent-audit")).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/agent-audit"),
        "{err}"
    );
    let err = write_output(Path::new("/nonexistent/dir/x.json"), b"x").unwrap_err();
    assert!(matches!(err, OutputError::Write { .. }));
}

#[test]
fn a_file_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    fs::write(&file, b"").unwrap();
    assert!(ensure_dir_writable(&file).is_err());
}

#[test]
fn an_output_that_is_an_input_or_another_output_is_a_clash() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.json");
    fs::write(&input, "{}").unwrap();
    let via_dotdot = dir.path().join("sub/../in.json");
    fs::create_dir(dir.path().join("sub")).unwrap();
    let link = dir.path().join("link.json");
    symlink(&input, &link).unwrap();
    for output in [&input, &via_dotdot, &link] {
        let err = check_distinct(&[&input], &[output]).unwrap_err();
        assert!(matches!(err, PathClash::OutputIsInput { .. }), "{err}");
        assert_eq!(err.exit_code(), ExitCode::USAGE);
    }
    let new = dir.path().join("new.md");
    let new_again = dir.path().join("sub/../new.md");
    let err = check_distinct(&[&input], &[&new, &new_again]).unwrap_err();
    assert!(matches!(err, PathClash::SameOutput { .. }), "{err}");
    let err = check_distinct(&[], &[Path::new("-"), Path::new("/dev/stdout")]).unwrap_err();
    assert!(matches!(err, PathClash::SameOutput { .. }), "{err}");
    let other = dir.path().join("other.json");
    check_distinct(&[&input, Path::new("-")], &[&new, &other, Path::new("-")]).unwrap();
    check_distinct(&[], &[Path::new("/dev/null"), Path::new("/dev/null")]).unwrap();
}

#[test]
fn inputs_are_bounded_regular_utf8_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    fs::write(&good, "{}").unwrap();
    let link = dir.path().join("link.json");
    symlink(&good, &link).unwrap();
    assert_eq!(read_input(&link).unwrap(), "{}");

    let zero_link = dir.path().join("zero.json");
    symlink("/dev/zero", &zero_link).unwrap();
    for path in [Path::new("/dev/zero"), &zero_link, dir.path()] {
        let err = read_input(path).unwrap_err();
        assert!(matches!(err, InputError::NotRegular { .. }), "{err}");
        assert_eq!(err.exit_code(), ExitCode::DATA);
    }

    let fifo = dir.path().join("p");
    mkfifo(&fifo);
    let started = Instant::now();
    let err = read_input(&fifo).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::NotRegular {
                kind: NodeKind::Fifo,
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let big = dir.path().join("big.json");
    File::create(&big)
        .unwrap()
        .set_len(MAX_INPUT_BYTES + 1)
        .unwrap();
    let err = read_input(&big).unwrap_err();
    assert!(matches!(err, InputError::TooLarge { .. }), "{err}");
    assert_eq!(err.exit_code(), ExitCode::DATA);

    let latin1 = dir.path().join("latin1.json");
    fs::write(&latin1, b"{\"a\": \"\xe9\"}").unwrap();
    let err = read_input(&latin1).unwrap_err();
    assert!(
        matches!(err, InputError::NotUtf8 { offset: 7, .. }),
        "{err}"
    );
    assert_eq!(err.exit_code(), ExitCode::DATA);

    let err = read_input(&dir.path().join("missing")).unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.exit_code(), ExitCode::NO_INPUT);
}

/// Opens `fifo` for reading without ever reading it, and hands it to uid `owner`.
fn unread_fifo_of(dir: &Path, owner: u32) -> (PathBuf, File) {
    let fifo = dir.join("p");
    mkfifo(&fifo);
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), owner, owner) }, 0);
    let reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    (fifo, reader)
}

/// Another user's FIFO whose reader never reads held the writer forever once
/// the pipe's 64 KiB were full. Now the write gives up at the deadline, saying how much the
/// reader took; one that reads gets everything.
#[test]
fn another_users_fifo_that_is_not_read_is_given_up_at_the_deadline() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return; // handing a FIFO to another user needs root
    }
    let dir = tempfile::tempdir().unwrap();
    let (fifo, _reader) = unread_fifo_of(dir.path(), 65534);
    let text = vec![b'x'; 256 << 10];
    let deadline = Duration::from_millis(300);
    let started = Instant::now();
    let err = stream::write_through_within(&fifo, NodeKind::Fifo, &text, deadline).unwrap_err();
    let took = started.elapsed();
    match &err {
        OutputError::Stalled {
            owner: 65534,
            written,
            size,
            ..
        } => {
            assert!(*written > 0 && *written < *size, "{err}");
            assert_eq!(*size, text.len());
        }
        _ => panic!("not a stall: {err}"),
    }
    assert_eq!(err.exit_code(), ExitCode::CANT_CREATE);
    assert!(err.to_string().contains("uid 65534"), "{err}");
    assert!(
        took >= deadline && took < Duration::from_secs(5),
        "{took:?}"
    );

    // Read by its reader: the whole text gets through, in the time the reader takes.
    let dir = tempfile::tempdir().unwrap();
    let (fifo, reader) = unread_fifo_of(dir.path(), 65534);
    let drained = std::thread::spawn(move || {
        stream::set_blocking(&reader).unwrap();
        let mut got = Vec::new();
        (&reader).read_to_end(&mut got).unwrap();
        got.len()
    });
    stream::write_through_within(&fifo, NodeKind::Fifo, &text, Duration::from_secs(30)).unwrap();
    assert_eq!(drained.join().unwrap(), text.len());
}

/// The invoking user's own FIFO is written as any program writes it: a reader that takes its
/// time (a pager) is waited for, past any deadline.
#[test]
fn an_own_fifo_waits_for_a_slow_reader() {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let dir = tempfile::tempdir().unwrap();
    let (fifo, reader) = unread_fifo_of(dir.path(), me);
    let text = vec![b'y'; 256 << 10];
    let drained = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        stream::set_blocking(&reader).unwrap();
        let mut got = Vec::new();
        (&reader).read_to_end(&mut got).unwrap();
        got.len()
    });
    stream::write_through_within(&fifo, NodeKind::Fifo, &text, Duration::from_millis(50)).unwrap();
    assert_eq!(drained.join().unwrap(), text.len());
}
