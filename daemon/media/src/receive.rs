//! Remote tracks: RTP in, decoded video composed on the display, decoded audio mixed to the
//! speakers.
//!
//! ```text
//! per video track (bin "rx-N"):
//!   appsrc (application/x-rtp, VP8|VP9|H264) ! rtpjitterbuffer ! rtpvp8depay|rtpvp9depay|
//!   rtph264depay ! [h264parse] ! decoder (from the decoder probe: hardware when it works,
//!   else vp8dec|vp9dec|avdec_h264) ─▶ compositor.sink_N (position and size from the layout)
//! videotestsrc pattern=black (canvas) ─▶ compositor ! video/x-raw,WxH@fps ! video sink
//!
//! per audio track (bin "rx-N"):
//!   appsrc (application/x-rtp, OPUS or RED) ! [rtpreddec] ! rtpjitterbuffer ! rtpopusdepay ! opusdec
//!   ! audioconvert ! audioresample ! level ─▶ audiomixer.sink_N
//! audiotestsrc wave=silence (keeps the mixer running) ─▶ audiomixer ! S16LE 48 kHz stereo
//!   ! webrtcechoprobe (what the room hears, for the sender's echo canceller) ! audio sink
//! ```
//!
//! A track's branch lives in its own bin: an error inside it removes that bin only and is
//! reported as [`ReceiverEvent::TrackFailed`]; the rest keeps playing.
//!
//! The parts, by responsibility:
//! - this module: the public types and [`Receiver`], which builds the shared part (canvas,
//!   compositor, mixer, sinks) and adds, feeds and removes tracks;
//! - `branch`: one track's bin (appsrc to decoder) and the probes on its streaming threads;
//! - `shared`: the state shared with the bus and streaming threads, a track's disposal and
//!   the layout of the videos on the canvas;
//! - `messages`: what the pipeline's bus says (a track's error, audio levels, latency);
//! - `stats`: the counters and their snapshots.

mod branch;
mod messages;
mod shared;
mod stats;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use tokio::sync::mpsc;

use crate::elements::{self, BusWatch};
use crate::layout;
use crate::probe::DecoderChoice;
use crate::rtp::RtpHeader;
use crate::source::{AudioSinkSetting, VideoSinkSetting};
use crate::MediaError;

use branch::{build_track_bin, rtp_caps, Track};
use shared::{Shared, State};
use stats::{track_stats, TrackCounters};
pub use stats::{ReceiverStats, TrackStats};

const PIPELINE: &str = "receiver";
/// Track bins are named `rx-N`; nothing else in the pipeline is.
const TRACK_BIN_PREFIX: &str = "rx-";

/// The codec of a remote track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteCodec {
    /// VP8 video (what browsers send by default).
    Vp8,
    /// VP9 video.
    Vp9,
    /// H.264 video.
    H264,
    /// Opus audio.
    Opus,
    /// Opus inside RED (RFC 2198 redundant audio, what livekit-client sends by default):
    /// depacketized to the primary Opus, with a lost packet rebuilt from the next one's
    /// redundant copy.
    Red,
}

impl RemoteCodec {
    /// Parses a MIME type as found in SDP/LiveKit `TrackInfo.mime_type` (`video/VP8`,
    /// `audio/opus`, case-insensitive); `None` for codecs the engine cannot decode.
    pub fn from_mime_type(mime: &str) -> Option<RemoteCodec> {
        match mime.to_ascii_lowercase().as_str() {
            "video/vp8" => Some(RemoteCodec::Vp8),
            "video/vp9" => Some(RemoteCodec::Vp9),
            "video/h264" => Some(RemoteCodec::H264),
            "audio/opus" => Some(RemoteCodec::Opus),
            "audio/red" => Some(RemoteCodec::Red),
            _ => None,
        }
    }

    /// Whether this is a video codec.
    pub fn is_video(self) -> bool {
        !matches!(self, RemoteCodec::Opus | RemoteCodec::Red)
    }

    fn encoding_name(self) -> &'static str {
        match self {
            RemoteCodec::Vp8 => "VP8",
            RemoteCodec::Vp9 => "VP9",
            RemoteCodec::H264 => "H264",
            // What leaves `rtpreddec` is Opus.
            RemoteCodec::Opus | RemoteCodec::Red => "OPUS",
        }
    }
}

/// A remote track to receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteTrack {
    /// The session's id for it (LiveKit's `TR_...` sid).
    pub id: String,
    /// Its codec.
    pub codec: RemoteCodec,
    /// The RTP payload type negotiated for it.
    pub payload_type: u8,
    /// A screen share (takes the main area of the display).
    pub screen_share: bool,
}

/// How the receiver is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Where video is shown.
    pub video_sink: VideoSinkSetting,
    /// Where audio is played.
    pub audio_sink: AudioSinkSetting,
    /// Display (canvas) width.
    pub width: u32,
    /// Display (canvas) height.
    pub height: u32,
    /// Display frame rate.
    pub fps: u32,
    /// Jitter buffer latency, milliseconds.
    pub jitter_latency_ms: u32,
    /// Consecutive undecodable frames after which a video track is given up as broken
    /// (removed and reported). Isolated errors only trigger a keyframe request.
    pub max_decode_errors: u32,
    /// The decoder per codec, from [`crate::probe::probe_video_decoders`]; the default is
    /// the software decoders.
    pub decoders: DecoderChoice,
    /// Most remote videos drawn at once (the rest are not shown, see [`layout::shown`]).
    pub max_videos: usize,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            video_sink: VideoSinkSetting::Auto,
            audio_sink: AudioSinkSetting::Auto,
            width: 1280,
            height: 720,
            fps: 30,
            jitter_latency_ms: 150,
            max_decode_errors: 300,
            decoders: DecoderChoice::default(),
            max_videos: 9,
        }
    }
}

/// Something the session or the daemon should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// A track's branch failed and was removed; the others continue.
    TrackFailed {
        /// The track.
        track_id: String,
        /// The GStreamer error.
        reason: String,
    },
    /// A track's decoder lost sync (packet loss, decode error): the session should send a
    /// PLI for it. At most one every 500 ms per track.
    KeyframeNeeded {
        /// The track.
        track_id: String,
    },
    /// The shared part of the pipeline (compositor, sinks) failed: nothing is shown or
    /// played until the receiver is restarted.
    Failed {
        /// The GStreamer error.
        reason: String,
    },
    /// Where the remote videos are drawn changed (a video came or went, the active speaker
    /// changed, a video's size became known): every video track with its rectangle on the
    /// canvas, `None` when it is not shown. The session tells the SFU these sizes.
    LayoutChanged {
        /// `(track id, rectangle or None)`, in arrival order.
        tiles: Vec<(String, Option<layout::Rect>)>,
    },
}

/// A running receiver. Dropping it stops the pipeline.
pub struct Receiver {
    shared: Arc<Shared>,
    echo_probe: String,
    video_sink: String,
    audio_sink: String,
    watch: BusWatch,
}

static RECEIVER_SEQ: AtomicU64 = AtomicU64::new(0);

impl Receiver {
    /// Builds and starts the receiver (canvas, mixer and sinks; no tracks yet). Returns it and
    /// the channel of its [`ReceiverEvent`]s.
    pub fn start(
        config: ReceiverConfig,
    ) -> Result<(Receiver, mpsc::UnboundedReceiver<ReceiverEvent>), MediaError> {
        crate::init()?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let pipeline = gst::Pipeline::with_name("receiver");
        let seq = RECEIVER_SEQ.fetch_add(1, Ordering::Relaxed);
        let echo_probe = format!("visio-echo-probe-{}-{seq}", std::process::id());

        // Video: a black canvas keeps the compositor producing frames with no track.
        let canvas_caps = gst_video::VideoCapsBuilder::new()
            .width(config.width as i32)
            .height(config.height as i32)
            .framerate(gst::Fraction::new(config.fps as i32, 1))
            .build();
        let canvas = elements::make("videotestsrc")?;
        canvas.set_property("is-live", true);
        canvas.set_property_from_str("pattern", "black");
        let canvas_filter = elements::capsfilter(&canvas_caps)?;
        let compositor = elements::make_named("compositor", "compositor")?;
        compositor.set_property_from_str("background", "black");
        let out_filter = elements::capsfilter(&canvas_caps)?;
        let (video_sink, video_sink_name) = video_sink(&config.video_sink)?;
        elements::add_chain(&pipeline, &[&canvas, &canvas_filter], PIPELINE)?;
        let mut video_out = vec![&compositor, &out_filter];
        let convert = elements::make("videoconvert")?;
        if video_sink_name != "fakesink" {
            video_out.push(&convert);
        }
        video_out.push(&video_sink);
        elements::add_chain(&pipeline, &video_out, PIPELINE)?;
        canvas_filter
            .link(&compositor)
            .map_err(|e| MediaError::build(PIPELINE, e))?;

        // Audio: silence keeps the mixer running; the echo probe sees what is played.
        let silence = elements::make("audiotestsrc")?;
        silence.set_property("is-live", true);
        silence.set_property_from_str("wave", "silence");
        silence.set_property("samplesperbuffer", 480i32);
        let audiomixer = elements::make_named("audiomixer", "audiomixer")?;
        let mix_filter = elements::capsfilter(
            &gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .field("rate", 48_000i32)
                .field("channels", 2i32)
                .field("layout", "interleaved")
                .build(),
        )?;
        let probe = elements::make_named("webrtcechoprobe", &echo_probe)?;
        let aconvert = elements::make("audioconvert")?;
        let aresample = elements::make("audioresample")?;
        let (audio_sink, audio_sink_name) = audio_sink(&config.audio_sink)?;
        elements::add_chain(
            &pipeline,
            &[
                &silence,
                &audiomixer,
                &mix_filter,
                &probe,
                &aconvert,
                &aresample,
                &audio_sink,
            ],
            PIPELINE,
        )?;

        let shared = Arc::new(Shared {
            pipeline: pipeline.clone(),
            compositor,
            audiomixer,
            state: Mutex::new(State {
                tracks: Vec::new(),
                active_speaker: None,
                failed: Vec::new(),
                error: None,
                next_bin: 0,
                reported: Vec::new(),
            }),
            layout_dirty: AtomicBool::new(false),
            total_frames: Arc::new(AtomicU64::new(0)),
            events: events_tx,
            config,
            started: Instant::now(),
        });
        let weak = Arc::downgrade(&shared);
        let weak_tick = weak.clone();
        elements::start_pipeline(&pipeline, PIPELINE)?;
        let watch = BusWatch::start(
            &pipeline,
            PIPELINE,
            move |msg| {
                if let Some(shared) = weak.upgrade() {
                    shared.on_message(msg);
                }
            },
            move || {
                if let Some(shared) = weak_tick.upgrade() {
                    if shared.layout_dirty.swap(false, Ordering::AcqRel) {
                        shared.apply_layout();
                    }
                }
            },
        );
        tracing::info!(
            video_sink = video_sink_name,
            audio_sink = audio_sink_name,
            "receiver started"
        );
        Ok((
            Receiver {
                shared,
                echo_probe,
                video_sink: video_sink_name.to_owned(),
                audio_sink: audio_sink_name.to_owned(),
                watch,
            },
            events_rx,
        ))
    }

    /// The name of this receiver's `webrtcechoprobe`, for [`crate::AudioSenderConfig::echo_probe`].
    pub fn echo_probe_name(&self) -> &str {
        &self.echo_probe
    }

    /// Starts receiving a remote track: builds its branch and links it to the compositor or
    /// the mixer.
    pub fn add_track(&self, track: RemoteTrack) -> Result<(), MediaError> {
        let shared = &self.shared;
        let mut state = shared.lock();
        if state.tracks.iter().any(|t| t.info.id == track.id) {
            return Err(MediaError::DuplicateTrack(track.id));
        }
        let bin_name = format!("{TRACK_BIN_PREFIX}{}", state.next_bin);
        state.next_bin += 1;
        let counters = Arc::new(TrackCounters {
            level_bits: AtomicU64::new(u64::MAX),
            picture_latency_ms: AtomicU32::new(u32::MAX),
            ..TrackCounters::default()
        });
        let (bin, appsrc) = build_track_bin(
            &bin_name,
            &track,
            &shared.config,
            counters.clone(),
            shared.total_frames.clone(),
            Arc::downgrade(shared),
        )?;
        let mixer = if track.codec.is_video() {
            &shared.compositor
        } else {
            &shared.audiomixer
        };
        shared
            .pipeline
            .add(&bin)
            .map_err(|e| MediaError::build(PIPELINE, e))?;
        let Some(mixer_pad) = mixer.request_pad_simple("sink_%u") else {
            let _ = shared.pipeline.remove(&bin);
            return Err(MediaError::build(PIPELINE, "the mixer gave no input pad"));
        };
        if track.codec.is_video() {
            mixer_pad.set_property("zorder", 1u32 + state.tracks.len() as u32);
        }
        let src = bin
            .static_pad("src")
            .ok_or_else(|| MediaError::build(PIPELINE, "track bin has no src pad"))?;
        if let Err(e) = src.link(&mixer_pad) {
            mixer.release_request_pad(&mixer_pad);
            let _ = shared.pipeline.remove(&bin);
            return Err(MediaError::build(
                PIPELINE,
                format!("linking the track: {e:?}"),
            ));
        }
        if bin.sync_state_with_parent().is_err() {
            mixer.release_request_pad(&mixer_pad);
            let _ = bin.set_state(gst::State::Null);
            let _ = shared.pipeline.remove(&bin);
            return Err(MediaError::Start {
                pipeline: PIPELINE,
                reason: format!("the branch of track {} did not start", track.id),
            });
        }
        tracing::info!(track = %track.id, codec = ?track.codec, bin = %bin_name, "receiving track");
        state.tracks.push(Track {
            decoder: shared.config.decoders.for_codec(track.codec).to_owned(),
            info: track,
            bin,
            appsrc,
            mixer_pad,
            counters,
        });
        drop(state);
        shared.apply_layout();
        Ok(())
    }

    /// Hands one RTP packet of `track_id` to its branch. Never blocks: when the track's queue
    /// is full the oldest data is dropped.
    pub fn push_rtp(&self, track_id: &str, packet: Bytes) -> Result<(), MediaError> {
        let (appsrc, counters, codec) = {
            let state = self.shared.lock();
            let track = state
                .tracks
                .iter()
                .find(|t| t.info.id == track_id)
                .ok_or_else(|| MediaError::UnknownTrack(track_id.to_owned()))?;
            (
                track.appsrc.clone(),
                track.counters.clone(),
                track.info.codec,
            )
        };
        if codec == RemoteCodec::Red && appsrc.caps().is_none() {
            // The Opus inside, as `rtpreddec` will give it; a packet without it is dropped.
            let Some(opus) = RtpHeader::parse(&packet)
                .and_then(|h| crate::rtp::red_primary_payload_type(h.payload(&packet)))
            else {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            };
            appsrc.set_caps(Some(&rtp_caps(RemoteCodec::Opus, opus)));
        }
        let level = appsrc.current_level_bytes();
        match appsrc.push_buffer(gst::Buffer::from_slice(packet)) {
            Ok(_) => {
                counters.packets.fetch_add(1, Ordering::Relaxed);
                if level >= appsrc.max_bytes() {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(_) => {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                Err(MediaError::NotRunning(PIPELINE))
            }
        }
    }

    /// Stops receiving a track and frees its branch.
    pub fn remove_track(&self, track_id: &str) -> Result<(), MediaError> {
        let track = {
            let mut state = self.shared.lock();
            let index = state
                .tracks
                .iter()
                .position(|t| t.info.id == track_id)
                .ok_or_else(|| MediaError::UnknownTrack(track_id.to_owned()))?;
            state.tracks.remove(index)
        };
        self.shared.dispose(track);
        self.shared.apply_layout();
        Ok(())
    }

    /// Marks the video track of the active speaker (from LiveKit's `SpeakersChanged`), shown
    /// larger; `None` for an even grid.
    pub fn set_active_speaker(&self, track_id: Option<&str>) {
        self.shared.lock().active_speaker = track_id.map(str::to_owned);
        self.shared.layout_dirty.store(true, Ordering::Release);
    }

    /// Where each shown video track is drawn on the canvas now: `(track id, rectangle)`.
    pub fn layout(&self) -> Vec<(String, layout::Rect)> {
        let state = self.shared.lock();
        state
            .tracks
            .iter()
            .filter(|t| t.info.codec.is_video() && t.mixer_pad.property::<f64>("alpha") > 0.0)
            .map(|t| {
                let r = layout::Rect {
                    x: t.mixer_pad.property::<i32>("xpos"),
                    y: t.mixer_pad.property::<i32>("ypos"),
                    width: t.mixer_pad.property::<i32>("width"),
                    height: t.mixer_pad.property::<i32>("height"),
                };
                (t.info.id.clone(), r)
            })
            .collect()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ReceiverStats {
        let state = self.shared.lock();
        ReceiverStats {
            received_video_frames: self.shared.total_frames.load(Ordering::Relaxed),
            video_sink: self.video_sink.clone(),
            audio_sink: self.audio_sink.clone(),
            tracks: state.tracks.iter().map(track_stats).collect(),
            failed_tracks: state.failed.clone(),
            error: state.error.clone(),
        }
    }

    /// Stops the pipeline (also done on drop).
    pub fn stop(&mut self) {
        let _ = self.shared.pipeline.set_state(gst::State::Null);
        self.watch.stop();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn video_sink(setting: &VideoSinkSetting) -> Result<(gst::Element, &'static str), MediaError> {
    let resolved = setting.resolve();
    let factory = match resolved {
        VideoSinkSetting::None | VideoSinkSetting::Auto => "fakesink",
        VideoSinkSetting::Window => "autovideosink",
        VideoSinkSetting::Kms => "kmssink",
    };
    let sink = elements::make(factory)?;
    if factory == "fakesink" {
        sink.set_property("sync", false);
    }
    Ok((sink, factory))
}

fn audio_sink(setting: &AudioSinkSetting) -> Result<(gst::Element, &'static str), MediaError> {
    match setting.resolve() {
        AudioSinkSetting::Alsa(device) => {
            let sink = elements::make("alsasink")?;
            sink.set_property("device", device.as_str());
            Ok((sink, "alsasink"))
        }
        AudioSinkSetting::None | AudioSinkSetting::Auto => {
            // Clocked, so the mixer and the echo probe run in real time as with a speaker.
            let sink = elements::make("fakesink")?;
            sink.set_property("sync", true);
            Ok((sink, "fakesink"))
        }
    }
}

/// The receiver is shared between the session's tasks.
const _: fn() = || {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Receiver>();
};
