//! The receiver pipeline's bus: a track's error removes that track only, an error of the shared
//! part fails the receiver, audio levels are noted per track; and the decoders' keyframe
//! requests, from the streaming threads, become [`ReceiverEvent::KeyframeNeeded`].

use std::sync::atomic::Ordering;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::shared::Shared;
use super::stats::TrackCounters;
use super::{ReceiverEvent, TRACK_BIN_PREFIX};
use crate::elements;

/// Where a bus message comes from.
enum Origin {
    /// Inside the track bin of this name, which was in the pipeline when asked.
    Track(gst::glib::GString),
    /// The shared part (canvas, compositor, mixer, sinks) or the pipeline itself.
    Shared,
    /// A track bin already taken out of the pipeline: a late message, ignored.
    Removed,
}

impl Shared {
    pub(super) fn on_message(&self, msg: &gst::Message) {
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

    pub(super) fn keyframe_needed(&self, counters: &TrackCounters, bin_name: &str) {
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
