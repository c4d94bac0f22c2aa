//! The receiver against real GStreamer pipelines.

use super::*;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

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
    let Some(element) = bin.and_then(|b| b.iterate_elements().into_iter().flatten().next()) else {
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
