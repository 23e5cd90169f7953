//! Reading and writing files safely: bounded reads of regular files, atomic outputs, results files that one
//! run at a time may append to.
//!
//! - **Reads** open the file without blocking (a FIFO never stalls the process), refuse anything but a regular
//!   file (FIFOs, devices such as `/dev/zero`, directories), and refuse a file over the cap of its kind before
//!   reading it; the read itself stops one byte past the cap, so a file that grows meanwhile cannot exhaust
//!   memory either.
//! - **Writes** go to a temporary file in the output's folder, are flushed and `fsync`ed with every error
//!   checked, and only then renamed over the output: a reader sees the old file or the new one, never a
//!   truncated one, and a full disk leaves the old file (or none) behind. An existing output is replaced only
//!   when the caller allows it (`--force`), and never if it is not a regular file.
//! - **Results files** (`certify --batch --out`) are opened for appending under an advisory exclusive lock
//!   (`flock`), so a second run on the same file refuses instead of duplicating every result.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Opens `path` for reading without blocking on FIFOs; an error unless it is a regular file.
pub fn open_regular(path: &Path, what: &str) -> Result<(File, Metadata)> {
    let mut options = OpenOptions::new();
    options.read(true);
    nonblocking(&mut options);
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::file(path, format!("{what} must be a regular file, found {}", file_kind(&meta))));
    }
    Ok((file, meta))
}

#[cfg(unix)]
fn nonblocking(options: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
}

#[cfg(not(unix))]
fn nonblocking(_: &mut OpenOptions) {}

/// What kind of file a non-regular file is, for messages.
fn file_kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Reads a whole regular file of at most `cap` bytes; `what` names it in errors ("a model card").
pub fn read_capped(path: &Path, what: &str, cap: u64) -> Result<Vec<u8>> {
    let (file, meta) = open_regular(path, what)?;
    let too_big = |len: u64| {
        Error::file(
            path,
            format!(
                "{what} of {len} bytes is larger than the limit of {cap} bytes (docs/limits.md; raise it with \
                 --max-elements)"
            ),
        )
    };
    if meta.len() > cap {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Reads a whole regular UTF-8 text file of at most `cap` bytes.
pub fn read_text_capped(path: &Path, what: &str, cap: u64) -> Result<String> {
    let bytes = read_capped(path, what, cap)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::file(
            path,
            format!("{what} is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Whether two paths name the same existing file (same device and inode), however they are spelt.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => same_meta(&x, &y),
        _ => false,
    }
}

#[cfg(unix)]
fn same_meta(x: &Metadata, y: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    x.dev() == y.dev() && x.ino() == y.ino()
}

#[cfg(not(unix))]
fn same_meta(_: &Metadata, _: &Metadata) -> bool {
    false
}

/// An error if the output `out` is one of the files the run reads (a model card, its weights, a jobs file, an
/// input array): writing there would destroy an input.
pub fn refuse_input_as_output(out: &Path, inputs: &[&Path]) -> Result<()> {
    if let Some(input) = inputs.iter().find(|i| same_file(out, i)) {
        return Err(Error::file(
            out,
            format!(
                "is one of this run's inputs ({}); refusing to write the output over it",
                input.display()
            ),
        ));
    }
    Ok(())
}

/// Checks, before any work, that `path` may be written: it does not exist, or it is a regular file and
/// `overwrite` is set.
pub fn check_output(path: &Path, overwrite: bool) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(Error::file(
            path,
            format!("is {}, not a regular file; refusing to write the output there", file_kind(&meta)),
        )),
        Ok(_) if !overwrite => Err(Error::file(path, "already exists; pass --force to overwrite it")),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Writes a file atomically: `contents` writes into a temporary file in the same folder, which is flushed,
/// `fsync`ed and renamed over `path` only if every step succeeded. Without `overwrite` an existing `path` is
/// never replaced (not even one created meanwhile); a `path` that is not a regular file never is.
pub fn write_atomic(
    path: &Path,
    overwrite: bool,
    contents: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    check_output(path, overwrite)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(&name);
    prefix.push(".");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // The finished file gets the permissions a plainly created one would (0666 less the umask), or those of the
    // file it replaces; not the temporary file's private 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let tmp = builder.tempfile_in(&dir).map_err(|e| {
        Error::file(path, format!("cannot create a temporary file in {}: {e}", dir.display()))
    })?;
    if let Ok(meta) = std::fs::metadata(path) {
        // Best effort: a file system without permissions keeps its own.
        let _ = tmp.as_file().set_permissions(meta.permissions());
    }
    fill(tmp.as_file(), contents).map_err(|e| Error::file(path, format!("cannot write: {e}")))?;
    let persisted = if overwrite { tmp.persist(path) } else { tmp.persist_noclobber(path) };
    persisted.map_err(|e| match e.error.kind() {
        std::io::ErrorKind::AlreadyExists => {
            Error::file(path, "already exists; pass --force to overwrite it")
        }
        _ => Error::file(path, format!("cannot rename the finished file into place: {}", e.error)),
    })?;
    // Make the rename itself durable; a folder that cannot be opened or synced (some file systems) is no error.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes `contents` through a buffer into `file`, then flushes and syncs it; the first failing step's error.
fn fill(file: &File, contents: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> std::io::Result<()> {
    let mut w = BufWriter::new(file);
    contents(&mut w)?;
    w.flush()?;
    drop(w);
    file.sync_all()
}

/// A results file opened for appending under an exclusive advisory lock, released when it is dropped.
#[derive(Debug)]
pub struct LockedAppend {
    file: File,
    path: PathBuf,
}

impl LockedAppend {
    /// Opens (or creates) `path` for appending and locks it; an error if it is not a regular file, if another
    /// process holds the lock, or if it is larger than `cap`. Returns the file's current contents too.
    pub fn open(path: &Path, cap: u64) -> Result<(LockedAppend, Vec<u8>)> {
        if let Ok(meta) = std::fs::metadata(path) {
            if !meta.is_file() {
                return Err(Error::file(
                    path,
                    format!("is {}, not a regular file; refusing to write results there", file_kind(&meta)),
                ));
            }
        }
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        nonblocking(&mut options);
        let mut file = options.open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::file(path, "is not a regular file; refusing to write results there"));
        }
        lock(&file, path)?;
        if meta.len() > cap {
            return Err(Error::file(
                path,
                format!("the results file of {} bytes is larger than the limit of {cap} bytes", meta.len()),
            ));
        }
        let mut text = Vec::with_capacity(meta.len() as usize);
        (&mut file).take(cap.saturating_add(1)).read_to_end(&mut text).map_err(|e| Error::io(path, e))?;
        Ok((LockedAppend { file, path: path.to_path_buf() }, text))
    }

    /// Appends bytes and flushes them, checking every step.
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::file(&self.path, format!("cannot write: {e}")))
    }

    /// Makes what was appended durable.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_all().map_err(|e| Error::file(&self.path, format!("cannot write: {e}")))
    }
}

#[cfg(unix)]
fn lock(file: &File, path: &Path) -> Result<()> {
    use rustix::fs::{flock, FlockOperation};
    flock(file, FlockOperation::NonBlockingLockExclusive).map_err(|e| {
        if e == rustix::io::Errno::WOULDBLOCK {
            Error::file(
                path,
                "another gcert run is writing results to this file (it is locked); wait for it to finish or \
                 choose another --out",
            )
        } else {
            Error::file(path, format!("cannot lock the results file: {e}"))
        }
    })
}

#[cfg(not(unix))]
fn lock(_: &File, _: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_refuse_fifos_devices_directories_and_oversized_files() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_capped(dir.path(), "a model card", 100).unwrap_err().to_string();
        assert!(e.contains("must be a regular file, found a directory"), "{e}");
        let e = read_capped(Path::new("/dev/zero"), "a weights file", 1 << 20).unwrap_err().to_string();
        assert!(e.contains("/dev/zero: a weights file must be a regular file, found a device"), "{e}");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().map(|s| s.success());
        if made.is_ok_and(|ok| ok) {
            // Opening a FIFO for reading would block forever without a writer; this returns at once.
            let e = read_capped(&fifo, "an array", 100).unwrap_err().to_string();
            assert!(e.contains("found a FIFO"), "{e}");
        }
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; 101]).unwrap();
        let e = read_capped(&big, "a model card", 100).unwrap_err().to_string();
        assert!(e.contains("a model card of 101 bytes is larger than the limit of 100 bytes"), "{e}");
        assert_eq!(read_capped(&big, "a model card", 101).unwrap().len(), 101);
        std::fs::write(&big, [0xff, 0xfe]).unwrap();
        assert!(read_text_capped(&big, "a model card", 10).unwrap_err().to_string().contains("not UTF-8"));
    }

    #[test]
    fn atomic_writes_replace_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("z.npy");
        write_atomic(&out, false, |w| w.write_all(b"first")).unwrap();
        let e = write_atomic(&out, false, |w| w.write_all(b"second")).unwrap_err().to_string();
        assert!(e.contains("already exists; pass --force"), "{e}");
        assert_eq!(std::fs::read(&out).unwrap(), b"first");
        write_atomic(&out, true, |w| w.write_all(b"second")).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"second");
        #[cfg(unix)]
        {
            // Not the temporary file's private mode: others may read an output as after a plain create (under
            // the usual umask 022), and a replaced file keeps its mode.
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
            assert_ne!(mode, 0o600, "{mode:o}");
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
            write_atomic(&out, true, |w| w.write_all(b"third")).unwrap();
            assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o640);
        }
        let e = write_atomic(Path::new("/dev/full"), true, |w| w.write_all(b"x")).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = write_atomic(dir.path(), true, |w| w.write_all(b"x")).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
    }

    #[test]
    fn a_failing_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.npy");
        std::fs::write(&out, b"old").unwrap();
        // An injected writer failure, as a full disk gives.
        let e = write_atomic(&out, true, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device"))
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot write: No space left on device"), "{e}");
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("r.npy")], "a temporary file was left behind");
        // A real device that fails every write with ENOSPC: the flush reports it.
        if let Ok(full) = OpenOptions::new().write(true).open("/dev/full") {
            let e = fill(&full, |w| w.write_all(&[0u8; 100])).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(28), "{e}");
        }
    }

    #[test]
    fn outputs_that_are_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let card = dir.path().join("m.toml");
        std::fs::write(&card, "x").unwrap();
        let other = dir.path().join(".").join("m.toml");
        let e = refuse_input_as_output(&other, &[Path::new("/nonexistent"), &card]).unwrap_err().to_string();
        assert!(e.contains("is one of this run's inputs"), "{e}");
        refuse_input_as_output(&dir.path().join("new.jsonl"), &[&card]).unwrap();
    }

    #[test]
    fn a_locked_results_file_refuses_a_second_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.jsonl");
        let (mut first, text) = LockedAppend::open(&path, 1 << 20).unwrap();
        assert!(text.is_empty());
        first.append(b"{\"id\":\"a\"}\n").unwrap();
        let e = LockedAppend::open(&path, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("another gcert run is writing results to this file"), "{e}");
        drop(first);
        let (_, text) = LockedAppend::open(&path, 1 << 20).unwrap();
        assert_eq!(text, b"{\"id\":\"a\"}\n");
        let e = LockedAppend::open(Path::new("/dev/full"), 1 << 20).unwrap_err().to_string();
        assert!(e.contains("a device, not a regular file"), "{e}");
    }
}
