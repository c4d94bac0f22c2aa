//! The room's intent — which meeting it is in, who asked, whether it is muted — kept in the
//! state directory, so that a daemon that died (a crash, a kill, a watchdog restart, a power
//! cut) goes back to the meeting when systemd starts it again, as it was: a muted room comes
//! back muted.
//!
//! The file is rewritten atomically ([`visio_room_state_file::write_atomically`]: write, fsync,
//! rename, fsync the directory) whenever the
//! intent changes, and every [`HEARTBEAT`] while in a meeting, so its age says how long ago the
//! room was last alive in it. A clean stop (`Leave`, SIGTERM: the daemon leaves the meeting
//! before exiting) writes an intent without a meeting: nothing to go back to. A crash loop
//! does not rejoin for ever: after [`MAX_RECOVERIES`] recoveries within [`RECOVERY_WINDOW`] the
//! room stays idle and says why. Deciding is [`decide`], a pure function.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use visio_room_core::controller::{Meeting, Source, Status};

/// How often the intent is rewritten while in a meeting.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// An intent older than this is stale (the room was switched off, not restarted): not rejoined.
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// At most this many recoveries...
pub const MAX_RECOVERIES: usize = 3;
/// ...within this window.
pub const RECOVERY_WINDOW: Duration = Duration::from_secs(10 * 60);

/// What is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Intent {
    /// The meeting the room is in or trying to join; `None` when it is not.
    pub meeting: Option<IntentMeeting>,
    /// The microphone is muted.
    pub mic_muted: bool,
    /// The camera is on.
    pub camera_enabled: bool,
    /// When this was written, milliseconds since the Unix epoch.
    pub written_unix_ms: u64,
    /// When the daemon rejoined after an unclean exit, recently (for the crash-loop rule).
    #[serde(default)]
    pub recoveries_unix_ms: Vec<u64>,
}

/// A meeting in the intent file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentMeeting {
    /// Canonical meeting URL.
    pub url: String,
    /// Who asked to join it (`Source::as_str`).
    pub source: String,
}

impl Intent {
    /// The intent the controller's `status` amounts to (keeping the recoveries).
    pub fn of(status: &Status, recoveries_unix_ms: Vec<u64>, now_unix_ms: u64) -> Intent {
        Intent {
            meeting: status.meeting.as_ref().map(|m| IntentMeeting {
                url: m.url.clone(),
                source: m.source.as_str().to_owned(),
            }),
            mic_muted: status.mic_muted,
            camera_enabled: status.camera_enabled,
            written_unix_ms: now_unix_ms,
            recoveries_unix_ms,
        }
    }

    /// The same intent, ignoring when it was written.
    pub fn same_as(&self, other: &Intent) -> bool {
        self.meeting == other.meeting
            && self.mic_muted == other.mic_muted
            && self.camera_enabled == other.camera_enabled
            && self.recoveries_unix_ms == other.recoveries_unix_ms
    }
}

/// What to do at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing to go back to.
    Nothing,
    /// Go back to the meeting, as it was.
    Rejoin {
        /// The meeting.
        meeting: Meeting,
        /// Muted.
        mic_muted: bool,
        /// Camera on.
        camera_enabled: bool,
        /// The recoveries to remember, this one included.
        recoveries_unix_ms: Vec<u64>,
    },
    /// The daemon keeps dying: stay idle, and say why.
    GiveUp {
        /// For people, in `Health`.
        reason: String,
    },
}

fn source_named(name: &str) -> Source {
    match name {
        "button" => Source::Button,
        "schedule" => Source::Schedule,
        "fleet" => Source::Fleet,
        "meeting" => Source::Meeting,
        _ => Source::DBus,
    }
}

/// Decides what to do with the intent found at start-up.
pub fn decide(intent: Option<&Intent>, now_unix_ms: u64) -> Recovery {
    let Some(intent) = intent else {
        return Recovery::Nothing;
    };
    let Some(meeting) = &intent.meeting else {
        return Recovery::Nothing;
    };
    let age = now_unix_ms.saturating_sub(intent.written_unix_ms);
    if age > MAX_AGE.as_millis() as u64 {
        return Recovery::Nothing;
    }
    let window = RECOVERY_WINDOW.as_millis() as u64;
    let mut recent: Vec<u64> = intent
        .recoveries_unix_ms
        .iter()
        .copied()
        .filter(|t| now_unix_ms.saturating_sub(*t) < window)
        .collect();
    if recent.len() >= MAX_RECOVERIES {
        return Recovery::GiveUp {
            reason: format!(
                "did not go back to {} after this restart: the daemon stopped uncleanly {} times within {} minutes (see the journal)",
                meeting.url,
                recent.len() + 1,
                RECOVERY_WINDOW.as_secs() / 60
            ),
        };
    }
    recent.push(now_unix_ms);
    Recovery::Rejoin {
        meeting: Meeting {
            url: meeting.url.clone(),
            source: source_named(&meeting.source),
        },
        mic_muted: intent.mic_muted,
        camera_enabled: intent.camera_enabled,
        recoveries_unix_ms: recent,
    }
}

/// The intent file in the state directory.
#[derive(Debug, Clone)]
pub struct IntentStore {
    path: PathBuf,
}

impl IntentStore {
    /// `intent.json` in `dir` (created when first written).
    pub fn in_dir(dir: &Path) -> IntentStore {
        IntentStore {
            path: dir.join("intent.json"),
        }
    }

    /// The intent last written; `None` if there is none or it cannot be read (said in the
    /// log: a damaged file costs only the recovery).
    pub fn load(&self) -> Option<Intent> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot read the room's intent");
                return None;
            }
        };
        match serde_json::from_str(&text) {
            Ok(intent) => Some(intent),
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "the room's intent is unreadable; ignored");
                None
            }
        }
    }

    /// Writes `intent` so that a power cut at any moment leaves the old or the new file.
    pub fn save(&self, intent: &Intent) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(intent)?;
        visio_room_state_file::write_atomically(&self.path, json.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://visio.numerique.gouv.fr/abc-defg-hij";
    const NOW: u64 = 1_800_000_000_000;

    fn in_meeting(written: u64, recoveries: Vec<u64>) -> Intent {
        Intent {
            meeting: Some(IntentMeeting {
                url: URL.into(),
                source: "button".into(),
            }),
            mic_muted: true,
            camera_enabled: false,
            written_unix_ms: written,
            recoveries_unix_ms: recoveries,
        }
    }

    #[test]
    fn a_recent_meeting_is_rejoined_as_it_was() {
        let r = decide(Some(&in_meeting(NOW - 5_000, vec![])), NOW);
        assert_eq!(
            r,
            Recovery::Rejoin {
                meeting: Meeting {
                    url: URL.into(),
                    source: Source::Button
                },
                mic_muted: true,
                camera_enabled: false,
                recoveries_unix_ms: vec![NOW],
            }
        );
    }

    #[test]
    fn no_meeting_or_a_stale_one_is_not_rejoined() {
        assert_eq!(decide(None, NOW), Recovery::Nothing);
        assert_eq!(decide(Some(&Intent::default()), NOW), Recovery::Nothing);
        let stale = in_meeting(NOW - MAX_AGE.as_millis() as u64 - 1, vec![]);
        assert_eq!(decide(Some(&stale), NOW), Recovery::Nothing);
    }

    #[test]
    fn a_crash_loop_stops_rejoining_and_old_recoveries_are_forgotten() {
        let minute = 60_000;
        let three = vec![NOW - 9 * minute, NOW - 5 * minute, NOW - minute];
        match decide(Some(&in_meeting(NOW - 1_000, three)), NOW) {
            Recovery::GiveUp { reason } => {
                assert!(reason.contains("4 times within 10 minutes"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let old = vec![NOW - 30 * minute, NOW - 20 * minute, NOW - minute];
        match decide(Some(&in_meeting(NOW - 1_000, old)), NOW) {
            Recovery::Rejoin {
                recoveries_unix_ms, ..
            } => assert_eq!(recoveries_unix_ms, vec![NOW - minute, NOW]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_file_round_trips_and_a_damaged_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = IntentStore::in_dir(&dir.path().join("state"));
        assert_eq!(store.load(), None);
        let intent = in_meeting(NOW, vec![NOW - 1]);
        store.save(&intent).unwrap();
        assert_eq!(store.load(), Some(intent.clone()));
        assert!(!dir.path().join("state/.intent.json.tmp").exists());
        // A write cut in the middle leaves a partial temporary file: not read.
        std::fs::write(dir.path().join("state/.intent.json.tmp"), "{\"meeting\": ").unwrap();
        assert_eq!(store.load(), Some(intent));
        std::fs::write(dir.path().join("state/intent.json"), "{\"meeting\": ").unwrap();
        assert_eq!(store.load(), None);
    }
}
