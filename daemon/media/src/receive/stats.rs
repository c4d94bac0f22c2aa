//! The receiver's counters: atomics updated on the streaming threads, and the snapshots
//! [`Receiver::stats`](super::Receiver::stats) gives.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use super::branch::Track;
use super::RemoteCodec;

/// Counters of one remote track.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrackStats {
    /// The track id.
    pub id: String,
    /// Its codec.
    pub codec: RemoteCodec,
    /// The decoder element in use (`avdec_h264`, `vah264dec`, `opusdec`, ...).
    pub decoder: String,
    /// RTP packets accepted by [`Receiver::push_rtp`](super::Receiver::push_rtp).
    pub packets_received: u64,
    /// RTP packets dropped because the track's queue was full.
    pub packets_dropped: u64,
    /// Decoded video frames (0 for audio).
    pub decoded_frames: u64,
    /// Size of the last decoded video frame.
    pub frame_size: Option<(u32, u32)>,
    /// Audio level (RMS, dBFS, loudest channel) over the last 100 ms; `None` before any
    /// audio or for video.
    pub audio_level_dbfs: Option<f64>,
    /// Capture-to-decode latency of the last picture that carried a
    /// [`crate::picture_clock`] (the test pattern does), in ms; `None` otherwise.
    pub picture_latency_ms: Option<u32>,
}

/// Counters of the receiver.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ReceiverStats {
    /// Decoded remote video frames since the receiver started, all tracks (removed ones
    /// included).
    pub received_video_frames: u64,
    /// The video sink in use (`fakesink`, `kmssink`, `autovideosink`).
    pub video_sink: String,
    /// The audio sink in use (`fakesink`, `alsasink`).
    pub audio_sink: String,
    /// The tracks being received, in the order they were added.
    pub tracks: Vec<TrackStats>,
    /// Tracks removed after an error, with the error.
    pub failed_tracks: Vec<(String, String)>,
    /// An error of the shared pipeline, if any.
    pub error: Option<String>,
}

#[derive(Default)]
pub(super) struct TrackCounters {
    pub(super) packets: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) frames: AtomicU64,
    pub(super) width: AtomicI32,
    pub(super) height: AtomicI32,
    /// f64 bits of the last RMS level; u64::MAX = none yet.
    pub(super) level_bits: AtomicU64,
    pub(super) last_keyframe_request_ms: AtomicU64,
    /// Latency read from the last picture clock; u32::MAX = none.
    pub(super) picture_latency_ms: AtomicU32,
}

pub(super) fn track_stats(t: &Track) -> TrackStats {
    let c = &t.counters;
    let (w, h) = (
        c.width.load(Ordering::Relaxed),
        c.height.load(Ordering::Relaxed),
    );
    let level = c.level_bits.load(Ordering::Relaxed);
    TrackStats {
        id: t.info.id.clone(),
        codec: t.info.codec,
        decoder: t.decoder.clone(),
        packets_received: c.packets.load(Ordering::Relaxed),
        packets_dropped: c.dropped.load(Ordering::Relaxed),
        decoded_frames: c.frames.load(Ordering::Relaxed),
        frame_size: (w > 0 && h > 0).then_some((w as u32, h as u32)),
        audio_level_dbfs: (level != u64::MAX).then(|| f64::from_bits(level)),
        picture_latency_ms: match c.picture_latency_ms.load(Ordering::Relaxed) {
            u32::MAX => None,
            ms => Some(ms),
        },
    }
}
