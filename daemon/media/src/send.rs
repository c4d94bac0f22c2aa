//! What video and audio senders share: the appsink that turns payloaded buffers into RTP
//! packets on a channel, and the counters of what was sent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use crate::elements::{self, BusWatch};
use crate::rtp::{h264_payload_starts_idr, RtpHeader};

/// Counters updated on the streaming thread (atomics only) and read by `stats()`.
#[derive(Default)]
pub(crate) struct SendCounters {
    pub(crate) frames: AtomicU64,
    pub(crate) packets: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) keyframes: AtomicU64,
    pub(crate) dropped: AtomicU64,
    /// `frames` when the pending keyframe request was made, plus one; 0 = none pending.
    pub(crate) keyframe_requested_at: AtomicU64,
    /// Frames from the last keyframe request to the keyframe, plus one; 0 = never measured.
    pub(crate) last_keyframe_latency: AtomicU64,
    /// The picture being sent contains an IDR slice (streaming thread only).
    pub(crate) frame_has_idr: AtomicBool,
    pub(crate) error: Mutex<Option<String>>,
    pub(crate) running: AtomicBool,
}

impl SendCounters {
    pub(crate) fn error(&self) -> Option<String> {
        self.error.lock().map(|e| e.clone()).unwrap_or(None)
    }

    pub(crate) fn keyframe_latency(&self) -> Option<u64> {
        match self.last_keyframe_latency.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n - 1),
        }
    }

    pub(crate) fn note_keyframe_request(&self) {
        let now = self.frames.load(Ordering::Relaxed);
        // Keep the oldest pending request: latency is measured from the first one.
        let _ = self.keyframe_requested_at.compare_exchange(
            0,
            now + 1,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

/// Builds the appsink at the end of a sender: every RTP packet goes to `tx` without blocking
/// (a full channel drops the packet and counts it); `is_h264` enables keyframe counting.
pub(crate) fn rtp_appsink(
    tx: mpsc::Sender<Bytes>,
    counters: Arc<SendCounters>,
    is_h264: bool,
) -> gst_app::AppSink {
    gst_app::AppSink::builder()
        .caps(&gst::Caps::builder("application/x-rtp").build())
        .sync(false)
        .max_buffers(64)
        .drop(true)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(list) = sample.buffer_list() {
                        for buffer in list.iter() {
                            deliver(buffer, &tx, &counters, is_h264);
                        }
                    }
                    if let Some(buffer) = sample.buffer() {
                        deliver(buffer, &tx, &counters, is_h264);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build()
}

fn deliver(
    buffer: &gst::BufferRef,
    tx: &mpsc::Sender<Bytes>,
    counters: &SendCounters,
    is_h264: bool,
) {
    let Ok(map) = buffer.map_readable() else {
        return;
    };
    let packet = Bytes::copy_from_slice(map.as_slice());
    if let Some(header) = RtpHeader::parse(&packet) {
        // A keyframe is counted once per picture, when its last packet (marker) goes out,
        // however many slices it has.
        if is_h264 && h264_payload_starts_idr(header.payload(&packet)) {
            counters.frame_has_idr.store(true, Ordering::Relaxed);
        }
        if header.marker {
            let index = counters.frames.fetch_add(1, Ordering::Relaxed);
            if counters.frame_has_idr.swap(false, Ordering::Relaxed) {
                counters.keyframes.fetch_add(1, Ordering::Relaxed);
                let requested = counters.keyframe_requested_at.swap(0, Ordering::AcqRel);
                if requested != 0 {
                    // requested - 1 frames had been sent at the request.
                    counters
                        .last_keyframe_latency
                        .store(index + 2 - requested, Ordering::Relaxed);
                }
            }
        }
    }
    counters.packets.fetch_add(1, Ordering::Relaxed);
    counters
        .bytes
        .fetch_add(packet.len() as u64, Ordering::Relaxed);
    if tx.try_send(packet).is_err() {
        counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Watches a sender pipeline's bus: errors are logged and kept for `stats()`; latency changes
/// are applied.
pub(crate) fn watch_sender(
    pipeline: &gst::Pipeline,
    name: &'static str,
    counters: Arc<SendCounters>,
) -> BusWatch {
    let weak = pipeline.downgrade();
    BusWatch::start(
        pipeline,
        name,
        move |msg| match msg.view() {
            gst::MessageView::Error(err) => {
                let text = format!("{} ({})", err.error(), elements::source_name(msg));
                tracing::error!(pipeline = name, error = %text, debug = ?err.debug(), "media pipeline error");
                if let Ok(mut e) = counters.error.lock() {
                    *e = Some(text);
                }
                counters.running.store(false, Ordering::Release);
            }
            gst::MessageView::Warning(w) => {
                tracing::warn!(pipeline = name, warning = %w.error(), source = %elements::source_name(msg), "media pipeline warning");
            }
            gst::MessageView::Latency(_) => {
                if let Some(p) = weak.upgrade() {
                    let _ = p.recalculate_latency();
                }
            }
            _ => {}
        },
        || {},
    )
}
