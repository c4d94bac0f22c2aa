//! Files of the room's state that a power cut at any moment leaves readable: the room's intent
//! (`visio-roomd`), the calendar cache (`visio-room-calendar`), and whatever else the daemon
//! keeps on disk. Every file the daemon writes goes through [`write_atomically`]; there is no
//! other way to write one.
//!
//! The steps, each needed for a reason:
//! 1. write the new content to a temporary file **in the same directory** (a rename is atomic
//!    only within one file system), named `.<name>.tmp`;
//! 2. `fsync` the temporary file, so its *data* is on disk before its name is (ext4 and
//!    others may otherwise commit the rename first: after a power cut the file exists, empty);
//! 3. `rename` it over the target: readers see the whole old file or the whole new one, never
//!    a mix;
//! 4. `fsync` the directory, so the rename itself survives a power cut.
//!
//! A cut before step 3 leaves the old file and a partial temporary file, which readers never
//! open (they read the target's name only) and the next write of the same file truncates and
//! reuses. Hence: **one writer per file** (the room loop for the intent, one task per calendar
//! source for its cache entry); two concurrent writers of the same file would share the
//! temporary name.
//!
//! This crate must not know what the files hold (JSON, formats, versions: the callers) nor
//! anything of the room: it is plain `std` file I/O, usable by every crate of the daemon.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The temporary file [`write_atomically`] uses for `path`: `.<name>.tmp` beside it.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces the content of `path` by `content` so that, whenever power is lost, the file holds
/// either its old content or the new one, whole. Creates the parent directory if missing.
///
/// On error the temporary file is removed (best effort) and the old content is intact; the
/// error says which step failed and on which file.
pub fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.file_name().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a file name", path.display()),
        ));
    }
    let context = |step: &str, file: &Path| {
        let file = file.to_path_buf();
        let step = step.to_owned();
        move |e: io::Error| io::Error::new(e.kind(), format!("{step} {}: {e}", file.display()))
    };
    std::fs::create_dir_all(dir).map_err(context("cannot create the directory", dir))?;
    let tmp = temporary_path(path);
    let written = (|| {
        let mut file = File::create(&tmp).map_err(context("cannot create", &tmp))?;
        file.write_all(content)
            .map_err(context("cannot write", &tmp))?;
        file.sync_all()
            .map_err(context("cannot flush to disk", &tmp))?;
        std::fs::rename(&tmp, path).map_err(context("cannot rename over", path))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename is in the directory's data: durable only once the directory is synced.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(context("cannot flush the directory to disk", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_the_content_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/intent.json");
        write_atomically(&path, b"one").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_atomically(&path, b"two, longer").unwrap();
        write_atomically(&path, b"3").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"3");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("intent.json")]);
    }

    #[test]
    fn a_leftover_temporary_file_is_reused_and_does_not_disturb_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        write_atomically(&path, b"old").unwrap();
        // What a cut in the middle of a write leaves.
        std::fs::write(temporary_path(&path), b"half of a much longer new con").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!temporary_path(&path).exists());
    }

    #[test]
    fn errors_name_the_file_and_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let e = write_atomically(&blocker.join("sub/x.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("cannot create the directory"), "{e}");
        assert!(e.to_string().contains("file/sub"), "{e}");
        let target_is_a_dir = dir.path().join("d");
        std::fs::create_dir(&target_is_a_dir).unwrap();
        std::fs::write(target_is_a_dir.join("keep"), "").unwrap();
        let e = write_atomically(&target_is_a_dir, b"x").unwrap_err();
        assert!(e.to_string().contains("cannot rename over"), "{e}");
        assert!(!temporary_path(&target_is_a_dir).exists());
    }
}
