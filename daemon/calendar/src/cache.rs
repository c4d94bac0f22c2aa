//! The last good calendar of each source, on disk, so that a room that boots without network
//! still knows its meetings (and can say how old that knowledge is).
//!
//! One JSON file per source, named by [`SourceSpec::key`] (a hash of the spec, never of a
//! secret), written atomically by [`visio_room_state_file::write_atomically`] (a temporary file
//! in the same directory, flushed to disk, renamed over the old one, the directory flushed): a
//! power cut leaves the old entry or the new one, and a partial temporary file is never read. A file that cannot be read back (truncated, edited, from another
//! version) is ignored with a warning: the next good fetch replaces it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::CacheError;
use crate::spec::SourceSpec;

/// Format version of the cache files.
const FORMAT: u32 = 1;

/// A cached calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCalendar {
    /// The iCalendar texts of the source, as last fetched.
    pub texts: Vec<String>,
    /// When they were fetched (the last time the source was read successfully, changed or not,
    /// if the daemon calls [`Cache::store`] or [`Cache::touch`] after each good fetch).
    pub fetched_at: SystemTime,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    format: u32,
    /// `describe()` of the source, for a human looking at the directory.
    source: String,
    fetched_at_unix_ms: u64,
    texts: Vec<String>,
}

/// The calendar cache directory (`/var/lib/visio-room/calendar` in production).
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// A cache in `dir` (created at the first store if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of a source.
    pub fn path_of(&self, spec: &SourceSpec) -> PathBuf {
        self.dir.join(format!("{}.json", spec.key()))
    }

    /// Stores the texts of a source, fetched at `fetched_at`, replacing the previous entry
    /// atomically.
    pub fn store(
        &self,
        spec: &SourceSpec,
        texts: &[String],
        fetched_at: SystemTime,
    ) -> Result<(), CacheError> {
        let path = self.path_of(spec);
        let entry = Entry {
            format: FORMAT,
            source: spec.describe(),
            fetched_at_unix_ms: fetched_at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64,
            texts: texts.to_vec(),
        };
        let error = |e: std::io::Error| CacheError {
            path: path.clone(),
            reason: e.to_string(),
        };
        let json = serde_json::to_vec(&entry).expect("strings serialise");
        visio_room_state_file::write_atomically(&path, &json).map_err(error)
    }

    /// Marks the cached texts of a source as confirmed at `fetched_at` (after a fetch that
    /// found nothing changed). Only the entry's modification time is set — no rewrite, so a
    /// poll every minute does not wear the flash. Does nothing when there is no entry.
    pub fn touch(&self, spec: &SourceSpec, fetched_at: SystemTime) -> Result<(), CacheError> {
        let path = self.path_of(spec);
        let file = match std::fs::File::options().append(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(CacheError {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        file.set_modified(fetched_at).map_err(|e| CacheError {
            path,
            reason: e.to_string(),
        })
    }

    /// The cached calendar of a source, if there is a readable one. A missing entry is
    /// normal (first start); an unreadable one is ignored with a warning.
    pub fn load(&self, spec: &SourceSpec) -> Option<CachedCalendar> {
        let path = self.path_of(spec);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(calendar = %spec.describe(), "no cached calendar yet");
                return None;
            }
            Err(e) => {
                tracing::warn!(
                    calendar = %spec.describe(),
                    path = %path.display(),
                    error = %e,
                    "cannot read the cached calendar; ignoring it"
                );
                return None;
            }
        };
        // A later modification time means `touch` confirmed the texts since they were stored.
        let touched = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(entry) if entry.format == FORMAT => {
                let stored = UNIX_EPOCH + Duration::from_millis(entry.fetched_at_unix_ms);
                Some(CachedCalendar {
                    texts: entry.texts,
                    fetched_at: touched.filter(|t| *t > stored).unwrap_or(stored),
                })
            }
            Ok(entry) => {
                tracing::warn!(
                    calendar = %spec.describe(),
                    path = %path.display(),
                    format = entry.format,
                    "cached calendar in an unknown format; ignoring it"
                );
                None
            }
            Err(e) => {
                tracing::warn!(
                    calendar = %spec.describe(),
                    path = %path.display(),
                    error = %e,
                    "corrupted cached calendar; ignoring it (the next fetch replaces it)"
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SourceSpec {
        SourceSpec::Ics {
            url: url::Url::parse("https://cal.example.org/private-xyz/room.ics").unwrap(),
            auth: crate::Auth::None,
        }
    }

    #[test]
    fn stored_calendars_load_back_with_their_fetch_time() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("calendar"));
        assert_eq!(cache.load(&spec()), None, "nothing before the first store");
        // In the past, so that the file's own modification time (now) is later: set it back.
        let at = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        let texts = vec![
            "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".to_owned(),
            "é".to_owned(),
        ];
        cache.store(&spec(), &texts, at).unwrap();
        cache.touch(&spec(), at).unwrap();
        let back = cache.load(&spec()).unwrap();
        assert_eq!(back.texts, texts);
        assert_eq!(back.fetched_at, at);

        let later = at + Duration::from_secs(60);
        let content = std::fs::read(cache.path_of(&spec())).unwrap();
        cache.touch(&spec(), later).unwrap();
        assert_eq!(cache.load(&spec()).unwrap().fetched_at, later);
        assert_eq!(
            std::fs::read(cache.path_of(&spec())).unwrap(),
            content,
            "not rewritten"
        );
        let other = SourceSpec::File {
            path: "/nowhere.ics".into(),
        };
        cache.touch(&other, later).unwrap();
        assert_eq!(cache.load(&other), None);
        // Only the entry itself is left: the temporary file was renamed.
        let names: Vec<_> = std::fs::read_dir(cache.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![format!("{}.json", spec().key())]);
        let raw = std::fs::read_to_string(cache.path_of(&spec())).unwrap();
        assert!(
            !raw.contains("private-xyz"),
            "the entry names the source without its path"
        );
    }

    #[test]
    fn a_corrupted_or_foreign_entry_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        cache
            .store(&spec(), &["BEGIN:VCALENDAR".into()], SystemTime::now())
            .unwrap();
        let path = cache.path_of(&spec());
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert_eq!(cache.load(&spec()), None, "truncated");
        // A write cut in the middle leaves a partial temporary file: never read, then reused.
        std::fs::write(&path, &good).unwrap();
        let tmp = visio_room_state_file::temporary_path(&path);
        std::fs::write(&tmp, &good[..good.len() / 2]).unwrap();
        assert!(
            cache.load(&spec()).is_some(),
            "a leftover temporary file is not read"
        );
        std::fs::write(
            &path,
            br#"{"format":99,"source":"x","fetched_at_unix_ms":0,"texts":[]}"#,
        )
        .unwrap();
        assert_eq!(cache.load(&spec()), None, "unknown format");
        // The next good fetch replaces it.
        cache
            .store(&spec(), &["B".into()], SystemTime::now())
            .unwrap();
        assert_eq!(cache.load(&spec()).unwrap().texts, vec!["B".to_owned()]);
        assert!(!tmp.exists(), "the leftover temporary file was reused");
    }

    #[test]
    fn an_unwritable_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let cache = Cache::new(blocker.join("calendar"));
        let error = cache.store(&spec(), &[], SystemTime::now()).unwrap_err();
        assert!(error.to_string().contains("state directory"), "{error}");
    }
}
