//! The room in a meeting with an official client, end to end: `visio-roomctl join` makes the
//! real `visio-roomd` join `visio-sim`, where headless Chromium runs the meeting page (npm
//! `livekit-client`, fake camera and microphone). Each side must decode the other's video at
//! the right size and receive the other's audio. Everything runs in a private network
//! namespace on loopback addresses only (root), one browser test at a time on the machine.
//!
//! Needs `scripts/deps.d/sim.sh` (Chromium, npm modules, Python venv); fails naming it when
//! they are missing.

use serde_json::Value;
use visio_room_test_support::{
    enter_loopback_only_netns, media_lock, quantile, require_chromium, venv_python, Bus, Daemon,
    Peer, Result, RoomConfig, Sim,
};

const ROOM: &str = "abc-defg-hij";

/// The browser's view of `identity`'s track of `kind`.
fn browser_track(line: &Value, identity: &str, kind: &str) -> Option<Value> {
    line["remote"]
        .as_array()?
        .iter()
        .find(|t| t["participant"] == identity && t["kind"] == kind)
        .cloned()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(0.0)
}

fn count(status: &Value, key: &str) -> u64 {
    status["media"][key].as_u64().unwrap_or(0)
}

#[test]
fn appliance_joins_by_roomctl_and_browser_sees_and_hears_it() -> Result<()> {
    // Missing dependencies fail here, with the command that installs them.
    require_chromium()?;
    venv_python()?;
    let _one_browser_at_a_time = media_lock()?;
    enter_loopback_only_netns()?;
    let sim = Sim::start(&[])?;
    let bus = Bus::start()?;
    let config = RoomConfig::new("Salle Visio", sim.host()).sending(640, 360, 15);
    let _daemon = Daemon::with_config(&bus, &config)?;
    let mut browser = Peer::chromium(
        &sim.origin,
        ROOM,
        "Navigateur",
        90,
        // A 640x360 camera keeps the unoptimised test build of the SFU within its means.
        &["--resolution", "h360"],
    )?;
    browser.expect(60, "the browser in the meeting", |l| {
        l["phase"] == "connected"
    })?;

    bus.ctl_ok(&["join", &sim.meeting_url(ROOM)])?;
    let in_call = bus.wait_status(30, "in-call", |s| s["state"] == "in-call")?;
    assert_eq!(in_call["meeting"]["source"], "dbus");
    let me = sim.wait_participant(ROOM, "Salle Visio", 30, |_| true)?;
    let identity = me["identity"].as_str().unwrap_or_default().to_owned();

    // The browser decodes the room's H.264 at the configured size, frames rising.
    let first = browser.expect(60, "the browser decoding the room's video", |l| {
        browser_track(l, &identity, "video").is_some_and(|t| num(&t, "framesDecoded") >= 30.0)
    })?;
    let v1 = browser_track(&first, &identity, "video").unwrap();
    let later = browser.expect(20, "the room's video still rising in the browser", |l| {
        browser_track(l, &identity, "video")
            .is_some_and(|t| num(&t, "framesDecoded") >= num(&v1, "framesDecoded") + 20.0)
    })?;
    let v2 = browser_track(&later, &identity, "video").unwrap();
    assert_eq!(
        (num(&v2, "frameWidth"), num(&v2, "frameHeight")),
        (640.0, 360.0),
        "the room's video in the browser: {v2}"
    );
    let mime = v2["mimeType"].as_str().unwrap_or_default();
    assert!(
        mime.eq_ignore_ascii_case("video/H264"),
        "codec {mime:?}: {v2}"
    );

    // The browser hears the room's test tone.
    let heard = browser.expect(20, "the room's audio in the browser", |l| {
        browser_track(l, &identity, "audio")
            .is_some_and(|t| num(&t, "totalAudioEnergy") > 0.0 && num(&t, "audioLevel") > 0.01)
    })?;
    println!(
        "browser: room video {v2}, room audio {}",
        browser_track(&heard, &identity, "audio").unwrap()
    );

    // The room decodes the browser's video (VP8 from a browser) and receives its audio:
    // two remote tracks, decoded frames and RTP packets rising.
    let s1 = bus.wait_status(40, "the room decoding the browser's video", |s| {
        count(s, "received_video_frames") > 30 && s["media"]["remote_tracks"] == 2
    })?;
    let s2 = bus.wait_status(20, "the browser's media still arriving", |s| {
        count(s, "received_video_frames") > count(&s1, "received_video_frames") + 20
            && count(s, "rtp_packets_received") > count(&s1, "rtp_packets_received") + 100
            && count(s, "received_audio_packets") > count(&s1, "received_audio_packets") + 50
    })?;
    let names: Vec<&str> = s2["participants"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["Navigateur"], "{s2:#}");
    assert_eq!(s2["participants"][0]["audio"], true, "{s2:#}");
    assert_eq!(s2["participants"][0]["video"], true, "{s2:#}");
    assert_eq!(s2["media"]["sending_video_size"], "640x360");
    println!(
        "room: {} video frames decoded, {} RTP packets received, audio at {} dBFS",
        count(&s2, "received_video_frames"),
        count(&s2, "rtp_packets_received"),
        s2["media"]["received_audio_level_dbfs"]
    );
    Ok(())
}

#[test]
fn the_official_python_sdk_reads_the_time_drawn_into_the_rooms_picture() -> Result<()> {
    // What the in-call benchmark measures glass-to-glass latency with, checked as a test:
    // the clock the test camera draws survives H.264, the SFU and libwebrtc's decoder.
    venv_python()?;
    let _one_media_test_at_a_time = media_lock()?;
    enter_loopback_only_netns()?;
    let sim = Sim::start(&[])?;
    let bus = Bus::start()?;
    let config = RoomConfig::new("Salle Horloge", sim.host()).sending(640, 360, 15);
    let _daemon = Daemon::with_config(&bus, &config)?;
    let mut client = Peer::picture_clock(&sim.origin, ROOM, "Salle Horloge", 60)?;
    client.expect(30, "the client in the meeting", |l| {
        l["state"] == "connected"
    })?;
    let asked = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    bus.ctl_ok(&["join", &sim.meeting_url(ROOM)])?;
    let first = client.expect(40, "the room's first frame at the client", |l| {
        l["first_frame_unix_ms"].as_u64().is_some()
    })?;
    let join_ms = first["first_frame_unix_ms"].as_u64().unwrap_or(0) - asked;
    let mut latencies: Vec<u64> = Vec::new();
    let last = client.expect(30, "60 pictures read", |l| {
        latencies.extend(
            l["latency_ms"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64),
        );
        latencies.len() >= 60
    });
    let (p50, p95) = (
        quantile(&mut latencies, 0.5),
        quantile(&mut latencies, 0.95),
    );
    println!("join → first frame {join_ms} ms; glass-to-glass p50 {p50:?} ms, p95 {p95:?} ms");
    let last = last?;
    assert_eq!(
        (last["width"].as_u64(), last["height"].as_u64()),
        (Some(640), Some(360))
    );
    // Most pictures carry a readable clock (a few may be unreadable right after a keyframe
    // at low bitrate), and the latency is that of a live call, not of a queue.
    let readable = latencies.len() as f64;
    let unreadable = last["unreadable"].as_f64().unwrap_or(0.0);
    assert!(
        unreadable < readable / 4.0,
        "{unreadable} unreadable pictures: {last}"
    );
    assert!(
        p50.unwrap_or(u64::MAX) < 1000,
        "glass-to-glass p50 {p50:?} ms"
    );
    Ok(())
}

#[test]
fn a_participant_joining_mid_call_sees_the_room_within_a_second() -> Result<()> {
    // The room is in the call and sending; a newcomer subscribes. The room must answer the
    // newcomer's keyframe request (PLI) at once, or the newcomer waits for the next periodic
    // keyframe. Measured from the newcomer's connection to its first decoded frame.
    venv_python()?;
    let _one_media_test_at_a_time = media_lock()?;
    enter_loopback_only_netns()?;
    let sim = Sim::start(&[])?;
    let bus = Bus::start()?;
    let config = RoomConfig::new("Salle Ouverte", sim.host()).sending(640, 360, 15);
    let _daemon = Daemon::with_config(&bus, &config)?;
    bus.ctl_ok(&["join", &sim.meeting_url(ROOM)])?;
    bus.wait_status(30, "the room sending video", |s| {
        s["state"] == "in-call" && count(s, "sending_video_frames") > 30
    })?;
    let mut newcomer = Peer::picture_clock(&sim.origin, ROOM, "Salle Ouverte", 40)?;
    let seen = newcomer.expect(30, "the room's first frame at the newcomer", |l| {
        l["first_frame_unix_ms"].as_u64().is_some()
    })?;
    let waited = seen["first_frame_unix_ms"].as_u64().unwrap_or(0)
        - seen["connected_unix_ms"].as_u64().unwrap_or(0);
    println!("newcomer: connected → first frame of the room {waited} ms");
    assert!(
        waited < 1000,
        "the newcomer waited {waited} ms for the room's video"
    );
    Ok(())
}
