//! The room's camera as the meeting sees it: H.264 RTP decoded back by a real GStreamer
//! pipeline.

mod common;

use std::time::Duration;

use visio_room_media::probe::probe_h264_encoder;
use visio_room_media::rtp::RtpHeader;
use visio_room_media::{
    CameraSource, EncoderCandidate, EncoderChoice, EncoderSettings, VideoSender, VideoSenderConfig,
};

fn x264() -> EncoderChoice {
    common::init();
    let x264 = EncoderCandidate::default_order()
        .into_iter()
        .find(|c| c.factory == "x264enc")
        .unwrap();
    probe_h264_encoder(&[x264], &CameraSource::Test).expect("x264enc works")
}

fn config(width: u32, height: u32, keyframe_interval_frames: u32) -> VideoSenderConfig {
    VideoSenderConfig {
        camera: CameraSource::Test,
        width,
        height,
        fps: 30,
        payload_type: 102,
        mtu: 1200,
        encoder: EncoderSettings {
            bitrate_bps: 800_000,
            keyframe_interval_frames,
        },
        channel_capacity: 4096,
    }
}

#[test]
fn test_camera_sends_h264_rtp_at_the_configured_size() {
    let (sender, mut rx) = VideoSender::start(config(640, 360, 30), &x264()).unwrap();
    let packets = common::collect(&mut rx, Duration::from_secs(2));
    let stats = sender.stats();
    assert_eq!(stats.error, None);
    assert!(packets.len() > 30, "{} packets in 2 s", packets.len());
    for p in &packets {
        let h = RtpHeader::parse(p).expect("every packet is RTP");
        assert_eq!(h.payload_type, 102);
        assert!(
            p.len() <= 1200,
            "packet of {} bytes exceeds the MTU",
            p.len()
        );
    }
    let mut log = common::FrameLog::default();
    log.push_all(&packets);
    assert!(log.keyframe[0], "the stream starts with a keyframe");
    let marked = log.keyframe.len();
    // 30 fps for 2 s, minus start-up.
    assert!((30..=62).contains(&marked), "{marked} frames in 2 s");

    // One marker per picture: a browser's depacketizer ends a frame at the marker.
    let mut timestamps: Vec<u32> = packets
        .iter()
        .map(|p| RtpHeader::parse(p).unwrap())
        .filter(|h| h.marker)
        .map(|h| h.timestamp)
        .collect();
    let markers = timestamps.len();
    timestamps.dedup();
    assert_eq!(
        timestamps.len(),
        markers,
        "a picture has more than one marked packet"
    );

    let decoded = common::decode_h264(&packets);
    assert_eq!((decoded.width, decoded.height), (640, 360));
    assert!(
        decoded.frames + 2 >= marked,
        "{} of {marked} frames decode",
        decoded.frames
    );
    assert_eq!(stats.codec, "H264");
    assert_eq!(stats.encoder, "x264enc");
    assert!(stats.keyframes_sent >= 1);
}

#[test]
fn keyframe_comes_within_one_frame_of_a_request() {
    // Periodic keyframes only every 1000 frames, so any keyframe seen is the requested one.
    let (sender, mut rx) = VideoSender::start(config(320, 240, 1000), &x264()).unwrap();
    let mut log = common::FrameLog::default();
    log.push_all(&common::collect(&mut rx, Duration::from_millis(700)));
    for round in 0..3 {
        // Frames already sent when the keyframe is requested (every packet is read, so the
        // log's frame numbers match the sender's).
        let sent_before = sender.stats().frames_sent as usize;
        sender.request_keyframe();
        log.push_all(&common::collect(&mut rx, Duration::from_millis(400)));
        assert_eq!(sender.stats().packets_dropped, 0);
        let keyframe = log
            .first_keyframe_from(sent_before)
            .unwrap_or_else(|| panic!("round {round}: no keyframe within 400 ms of the request"));
        let frames_between = keyframe - sent_before;
        assert!(
            frames_between <= 1,
            "round {round}: {frames_between} frames between the request and the keyframe"
        );
        let measured = sender.stats().last_keyframe_request_latency_frames;
        assert!(
            matches!(measured, Some(0..=1)),
            "round {round}: the sender measured {measured:?}"
        );
    }
    assert_eq!(
        log.keyframe.iter().filter(|k| **k).count(),
        4,
        "the first frame plus three requested"
    );
    assert_eq!(sender.stats().keyframes_sent, 4);
}

#[test]
fn camera_off_sends_nothing_and_camera_on_resumes_with_a_keyframe() {
    let (sender, mut rx) = VideoSender::start(config(320, 240, 1000), &x264()).unwrap();
    assert!(!common::collect(&mut rx, Duration::from_millis(500)).is_empty());
    sender.set_camera_enabled(false);
    std::thread::sleep(Duration::from_millis(200));
    common::drain(&mut rx);
    let off = common::collect(&mut rx, Duration::from_millis(600));
    assert!(
        off.is_empty(),
        "{} packets sent with the camera off",
        off.len()
    );
    assert!(!sender.stats().camera_enabled);

    sender.set_camera_enabled(true);
    let on = common::collect(&mut rx, Duration::from_millis(600));
    assert!(!on.is_empty(), "nothing sent after the camera is back on");
    let mut log = common::FrameLog::default();
    log.push_all(&on);
    assert!(
        log.keyframe[0],
        "sending resumes with a keyframe: {:?}",
        &log.keyframe[..log.keyframe.len().min(40)]
    );
}

#[test]
fn paused_for_dynacast_sends_nothing_and_resumes_with_a_keyframe_unless_the_camera_is_off() {
    let (sender, mut rx) = VideoSender::start(config(320, 240, 1000), &x264()).unwrap();
    assert!(!common::collect(&mut rx, Duration::from_millis(500)).is_empty());
    let quiet = |rx: &mut tokio::sync::mpsc::Receiver<bytes::Bytes>| {
        std::thread::sleep(Duration::from_millis(200));
        common::drain(rx);
        common::collect(rx, Duration::from_millis(600)).len()
    };

    sender.set_paused(true);
    assert_eq!(quiet(&mut rx), 0, "packets sent while nobody watches");
    assert!(sender.stats().paused);
    assert!(
        sender.stats().camera_enabled,
        "pausing is not turning the camera off"
    );

    // The camera turned on again while paused: still nothing.
    sender.set_camera_enabled(true);
    assert_eq!(quiet(&mut rx), 0, "camera on does not override the pause");
    // Camera off while paused, then a viewer comes back: still nothing, the camera is off.
    sender.set_camera_enabled(false);
    sender.set_paused(false);
    assert_eq!(quiet(&mut rx), 0, "resuming does not turn the camera on");

    sender.set_camera_enabled(true);
    let on = common::collect(&mut rx, Duration::from_millis(600));
    assert!(!on.is_empty(), "nothing sent after resuming");
    let mut log = common::FrameLog::default();
    log.push_all(&on);
    assert!(log.keyframe[0], "sending resumes with a keyframe");
    let keyframes = sender.stats().keyframes_sent;

    sender.set_paused(true);
    quiet(&mut rx);
    sender.set_paused(false);
    let resumed = common::collect(&mut rx, Duration::from_millis(600));
    let mut log = common::FrameLog::default();
    log.push_all(&resumed);
    assert!(
        log.keyframe.first().copied().unwrap_or(false),
        "a viewer coming back gets a keyframe first"
    );
    assert!(sender.stats().keyframes_sent > keyframes);
    assert!(!sender.stats().paused);
}

#[test]
fn bitrate_follows_the_congestion_estimate() {
    let (sender, mut rx) = VideoSender::start(config(640, 360, 30), &x264()).unwrap();
    sender.set_target_bitrate(2_000_000);
    common::collect(&mut rx, Duration::from_millis(500));
    let high: usize = common::collect(&mut rx, Duration::from_secs(2))
        .iter()
        .map(|p| p.len())
        .sum();
    sender.set_target_bitrate(150_000);
    common::collect(&mut rx, Duration::from_millis(1000));
    let low: usize = common::collect(&mut rx, Duration::from_secs(2))
        .iter()
        .map(|p| p.len())
        .sum();
    let low_bps = low * 8 / 2;
    let high_bps = high * 8 / 2;
    assert_eq!(sender.stats().target_bitrate_bps, 150_000);
    assert!(
        low_bps < 300_000,
        "{low_bps} bit/s with a 150 kbit/s target"
    );
    assert!(
        high_bps > 2 * low_bps,
        "{high_bps} bit/s at 2 Mbit/s vs {low_bps} bit/s at 150 kbit/s"
    );
}
