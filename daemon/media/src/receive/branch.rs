//! One remote track's branch: a bin from the appsrc the session pushes RTP into to the
//! decoder (and, for audio, the level meter), with probes on its streaming threads that count
//! frames, note the picture size and turn the decoder's keyframe requests into events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::shared::Shared;
use super::stats::TrackCounters;
use super::{ReceiverConfig, RemoteCodec, RemoteTrack, PIPELINE};
use crate::elements;
use crate::picture_clock;
use crate::MediaError;

pub(super) struct Track {
    pub(super) info: RemoteTrack,
    pub(super) decoder: String,
    pub(super) bin: gst::Bin,
    pub(super) appsrc: gst_app::AppSrc,
    pub(super) mixer_pad: gst::Pad,
    pub(super) counters: Arc<TrackCounters>,
}

/// The caps of a track's RTP packets (for RED, of the Opus inside).
pub(super) fn rtp_caps(codec: RemoteCodec, payload_type: u8) -> gst::Caps {
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

pub(super) fn build_track_bin(
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
