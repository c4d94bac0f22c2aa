//! The boundary between the room loop and the meeting session.
//!
//! The controller decides *when* a meeting session runs; a [`MeetingBackend`] knows *how*.
//! [`Visio`] runs real sessions (`visio-room-session`: Meet REST API, lobby, LiveKit, WebRTC,
//! and the media engine); the trait keeps the room loop testable.

use std::sync::Arc;

use visio_room_core::config::{self, Config};
use visio_room_core::controller::{Failure, FailureKind, SessionEvent};
use visio_room_core::meeting_url::{AllowedHosts, MeetingUrl};
use visio_room_session::tls::ClientConfig;
pub use visio_room_session::{MediaStatus, SessionEvents, SessionRequest};
use visio_room_session::{SessionConfig, SessionHandle};

use crate::settings;

/// A running meeting session. Dropping it stops the session without blocking.
pub trait RunningSession: Send {
    /// Leave the meeting; the session reports [`SessionEvent::Stopped`] when done.
    fn stop(&mut self);
    /// Mute or unmute the microphone.
    fn set_mic_muted(&mut self, muted: bool);
    /// Send video or not.
    fn set_camera_enabled(&mut self, enabled: bool);
    /// Live media counters, when the session has media.
    fn media_status(&self) -> Option<MediaStatus>;
}

/// Knows how to run meeting sessions.
pub trait MeetingBackend: Send + Sync {
    /// Starts a session; it reports on `events`.
    fn start(&self, request: SessionRequest, events: SessionEvents) -> Box<dyn RunningSession>;
}

/// Real Visio meetings with the room's camera, microphone, display and speakers.
pub struct Visio {
    session: SessionConfig,
    media: config::MediaConfig,
    allow_list: AllowedHosts,
}

impl Visio {
    /// A backend for `config`, its sessions trusting the room's one TLS configuration `tls`
    /// (`None`: each session builds one from the system trust store).
    pub fn new(config: &Config, tls: Option<Arc<ClientConfig>>) -> Visio {
        let session = SessionConfig {
            tls,
            ..settings::session_config(config)
        };
        Visio {
            session,
            media: config.media.clone(),
            allow_list: config.visio.allow_list(),
        }
    }
}

impl MeetingBackend for Visio {
    fn start(&self, request: SessionRequest, events: SessionEvents) -> Box<dyn RunningSession> {
        let media = match settings::media_settings(&self.media) {
            Ok(media) => media,
            Err(e) => {
                let failure = Failure::new(
                    FailureKind::Media,
                    format!("the camera could not be opened: {e}"),
                );
                let _ = events.send((request.id, SessionEvent::Failed(failure)));
                return Box::new(Gone);
            }
        };
        // A meeting on a loopback host (a local visio-sim) keeps its media on loopback too:
        // nothing of a local test or demo may leave the machine.
        let loopback = MeetingUrl::parse(&request.url, &self.allow_list)
            .map(|u| u.is_loopback())
            .unwrap_or(false);
        let config = SessionConfig {
            media: Some(media),
            ice_loopback_only: loopback,
            ..self.session.clone()
        };
        Box::new(visio_room_session::start(request, config, events))
    }
}

impl RunningSession for SessionHandle {
    fn stop(&mut self) {
        SessionHandle::stop(self)
    }
    fn set_mic_muted(&mut self, muted: bool) {
        SessionHandle::set_mic_muted(self, muted)
    }
    fn set_camera_enabled(&mut self, enabled: bool) {
        SessionHandle::set_camera_enabled(self, enabled)
    }
    fn media_status(&self) -> Option<MediaStatus> {
        Some(SessionHandle::media_status(self))
    }
}

/// A session that has already ended.
struct Gone;

impl RunningSession for Gone {
    fn stop(&mut self) {}
    fn set_mic_muted(&mut self, _: bool) {}
    fn set_camera_enabled(&mut self, _: bool) {}
    fn media_status(&self) -> Option<MediaStatus> {
        None
    }
}
