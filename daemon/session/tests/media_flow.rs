//! Media through the meeting: two rooms with test camera and microphone join one `visio-sim`
//! meeting; each decodes the other's H.264 video (frame counters rise); a host's mute is obeyed.

mod common;

use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use visio_room_core::controller::{SessionEvent, Track};
use visio_room_media::{AudioSinkSetting, ReceiverConfig, VideoSenderConfig, VideoSinkSetting};
use visio_room_session::{start, MediaSettings, SessionConfig, SessionHandle};

fn media_config(meeting_url: &str) -> SessionConfig {
    let mut config = sim_config(meeting_url);
    config.media = Some(MediaSettings {
        video: VideoSenderConfig {
            width: 320,
            height: 240,
            fps: 15,
            ..VideoSenderConfig::default()
        },
        audio: visio_room_media::AudioSenderConfig {
            voice_processing: false,
            ..Default::default()
        },
        receiver: ReceiverConfig {
            video_sink: VideoSinkSetting::None,
            audio_sink: AudioSinkSetting::None,
            width: 320,
            height: 240,
            fps: 15,
            ..ReceiverConfig::default()
        },
        encoder: None,
    });
    config
}

async fn wait_frames(room: &SessionHandle, at_least: u64, secs: u64, who: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let status = room.media_status();
        if status.received_video_frames >= at_least {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{who} decoded only {} remote video frames in {secs} s: {status:#?}",
            status.received_video_frames
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn two_rooms_in_a_meeting_decode_each_others_h264_video() {
    init_tracing();
    let sim = Sim::start(&[]);
    let url = sim.meeting_url("abc-defg-hij");
    let (tx_a, mut a) = mpsc::unbounded_channel();
    let (tx_b, mut b) = mpsc::unbounded_channel();
    let room_a = start(request(1, &url, "Salle A"), media_config(&url), tx_a);
    expect_event(&mut a, 20, "A Connected", |e| *e == SessionEvent::Connected).await;
    // A is alone for a while: its encoder is past its first keyframe when B arrives.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let room_b = start(request(2, &url, "Salle B"), media_config(&url), tx_b);
    expect_event(&mut b, 20, "B Connected", |e| *e == SessionEvent::Connected).await;
    let connected = std::time::Instant::now();
    wait_frames(&room_b, 1, 30, "B (joined second)").await;
    let first_frame = connected.elapsed();
    println!("B decoded A's first frame {first_frame:?} after joining");
    // Most of this is the subscriber connection's ICE (visio-sim, not ICE-lite, is the
    // controlling agent and takes ~3 s to nominate); from the track's arrival to the first
    // decoded frame takes ~0.2 s thanks to the PLI sent on arrival (see the session's logs).
    assert!(
        first_frame < Duration::from_secs(6),
        "a participant joining mid-call waited {first_frame:?} for video (keyframe on PLI?)"
    );
    wait_frames(&room_b, 15, 30, "B (joined second)").await;
    wait_frames(&room_a, 15, 30, "A").await;
    let before = room_a.media_status().received_video_frames;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = room_a.media_status();
    assert!(
        status.received_video_frames > before + 10,
        "frames keep coming: {status:#?}"
    );
    let video = status.video.expect("video sender stats");
    assert_eq!(video.codec, "H264");
    assert!(!video.encoder.is_empty());
    assert_eq!((video.width, video.height), (320, 240));
    assert!(video.packets_sent > 0);
    let json = serde_json::to_value(room_a.media_status()).unwrap();
    assert!(json["received_video_frames"].as_u64().unwrap() > 0);
    eprintln!(
        "A: {} frames decoded, {} keyframe requests; B: {}",
        status.received_video_frames,
        status.keyframe_requests,
        room_b.media_status().received_video_frames
    );
}

#[tokio::test]
async fn a_host_muting_the_room_mutes_its_microphone_within_a_second_and_it_stays_muted() {
    init_tracing();
    let sim = Sim::start(&[]);
    let (tx, mut events) = mpsc::unbounded_channel();
    let room = start(
        request(1, &sim.meeting_url("abc-defg-hij"), "Salle A"),
        media_config(&sim.base),
        tx,
    );
    expect_event(&mut events, 20, "Connected", |e| {
        *e == SessionEvent::Connected
    })
    .await;
    // Wait for the microphone track to be published.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let (identity, mic) = loop {
        let list = sim.get("/sim/v1/rooms/abc-defg-hij/participants").await;
        let found = list["participants"].as_array().and_then(|ps| {
            ps.iter().find(|p| p["name"] == "Salle A").and_then(|p| {
                let mic = p["tracks"]
                    .as_array()?
                    .iter()
                    .find(|t| t["kind"] == "audio")?;
                Some((
                    p["identity"].as_str()?.to_owned(),
                    mic["sid"].as_str()?.to_owned(),
                ))
            })
        });
        if let Some(f) = found {
            break f;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "microphone never published: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(room.media_status().audio.map(|a| a.muted), Some(false));
    let asked = std::time::Instant::now();
    let status = sim
        .post(
            &format!("/sim/v1/rooms/abc-defg-hij/participants/{identity}/mute"),
            serde_json::json!({"track_sid": mic, "muted": true}),
        )
        .await;
    assert!(status.is_success());
    expect_event(&mut events, 2, "RemoteMute(Microphone)", |e| {
        *e == SessionEvent::RemoteMute(Track::Microphone)
    })
    .await;
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "mute took {:?}",
        asked.elapsed()
    );
    assert_eq!(room.media_status().audio.map(|a| a.muted), Some(true));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        room.media_status().audio.map(|a| a.muted),
        Some(true),
        "stays muted"
    );
}
