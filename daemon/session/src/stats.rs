//! The session's media counters, readable from the daemon while the session runs.

use std::sync::{Arc, Mutex};

use visio_room_media::{
    AudioSendStats, AudioSender, Receiver, ReceiverStats, VideoSendStats, VideoSender,
};

/// Media status for `status --json` under `media`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct MediaStatus {
    /// Decoded remote video frames since joining (all tracks).
    pub received_video_frames: u64,
    /// What is sent: codec, encoder, size, counters (`None` before media starts).
    pub video: Option<VideoSendStats>,
    /// The microphone sender.
    pub audio: Option<AudioSendStats>,
    /// The receiver, per track.
    pub receiver: Option<ReceiverStats>,
    /// The encoder probe's report (which encoder and why).
    pub encoder_report: Option<String>,
    /// RTP packets received from the SFU on all remote tracks.
    pub rtp_packets_received: u64,
    /// Keyframes requested by viewers (PLI/FIR).
    pub keyframe_requests: u64,
    /// Times the signalling connection was lost and the same participant resumed.
    pub resumes: u64,
    /// Times the meeting was rejoined from scratch (a resume was not possible).
    pub rejoins: u64,
    /// The LiveKit server the meeting's media goes through (`wss://host[:port]`), once the
    /// Meet API named it.
    pub media_server: Option<String>,
    /// How the media travels once connected: `udp`, `tcp`, `turn/udp`, `turn/tcp`, `turn/tls`.
    pub media_path: Option<&'static str>,
}

#[derive(Default)]
pub(crate) struct Refs {
    pub video: Option<Arc<VideoSender>>,
    pub audio: Option<Arc<AudioSender>>,
    pub receiver: Option<Arc<Receiver>>,
    pub encoder_report: Option<String>,
}

#[derive(Default)]
pub(crate) struct Shared {
    pub refs: Mutex<Refs>,
    pub rtp_packets_received: std::sync::atomic::AtomicU64,
    pub keyframe_requests: std::sync::atomic::AtomicU64,
    pub resumes: std::sync::atomic::AtomicU64,
    pub rejoins: std::sync::atomic::AtomicU64,
    pub media_server: Mutex<Option<String>>,
    pub media_path: Mutex<Option<&'static str>>,
}

impl Shared {
    /// Records how the media travels.
    pub fn set_media_path(&self, path: &'static str) {
        *self.media_path.lock().unwrap_or_else(|e| e.into_inner()) = Some(path);
    }

    /// Records the LiveKit server in use (scheme, host and port only: never the token).
    pub fn set_media_server(&self, url: &url::Url) {
        let server = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        *self.media_server.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
    }

    pub fn snapshot(&self) -> MediaStatus {
        use std::sync::atomic::Ordering::Relaxed;
        let refs = self.refs.lock().unwrap_or_else(|e| e.into_inner());
        let receiver = refs.receiver.as_ref().map(|r| r.stats());
        MediaStatus {
            received_video_frames: receiver.as_ref().map_or(0, |r| r.received_video_frames),
            video: refs.video.as_ref().map(|v| v.stats()),
            audio: refs.audio.as_ref().map(|a| a.stats()),
            receiver,
            encoder_report: refs.encoder_report.clone(),
            rtp_packets_received: self.rtp_packets_received.load(Relaxed),
            keyframe_requests: self.keyframe_requests.load(Relaxed),
            resumes: self.resumes.load(Relaxed),
            rejoins: self.rejoins.load(Relaxed),
            media_server: self
                .media_server
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            media_path: *self.media_path.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}
