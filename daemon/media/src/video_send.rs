//! The camera → H.264 → RTP sender.
//!
//! ```text
//! test:   videotestsrc pattern=ball is-live=true ! video/x-raw,I420,WxH@fps (picture clock
//!         stamped here) ! timeoverlay ─────────────────────────────────────────────────┐
//! V4L2:   v4l2src device=… ! image/jpeg ! jpegdec  (or video/x-raw)                   ├─▶
//!         videoconvert ! videoscale ! videorate ! video/x-raw,WxH@fps ─────────────────┘
//!   ▶ valve (camera off = drop) ! queue (leaky, 2 frames) ! <probed encoder>
//!   ! video/x-h264,profile=… ! h264parse config-interval=-1
//!   ! rtph264pay mtu=1200 pt=… aggregate-mode=zero-latency ! appsink ─▶ RTP packets
//! camera H.264 pass-through: v4l2src ! video/x-h264,WxH@fps ! valve ! h264parse ! rtph264pay …
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use tokio::sync::mpsc;

use crate::elements::{self, BusWatch};
use crate::picture_clock;
use crate::probe::{self, EncoderChoice, EncoderKind, EncoderSettings};
use crate::send::{rtp_appsink, watch_sender, SendCounters};
use crate::source::CameraSource;
use crate::MediaError;

const PIPELINE: &str = "video sender";

/// How the video sender is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoSenderConfig {
    /// Where frames come from.
    pub camera: CameraSource,
    /// Sent width in pixels.
    pub width: u32,
    /// Sent height in pixels.
    pub height: u32,
    /// Sent frame rate.
    pub fps: u32,
    /// RTP payload type negotiated for H.264 by the meeting session.
    pub payload_type: u8,
    /// Largest RTP packet, bytes (1200 leaves room for SRTP and TURN overheads).
    pub mtu: u32,
    /// Initial bitrate and keyframe interval.
    pub encoder: EncoderSettings,
    /// Capacity of the outgoing packet channel; when the consumer falls behind, packets are
    /// dropped (and counted) rather than blocking the pipeline.
    pub channel_capacity: usize,
}

impl Default for VideoSenderConfig {
    fn default() -> Self {
        VideoSenderConfig {
            camera: CameraSource::Test,
            width: 1280,
            height: 720,
            fps: 30,
            payload_type: 102,
            mtu: 1200,
            encoder: EncoderSettings::default(),
            channel_capacity: 1024,
        }
    }
}

/// What the video sender has done, for `status --json` and `Health`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VideoSendStats {
    /// Always `"H264"`.
    pub codec: &'static str,
    /// The encoder element (`x264enc`, `v4l2h264enc`, `camera-h264`, ...).
    pub encoder: String,
    /// Sent width.
    pub width: u32,
    /// Sent height.
    pub height: u32,
    /// Sent frame rate.
    pub fps: u32,
    /// Whether the camera is on (off: nothing is sent).
    pub camera_enabled: bool,
    /// Whether sending is paused because nobody watches (dynacast, see
    /// [`VideoSender::set_paused`]).
    pub paused: bool,
    /// Current target bitrate, bit/s.
    pub target_bitrate_bps: u32,
    /// Complete frames sent (RTP marker bits).
    pub frames_sent: u64,
    /// RTP packets produced.
    pub packets_sent: u64,
    /// RTP bytes produced (headers included).
    pub bytes_sent: u64,
    /// IDR pictures sent.
    pub keyframes_sent: u64,
    /// Packets dropped because the consumer did not keep up.
    pub packets_dropped: u64,
    /// Frames sent between the last keyframe request and its keyframe (0 = the very next frame).
    pub last_keyframe_request_latency_frames: Option<u64>,
    /// The last pipeline error (camera unplugged, encoder failure), if any.
    pub error: Option<String>,
}

/// What decides whether frames reach the encoder.
#[derive(Clone, Copy)]
struct Gate {
    camera_enabled: bool,
    paused: bool,
}

impl Gate {
    fn open(self) -> bool {
        self.camera_enabled && !self.paused
    }
}

/// A running video sender. Dropping it stops the pipeline.
pub struct VideoSender {
    pipeline: gst::Pipeline,
    encoder: Option<gst::Element>,
    encoder_kind: EncoderKind,
    encoder_name: String,
    valve: gst::Element,
    counters: Arc<SendCounters>,
    gate: Mutex<Gate>,
    target_bitrate: AtomicU32,
    config: VideoSenderConfig,
    watch: BusWatch,
}

impl VideoSender {
    /// Builds and starts the sender with the encoder chosen by [`probe::probe_h264_encoder`].
    /// Returns the sender and the channel on which its RTP packets arrive.
    pub fn start(
        config: VideoSenderConfig,
        encoder: &EncoderChoice,
    ) -> Result<(VideoSender, mpsc::Receiver<Bytes>), MediaError> {
        crate::init()?;
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let counters = Arc::new(SendCounters::default());
        let pipeline = gst::Pipeline::with_name("video-sender");
        let kind = encoder.candidate.kind;
        let passthrough = kind == EncoderKind::CameraH264;

        let mut chain: Vec<gst::Element> = Vec::new();
        let raw_caps = gst_video::VideoCapsBuilder::new()
            .width(config.width as i32)
            .height(config.height as i32)
            .framerate(gst::Fraction::new(config.fps as i32, 1))
            .pixel_aspect_ratio(gst::Fraction::new(1, 1))
            .build();
        match (&config.camera, passthrough) {
            (CameraSource::V4l2 { device, .. }, true) => {
                chain.push(v4l2src(device)?);
                chain.push(elements::capsfilter(
                    &gst::Caps::builder("video/x-h264")
                        .field("width", config.width as i32)
                        .field("height", config.height as i32)
                        .field("framerate", gst::Fraction::new(config.fps as i32, 1))
                        .build(),
                )?);
            }
            (_, true) => {
                return Err(MediaError::build(
                    PIPELINE,
                    "camera H.264 pass-through was chosen without a V4L2 camera",
                ))
            }
            (CameraSource::Test, false) => {
                let src = gst::ElementFactory::make("videotestsrc")
                    .property("is-live", true)
                    .build()
                    .map_err(|_| MediaError::MissingElement {
                        element: "videotestsrc".into(),
                    })?;
                src.set_property_from_str("pattern", "ball");
                chain.push(src);
                let i420 = gst_video::VideoInfo::builder(
                    gst_video::VideoFormat::I420,
                    config.width,
                    config.height,
                )
                .fps(gst::Fraction::new(config.fps as i32, 1))
                .build()
                .map_err(|e| MediaError::build(PIPELINE, e))?;
                let filter = elements::capsfilter(
                    &i420.to_caps().map_err(|e| MediaError::build(PIPELINE, e))?,
                )?;
                stamp_picture_clock(&filter, i420);
                chain.push(filter);
                let overlay = elements::make("timeoverlay")?;
                overlay.set_property_from_str("halignment", "right");
                overlay.set_property_from_str("valignment", "bottom");
                overlay.set_property_from_str("time-mode", "running-time");
                chain.push(overlay);
            }
            (CameraSource::V4l2 { device, formats }, false) => {
                chain.push(v4l2src(device)?);
                let sized = |name: &str| {
                    gst::Caps::builder(name)
                        .field("width", config.width as i32)
                        .field("height", config.height as i32)
                        .build()
                };
                if formats.mjpeg {
                    // Prefer the configured size; accept any other.
                    let mut caps = sized("image/jpeg");
                    caps.merge(gst::Caps::builder("image/jpeg").build());
                    chain.push(elements::capsfilter(&caps)?);
                    chain.push(elements::make("jpegdec")?);
                } else {
                    let mut caps = sized("video/x-raw");
                    caps.merge(gst::Caps::builder("video/x-raw").build());
                    chain.push(elements::capsfilter(&caps)?);
                }
                chain.push(elements::make("videoconvert")?);
                chain.push(elements::make("videoscale")?);
                chain.push(elements::make("videorate")?);
                chain.push(elements::capsfilter(&raw_caps)?);
            }
        }

        let valve = elements::make_named("valve", "camera-valve")?;
        chain.push(valve.clone());
        let mut encoder_element = None;
        if !passthrough {
            // Decouples capture from encoding: if the encoder falls behind, old frames are
            // dropped instead of stalling the camera.
            let queue = gst::ElementFactory::make("queue")
                .property("max-size-buffers", 2u32)
                .property("max-size-bytes", 0u32)
                .property("max-size-time", 0u64)
                .build()
                .map_err(|_| MediaError::MissingElement {
                    element: "queue".into(),
                })?;
            queue.set_property_from_str("leaky", "downstream");
            chain.push(queue);
            chain.push(elements::make("videoconvert")?);
            let enc = encoder.candidate.build(&config.encoder)?;
            encoder_element = Some(enc.clone());
            chain.push(enc);
            chain.push(elements::capsfilter(&probe::h264_output_caps())?);
        }
        let parse = elements::make("h264parse")?;
        parse.set_property("config-interval", -1i32);
        chain.push(parse);
        let pay = elements::make("rtph264pay")?;
        pay.set_property("mtu", config.mtu);
        pay.set_property("pt", u32::from(config.payload_type));
        pay.set_property_from_str("aggregate-mode", "zero-latency");
        chain.push(pay);
        let sink = rtp_appsink(tx, counters.clone(), true);
        chain.push(sink.upcast());

        let refs: Vec<&gst::Element> = chain.iter().collect();
        elements::add_chain(&pipeline, &refs, PIPELINE)?;
        elements::start_pipeline(&pipeline, PIPELINE)?;
        let watch = watch_sender(&pipeline, "media-video-send", counters.clone());
        counters.running.store(true, Ordering::Release);
        tracing::info!(
            encoder = encoder.encoder_name(),
            width = config.width,
            height = config.height,
            fps = config.fps,
            "video sender started"
        );
        Ok((
            VideoSender {
                pipeline,
                encoder: encoder_element,
                encoder_kind: kind,
                encoder_name: encoder.encoder_name().to_owned(),
                valve,
                counters,
                gate: Mutex::new(Gate {
                    camera_enabled: true,
                    paused: false,
                }),
                target_bitrate: AtomicU32::new(config.encoder.bitrate_bps),
                config,
                watch,
            },
            rx,
        ))
    }

    /// Asks the encoder for a keyframe (answering a PLI/FIR from the SFU). With the software
    /// encoders it comes with the next encoded frame. Does not block.
    pub fn request_keyframe(&self) {
        self.counters.note_keyframe_request();
        // No `all_headers`: the encoder would push SPS/PPS as a separate buffer, which the
        // payloader marks as a frame of its own; h264parse (config-interval=-1) already puts
        // them inside every IDR access unit.
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(false)
            .build();
        let delivered = match &self.encoder {
            Some(encoder) => encoder
                .static_pad("src")
                .is_some_and(|pad| pad.send_event(event)),
            // Pass-through: ask the source; most UVC cameras ignore it and rely on their own
            // keyframe interval.
            None => self.valve.send_event(event),
        };
        tracing::debug!(delivered, "keyframe requested");
    }

    /// Follows the congestion estimate: sets the encoder's target bitrate (bit/s) while
    /// running. Ignored for camera pass-through.
    pub fn set_target_bitrate(&self, bps: u32) {
        let bps = bps.clamp(50_000, 20_000_000);
        self.target_bitrate.store(bps, Ordering::Relaxed);
        if let Some(encoder) = &self.encoder {
            probe::set_bitrate(encoder, self.encoder_kind, bps);
        }
    }

    /// Turns the camera on or off. Off: frames are dropped before the encoder, so nothing
    /// from the camera leaves the room and no RTP is sent (the session should also mark the
    /// track muted). On: sending resumes with a keyframe.
    pub fn set_camera_enabled(&self, enabled: bool) {
        self.update_gate(|gate| gate.camera_enabled = enabled);
        tracing::info!(enabled, "camera");
    }

    /// Pauses or resumes sending for the SFU's dynacast: LiveKit sends the publisher a
    /// `SubscribedQualityUpdate`, and when no quality of the track is wanted (nobody
    /// subscribes, or every viewer hides it) the session pauses; when one is wanted again it
    /// resumes, with a keyframe first. Paused, frames are dropped before the encoder, so no
    /// CPU is spent encoding. Independent of [`VideoSender::set_camera_enabled`]: video is sent
    /// only when the camera is on and the sender is not paused.
    pub fn set_paused(&self, paused: bool) {
        self.update_gate(|gate| gate.paused = paused);
        tracing::info!(paused, "video sending paused for dynacast");
    }

    /// Changes the gate and opens or closes the valve to match, under one lock so that
    /// camera and dynacast changes from different tasks cannot leave the valve wrong.
    fn update_gate(&self, change: impl FnOnce(&mut Gate)) {
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let was_open = gate.open();
        change(&mut gate);
        let open = gate.open();
        if open && !was_open {
            // Asked before the valve opens, so the first frame through is the keyframe.
            self.request_keyframe();
        }
        self.valve.set_property("drop", !open);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> VideoSendStats {
        let c = &self.counters;
        let gate = *self.gate.lock().unwrap_or_else(|p| p.into_inner());
        VideoSendStats {
            codec: "H264",
            encoder: self.encoder_name.clone(),
            width: self.config.width,
            height: self.config.height,
            fps: self.config.fps,
            camera_enabled: gate.camera_enabled,
            paused: gate.paused,
            target_bitrate_bps: self.target_bitrate.load(Ordering::Relaxed),
            frames_sent: c.frames.load(Ordering::Relaxed),
            packets_sent: c.packets.load(Ordering::Relaxed),
            bytes_sent: c.bytes.load(Ordering::Relaxed),
            keyframes_sent: c.keyframes.load(Ordering::Relaxed),
            packets_dropped: c.dropped.load(Ordering::Relaxed),
            last_keyframe_request_latency_frames: c.keyframe_latency(),
            error: c.error(),
        }
    }

    /// Stops the pipeline (also done on drop).
    pub fn stop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        self.watch.stop();
    }
}

impl Drop for VideoSender {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Draws the wall clock into every test picture as it leaves the source
/// ([`crate::picture_clock`]), for glass-to-glass latency measurements.
fn stamp_picture_clock(filter: &gst::Element, info: gst_video::VideoInfo) {
    let Some(pad) = filter.static_pad("src") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = probe.data.as_mut() {
            let buffer = buffer.make_mut();
            if let Ok(mut frame) = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &info)
            {
                let stride = frame.plane_stride()[0] as usize;
                if let Ok(luma) = frame.plane_data_mut(0) {
                    picture_clock::stamp(
                        luma,
                        stride,
                        info.width(),
                        info.height(),
                        picture_clock::now_ms(),
                    );
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

fn v4l2src(device: &std::path::Path) -> Result<gst::Element, MediaError> {
    let src = elements::make("v4l2src")?;
    src.set_property("device", device.to_string_lossy().as_ref());
    Ok(src)
}
