//! The room in a meeting with someone using Meet's web app, end to end. Meet publishes the
//! camera as VP9 (frontend `Conference.tsx`), which livekit-client sends as SVC `L3T3_KEY`
//! with a VP8 backup codec, and the microphone as Opus with DTX and RED. Headless Chromium
//! runs the meeting page with those options (`--publish meet`, npm `livekit-client`, fake
//! camera and microphone) on `visio-sim`; `visio-roomctl join` brings the real `visio-roomd`
//! in. The room must decode the browser's video (one picture per SVC superframe) and
//! receive its audio, and the test says which codecs it received. Private network namespace on loopback (root), one browser test at
//! a time on the machine.
//!
//! Needs `scripts/deps.d/sim.sh` (Chromium, npm modules, Python venv); fails naming it when
//! they are missing.

use serde_json::Value;
use visio_room_test_support::{
    enter_loopback_only_netns, media_lock, require_chromium, venv_python, Bus, Daemon, Peer,
    Result, RoomConfig, Sim,
};

const ROOM: &str = "abc-defg-hij";

fn count(status: &Value, key: &str) -> u64 {
    status["media"][key].as_u64().unwrap_or(0)
}

/// What the browser's local publication of `kind` sends: one entry per RTP stream.
fn sent(line: &Value, kind: &str) -> Vec<Value> {
    line["local"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["kind"] == kind)
        .flat_map(|p| p["sent"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The codecs of the tracks the room started receiving, from its log
/// (`receiving track track=… codec=Vp9`), in order.
fn received_codecs(log: &str) -> Vec<String> {
    let plain = strip_ansi(log);
    plain
        .lines()
        .filter(|l| l.contains("receiving track"))
        .filter_map(|l| {
            let rest = &l[l.find("codec=")? + "codec=".len()..];
            Some(rest.split_whitespace().next()?.to_owned())
        })
        .collect()
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn the_room_decodes_a_participant_publishing_like_meets_web_app() -> Result<()> {
    require_chromium()?;
    venv_python()?;
    let _one_browser_at_a_time = media_lock()?;
    enter_loopback_only_netns()?;
    let sim = Sim::start(&[])?;
    let bus = Bus::start()?;
    let config = RoomConfig::new("Salle Visio", sim.host()).sending(640, 360, 15);
    let daemon = Daemon::with_config(&bus, &config)?;
    let mut browser = Peer::chromium(
        &sim.origin,
        ROOM,
        "Navigatrice Meet",
        90,
        // A 640x360 camera keeps the unoptimised test build of the SFU within its means.
        &["--resolution", "h360", "--publish", "meet"],
    )?;
    // The browser really publishes VP9 with Meet's scalability mode.
    let publishing = browser.expect(60, "the browser publishing VP9", |l| {
        l["phase"] == "connected"
            && sent(l, "video").iter().any(|s| {
                s["mimeType"]
                    .as_str()
                    .is_some_and(|m| m.eq_ignore_ascii_case("video/VP9"))
                    && s["packetsSent"].as_u64().unwrap_or(0) > 0
            })
    })?;
    let video_sent = sent(&publishing, "video");
    let audio_sent = sent(&publishing, "audio");
    println!("browser sends video {video_sent:?}, audio {audio_sent:?}");

    bus.ctl_ok(&["join", &sim.meeting_url(ROOM)])?;
    bus.wait_status(30, "in-call", |s| s["state"] == "in-call")?;

    // The room decodes the browser's video and receives its audio: two remote tracks,
    // decoded frames and audio packets rising.
    let s1 = bus.wait_status(40, "the room decoding the browser's video", |s| {
        count(s, "received_video_frames") > 30 && s["media"]["remote_tracks"] == 2
    })?;
    let s2 = bus.wait_status(20, "the browser's media still arriving", |s| {
        count(s, "received_video_frames") > count(&s1, "received_video_frames") + 20
            && count(s, "received_audio_packets") > count(&s1, "received_audio_packets") + 50
    })?;
    // Decoded pictures per second against the browser's sent pictures per second: with SVC
    // each picture carries one frame per spatial layer, and the room must show one picture,
    // not one per layer.
    let (frames0, t0) = (
        count(&s2, "received_video_frames"),
        std::time::Instant::now(),
    );
    std::thread::sleep(std::time::Duration::from_secs(5));
    let frames1 = count(&bus.status()?, "received_video_frames");
    let decoded_fps = (frames1 - frames0) as f64 / t0.elapsed().as_secs_f64();
    let sent_fps = sent(&browser.last(), "video")
        .iter()
        .filter_map(|s| s["framesPerSecond"].as_f64())
        .fold(0.0, f64::max);
    println!("room decodes {decoded_fps:.1} pictures/s; the browser sends {sent_fps:.1}/s");
    assert!(decoded_fps > 0.0, "the room's decoded frames stopped");
    assert!(
        sent_fps == 0.0 || decoded_fps < sent_fps * 1.6,
        "{decoded_fps:.1} frames/s decoded for {sent_fps:.1} pictures/s sent: one per layer?"
    );
    let codecs = received_codecs(&daemon.log());
    println!(
        "room receives {codecs:?}: {} video frames decoded, {} audio packets, audio at {} dBFS",
        count(&s2, "received_video_frames"),
        count(&s2, "received_audio_packets"),
        s2["media"]["received_audio_level_dbfs"]
    );
    assert_eq!(s2["participants"][0]["name"], "Navigatrice Meet", "{s2:#}");
    assert_eq!(s2["participants"][0]["video"], true, "{s2:#}");
    assert_eq!(s2["participants"][0]["audio"], true, "{s2:#}");
    // The room advertises VP9, so it gets the primary codec, not the VP8 backup.
    assert!(
        codecs.iter().any(|c| c == "Vp9"),
        "the room received {codecs:?}; its log:\n{}",
        daemon.log()
    );
    // RED is offered, but visio-sim's stack has no RED: it negotiates plain Opus (the
    // receiver's RED path is tested in visio-room-media's receiver tests).
    assert!(
        codecs.iter().any(|c| c == "Opus" || c == "Red"),
        "the room received {codecs:?}"
    );
    assert_eq!(s2["media"]["error"], Value::Null, "{s2:#}");
    Ok(())
}
