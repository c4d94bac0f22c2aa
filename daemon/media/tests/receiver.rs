//! Remote participants as the room sees and hears them: RTP produced live by real GStreamer
//! encoders (what a browser sends: VP8, VP9, H.264, Opus) fed into the receiver.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{wait_for, RemoteParticipant};
use visio_room_media::layout::Rect;
use visio_room_media::{
    AudioSinkSetting, MediaError, Receiver, ReceiverConfig, ReceiverEvent, RemoteCodec,
    RemoteTrack, VideoSinkSetting,
};

fn receiver(
    config: ReceiverConfig,
) -> (
    Arc<Receiver>,
    tokio::sync::mpsc::UnboundedReceiver<ReceiverEvent>,
) {
    common::init();
    let (receiver, events) = Receiver::start(config).expect("receiver starts");
    (Arc::new(receiver), events)
}

fn headless() -> ReceiverConfig {
    ReceiverConfig {
        video_sink: VideoSinkSetting::None,
        audio_sink: AudioSinkSetting::None,
        width: 640,
        height: 360,
        fps: 30,
        ..ReceiverConfig::default()
    }
}

fn track(id: &str, codec: RemoteCodec, payload_type: u8) -> RemoteTrack {
    RemoteTrack {
        id: id.to_owned(),
        codec,
        payload_type,
        screen_share: false,
    }
}

/// A live remote participant whose packets go to `track_id` of `receiver`.
fn participant(receiver: &Arc<Receiver>, track_id: &str, launch: &str) -> RemoteParticipant {
    let receiver = receiver.clone();
    let id = track_id.to_owned();
    RemoteParticipant::start(launch, move |packet| {
        let _ = receiver.push_rtp(&id, packet);
    })
}

fn video(width: u32, height: u32, encoder_and_payloader: &str) -> String {
    format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate=30/1 \
         ! {encoder_and_payloader} ! appsink name=out"
    )
}

const VP8: &str = "vp8enc deadline=1 cpu-used=8 keyframe-max-dist=30 ! rtpvp8pay pt=96 mtu=1200";
const VP9: &str = "vp9enc deadline=1 cpu-used=8 keyframe-max-dist=30 ! rtpvp9pay pt=98 mtu=1200";
const H264: &str = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
                    ! rtph264pay pt=102 mtu=1200 config-interval=-1";

fn track_stats(receiver: &Receiver, id: &str) -> visio_room_media::TrackStats {
    let stats = receiver.stats();
    let failed = stats.failed_tracks.clone();
    stats
        .tracks
        .into_iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("track {id} is not received (failed: {failed:?})"))
}

#[test]
fn browser_vp8_vp9_and_h264_video_is_decoded_at_its_size() {
    let (receiver, _events) = receiver(headless());
    receiver
        .add_track(track("TR_vp8", RemoteCodec::Vp8, 96))
        .unwrap();
    receiver
        .add_track(track("TR_vp9", RemoteCodec::Vp9, 98))
        .unwrap();
    receiver
        .add_track(track("TR_h264", RemoteCodec::H264, 102))
        .unwrap();
    let _a = participant(&receiver, "TR_vp8", &video(320, 240, VP8));
    let _b = participant(&receiver, "TR_vp9", &video(256, 144, VP9));
    let _c = participant(&receiver, "TR_h264", &video(384, 216, H264));

    let all_decoding = wait_for(Duration::from_secs(15), || {
        receiver
            .stats()
            .tracks
            .iter()
            .all(|t| t.decoded_frames >= 30)
    });
    let stats = receiver.stats();
    assert!(all_decoding, "{stats:#?}");
    assert_eq!(
        track_stats(&receiver, "TR_vp8").frame_size,
        Some((320, 240))
    );
    assert_eq!(
        track_stats(&receiver, "TR_vp9").frame_size,
        Some((256, 144))
    );
    assert_eq!(
        track_stats(&receiver, "TR_h264").frame_size,
        Some((384, 216))
    );
    let total: u64 = stats.tracks.iter().map(|t| t.decoded_frames).sum();
    assert!(
        stats.received_video_frames >= total.saturating_sub(3),
        "{stats:#?}"
    );
    assert!(stats.received_video_frames > 0);
    assert_eq!(stats.video_sink, "fakesink");
    assert!(
        stats.tracks.iter().all(|t| t.picture_latency_ms.is_none()),
        "plain test patterns carry no picture clock"
    );
    // The shape `visio-roomctl status --json` shows under `media`.
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["received_video_frames"], stats.received_video_frames);
    assert_eq!(json["tracks"][0]["codec"], "vp8");
    assert!(stats.error.is_none(), "{stats:#?}");
    let before = stats.received_video_frames;
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        receiver.stats().received_video_frames > before,
        "frame counter keeps rising"
    );
}

#[test]
fn remote_opus_tone_shows_its_level_and_silence_does_not() {
    let (receiver, _events) = receiver(headless());
    receiver
        .add_track(track("TR_voice", RemoteCodec::Opus, 111))
        .unwrap();
    receiver
        .add_track(track("TR_quiet", RemoteCodec::Opus, 111))
        .unwrap();
    let opus = "opusenc frame-size=20 ! rtpopuspay pt=111 ! appsink name=out";
    let _a = participant(
        &receiver,
        "TR_voice",
        &format!("audiotestsrc is-live=true freq=440 volume=0.5 ! {opus}"),
    );
    let _b = participant(
        &receiver,
        "TR_quiet",
        &format!("audiotestsrc is-live=true wave=silence ! {opus}"),
    );
    let heard = wait_for(Duration::from_secs(10), || {
        track_stats(&receiver, "TR_voice")
            .audio_level_dbfs
            .is_some_and(|l| l > -15.0)
    });
    let voice = track_stats(&receiver, "TR_voice");
    assert!(heard, "{voice:#?}");
    assert!(voice.packets_received > 5, "{voice:#?}");
    assert_eq!(
        voice.decoded_frames, 0,
        "audio does not count as video frames"
    );
    assert!(
        wait_for(Duration::from_secs(5), || track_stats(
            &receiver, "TR_quiet"
        )
        .audio_level_dbfs
        .is_some()),
        "silence is measured too"
    );
    let quiet = track_stats(&receiver, "TR_quiet");
    let level = quiet.audio_level_dbfs.unwrap();
    assert!(level < -60.0, "silence measured at {level} dBFS");
    assert_eq!(receiver.stats().received_video_frames, 0);
}

#[test]
fn opus_inside_red_is_heard_through_packet_loss() {
    // livekit-client sends the microphone as RED (RFC 2198) with one redundant copy of the
    // previous packet, payload type 63 around Opus 111. One packet in four is lost.
    let (receiver, _events) = receiver(headless());
    receiver
        .add_track(track("TR_red", RemoteCodec::Red, 63))
        .unwrap();
    let launch = "audiotestsrc is-live=true freq=440 volume=0.5 ! opusenc frame-size=20 \
                  ! rtpopuspay pt=111 ! rtpredenc pt=63 distance=1 allow-no-red-blocks=true \
                  ! appsink name=out";
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let _voice = {
        let receiver = receiver.clone();
        let sent = sent.clone();
        RemoteParticipant::start(launch, move |packet| {
            let n = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n % 4 != 3 {
                let _ = receiver.push_rtp("TR_red", packet);
            }
        })
    };
    let heard = wait_for(Duration::from_secs(10), || {
        let red = track_stats(&receiver, "TR_red");
        red.packets_received > 50 && red.audio_level_dbfs.is_some_and(|l| l > -15.0)
    });
    let red = track_stats(&receiver, "TR_red");
    assert!(heard, "{red:#?}");
    assert_eq!(red.codec, RemoteCodec::Red);
    assert_eq!(red.decoder, "opusdec");
    assert!(receiver.stats().error.is_none());
    assert_eq!(
        serde_json::to_value(&red).unwrap()["codec"],
        "red",
        "as `status --json` shows it"
    );
}

/// VP8 whose frame headers claim a first partition far larger than the frame: libvpx
/// refuses every frame, as with a sender that is broken for good.
fn corrupt_vp8(packet: Bytes) -> Bytes {
    let mut p = BytesMut::from(&packet[..]);
    // 12-byte RTP header, then a 1-byte VP8 payload descriptor (picture-id-mode=0).
    if p.len() > 16 && p[12] & 0x10 != 0 {
        p[13] |= 0xe0;
        p[14] = 0xff;
        p[15] = 0xff;
    }
    p.freeze()
}

#[test]
fn a_broken_remote_track_is_dropped_and_the_others_keep_playing() {
    let (receiver, mut events) = receiver(ReceiverConfig {
        max_decode_errors: 10,
        ..headless()
    });
    receiver
        .add_track(track("TR_good", RemoteCodec::Vp8, 96))
        .unwrap();
    receiver
        .add_track(track("TR_bad", RemoteCodec::Vp8, 96))
        .unwrap();
    let _good = participant(&receiver, "TR_good", &video(320, 240, VP8));
    let bad_receiver = receiver.clone();
    let _bad = RemoteParticipant::start(
        &video(
            320,
            240,
            "vp8enc deadline=1 cpu-used=8 ! rtpvp8pay pt=96 picture-id-mode=0",
        ),
        move |packet| {
            let _ = bad_receiver.push_rtp("TR_bad", corrupt_vp8(packet));
        },
    );
    let failed = wait_for(Duration::from_secs(15), || {
        !receiver.stats().failed_tracks.is_empty()
    });
    let stats = receiver.stats();
    assert!(failed, "{stats:#?}");
    assert_eq!(stats.failed_tracks[0].0, "TR_bad");
    let reason = &stats.failed_tracks[0].1;
    assert!(reason.contains("vp8dec"), "the decoder gave up: {reason}");
    assert!(
        stats.tracks.iter().all(|t| t.id != "TR_bad"),
        "the broken branch is removed"
    );
    let reported = wait_for(
        Duration::from_secs(2),
        || matches!(events.try_recv(), Ok(ReceiverEvent::TrackFailed { ref track_id, .. }) if track_id == "TR_bad"),
    );
    assert!(reported, "TrackFailed is reported");
    assert!(matches!(
        receiver.push_rtp(
            "TR_bad",
            Bytes::from_static(&[0x80, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        ),
        Err(MediaError::UnknownTrack(_))
    ));

    // The broken track can fail before the healthy one's first frame on a loaded machine.
    assert!(
        wait_for(Duration::from_secs(5), || track_stats(&receiver, "TR_good")
            .decoded_frames
            > 0),
        "the healthy track decodes"
    );
    let good_before = track_stats(&receiver, "TR_good").decoded_frames;
    assert!(
        wait_for(Duration::from_secs(5), || track_stats(&receiver, "TR_good")
            .decoded_frames
            > good_before + 15),
        "the healthy track keeps decoding"
    );
    assert!(receiver.stats().error.is_none());
}

#[test]
fn packet_loss_asks_the_session_for_a_keyframe() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let (receiver, mut events) = receiver(headless());
    receiver
        .add_track(track("TR_lossy", RemoteCodec::Vp8, 96))
        .unwrap();
    let lossy_receiver = receiver.clone();
    let lossy = Arc::new(AtomicBool::new(false));
    let lossy_link = lossy.clone();
    let count = AtomicU64::new(0);
    let _p = RemoteParticipant::start(
        &video(
            320,
            240,
            "vp8enc deadline=1 cpu-used=8 keyframe-max-dist=3000 ! rtpvp8pay pt=96 mtu=300",
        ),
        move |packet| {
            // Once the link turns bad, lose every 40th packet, as on a poor Wi-Fi link.
            let n = count.fetch_add(1, Ordering::Relaxed);
            if !(lossy_link.load(Ordering::Relaxed) && n % 40 == 39) {
                let _ = lossy_receiver.push_rtp("TR_lossy", packet);
            }
        },
    );
    assert!(wait_for(Duration::from_secs(10), || {
        track_stats(&receiver, "TR_lossy").decoded_frames >= 20
    }));
    // A clean stream asks for nothing.
    std::thread::sleep(Duration::from_millis(600));
    while events.try_recv().is_ok() {}
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        events.try_recv().is_err(),
        "keyframe requested on a clean stream"
    );

    lossy.store(true, Ordering::Relaxed);
    let asked = wait_for(
        Duration::from_secs(10),
        || matches!(events.try_recv(), Ok(ReceiverEvent::KeyframeNeeded { ref track_id }) if track_id == "TR_lossy"),
    );
    assert!(asked, "{:#?}", receiver.stats());
}

#[test]
fn the_active_speaker_is_drawn_larger_and_a_screen_share_takes_the_main_area() {
    let (receiver, _events) = receiver(ReceiverConfig {
        width: 1280,
        height: 720,
        ..headless()
    });
    for id in ["TR_alice", "TR_bob"] {
        receiver.add_track(track(id, RemoteCodec::Vp8, 96)).unwrap();
    }
    let _a = participant(&receiver, "TR_alice", &video(320, 180, VP8));
    let _b = participant(&receiver, "TR_bob", &video(320, 180, VP8));
    assert!(wait_for(Duration::from_secs(10), || receiver
        .stats()
        .tracks
        .iter()
        .all(|t| t.frame_size.is_some())));
    // Two 16:9 cameras side by side in a grid.
    let grid = wait_for(Duration::from_secs(2), || {
        receiver.layout()
            == vec![
                (
                    "TR_alice".to_owned(),
                    Rect {
                        x: 0,
                        y: 180,
                        width: 640,
                        height: 360,
                    },
                ),
                (
                    "TR_bob".to_owned(),
                    Rect {
                        x: 640,
                        y: 180,
                        width: 640,
                        height: 360,
                    },
                ),
            ]
    });
    assert!(grid, "{:?}", receiver.layout());

    receiver.set_active_speaker(Some("TR_bob"));
    let speaker_large = wait_for(Duration::from_secs(2), || {
        let layout = receiver.layout();
        layout[1].1.width == 960 && layout[0].1.x == 960
    });
    assert!(speaker_large, "{:?}", receiver.layout());

    receiver
        .add_track(RemoteTrack {
            screen_share: true,
            ..track("TR_screen", RemoteCodec::Vp8, 96)
        })
        .unwrap();
    let _s = participant(&receiver, "TR_screen", &video(640, 360, VP8));
    let share_main = wait_for(Duration::from_secs(5), || {
        let layout = receiver.layout();
        layout.len() == 3 && layout[2].1.x == 0 && layout[2].1.width == 960
    });
    assert!(share_main, "{:?}", receiver.layout());

    receiver.remove_track("TR_screen").unwrap();
    assert!(matches!(
        receiver.remove_track("TR_screen"),
        Err(MediaError::UnknownTrack(_))
    ));
    assert_eq!(receiver.layout().len(), 2);
}

#[test]
fn probed_decoders_are_the_ones_used() {
    common::init();
    // libav's VP8 decoder instead of libvpx's, to tell them apart.
    let decoders = visio_room_media::probe::probe_video_decoders_from(
        &["avdec_h264"],
        &["avdec_vp8"],
        &["vp9dec"],
    )
    .unwrap();
    let (receiver, _events) = receiver(ReceiverConfig {
        decoders,
        ..headless()
    });
    receiver
        .add_track(track("TR_vp8", RemoteCodec::Vp8, 96))
        .unwrap();
    let _p = participant(&receiver, "TR_vp8", &video(320, 240, VP8));
    assert!(wait_for(Duration::from_secs(10), || {
        track_stats(&receiver, "TR_vp8").decoded_frames >= 10
    }));
    let stats = track_stats(&receiver, "TR_vp8");
    assert_eq!(stats.decoder, "avdec_vp8");
    assert_eq!(stats.frame_size, Some((320, 240)));
}

#[test]
fn the_rooms_own_h264_decodes_in_a_receiver() {
    use visio_room_media::{probe, CameraSource, EncoderCandidate, VideoSender, VideoSenderConfig};
    let (receiver, _events) = receiver(headless());
    let choice =
        probe::probe_h264_encoder(&EncoderCandidate::default_order(), &CameraSource::Test).unwrap();
    let (sender, mut rx) = VideoSender::start(
        VideoSenderConfig {
            width: 320,
            height: 180,
            ..VideoSenderConfig::default()
        },
        &choice,
    )
    .unwrap();
    receiver
        .add_track(track("TR_room", RemoteCodec::H264, 102))
        .unwrap();
    let forward = receiver.clone();
    let pump = std::thread::spawn(move || {
        while let Some(packet) = rx.blocking_recv() {
            if forward.push_rtp("TR_room", packet).is_err() {
                break;
            }
        }
    });
    let decoding = wait_for(Duration::from_secs(10), || {
        track_stats(&receiver, "TR_room").decoded_frames >= 30
    });
    assert!(decoding, "{:#?}", receiver.stats());
    let status =
        visio_room_media::MediaStatus::collect(Some(&choice), Some(&sender), None, Some(&receiver));
    let json = serde_json::to_value(&status).unwrap();
    assert!(
        json["received_video_frames"].as_u64().unwrap() >= 30,
        "{json}"
    );
    assert_eq!(json["video_sent"]["codec"], "H264");
    assert_eq!(json["video_sent"]["encoder"], "x264enc");
    assert_eq!(json["video_sent"]["width"], 320);
    assert!(json["encoder_report"]
        .as_str()
        .unwrap()
        .ends_with("x264enc: chosen"));
    let room = track_stats(&receiver, "TR_room");
    assert_eq!(room.frame_size, Some((320, 180)));
    // The test pattern carries the picture clock: capture-to-decode latency is measured.
    let latency = room
        .picture_latency_ms
        .expect("the picture clock is read back");
    assert!(latency < 1000, "{latency} ms from capture to decode");
    receiver.remove_track("TR_room").unwrap();
    drop(sender);
    pump.join().unwrap();
}

#[test]
fn kms_display_without_a_drm_device_is_a_clear_error() {
    common::init();
    if std::path::Path::new("/dev/dri/card0").exists() {
        panic!("this test expects a machine without a DRM device (CI); /dev/dri/card0 exists");
    }
    let err = Receiver::start(ReceiverConfig {
        video_sink: VideoSinkSetting::Kms,
        ..headless()
    })
    .err()
    .expect("kmssink cannot start without DRM");
    let text = err.to_string();
    assert!(text.contains("receiver pipeline did not start"), "{text}");
}
