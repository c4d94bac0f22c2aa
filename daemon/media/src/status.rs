//! One snapshot of the whole engine, in the shape `visio-roomctl status --json` shows under
//! `media`.

use crate::{
    AudioSendStats, AudioSender, EncoderChoice, Receiver, ReceiverStats, VideoSendStats,
    VideoSender,
};

/// What the room receives and sends right now.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MediaStatus {
    /// Decoded remote video frames since joining (0 when not receiving).
    pub received_video_frames: u64,
    /// The encoder probe's outcome, e.g. `v4l2h264enc: not present; …; x264enc: chosen`.
    pub encoder_report: Option<String>,
    /// The video being sent (codec, encoder, size, counters), if any.
    pub video_sent: Option<VideoSendStats>,
    /// The audio being sent, if any.
    pub audio_sent: Option<AudioSendStats>,
    /// The remote tracks and sinks, if receiving.
    pub receiving: Option<ReceiverStats>,
}

impl MediaStatus {
    /// Collects the counters of whichever parts are running.
    pub fn collect(
        encoder: Option<&EncoderChoice>,
        video: Option<&VideoSender>,
        audio: Option<&AudioSender>,
        receiver: Option<&Receiver>,
    ) -> MediaStatus {
        let receiving = receiver.map(Receiver::stats);
        MediaStatus {
            received_video_frames: receiving.as_ref().map_or(0, |r| r.received_video_frames),
            encoder_report: encoder.map(EncoderChoice::report),
            video_sent: video.map(VideoSender::stats),
            audio_sent: audio.map(AudioSender::stats),
            receiving,
        }
    }
}
