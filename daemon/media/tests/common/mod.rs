//! Real GStreamer pipelines the tests use as the "other side": generators of remote RTP and
//! decoders of what the room sends.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

pub fn init() {
    visio_room_media::init()
        .expect("GStreamer must be installed: run scripts/deps.d/media.sh (as root) first");
}

/// Receives packets from `rx` for `duration`.
pub fn collect(rx: &mut mpsc::Receiver<Bytes>, duration: Duration) -> Vec<Bytes> {
    let deadline = Instant::now() + duration;
    let mut packets = Vec::new();
    while Instant::now() < deadline {
        match rx.try_recv() {
            Ok(p) => packets.push(p),
            Err(mpsc::error::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(5)),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        }
    }
    packets
}

/// Drains whatever is queued now.
pub fn drain(rx: &mut mpsc::Receiver<Bytes>) -> Vec<Bytes> {
    let mut packets = Vec::new();
    while let Ok(p) = rx.try_recv() {
        packets.push(p);
    }
    packets
}

/// What a decode pipeline saw.
#[derive(Debug, Default)]
pub struct Decoded {
    pub frames: usize,
    pub width: i32,
    pub height: i32,
    /// For audio: the RMS level (dBFS) of each `level` message.
    pub levels: Vec<f64>,
}

/// Decodes captured RTP packets with a real GStreamer pipeline: `caps` for the appsrc,
/// `chain` from depayloader to raw (e.g. `rtph264depay ! h264parse ! avdec_h264`).
pub fn decode(packets: &[Bytes], caps: &str, chain: &str) -> Decoded {
    init();
    let launch = format!(
        "appsrc name=src format=time caps=\"{caps}\" ! {chain} ! appsink name=out sync=false"
    );
    let pipeline = gst::parse::launch(&launch)
        .expect("decode pipeline")
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for p in packets {
        src.push_buffer(gst::Buffer::from_slice(p.clone())).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut decoded = Decoded::default();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        decoded.frames += 1;
        if let Some(s) = sample.caps().and_then(|c| c.structure(0)) {
            decoded.width = s.get::<i32>("width").unwrap_or(0);
            decoded.height = s.get::<i32>("height").unwrap_or(0);
        }
        if sink.is_eos() {
            break;
        }
    }
    let bus = pipeline.bus().unwrap();
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "level") {
                    let rms = s.get::<gst::glib::ValueArray>("rms").unwrap();
                    let loudest = rms
                        .iter()
                        .filter_map(|v| v.get::<f64>().ok())
                        .fold(f64::NEG_INFINITY, f64::max);
                    decoded.levels.push(loudest);
                }
            }
            gst::MessageView::Error(err) => panic!("decode pipeline error: {}", err.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    decoded
}

pub const H264_RTP_CAPS: &str =
    "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=102";

/// Decodes the room's H.264 RTP.
pub fn decode_h264(packets: &[Bytes]) -> Decoded {
    decode(
        packets,
        H264_RTP_CAPS,
        "rtph264depay ! h264parse ! avdec_h264",
    )
}

/// A live pipeline standing in for a remote participant: `launch` must end in
/// `appsink name=out`; every RTP packet it produces is handed to `on_packet` (on its
/// streaming thread, as the session would from its network task).
pub struct RemoteParticipant {
    pipeline: gst::Pipeline,
}

impl RemoteParticipant {
    pub fn start(launch: &str, on_packet: impl Fn(Bytes) + Send + Sync + 'static) -> Self {
        init();
        let pipeline = gst::parse::launch(launch)
            .unwrap_or_else(|e| panic!("remote participant pipeline `{launch}`: {e}"))
            .downcast::<gst::Pipeline>()
            .unwrap();
        let sink = pipeline
            .by_name("out")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        sink.set_sync(false);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(buffer) = sample.buffer() {
                        let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                        on_packet(Bytes::copy_from_slice(map.as_slice()));
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline.set_state(gst::State::Playing).unwrap();
        RemoteParticipant { pipeline }
    }
}

impl Drop for RemoteParticipant {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Waits until `cond` holds, up to `timeout`; returns whether it did.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// The frames of an H.264 RTP stream as the receiving side sees them: one entry per
/// completed picture (marker bit), saying whether it was a keyframe.
#[derive(Debug, Default)]
pub struct FrameLog {
    pub keyframe: Vec<bool>,
    current_has_idr: bool,
}

impl FrameLog {
    pub fn push_all(&mut self, packets: &[Bytes]) {
        for p in packets {
            let h = visio_room_media::rtp::RtpHeader::parse(p).expect("RTP");
            if visio_room_media::rtp::h264_payload_starts_idr(h.payload(p)) {
                self.current_has_idr = true;
            }
            if h.marker {
                self.keyframe
                    .push(std::mem::take(&mut self.current_has_idr));
            }
        }
    }

    /// Index of the first keyframe at or after frame `from`.
    pub fn first_keyframe_from(&self, from: usize) -> Option<usize> {
        (from..self.keyframe.len()).find(|&i| self.keyframe[i])
    }
}
