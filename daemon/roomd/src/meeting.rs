//! The boundary between the room loop and the meeting session.
//!
//! The controller decides *when* a meeting session runs; a [`MeetingBackend`] knows *how*. The
//! real backend (Meet REST API, LiveKit signalling, WebRTC, media) plugs in here; until it exists,
//! [`Unavailable`] makes the daemon answer `Join` honestly with `org.visioroom.Error.NotAvailable`.

use tokio::sync::mpsc;
use visio_room_core::controller::{Failure, FailureKind, SessionEvent, SessionId};

/// What a meeting session needs to start.
// Until the meeting session lands, only `id` is read (by `Unavailable`).
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct SessionRequest {
    /// The id its events carry.
    pub id: SessionId,
    /// Canonical meeting URL (validated against the allow-list).
    pub url: String,
    /// Name shown to the other participants.
    pub display_name: String,
    /// Start with the microphone muted.
    pub mic_muted: bool,
    /// Start with the camera on.
    pub camera_enabled: bool,
}

/// Where sessions report their events.
pub type SessionEvents = mpsc::UnboundedSender<(SessionId, SessionEvent)>;

/// A running meeting session. Dropping it must not block.
pub trait RunningSession: Send {
    /// Leave the meeting; the session reports [`SessionEvent::Stopped`] when done.
    fn stop(&mut self);
    /// Mute or unmute the microphone.
    fn set_mic_muted(&mut self, muted: bool);
    /// Send video or not.
    fn set_camera_enabled(&mut self, enabled: bool);
}

/// Knows how to run meeting sessions.
pub trait MeetingBackend: Send + Sync {
    /// `Some(reason)` when meetings cannot be joined at all with this backend.
    fn unavailable_reason(&self) -> Option<String>;
    /// Starts a session; it reports on `events`.
    fn start(&self, request: SessionRequest, events: SessionEvents) -> Box<dyn RunningSession>;
}

/// The backend of a build without the meeting session: every join fails with a clear reason.
pub struct Unavailable;

const UNAVAILABLE: &str =
    "joining meetings is not available in this build yet: the meeting session is not implemented";

impl MeetingBackend for Unavailable {
    fn unavailable_reason(&self) -> Option<String> {
        Some(UNAVAILABLE.to_owned())
    }

    fn start(&self, request: SessionRequest, events: SessionEvents) -> Box<dyn RunningSession> {
        let failure = Failure::new(FailureKind::NotAvailable, UNAVAILABLE);
        // The receiver lives as long as the room loop; a send error means we are shutting down.
        let _ = events.send((request.id, SessionEvent::Failed(failure)));
        Box::new(Gone)
    }
}

/// A session that has already ended.
struct Gone;

impl RunningSession for Gone {
    fn stop(&mut self) {}
    fn set_mic_muted(&mut self, _: bool) {}
    fn set_camera_enabled(&mut self, _: bool) {}
}
