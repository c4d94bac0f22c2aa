//! How a session is set up: which hosts it may talk to, which TLS roots it trusts, how it
//! waits in the lobby, and what media it sends and receives.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use visio_room_core::meeting_url::AllowedHosts;
use visio_room_media::{AudioSenderConfig, EncoderChoice, ReceiverConfig, VideoSenderConfig};

/// Everything a session needs besides the request itself. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Hosts meetings may be joined on (`visio.allowed_hosts`). The daemon validated the URL
    /// already; the session checks again before sending anything, and also checks the LiveKit
    /// URL the Meet API returns (the meeting's own host, or a host of this list). Empty (the
    /// default) allows nothing.
    pub allowed_hosts: AllowedHosts,
    /// Where the meetings' LiveKit server may be besides the meeting's host
    /// (`visio.media_hosts`); `None` accepts the one the Meet API announces.
    pub media_hosts: Option<AllowedHosts>,
    /// The TLS client configuration (verification always on), built once by the daemon with
    /// [`crate::tls::client_config`] and shared with its other HTTPS clients (the calendar).
    /// `None`: each session builds one from the system trust store ([`TlsRoots::default`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Pause between two lobby `request-entry` polls (Meet's web app: 1 s; entries expire
    /// 3 s after the last poll).
    pub lobby_poll_interval: Duration,
    /// The lobby cookies of earlier attempts, shared by the sessions made from this
    /// configuration (clones share them): a retry of the same meeting is recognised by Meet
    /// and, once admitted, let in again without a host.
    pub lobby_cookies: crate::meet::LobbyCookies,
    /// Budget for re-establishing a lost LiveKit connection before reporting `Unreachable`.
    pub reconnect_budget: Duration,
    /// How long to try resuming the same participant (`reconnect=1`) after the signalling
    /// connection is lost once no peer connection is connected any more, before rejoining from
    /// scratch. While one still is, resuming goes on up to `reconnect_budget` (LiveKit, and
    /// visio-sim, keep a participant whose ICE is connected).
    pub resume_budget: Duration,
    /// Restrict ICE to loopback addresses (tests and single-machine demos with `visio-sim`).
    pub ice_loopback_only: bool,
    /// The lowest video bitrate the congestion controller may choose, bit/s (the highest is
    /// the configured encoder bitrate, `media.video.encoder.bitrate_bps`).
    pub min_video_bitrate_bps: u32,
    /// The media to send and receive; `None` joins without media (signalling and peer
    /// connections only), which diagnostics and signalling tests use.
    pub media: Option<MediaSettings>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            allowed_hosts: AllowedHosts::default(),
            media_hosts: None,
            tls: None,
            lobby_poll_interval: Duration::from_secs(1),
            lobby_cookies: crate::meet::LobbyCookies::default(),
            reconnect_budget: Duration::from_secs(60),
            resume_budget: Duration::from_secs(8),
            ice_loopback_only: false,
            min_video_bitrate_bps: 150_000,
            media: None,
        }
    }
}

/// Which certificate authorities the room trusts (Meet API, LiveKit, TURN over TLS, calendars):
/// the input of [`crate::tls::client_config`].
#[derive(Clone, Debug)]
pub struct TlsRoots {
    /// Use the operating system's trust store (`/etc/ssl/certs`).
    pub system: bool,
    /// Extra PEM files with CA certificates (a private Visio deployment, or a test CA).
    pub extra_pem_files: Vec<PathBuf>,
}

impl Default for TlsRoots {
    fn default() -> Self {
        TlsRoots {
            system: true,
            extra_pem_files: Vec::new(),
        }
    }
}

/// The media side of a session: senders and the receiver of `visio-room-media`.
#[derive(Clone, Debug)]
pub struct MediaSettings {
    /// Camera → H.264 sender settings (its payload type is the session's concern and is
    /// rewritten on the wire).
    pub video: VideoSenderConfig,
    /// Microphone → Opus sender settings (the echo probe is filled in by the session from the
    /// receiver).
    pub audio: AudioSenderConfig,
    /// Remote media → display and speakers.
    pub receiver: ReceiverConfig,
    /// The encoder chosen at start-up by `probe_h264_encoder`; `None` makes the session probe
    /// (off the async runtime) when it starts.
    pub encoder: Option<EncoderChoice>,
}
