//! End to end with the official LiveKit Python SDK (Google's libwebrtc inside) as the other
//! participant, through `visio-sim`: it decodes the room's H.264 video at the configured size
//! and its Opus audio; the room decodes the SDK's VP8 video (what browsers send) and counts it.
//! Prints the join times it measures.
//!
//! Needs the venv that `scripts/deps.d/sim.sh` creates under `hw-tests/.work/venv` and the
//! peer script `hw-tests/visio-sim/tests/peers/python_peer.py`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tokio::sync::mpsc;
use visio_room_core::controller::SessionEvent;
use visio_room_session::start;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_sdk_participant_and_the_room_decode_each_others_video_and_audio() {
    init_tracing();
    let python = repo().join("hw-tests/.work/venv/bin/python");
    let peer = repo().join("hw-tests/visio-sim/tests/peers/python_peer.py");
    assert!(
        python.exists(),
        "{} is missing: run scripts/deps.d/sim.sh <repo> to create the venv with the official LiveKit SDK",
        python.display()
    );
    assert!(peer.exists(), "{} is missing", peer.display());
    let sim = Sim::start(&[]);
    let (width, height) = (320u32, 240u32);

    // The SDK participant joins first and publishes VP8 like a browser.
    let mut child = Command::new(&python)
        .arg(&peer)
        .args([
            "--url",
            &sim.base,
            "--room",
            "abc-defg-hij",
            "--name",
            "Python",
            "--seconds",
            "60",
        ])
        .args([
            "--width", "320", "--height", "240", "--fps", "15", "--codec", "vp8",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start the Python peer");
    let stdout = child.stdout.take().unwrap();
    let (line_tx, mut lines) = mpsc::unbounded_channel::<(Instant, serde_json::Value)>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = line_tx.send((Instant::now(), v));
            }
        }
    });
    // Wait until it is in the room.
    let (_, first) = tokio::time::timeout(Duration::from_secs(20), lines.recv())
        .await
        .expect("the Python peer printed nothing in 20 s")
        .expect("the Python peer exited");
    assert_eq!(first["state"], "connected", "{first}");

    let mut config = sim_config(&sim.base);
    config.media = Some(test_media());
    let (tx, mut events) = mpsc::unbounded_channel();
    let joined_at = Instant::now();
    let room = start(
        request(1, &sim.meeting_url("abc-defg-hij"), "Salle Python"),
        config,
        tx,
    );
    expect_event(&mut events, 20, "Connected", |e| {
        *e == SessionEvent::Connected
    })
    .await;

    // The room decodes the SDK's VP8.
    let deadline = Instant::now() + Duration::from_secs(40);
    let room_first_frame = loop {
        if room.media_status().received_video_frames > 0 {
            break joined_at.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the room decoded no video: {:#?}",
            room.media_status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // The SDK decodes the room's H.264 at the configured size, and hears it.
    let mut peer_first_frame = None;
    let mut last = serde_json::Value::Null;
    let deadline = Instant::now() + Duration::from_secs(40);
    let ok = loop {
        let Ok(Some((at, v))) = tokio::time::timeout_at(deadline.into(), lines.recv()).await else {
            break false;
        };
        let remote = v["remote"].as_object().cloned().unwrap_or_default();
        let video = remote
            .values()
            .find(|t| t["kind"] == "video" && t["frames"].as_u64() > Some(0));
        let audio = remote.values().find(|t| t["kind"] == "audio");
        if video.is_some() && peer_first_frame.is_none() {
            peer_first_frame = Some(at.duration_since(joined_at));
        }
        last = v.clone();
        if let (Some(video), Some(audio)) = (video, audio) {
            if video["frames"].as_u64() > Some(30) && audio["rms"].as_f64() > Some(0.01) {
                assert_eq!(video["width"], width, "{video}");
                assert_eq!(video["height"], height, "{video}");
                break true;
            }
        }
    };
    assert!(
        ok,
        "the Python SDK did not decode the room's video and audio: {last}"
    );

    let status = room.media_status();
    let receiver = status.receiver.clone().expect("receiver stats");
    assert!(
        receiver
            .tracks
            .iter()
            .any(|t| format!("{:?}", t.codec).to_uppercase().contains("VP8")
                && t.decoded_frames > 10),
        "the room decodes VP8 from the SDK: {receiver:#?}"
    );
    let before = status.received_video_frames;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        room.media_status().received_video_frames > before,
        "frame counter rising"
    );
    println!(
        "join time: room's first decoded frame {:?} after Join; SDK's first decoded frame of the room within {:?} (1 s resolution); keyframe requests {}",
        room_first_frame,
        peer_first_frame.unwrap_or_default(),
        room.media_status().keyframe_requests
    );
    room.stop();
    expect_event(&mut events, 5, "Stopped", |e| *e == SessionEvent::Stopped).await;
    let _ = child.kill();
    let _ = child.wait();
}
