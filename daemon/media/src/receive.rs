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

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use tokio::sync::mpsc;

use crate::elements::{self, BusWatch};
use crate::layout::{self, TileRole};
use crate::picture_clock;
use crate::probe::DecoderChoice;
use crate::rtp::RtpHeader;
use crate::source::{AudioSinkSetting, VideoSinkSetting};
use crate::MediaError;

const PIPELINE: &str = "receiver";
/// Track bins are named `rx-N`; nothing else in the pipeline is.
const TRACK_BIN_PREFIX: &str = "rx-";

/// Where a bus message comes from.
enum Origin {
    /// Inside the track bin of this name, which was in the pipeline when asked.
    Track(gst::glib::GString),
    /// The shared part (canvas, compositor, mixer, sinks) or the pipeline itself.
    Shared,
    /// A track bin already taken out of the pipeline: a late message, ignored.
    Removed,
}

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

/// Counters of one remote track.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrackStats {
    /// The track id.
    pub id: String,
    /// Its codec.
    pub codec: RemoteCodec,
    /// The decoder element in use (`avdec_h264`, `vah264dec`, `opusdec`, ...).
    pub decoder: String,
    /// RTP packets accepted by [`Receiver::push_rtp`].
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
struct TrackCounters {
    packets: AtomicU64,
    dropped: AtomicU64,
    frames: AtomicU64,
    width: AtomicI32,
    height: AtomicI32,
    /// f64 bits of the last RMS level; u64::MAX = none yet.
    level_bits: AtomicU64,
    last_keyframe_request_ms: AtomicU64,
    /// Latency read from the last picture clock; u32::MAX = none.
    picture_latency_ms: AtomicU32,
}

struct Track {
    info: RemoteTrack,
    decoder: String,
    bin: gst::Bin,
    appsrc: gst_app::AppSrc,
    mixer_pad: gst::Pad,
    counters: Arc<TrackCounters>,
}

struct State {
    tracks: Vec<Track>,
    active_speaker: Option<String>,
    failed: Vec<(String, String)>,
    error: Option<String>,
    next_bin: u64,
    /// The last layout reported with [`ReceiverEvent::LayoutChanged`].
    reported: Vec<(String, Option<layout::Rect>)>,
}

struct Shared {
    pipeline: gst::Pipeline,
    compositor: gst::Element,
    audiomixer: gst::Element,
    state: Mutex<State>,
    layout_dirty: AtomicBool,
    total_frames: Arc<AtomicU64>,
    events: mpsc::UnboundedSender<ReceiverEvent>,
    config: ReceiverConfig,
    started: Instant,
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

fn track_stats(t: &Track) -> TrackStats {
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

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Unlinks and frees a track's branch. Releasing the mixer pad first unblocks a
    /// streaming thread waiting on the mixer, so the bin can then stop.
    fn dispose(&self, track: Track) {
        let mixer = if track.info.codec.is_video() {
            &self.compositor
        } else {
            &self.audiomixer
        };
        if let Some(src) = track.bin.static_pad("src") {
            let _ = src.unlink(&track.mixer_pad);
        }
        mixer.release_request_pad(&track.mixer_pad);
        let _ = track.bin.set_state(gst::State::Null);
        let _ = self.pipeline.remove(&track.bin);
        tracing::info!(track = %track.info.id, "track removed");
    }

    fn apply_layout(&self) {
        let mut state = self.lock();
        let videos: Vec<&Track> = state
            .tracks
            .iter()
            .filter(|t| t.info.codec.is_video())
            .collect();
        let roles: Vec<TileRole> = videos
            .iter()
            .map(|t| {
                if t.info.screen_share {
                    TileRole::ScreenShare
                } else if state.active_speaker.as_deref() == Some(t.info.id.as_str()) {
                    TileRole::ActiveSpeaker
                } else {
                    TileRole::Camera
                }
            })
            .collect();
        let shown = layout::shown(&roles, self.config.max_videos);
        let shown_roles: Vec<TileRole> = roles
            .iter()
            .zip(&shown)
            .filter(|(_, s)| **s)
            .map(|(r, _)| *r)
            .collect();
        let mut cells = layout::arrange(
            self.config.width as i32,
            self.config.height as i32,
            &shown_roles,
        )
        .into_iter();
        let mut tiles = Vec::with_capacity(videos.len());
        for (track, is_shown) in videos.iter().zip(&shown) {
            let pad = &track.mixer_pad;
            let cell = if *is_shown { cells.next() } else { None };
            let Some(cell) = cell else {
                // Not drawn (its branch still decodes whatever arrives).
                pad.set_property("alpha", 0.0f64);
                tiles.push((track.info.id.clone(), None));
                continue;
            };
            let c = &track.counters;
            let size = (
                c.width.load(Ordering::Relaxed),
                c.height.load(Ordering::Relaxed),
            );
            let r = layout::fit(cell, Some(size));
            pad.set_property("alpha", 1.0f64);
            pad.set_property("xpos", r.x);
            pad.set_property("ypos", r.y);
            pad.set_property("width", r.width);
            pad.set_property("height", r.height);
            tiles.push((track.info.id.clone(), Some(r)));
        }
        drop(videos);
        if state.reported != tiles {
            state.reported = tiles.clone();
            drop(state);
            let _ = self.events.send(ReceiverEvent::LayoutChanged { tiles });
        }
    }

    fn on_message(&self, msg: &gst::Message) {
        match msg.view() {
            gst::MessageView::Error(err) => {
                let reason = format!("{} ({})", err.error(), elements::source_name(msg));
                match self.origin(msg) {
                    Origin::Track(bin_name) => {
                        // Found and removed under one lock: a concurrent `remove_track` can
                        // neither shift what an index points to nor take it first unnoticed.
                        let track = {
                            let mut state = self.lock();
                            let Some(index) =
                                state.tracks.iter().position(|t| t.bin.name() == bin_name)
                            else {
                                tracing::debug!(bin = %bin_name, %reason, "error of a track already removed");
                                return;
                            };
                            let track = state.tracks.remove(index);
                            state.failed.push((track.info.id.clone(), reason.clone()));
                            track
                        };
                        tracing::warn!(track = %track.info.id, %reason, debug = ?err.debug(), "remote track failed, removing it");
                        let _ = self.events.send(ReceiverEvent::TrackFailed {
                            track_id: track.info.id.clone(),
                            reason,
                        });
                        self.dispose(track);
                        self.layout_dirty.store(true, Ordering::Release);
                    }
                    Origin::Removed => {
                        tracing::debug!(%reason, "error of a track already removed");
                    }
                    Origin::Shared => {
                        tracing::error!(%reason, debug = ?err.debug(), "receiver pipeline failed");
                        self.lock().error = Some(reason.clone());
                        let _ = self.events.send(ReceiverEvent::Failed { reason });
                    }
                }
            }
            gst::MessageView::Warning(w) => {
                tracing::debug!(warning = %w.error(), source = %elements::source_name(msg), "receiver warning");
            }
            gst::MessageView::Latency(_) => {
                let _ = self.pipeline.recalculate_latency();
            }
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure() else { return };
                if s.name() != "level" {
                    return;
                }
                let Origin::Track(bin_name) = self.origin(msg) else {
                    return;
                };
                let Ok(rms) = s.get::<gst::glib::ValueArray>("rms") else {
                    return;
                };
                let loudest = rms
                    .iter()
                    .filter_map(|v| v.get::<f64>().ok())
                    .fold(f64::NEG_INFINITY, f64::max);
                let state = self.lock();
                if let Some(track) = state.tracks.iter().find(|t| t.bin.name() == bin_name) {
                    track
                        .counters
                        .level_bits
                        .store(loudest.to_bits(), Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }

    /// Where a message comes from: a track's bin (by name, to be looked up under the same
    /// lock as whatever is done with the track), the shared part, or a bin already removed.
    fn origin(&self, msg: &gst::Message) -> Origin {
        let pipeline = self.pipeline.upcast_ref::<gst::Object>();
        let Some(mut object) = msg.src().cloned() else {
            return Origin::Shared;
        };
        loop {
            match object.parent() {
                Some(parent) if parent == *pipeline => {
                    let name = object.name();
                    return if name.starts_with(TRACK_BIN_PREFIX) {
                        Origin::Track(name)
                    } else {
                        Origin::Shared
                    };
                }
                Some(parent) => object = parent,
                // The pipeline itself, or a track bin that was taken out of it after the
                // message was posted.
                None if object == *pipeline => return Origin::Shared,
                None => return Origin::Removed,
            }
        }
    }

    fn keyframe_needed(&self, counters: &TrackCounters, bin_name: &str) {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = counters.last_keyframe_request_ms.load(Ordering::Relaxed);
        if last != 0 && now < last + 500 {
            return;
        }
        counters
            .last_keyframe_request_ms
            .store(now, Ordering::Relaxed);
        // try_lock: this runs on a streaming thread, which must never wait.
        let track_id = match self.state.try_lock() {
            Ok(state) => state
                .tracks
                .iter()
                .find(|t| t.bin.name() == bin_name)
                .map(|t| t.info.id.clone()),
            Err(_) => None,
        };
        if let Some(track_id) = track_id {
            let _ = self.events.send(ReceiverEvent::KeyframeNeeded { track_id });
        }
    }
}

/// The caps of a track's RTP packets (for RED, of the Opus inside).
fn rtp_caps(codec: RemoteCodec, payload_type: u8) -> gst::Caps {
    let (media, clock_rate) = if codec.is_video() {
        ("video", 90_000i32)
    } else {
        ("audio", 48_000i32)
    };
    gst::Caps::builder("application/x-rtp")
        .field("media", media)
        .field("clock-rate", clock_rate)
        .field("encoding-name", codec.encoding_name())
        .field("payload", i32::from(payload_type))
        .build()
}

fn build_track_bin(
    name: &str,
    track: &RemoteTrack,
    config: &ReceiverConfig,
    counters: Arc<TrackCounters>,
    total_frames: Arc<AtomicU64>,
    shared: std::sync::Weak<Shared>,
) -> Result<(gst::Bin, gst_app::AppSrc), MediaError> {
    let bin = gst::Bin::with_name(name);
    // RED: the caps are those of the Opus packets `rtpreddec` gives, whose payload type only
    // the first packet tells (see `push_rtp`); until then the appsrc has none.
    let caps = rtp_caps(track.codec, track.payload_type);
    let appsrc = gst_app::AppSrc::builder();
    let appsrc = if track.codec == RemoteCodec::Red {
        appsrc
    } else {
        appsrc.caps(&caps)
    };
    let appsrc = appsrc
        .format(gst::Format::Time)
        .is_live(true)
        .do_timestamp(true)
        .max_bytes(2_000_000)
        .block(false)
        .build();
    appsrc.set_property_from_str("leaky-type", "downstream");
    let jitter = elements::make("rtpjitterbuffer")?;
    jitter.set_property("latency", config.jitter_latency_ms);
    jitter.set_property("do-lost", true);
    let mut chain: Vec<gst::Element> = vec![appsrc.clone().upcast()];
    if track.codec == RemoteCodec::Red {
        // Before the jitter buffer: a packet rebuilt from its successor's redundant copy
        // comes out just before that successor, late, and the jitter buffer puts it back
        // in order (or drops it when the packet itself arrived after all).
        let red = elements::make("rtpreddec")?;
        red.set_property("pt", i32::from(track.payload_type));
        chain.push(red);
    }
    chain.push(jitter);
    let decoder = elements::make(config.decoders.for_codec(track.codec))?;
    if decoder.find_property("max-errors").is_some() {
        decoder.set_property(
            "max-errors",
            config.max_decode_errors.min(i32::MAX as u32) as i32,
        );
    }
    match track.codec {
        RemoteCodec::Vp8 => chain.push(elements::make("rtpvp8depay")?),
        RemoteCodec::Vp9 => chain.push(elements::make("rtpvp9depay")?),
        RemoteCodec::H264 => {
            chain.push(elements::make("rtph264depay")?);
            chain.push(elements::make("h264parse")?);
        }
        RemoteCodec::Opus | RemoteCodec::Red => chain.push(elements::make("rtpopusdepay")?),
    }
    if let Some(depay) = chain.last() {
        if depay.find_property("request-keyframe").is_some() {
            depay.set_property("request-keyframe", true);
        }
    }
    chain.push(decoder.clone());
    if !track.codec.is_video() {
        chain.push(elements::make("audioconvert")?);
        chain.push(elements::make("audioresample")?);
        let level = elements::make("level")?;
        level.set_property("post-messages", true);
        chain.push(level);
    }
    let refs: Vec<&gst::Element> = chain.iter().collect();
    elements::add_chain(&bin, &refs, PIPELINE)?;
    let last = chain.last().expect("chain is not empty");
    let src = last
        .static_pad("src")
        .ok_or_else(|| MediaError::build(PIPELINE, "no src pad at the end of a track"))?;
    let ghost = gst::GhostPad::with_target(&src).map_err(|e| MediaError::build(PIPELINE, e))?;
    bin.add_pad(&ghost)
        .map_err(|e| MediaError::build(PIPELINE, e))?;

    if track.codec.is_video() {
        // Count decoded frames and note their size: atomics only, on the streaming thread.
        let decoded = decoder
            .static_pad("src")
            .ok_or_else(|| MediaError::build(PIPELINE, "decoder has no src pad"))?;
        let counters = counters.clone();
        let shared_for_caps = shared.clone();
        // Only this streaming thread touches it: the lock is never contended.
        let video_info: Mutex<Option<gst_video::VideoInfo>> = Mutex::new(None);
        decoded.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                    counters.frames.fetch_add(1, Ordering::Relaxed);
                    total_frames.fetch_add(1, Ordering::Relaxed);
                    if let Ok(Some(vi)) = video_info.lock().as_deref() {
                        if let Some(ms) = read_picture_clock(buffer, vi) {
                            counters.picture_latency_ms.store(ms, Ordering::Relaxed);
                        }
                    }
                } else if let Some(gst::PadProbeData::Event(event)) = &info.data {
                    if let gst::EventView::Caps(c) = event.view() {
                        if let Ok(vi) = gst_video::VideoInfo::from_caps(c.caps()) {
                            counters.width.store(vi.width() as i32, Ordering::Relaxed);
                            counters.height.store(vi.height() as i32, Ordering::Relaxed);
                            if let Ok(mut slot) = video_info.lock() {
                                *slot = Some(vi);
                            }
                            if let Some(shared) = shared_for_caps.upgrade() {
                                shared.layout_dirty.store(true, Ordering::Release);
                            }
                        }
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    // Depayloaders and decoders ask upstream for a keyframe after loss or a decode error;
    // the request ends at the appsrc and is turned into an event for the session (PLI).
    if let Some(pad) = appsrc.static_pad("src") {
        let bin_name = name.to_owned();
        pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(event)) = &info.data {
                if gst_video::ForceKeyUnitEvent::is(event) {
                    if let Some(shared) = shared.upgrade() {
                        shared.keyframe_needed(&counters, &bin_name);
                    }
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
    Ok((bin, appsrc))
}

/// The capture-to-now latency of a decoded picture carrying a picture clock.
fn read_picture_clock(buffer: &gst::Buffer, info: &gst_video::VideoInfo) -> Option<u32> {
    if !info.format_info().is_yuv() {
        return None;
    }
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), info).ok()?;
    let stride = frame.plane_stride()[0] as usize;
    let luma = frame.plane_data(0).ok()?;
    let stamped = picture_clock::read(luma, stride, info.width(), info.height())?;
    picture_clock::latency_ms(stamped, picture_clock::now_ms())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::time::Duration;

    fn headless() -> ReceiverConfig {
        ReceiverConfig {
            video_sink: VideoSinkSetting::None,
            audio_sink: AudioSinkSetting::None,
            width: 320,
            height: 180,
            fps: 15,
            ..ReceiverConfig::default()
        }
    }

    /// Posts an error from inside a track's bin, as a decoder that gave up would. `false` when
    /// the track is not there (any more).
    fn post_error(receiver: &Receiver, track_id: &str) -> bool {
        let bin = receiver
            .shared
            .lock()
            .tracks
            .iter()
            .find(|t| t.info.id == track_id)
            .map(|t| t.bin.clone());
        let Some(element) = bin.and_then(|b| b.iterate_elements().into_iter().flatten().next())
        else {
            return false;
        };
        let msg = gst::message::Error::builder(gst::CoreError::Failed, "injected by the test")
            .src(&element)
            .build();
        element.post_message(msg).is_ok()
    }

    #[test]
    fn a_failing_track_is_removed_by_name_while_others_are_removed_concurrently() {
        let (receiver, _events) = Receiver::start(headless()).expect("receiver starts");
        let receiver = Arc::new(receiver);
        for round in 0..25 {
            let ids: Vec<String> = (0..12).map(|i| format!("TR_{round}_{i}")).collect();
            for id in &ids {
                receiver
                    .add_track(RemoteTrack {
                        id: id.clone(),
                        codec: RemoteCodec::Opus,
                        payload_type: 111,
                        screen_share: false,
                    })
                    .expect("track added");
            }
            let failing: Vec<String> = ids.iter().skip(1).step_by(2).cloned().collect();
            let removed: Vec<String> = ids.iter().step_by(2).cloned().collect();
            // Errors of the odd tracks reach the bus thread while the session removes the
            // even ones: each must take its own track and nothing else.
            let poster = {
                let receiver = receiver.clone();
                let failing = failing.clone();
                std::thread::spawn(move || {
                    failing
                        .iter()
                        .filter(|id| !post_error(&receiver, id))
                        .cloned()
                        .collect::<Vec<_>>()
                })
            };
            for id in &removed {
                if let Err(e) = receiver.remove_track(id) {
                    panic!("round {round}: {id} was taken by another track's error: {e}");
                }
            }
            let not_posted = poster.join().expect("poster thread");
            assert!(
                not_posted.is_empty(),
                "round {round}: tracks gone before their own error: {not_posted:?}"
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while !receiver.stats().tracks.is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let stats = receiver.stats();
            let left: Vec<&str> = stats.tracks.iter().map(|t| t.id.as_str()).collect();
            assert!(left.is_empty(), "round {round}: tracks left: {left:?}");
            let failed: BTreeSet<&str> = stats
                .failed_tracks
                .iter()
                .map(|(id, _)| id.as_str())
                .filter(|id| id.starts_with(&format!("TR_{round}_")))
                .collect();
            let expected: BTreeSet<&str> = failing.iter().map(String::as_str).collect();
            assert_eq!(failed, expected, "round {round}");
            assert_eq!(
                stats.error, None,
                "round {round}: the shared pipeline failed"
            );
        }
    }
}
