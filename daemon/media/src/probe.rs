//! Choosing the H.264 encoder (and the remote video decoders) by trying candidates in order
//! of preference.
//!
//! Order ([`EncoderCandidate::default_order`]): the camera's own H.264 (pass-through, only for
//! V4L2 cameras that offer it), V4L2 memory-to-memory (`v4l2h264enc`, e.g. Raspberry Pi 4),
//! VA-API (`vah264enc`, then the older `vaapih264enc`), then software: `x264enc` tuned for zero
//! latency, then `openh264enc`. Every candidate is *tried* — built into a small pipeline that
//! encodes a few test frames — before it is chosen, so a hardware encoder that is registered but
//! broken (no device, no VA display, missing firmware) falls back cleanly. The outcome of each
//! try is kept in [`EncoderChoice::report`] for the daemon's `Health`.

use std::fmt;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::elements;
use crate::source::CameraSource;
use crate::MediaError;

/// The family of an encoder candidate: it decides how bitrate is set and whether frames come
/// from the camera already encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderKind {
    /// The camera's own H.264 stream, parsed and packetized without re-encoding.
    CameraH264,
    /// `v4l2h264enc` (bitrate through `extra-controls`).
    V4l2M2m,
    /// `vah264enc` or `vaapih264enc` (bitrate in kbit/s).
    VaApi,
    /// `x264enc` (bitrate in kbit/s).
    X264,
    /// `openh264enc` (bitrate in bit/s).
    OpenH264,
    /// Any other element producing H.264; its bitrate is left alone. For tests and experiments.
    Other,
}

/// One encoder to try: an element factory and the properties to set on it (as strings, the way
/// `gst-launch-1.0` spells them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderCandidate {
    /// How the element is driven.
    pub kind: EncoderKind,
    /// The element factory name, e.g. `x264enc`. Unused for [`EncoderKind::CameraH264`].
    pub factory: String,
    /// Properties applied after creation, `(name, value)`.
    pub properties: Vec<(String, String)>,
}

impl EncoderCandidate {
    /// A candidate with no extra properties.
    pub fn new(kind: EncoderKind, factory: &str) -> Self {
        EncoderCandidate {
            kind,
            factory: factory.to_owned(),
            properties: Vec::new(),
        }
    }

    /// Adds a property.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.properties.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The preference order used by the appliance.
    pub fn default_order() -> Vec<EncoderCandidate> {
        vec![
            EncoderCandidate::new(EncoderKind::CameraH264, "camera-h264"),
            EncoderCandidate::new(EncoderKind::V4l2M2m, "v4l2h264enc"),
            EncoderCandidate::new(EncoderKind::VaApi, "vah264enc"),
            EncoderCandidate::new(EncoderKind::VaApi, "vaapih264enc"),
            EncoderCandidate::new(EncoderKind::X264, "x264enc")
                .with("tune", "zerolatency")
                .with("speed-preset", "ultrafast")
                .with("b-adapt", "false")
                .with("bframes", "0")
                .with("sliced-threads", "true"),
            EncoderCandidate::new(EncoderKind::OpenH264, "openh264enc")
                .with("usage-type", "camera")
                .with("rate-control", "bitrate")
                .with("complexity", "low"),
        ]
    }

    /// Builds the encoder element with its properties, bitrate and keyframe interval.
    pub(crate) fn build(&self, settings: &EncoderSettings) -> Result<gst::Element, MediaError> {
        let encoder = elements::make(&self.factory)?;
        for (name, value) in &self.properties {
            if encoder.find_property(name).is_none() {
                return Err(MediaError::build(
                    "encoder",
                    format!("{} has no property `{name}`", self.factory),
                ));
            }
            encoder.set_property_from_str(name, value);
        }
        match self.kind {
            EncoderKind::X264 => {
                encoder.set_property("key-int-max", settings.keyframe_interval_frames);
            }
            EncoderKind::OpenH264 => {
                encoder.set_property("gop-size", settings.keyframe_interval_frames);
            }
            EncoderKind::VaApi if encoder.find_property("key-int-max").is_some() => {
                encoder.set_property_from_str(
                    "key-int-max",
                    &settings.keyframe_interval_frames.to_string(),
                );
            }
            _ => {}
        }
        set_bitrate(&encoder, self.kind, settings.bitrate_bps);
        Ok(encoder)
    }
}

/// Sets the target bitrate on a running or new encoder of `kind`, in the unit it expects.
pub(crate) fn set_bitrate(encoder: &gst::Element, kind: EncoderKind, bps: u32) {
    let kbps = (bps / 1000).max(1);
    match kind {
        EncoderKind::X264 | EncoderKind::VaApi => {
            if encoder.find_property("bitrate").is_some() {
                encoder.set_property_from_str("bitrate", &kbps.to_string());
            }
        }
        EncoderKind::OpenH264 => encoder.set_property("bitrate", bps),
        EncoderKind::V4l2M2m => {
            let controls = gst::Structure::builder("controls")
                .field("video_bitrate", bps as i32)
                .build();
            encoder.set_property("extra-controls", &controls);
        }
        EncoderKind::CameraH264 | EncoderKind::Other => {}
    }
}

/// The encoder parameters that do not depend on the candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Initial target bitrate, bit/s.
    pub bitrate_bps: u32,
    /// Frames between periodic keyframes (keyframes on request come on top).
    pub keyframe_interval_frames: u32,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            bitrate_bps: 1_500_000,
            keyframe_interval_frames: 60,
        }
    }
}

/// What happened to one candidate during probing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Chosen: it encoded test frames.
    Chosen,
    /// Its plugin is not installed (or registered nothing on this machine, e.g. no VA display).
    NotPresent,
    /// Not applicable (e.g. camera pass-through with a camera that offers no H.264).
    Skipped(String),
    /// It exists but could not encode; the GStreamer error.
    Failed(String),
    /// Not tried, because an earlier candidate was chosen.
    NotTried,
}

/// One line of the probe report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeAttempt {
    /// The candidate's factory name.
    pub factory: String,
    /// What happened.
    pub outcome: ProbeOutcome,
}

/// The chosen encoder and how it was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderChoice {
    /// The candidate that works.
    pub candidate: EncoderCandidate,
    /// Every candidate, in order, with its outcome.
    pub attempts: Vec<ProbeAttempt>,
}

impl EncoderChoice {
    /// The chosen element's name (`x264enc`, `camera-h264`, ...).
    pub fn encoder_name(&self) -> &str {
        &self.candidate.factory
    }

    /// One line for `Health`, e.g.
    /// `v4l2h264enc: not present; vah264enc: not present; x264enc: chosen`.
    pub fn report(&self) -> String {
        report(&self.attempts)
    }
}

impl fmt::Display for EncoderChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report())
    }
}

fn report(attempts: &[ProbeAttempt]) -> String {
    attempts
        .iter()
        .filter(|a| a.outcome != ProbeOutcome::NotTried)
        .map(|a| {
            let outcome = match &a.outcome {
                ProbeOutcome::Chosen => "chosen".to_owned(),
                ProbeOutcome::NotPresent => "not present".to_owned(),
                ProbeOutcome::Skipped(why) => why.clone(),
                ProbeOutcome::Failed(why) => format!("failed ({why})"),
                ProbeOutcome::NotTried => unreachable!(),
            };
            format!("{}: {outcome}", a.factory)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// How long one candidate may take to give its first frame.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Tries `candidates` in order and returns the first that encodes test frames. Blocks for up
/// to a few seconds per broken candidate: call it from a blocking context (`spawn_blocking`).
pub fn probe_h264_encoder(
    candidates: &[EncoderCandidate],
    camera: &CameraSource,
) -> Result<EncoderChoice, MediaError> {
    // Like every other entry point: a probe must not be the one call that panics when
    // GStreamer was not initialised yet.
    crate::init()?;
    let mut attempts: Vec<ProbeAttempt> = candidates
        .iter()
        .map(|c| ProbeAttempt {
            factory: c.factory.clone(),
            outcome: ProbeOutcome::NotTried,
        })
        .collect();
    for (i, candidate) in candidates.iter().enumerate() {
        let outcome = try_candidate(candidate, camera);
        tracing::info!(encoder = %candidate.factory, ?outcome, "encoder probe");
        let chosen = outcome == ProbeOutcome::Chosen;
        attempts[i].outcome = outcome;
        if chosen {
            return Ok(EncoderChoice {
                candidate: candidate.clone(),
                attempts,
            });
        }
    }
    Err(MediaError::NoEncoder {
        report: report(&attempts),
    })
}

fn try_candidate(candidate: &EncoderCandidate, camera: &CameraSource) -> ProbeOutcome {
    if candidate.kind == EncoderKind::CameraH264 {
        return match camera {
            CameraSource::V4l2 { device, formats } if formats.h264 => {
                let launch = format!(
                    "v4l2src device={} num-buffers=5 ! video/x-h264 ! h264parse",
                    device.display()
                );
                run_trial(
                    gst::parse::bin_from_description(&launch, true).map_err(|e| e.to_string()),
                    &gst::Caps::builder("video/x-h264").build(),
                )
            }
            CameraSource::V4l2 { .. } => ProbeOutcome::Skipped("camera offers no H.264".to_owned()),
            CameraSource::Test => ProbeOutcome::Skipped("no camera".to_owned()),
        };
    }
    if !elements::exists(&candidate.factory) {
        return ProbeOutcome::NotPresent;
    }
    let bin = (|| -> Result<gst::Bin, String> {
        let bin = gst::Bin::new();
        let src = gst::ElementFactory::make("videotestsrc")
            .property("num-buffers", 10i32)
            .build()
            .map_err(|e| e.to_string())?;
        let caps = elements::capsfilter(
            &gst::Caps::builder("video/x-raw")
                .field("width", 320i32)
                .field("height", 240i32)
                .field("framerate", gst::Fraction::new(30, 1))
                .build(),
        )
        .map_err(|e| e.to_string())?;
        let convert = elements::make("videoconvert").map_err(|e| e.to_string())?;
        let encoder = candidate
            .build(&EncoderSettings::default())
            .map_err(|e| e.to_string())?;
        let profile = elements::capsfilter(&h264_output_caps()).map_err(|e| e.to_string())?;
        let parse = elements::make("h264parse").map_err(|e| e.to_string())?;
        elements::add_chain(
            &bin,
            &[&src, &caps, &convert, &encoder, &profile, &parse],
            "probe",
        )
        .map_err(|e| e.to_string())?;
        let pad = parse.static_pad("src").ok_or("h264parse has no src pad")?;
        bin.add_pad(&gst::GhostPad::with_target(&pad).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        Ok(bin)
    })();
    run_trial(bin, &gst::Caps::builder("video/x-h264").build())
}

/// The H.264 the engine sends: constrained baseline where the encoder can, which every
/// WebRTC H.264 decoder accepts; other profiles are allowed for encoders that cannot.
pub(crate) fn h264_output_caps() -> gst::Caps {
    gst::Caps::builder("video/x-h264")
        .field(
            "profile",
            gst::List::new(["constrained-baseline", "baseline", "main", "high"]),
        )
        .build()
}

/// Runs `bin` (which has one src pad producing `caps`) into an appsink until a first sample,
/// an error, or the timeout.
fn run_trial(bin: Result<gst::Bin, String>, caps: &gst::Caps) -> ProbeOutcome {
    let bin = match bin {
        Ok(bin) => bin,
        Err(reason) => return ProbeOutcome::Failed(reason),
    };
    let pipeline = gst::Pipeline::new();
    let sink = gst_app::AppSink::builder().caps(caps).sync(false).build();
    if let Err(e) = pipeline.add_many([bin.upcast_ref::<gst::Element>(), sink.upcast_ref()]) {
        return ProbeOutcome::Failed(e.to_string());
    }
    if let Err(e) = bin.link(&sink) {
        return ProbeOutcome::Failed(format!("does not produce {} ({e})", caps));
    }
    let outcome = if pipeline.set_state(gst::State::Playing).is_err() {
        ProbeOutcome::Failed(first_error(&pipeline).unwrap_or_else(|| "refused to start".into()))
    } else {
        match sink.try_pull_sample(gst::ClockTime::from_nseconds(
            TRIAL_TIMEOUT.as_nanos() as u64
        )) {
            Some(_) => ProbeOutcome::Chosen,
            None => ProbeOutcome::Failed(
                first_error(&pipeline).unwrap_or_else(|| "no frame within 5 s".into()),
            ),
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    outcome
}

fn first_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_mseconds(200),
        &[gst::MessageType::Error],
    )?;
    match msg.view() {
        gst::MessageView::Error(err) => Some(err.error().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lists_tried_candidates_in_order() {
        let attempts = vec![
            ProbeAttempt {
                factory: "v4l2h264enc".into(),
                outcome: ProbeOutcome::NotPresent,
            },
            ProbeAttempt {
                factory: "vah264enc".into(),
                outcome: ProbeOutcome::Failed("no VA display".into()),
            },
            ProbeAttempt {
                factory: "x264enc".into(),
                outcome: ProbeOutcome::Chosen,
            },
            ProbeAttempt {
                factory: "openh264enc".into(),
                outcome: ProbeOutcome::NotTried,
            },
        ];
        assert_eq!(
            report(&attempts),
            "v4l2h264enc: not present; vah264enc: failed (no VA display); x264enc: chosen"
        );
    }
}

/// The decoder chosen for each remote video codec, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecoderChoice {
    /// Decoder for H.264.
    pub h264: String,
    /// Decoder for VP8.
    pub vp8: String,
    /// Decoder for VP9.
    pub vp9: String,
    /// Every candidate tried, per codec, in order.
    pub attempts: Vec<ProbeAttempt>,
}

impl Default for DecoderChoice {
    /// The software decoders, without probing.
    fn default() -> Self {
        DecoderChoice {
            h264: "avdec_h264".to_owned(),
            vp8: "vp8dec".to_owned(),
            vp9: "vp9dec".to_owned(),
            attempts: Vec::new(),
        }
    }
}

impl DecoderChoice {
    /// The decoder for a remote codec (`opusdec` for Opus).
    pub fn for_codec(&self, codec: crate::RemoteCodec) -> &str {
        match codec {
            crate::RemoteCodec::H264 => &self.h264,
            crate::RemoteCodec::Vp8 => &self.vp8,
            crate::RemoteCodec::Vp9 => &self.vp9,
            crate::RemoteCodec::Opus | crate::RemoteCodec::Red => "opusdec",
        }
    }

    /// One line for `Health`, e.g. `vah264dec: not present; avdec_h264: chosen; …`.
    pub fn report(&self) -> String {
        report(&self.attempts)
    }
}

/// Hardware decoders first, then software, per codec.
pub const H264_DECODERS: &[&str] = &[
    "v4l2slh264dec",
    "v4l2h264dec",
    "vah264dec",
    "avdec_h264",
    "openh264dec",
];
/// VP8 decoders in order of preference.
pub const VP8_DECODERS: &[&str] = &["v4l2slvp8dec", "v4l2vp8dec", "vavp8dec", "vp8dec"];
/// VP9 decoders in order of preference.
pub const VP9_DECODERS: &[&str] = &["v4l2slvp9dec", "v4l2vp9dec", "vavp9dec", "vp9dec"];

/// Chooses a decoder per codec from the default lists ([`H264_DECODERS`], ...). Each present
/// candidate decodes a few frames made by a software encoder before it is chosen, so a
/// hardware decoder that is registered but broken is skipped. Blocks for up to a few
/// seconds; call it once at start-up and pass the result in
/// [`crate::ReceiverConfig::decoders`].
pub fn probe_video_decoders() -> Result<DecoderChoice, MediaError> {
    probe_video_decoders_from(H264_DECODERS, VP8_DECODERS, VP9_DECODERS)
}

/// [`probe_video_decoders`] with injected candidate lists.
pub fn probe_video_decoders_from(
    h264: &[&str],
    vp8: &[&str],
    vp9: &[&str],
) -> Result<DecoderChoice, MediaError> {
    crate::init()?;
    let mut attempts = Vec::new();
    // Each trial takes the path a remote track takes: payloader, depayloader, decoder.
    let h264 = probe_decoder(
        h264,
        "x264enc tune=zerolatency speed-preset=ultrafast ! video/x-h264,profile=constrained-baseline \
         ! rtph264pay config-interval=-1 ! rtph264depay ! h264parse",
        &mut attempts,
    )?;
    let vp8 = probe_decoder(
        vp8,
        "vp8enc deadline=1 ! rtpvp8pay ! rtpvp8depay",
        &mut attempts,
    )?;
    let vp9 = probe_decoder(
        vp9,
        "vp9enc deadline=1 cpu-used=8 ! rtpvp9pay ! rtpvp9depay",
        &mut attempts,
    )?;
    Ok(DecoderChoice {
        h264,
        vp8,
        vp9,
        attempts,
    })
}

fn probe_decoder(
    candidates: &[&str],
    encoder: &str,
    attempts: &mut Vec<ProbeAttempt>,
) -> Result<String, MediaError> {
    let first = attempts.len();
    for candidate in candidates {
        let outcome = if !elements::exists(candidate) {
            ProbeOutcome::NotPresent
        } else {
            // A live, endless source: a decoder must give a frame while the stream runs (one
            // that only gives frames when drained at the end of a stream is of no use), as raw
            // frames in system memory, as the compositor takes them.
            let launch = format!(
                "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
                 ! {encoder} ! {candidate} ! capsfilter caps=video/x-raw"
            );
            run_trial(
                gst::parse::bin_from_description(&launch, true).map_err(|e| e.to_string()),
                &gst::Caps::builder("video/x-raw").build(),
            )
        };
        tracing::info!(decoder = candidate, ?outcome, "decoder probe");
        let chosen = outcome == ProbeOutcome::Chosen;
        attempts.push(ProbeAttempt {
            factory: (*candidate).to_owned(),
            outcome,
        });
        if chosen {
            return Ok((*candidate).to_owned());
        }
    }
    Err(MediaError::NoDecoder {
        report: report(&attempts[first..]),
    })
}
