//! The room's own media for a session: the media engine's senders and receiver, our WebRTC
//! tracks, and the one place their mute state is set.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use visio_room_media::{AudioSender, Receiver, ReceiverEvent, VideoSender};
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;

use crate::congestion::BitrateController;
use crate::participant::{Effect, Sending};
use crate::stats::Shared;

use super::{CAMERA_CID, MICROPHONE_CID, STREAM_ID};

/// The running media engine objects and our WebRTC tracks (kept across reconnects).
pub(super) struct Media {
    pub(super) video: Option<Arc<VideoSender>>,
    pub(super) audio: Option<Arc<AudioSender>>,
    pub(super) receiver: Option<Arc<Receiver>>,
    pub(super) receiver_events: Option<mpsc::UnboundedReceiver<ReceiverEvent>>,
    pub(super) camera_track: Option<Arc<TrackLocalStaticRTP>>,
    pub(super) mic_track: Option<Arc<TrackLocalStaticRTP>>,
    pub(super) pumps: Vec<tokio::task::JoinHandle<()>>,
    /// Sets the video encoder's bitrate from the SFU's reports (kept across reconnects).
    pub(super) bitrate: Option<BitrateController>,
    /// Time base of the controller.
    pub(super) started: std::time::Instant,
}

impl Media {
    pub(super) fn none() -> Self {
        Media {
            video: None,
            audio: None,
            receiver: None,
            receiver_events: None,
            camera_track: None,
            mic_track: None,
            pumps: Vec::new(),
            bitrate: None,
            started: std::time::Instant::now(),
        }
    }
}

/// Sets the pipelines as `effect` says: the only place their mute state is set. `false` when
/// the effect is not about the pipelines.
pub(super) fn set_pipelines(media: &Media, effect: &Effect) -> bool {
    match effect {
        Effect::Microphone { muted } => {
            if let Some(a) = &media.audio {
                a.set_mic_muted(*muted);
            }
        }
        Effect::Camera { enabled } => {
            if let Some(v) = &media.video {
                v.set_camera_enabled(*enabled);
            }
        }
        _ => return false,
    }
    true
}

pub(super) async fn start_media(
    settings: &crate::config::MediaSettings,
    min_video_bitrate_bps: u32,
    sending: Sending,
    shared: &Arc<Shared>,
) -> Result<Media, String> {
    let settings = settings.clone();
    let bitrate = BitrateController::new(min_video_bitrate_bps, settings.video.encoder.bitrate_bps);
    let camera_enabled = sending.camera_enabled;
    let mic_muted = sending.mic_muted;
    // Probing and pipeline start-up block: keep them off the async runtime.
    let started = tokio::task::spawn_blocking(move || {
        // The probe does not initialise GStreamer itself.
        visio_room_media::init().map_err(|e| format!("GStreamer is not usable: {e}"))?;
        let encoder = match settings.encoder.clone() {
            Some(e) => e,
            None => visio_room_media::probe::probe_h264_encoder(
                &visio_room_media::EncoderCandidate::default_order(),
                &settings.video.camera,
            )
            .map_err(|e| format!("no usable H.264 encoder: {e}"))?,
        };
        let (receiver, receiver_events) = Receiver::start(settings.receiver.clone())
            .map_err(|e| format!("cannot start playing remote media: {e}"))?;
        let mut audio_config = settings.audio.clone();
        if audio_config.voice_processing && audio_config.echo_probe.is_none() {
            audio_config.echo_probe = Some(receiver.echo_probe_name().to_owned());
        }
        let (audio, audio_rx) = AudioSender::start(audio_config)
            .map_err(|e| format!("cannot start the microphone: {e}"))?;
        audio.set_mic_muted(mic_muted);
        let (video, video_rx) = VideoSender::start(settings.video.clone(), &encoder)
            .map_err(|e| format!("cannot start the camera: {e}"))?;
        video.set_camera_enabled(camera_enabled);
        Ok::<_, String>((
            encoder,
            receiver,
            receiver_events,
            audio,
            audio_rx,
            video,
            video_rx,
        ))
    })
    .await
    .map_err(|e| format!("media start-up panicked: {e}"))??;
    let (encoder, receiver, receiver_events, audio, audio_rx, video, video_rx) = started;
    tracing::info!(report = %encoder.report(), "media started");
    let video = Arc::new(video);
    let audio = Arc::new(audio);
    let receiver = Arc::new(receiver);
    {
        let mut refs = shared.refs.lock().unwrap_or_else(|e| e.into_inner());
        refs.video = Some(video.clone());
        refs.audio = Some(audio.clone());
        refs.receiver = Some(receiver.clone());
        refs.encoder_report = Some(encoder.report());
    }
    let camera_track = Arc::new(TrackLocalStaticRTP::new(
        crate::rtc::h264_capability(),
        CAMERA_CID.to_owned(),
        STREAM_ID.to_owned(),
    ));
    let mic_track = Arc::new(TrackLocalStaticRTP::new(
        crate::rtc::opus_capability(),
        MICROPHONE_CID.to_owned(),
        STREAM_ID.to_owned(),
    ));
    let pumps = vec![
        tokio::spawn(pump(video_rx, camera_track.clone())),
        tokio::spawn(pump(audio_rx, mic_track.clone())),
    ];
    Ok(Media {
        video: Some(video),
        audio: Some(audio),
        receiver: Some(receiver),
        receiver_events: Some(receiver_events),
        camera_track: Some(camera_track),
        mic_track: Some(mic_track),
        pumps,
        bitrate: Some(bitrate),
        started: std::time::Instant::now(),
    })
}

/// Forwards the media engine's RTP to the WebRTC track (which rewrites SSRC and payload type
/// for each peer connection it is bound to; with none bound, packets are dropped).
async fn pump(mut rx: mpsc::Receiver<Bytes>, track: Arc<TrackLocalStaticRTP>) {
    while let Some(packet) = rx.recv().await {
        if let Err(e) = track.write(&packet).await {
            tracing::trace!(error = %e, "RTP packet not sent");
        }
    }
}
