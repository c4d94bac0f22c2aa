//! # visio-room-session — one meeting, from the link to media flowing
//!
//! Given a canonical Visio (La Suite Meet) meeting URL and a display name, a session:
//! 1. asks the Meet REST API for the room (`config/`, `rooms/<slug>/?username=`) and, when the
//!    room is not public, waits in the lobby (`request-entry` every second with the
//!    `lobbyParticipantId` cookie) until admitted, denied or stopped (the lobby timeout is the
//!    controller's) ([`meet`]);
//! 2. joins the LiveKit room over the signalling WebSocket (protocol 16, [`signal`]), publishes
//!    the room's camera (H.264) and microphone (Opus), subscribes to everyone, follows
//!    participant updates, server mutes, token refreshes and leave requests, and rejoins by
//!    itself when the connection is lost;
//! 3. runs the two WebRTC peer connections ([`rtc`], webrtc-rs) and moves RTP between them and
//!    the media engine (`visio-room-media`).
//!
//! It reports to the daemon with [`visio_room_core::controller::SessionEvent`]s and is driven
//! through a [`SessionHandle`]. It must not know about D-Bus, the controller's state machine,
//! retries across attempts (the controller owns those), GStreamer, or configuration files.

pub mod config;
pub mod congestion;
pub mod media_watch;
pub mod meet;
pub mod netwatch;
pub mod participant;
pub mod rtc;
mod session;
pub mod signal;
mod stats;
pub mod stream_bridge;
pub mod tls;

use std::sync::Arc;

use tokio::sync::mpsc;
use visio_room_core::controller::{SessionEvent, SessionId};

pub use config::{MediaSettings, SessionConfig, TlsRoots};
pub use stats::MediaStatus;

/// What the daemon asks for when it starts a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// The id every event of this session carries.
    pub id: SessionId,
    /// Canonical meeting URL (already validated against the allow-list).
    pub url: String,
    /// Name shown to the other participants (and sent to the lobby).
    pub display_name: String,
    /// Start with the microphone muted.
    pub mic_muted: bool,
    /// Start with the camera on.
    pub camera_enabled: bool,
}

/// Where a session reports.
pub type SessionEvents = mpsc::UnboundedSender<(SessionId, SessionEvent)>;

#[derive(Debug)]
enum Command {
    Stop,
    MicMuted(bool),
    CameraEnabled(bool),
}

/// A running session. Every method returns at once; dropping the handle stops the session
/// (it then still reports [`SessionEvent::Stopped`]).
pub struct SessionHandle {
    id: SessionId,
    commands: mpsc::UnboundedSender<Command>,
    status: Arc<stats::Shared>,
}

impl SessionHandle {
    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Leave the meeting; [`SessionEvent::Stopped`] follows.
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// Mute or unmute the microphone (tells the other participants too).
    pub fn set_mic_muted(&self, muted: bool) {
        let _ = self.commands.send(Command::MicMuted(muted));
    }

    /// Send video or not (tells the other participants too).
    pub fn set_camera_enabled(&self, enabled: bool) {
        let _ = self.commands.send(Command::CameraEnabled(enabled));
    }

    /// Media counters for `status --json` (`media`): decoded remote frames, what is sent.
    pub fn media_status(&self) -> MediaStatus {
        self.status.snapshot()
    }

    /// Whether the session task has finished (after `Stopped`, `Failed` or `Ended`).
    pub fn is_finished(&self) -> bool {
        self.commands.is_closed()
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
    }
}

/// Starts a session on the current tokio runtime. It reports on `events` with `request.id`.
pub fn start(
    request: SessionRequest,
    config: SessionConfig,
    events: SessionEvents,
) -> SessionHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let status = Arc::new(stats::Shared::default());
    let id = request.id;
    tokio::spawn(session::run(request, config, events, rx, status.clone()));
    SessionHandle {
        id,
        commands: tx,
        status,
    }
}
