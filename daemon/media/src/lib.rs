//! # visio-room-media — the appliance's media engine
//!
//! Captures the room (camera, microphone), encodes it to H.264 and Opus RTP, and turns the
//! remote participants' RTP (VP8, VP9, H.264 video; Opus audio) back into a composed picture on
//! the display and mixed sound on the speakers. Everything is built from GStreamer pipelines
//! whose elements are chosen by probing the machine (see [`probe`]).
//!
//! It must not know about meetings, LiveKit, WebRTC, SDP, ICE or D-Bus: the meeting session
//! exchanges plain RTP packets with it through the narrow, GStreamer-free interface below, and
//! the daemon reads its counters. No GStreamer type crosses this crate's public API.
//!
//! ## The interface
//!
//! Sending (the session forwards each packet to its `TrackLocalStaticRTP`):
//! - [`probe::probe_h264_encoder`] once at start-up → [`EncoderChoice`] (its
//!   [`EncoderChoice::report`] goes into `Health`);
//! - [`VideoSender::start`] → `(VideoSender, tokio::sync::mpsc::Receiver<bytes::Bytes>)`: H.264
//!   RTP, packetization-mode 1, constrained baseline where the encoder allows, SPS/PPS before
//!   every IDR; [`VideoSender::request_keyframe`] on PLI/FIR,
//!   [`VideoSender::set_target_bitrate`] from the congestion estimate,
//!   [`VideoSender::set_camera_enabled`], [`VideoSender::set_paused`] (dynacast: nobody
//!   watches);
//! - [`AudioSender::start`] → `(AudioSender, Receiver<Bytes>)`: Opus RTP, 48 kHz, 20 ms, in-band
//!   FEC; [`AudioSender::set_mic_muted`].
//!
//! Receiving: [`Receiver::start`], then per remote track [`Receiver::add_track`] with a
//! [`RemoteTrack`] (id, [`RemoteCodec`], payload type), [`Receiver::push_rtp`] for every packet
//! (never blocks; drops when a track's queue is full), [`Receiver::remove_track`];
//! [`Receiver::set_active_speaker`] and screen shares drive the layout; failures of one track
//! arrive as [`ReceiverEvent`]s and never stop the others;
//! [`ReceiverEvent::KeyframeNeeded`] asks the session for a PLI; [`Receiver::layout`] gives
//! the size each remote video is drawn at (for LiveKit's `UpdateTrackSettings`).
//!
//! Counters ([`VideoSendStats`], [`AudioSendStats`], [`ReceiverStats`]) serialize with serde
//! for `status --json`; [`EncoderChoice::report`] is the encoder line for `Health`. The test
//! pattern carries a [`picture_clock`] for glass-to-glass latency measurements.
//!
//! Packets are whole RTP packets (header included) in [`bytes::Bytes`]; SSRC and sequence
//! numbers are the engine's own and the session may rewrite them.
//!
//! Threads: the engine's callbacks run on GStreamer streaming threads and only touch atomics,
//! short-held mutexes and non-blocking channel sends; bus messages are handled on one thread
//! per pipeline. Every call of the interface above returns quickly except the probe.

#![warn(missing_docs)]

mod audio_send;
mod elements;
mod error;
pub mod layout;
pub mod picture_clock;
pub mod probe;
mod receive;
pub mod rtp;
mod send;
pub mod source;
mod status;
mod video_send;

pub use audio_send::{AudioSendStats, AudioSender, AudioSenderConfig};
pub use error::MediaError;
pub use probe::{DecoderChoice, EncoderCandidate, EncoderChoice, EncoderKind, EncoderSettings};
pub use receive::{
    Receiver, ReceiverConfig, ReceiverEvent, ReceiverStats, RemoteCodec, RemoteTrack, TrackStats,
};
pub use source::{
    AudioSinkSetting, CameraSetting, CameraSource, MicrophoneSetting, MicrophoneSource,
    VideoSinkSetting,
};
pub use status::MediaStatus;
pub use video_send::{VideoSendStats, VideoSender, VideoSenderConfig};

/// Initialises GStreamer (idempotent). Every constructor calls it; call it early to fail fast
/// when GStreamer is missing.
pub fn init() -> Result<(), MediaError> {
    gstreamer::init().map_err(|e| MediaError::Init(e.to_string()))
}

/// The GStreamer version in use, e.g. `GStreamer 1.22.0`, for `Health`.
pub fn gstreamer_version() -> String {
    gstreamer::version_string().to_string()
}
