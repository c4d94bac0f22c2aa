//! The room comes back by itself: `visio-roomd` killed in a meeting (SIGKILL, as a crash or
//! the watchdog would end it) and started again as systemd's `Restart=always` does goes back
//! to the same meeting, as it was — muted if it was muted, which the official Python SDK
//! listening to the room's tone confirms; a clean stop (SIGTERM) does not go back; and a crash
//! loop stops going back and says why.

use std::time::{Duration, Instant};

use serde_json::Value;
use visio_room_test_support::{
    enter_loopback_only_netns, media_lock, venv_python, Bus, Daemon, Peer, Result, RoomConfig, Sim,
};

const ROOM: &str = "abc-defg-hij";
const NAME: &str = "Salle Tenace";

fn in_call(bus: &Bus, what: &str) -> Result<Value> {
    bus.wait_status(30, what, |s| {
        s["state"] == "in-call" && s["media"]["sending_audio_packets"].as_u64() > Some(20)
    })
}

#[test]
fn a_room_killed_in_a_meeting_goes_back_to_it_muted_as_it_was() -> Result<()> {
    venv_python()?;
    let _one_media_test_at_a_time = media_lock()?;
    enter_loopback_only_netns()?;
    let sim = Sim::start(&[])?;
    let bus = Bus::start()?;
    let mut daemon = Daemon::with_config(&bus, &RoomConfig::new(NAME, sim.host()))?;
    let mut peer = Peer::python_sdk(&sim.origin, ROOM, "Écoute", 120, &["--no-media"])?;
    peer.expect(30, "the peer in the meeting", |l| l["state"] == "connected")?;
    bus.ctl_ok(&["join", &sim.meeting_url(ROOM)])?;
    in_call(&bus, "in the call")?;
    bus.ctl_ok(&["mute", "on"])?;
    bus.wait_status(5, "muted", |s| s["mic_muted"] == true)?;
    let first = sim.wait_participant(ROOM, NAME, 10, |p| p["identity"].is_string())?;

    // A crash: no leave, no clean-up. systemd starts it again.
    daemon.kill();
    let killed = Instant::now();
    daemon.restart(&bus)?;
    let back = in_call(&bus, "back in the call after the crash")?;
    println!(
        "back in the call {:?} after the kill (restart included)",
        killed.elapsed()
    );
    assert_eq!(back["meeting"]["url"], sim.meeting_url(ROOM).as_str());
    assert_eq!(
        back["mic_muted"], true,
        "the room came back unmuted: {back:#}"
    );
    assert!(
        back["health"]["recovered_at"].as_u64().is_some(),
        "{back:#}"
    );
    assert_eq!(
        back["health"]["recovered_meeting"],
        sim.meeting_url(ROOM).as_str()
    );
    // The server and the other participant agree: the room is there again (a new participant;
    // the old one is gone or going), muted, and silent.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (me, audio) = loop {
        let found = sim.participants(ROOM)?.into_iter().find_map(|p| {
            let audio = p["tracks"]
                .as_array()?
                .iter()
                .find(|t| t["kind"] == "audio")
                .cloned()?;
            (p["name"] == NAME && p["identity"] != first["identity"]).then_some((p, audio))
        });
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "the room did not publish again");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(audio["muted"], true, "{me:#}");
    let identity = me["identity"].as_str().unwrap_or_default().to_owned();
    let mut levels = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match peer.wait_for(left, |_| true) {
            Some(line) => levels.extend(Peer::audio_level(&line, &identity)),
            None => break,
        }
    }
    assert!(
        levels.iter().all(|l| *l < 0.002),
        "the room was heard after coming back muted: {levels:?}"
    );

    // Unmuted by people in the room, then a clean stop: not rejoined.
    bus.ctl_ok(&["mute", "off"])?;
    daemon.stop()?;
    daemon.restart(&bus)?;
    std::thread::sleep(Duration::from_secs(2));
    let after_stop = bus.status()?;
    assert_eq!(after_stop["state"], "idle", "{after_stop:#}");
    assert!(after_stop["health"].get("recovered_at").is_none());
    Ok(())
}

#[test]
fn a_crash_loop_stops_going_back_and_says_why() -> Result<()> {
    let sim = Sim::start(&[])?;
    let bus = Bus::start()?;
    let config = RoomConfig::new("Salle Fragile", sim.host());
    let mut daemon = Daemon::with_config(&bus, &config)?;
    bus.ctl_ok(&["join", &sim.meeting_url(ROOM)])?;
    bus.wait_status(30, "in the call", |s| s["state"] == "in-call")?;
    for n in 1..=3 {
        daemon.kill();
        daemon.restart(&bus)?;
        bus.wait_status(30, &format!("back in the call (recovery {n})"), |s| {
            s["state"] == "in-call" && s["health"]["recovered_at"].is_u64()
        })?;
    }
    daemon.kill();
    daemon.restart(&bus)?;
    std::thread::sleep(Duration::from_secs(2));
    let status = bus.status()?;
    assert_eq!(status["state"], "idle", "{status:#}");
    assert_eq!(status["health"]["status"], "degraded", "{status:#}");
    let reason = status["health"]["recovery_refused"].as_str().unwrap_or("");
    assert!(
        reason.contains("4 times within 10 minutes") && reason.contains(ROOM),
        "{reason}"
    );
    Ok(())
}
