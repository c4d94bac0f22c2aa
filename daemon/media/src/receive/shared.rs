//! What the receiver shares with the bus and streaming threads: the pipeline's mixers and the
//! tracks under one lock, a track's disposal, and the layout of the videos on the canvas.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc;

use super::branch::Track;
use super::{ReceiverConfig, ReceiverEvent};
use crate::layout::{self, TileRole};

pub(super) struct State {
    pub(super) tracks: Vec<Track>,
    pub(super) active_speaker: Option<String>,
    pub(super) failed: Vec<(String, String)>,
    pub(super) error: Option<String>,
    pub(super) next_bin: u64,
    /// The last layout reported with [`ReceiverEvent::LayoutChanged`].
    pub(super) reported: Vec<(String, Option<layout::Rect>)>,
}

pub(super) struct Shared {
    pub(super) pipeline: gst::Pipeline,
    pub(super) compositor: gst::Element,
    pub(super) audiomixer: gst::Element,
    pub(super) state: Mutex<State>,
    pub(super) layout_dirty: AtomicBool,
    pub(super) total_frames: Arc<AtomicU64>,
    pub(super) events: mpsc::UnboundedSender<ReceiverEvent>,
    pub(super) config: ReceiverConfig,
    pub(super) started: Instant,
}

impl Shared {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Unlinks and frees a track's branch. Releasing the mixer pad first unblocks a
    /// streaming thread waiting on the mixer, so the bin can then stop.
    pub(super) fn dispose(&self, track: Track) {
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

    pub(super) fn apply_layout(&self) {
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
}
