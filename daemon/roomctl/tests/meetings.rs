//! End to end with real meetings: `visio-roomd` joins `visio-sim` (the local Visio) with test
//! camera and microphone, driven by `visio-roomctl`, each daemon on its own private bus. The
//! lobby, server-initiated mute, a server restart and bad servers, seen from the room's side
//! (`status --json`, D-Bus properties) and from the server's (the simulator's admin API).

use std::time::{Duration, Instant};

use visio_room_test_support::{free_port, request, Bus, Daemon, FakeMeet, Result, RoomConfig, Sim};

/// The room's track of `kind` as the simulator sees it (sid, muted, packets_in, …).
fn track(participant: &serde_json::Value, kind: &str) -> Option<serde_json::Value> {
    participant["tracks"]
        .as_array()?
        .iter()
        .find(|t| t["kind"] == kind)
        .cloned()
}

fn packets_in(participant: &serde_json::Value, kind: &str) -> u64 {
    track(participant, kind)
        .and_then(|t| t["packets_in"].as_u64())
        .unwrap_or(0)
}

/// Waits until the simulator has received more than `above` packets of the room's `kind`
/// track: the room's media reaches the server.
fn wait_media_at_server(
    sim: &Sim,
    room: &str,
    name: &str,
    above: (u64, u64),
) -> Result<serde_json::Value> {
    sim.wait_participant(room, name, 30, |p| {
        packets_in(p, "video") > above.0 + 30 && packets_in(p, "audio") > above.1 + 30
    })
}

/// The daemon is alive and answers on the bus after a failure.
fn still_answers(bus: &Bus, daemon: &mut Daemon) -> Result<()> {
    assert!(daemon.is_running(), "visio-roomd exited:\n{}", daemon.log());
    let status = bus.status()?;
    assert!(status["version"].is_string(), "{status:#}");
    Ok(())
}

#[test]
fn an_unreachable_meeting_host_is_retried_then_reported_in_health() -> Result<()> {
    let host = format!("127.0.0.1:{}", free_port()?);
    let bus = Bus::start()?;
    let config = RoomConfig::new("Salle Retry", &host)
        .with("[join]\nmax_attempts = 3\ninitial_backoff_ms = 300\n");
    let mut daemon = Daemon::with_config(&bus, &config)?;
    bus.ctl_ok(&["join", &format!("http://{host}/abc-defg-hij")])?;
    let retrying = bus.wait_status(10, "a planned retry", |s| {
        s["health"]["retry_attempt"].as_u64().is_some()
    })?;
    assert_eq!(retrying["state"], "joining");
    assert_eq!(retrying["health"]["last_error_kind"], "unreachable");
    let failed = bus.wait_status(20, "the error state", |s| s["state"] == "error")?;
    let message = failed["health"]["last_error"].as_str().unwrap().to_owned();
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert_eq!(failed["health"]["status"], "error");
    still_answers(&bus, &mut daemon)?;
    // It recovers: Leave returns to idle.
    bus.ctl_ok(&["leave"])?;
    bus.wait_status(5, "idle", |s| s["state"] == "idle")?;
    Ok(())
}

#[test]
fn a_meeting_that_does_not_exist_is_an_error_without_retries() -> Result<()> {
    let sim = Sim::start(&["--no-unregistered-rooms"])?;
    let bus = Bus::start()?;
    let mut daemon = Daemon::with_config(&bus, &RoomConfig::new("Salle 404", sim.host()))?;
    bus.ctl_ok(&["join", &sim.meeting_url("nowhere-room")])?;
    let failed = bus.wait_status(20, "the error state", |s| s["state"] == "error")?;
    assert_eq!(
        failed["health"]["last_error_kind"], "room-not-found",
        "{failed:#}"
    );
    let message = failed["health"]["last_error"].as_str().unwrap_or("");
    assert!(message.contains("nowhere-room"), "{message}");
    assert!(failed["health"].get("retry_attempt").is_none());
    still_answers(&bus, &mut daemon)
}

#[test]
fn a_malformed_meet_api_reply_is_a_clear_error_and_the_daemon_keeps_answering() -> Result<()> {
    // A Meet API behind a broken proxy: HTML where JSON belongs, and JSON of the wrong shape.
    let meet = FakeMeet::start(|path| {
        if path.contains("/config/") {
            (
                200,
                r#"{"livekit": 42, "silence_detection": "maybe"}"#.into(),
            )
        } else {
            (200, "<html><body>502 Bad Gateway</body></html>".into())
        }
    })?;
    let bus = Bus::start()?;
    let config = RoomConfig::new("Salle Proxy", meet.host())
        .with("[join]\nmax_attempts = 2\ninitial_backoff_ms = 200\n");
    let mut daemon = Daemon::with_config(&bus, &config)?;
    bus.ctl_ok(&["join", &format!("{}/abc-defg-hij", meet.origin)])?;
    let failed = bus.wait_status(20, "the error state", |s| s["state"] == "error")?;
    assert_eq!(
        failed["health"]["last_error_kind"], "protocol",
        "{failed:#}"
    );
    let message = failed["health"]["last_error"].as_str().unwrap_or("");
    assert!(
        message.contains("unexpected reply") && message.contains("gave up after 2 attempts"),
        "{message}"
    );
    still_answers(&bus, &mut daemon)?;
    // The daemon still takes commands: leave, then the same join is attempted afresh.
    bus.ctl_ok(&["leave"])?;
    bus.wait_status(5, "idle", |s| s["state"] == "idle")?;
    bus.ctl_ok(&["join", &format!("{}/abc-defg-hij", meet.origin)])?;
    bus.wait_status(20, "the error state again", |s| s["state"] == "error")?;
    Ok(())
}

#[test]
fn a_token_the_server_refuses_is_reported_in_health_without_retries() -> Result<()> {
    // The Meet API hands out a token the LiveKit server (the real simulator) refuses: signed
    // with another secret, as when a deployment's Meet and LiveKit keys disagree.
    let sim = Sim::start(&[])?;
    let livekit = sim.origin.clone();
    let meet = FakeMeet::start(move |path| {
        if path.contains("/config/") {
            (200, "{}".into())
        } else {
            (
                200,
                format!(
                    r#"{{"id":"4d1a7e0c-0000-4000-8000-000000000001","slug":"abc-defg-hij",
                    "name":"abc-defg-hij","access_level":"public","is_administrable":false,
                    "livekit":{{"url":"{livekit}","room":"4d1a7e0c-0000-4000-8000-000000000001",
                    "token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4IiwidmlkZW8iOnsicm9vbUpvaW4iOnRydWV9fQ.c2lnbmVkLXdpdGgtYW5vdGhlci1zZWNyZXQ"}}}}"#
                ),
            )
        }
    })?;
    let bus = Bus::start()?;
    let mut config = RoomConfig::new("Salle Jeton", meet.host());
    config.allowed_hosts.push(sim.host().to_owned());
    let mut daemon = Daemon::with_config(&bus, &config)?;
    bus.ctl_ok(&["join", &format!("{}/abc-defg-hij", meet.origin)])?;
    let failed = bus.wait_status(20, "the error state", |s| s["state"] == "error")?;
    assert_eq!(failed["health"]["last_error_kind"], "refused", "{failed:#}");
    assert!(failed["health"].get("retry_attempt").is_none());
    assert!(
        !failed["health"]["last_error"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{failed:#}"
    );
    still_answers(&bus, &mut daemon)
}

#[test]
fn lobby_admission_then_media_flows() -> Result<()> {
    let sim = Sim::start(&["--room", "board:trusted"])?;
    let bus = Bus::start()?;
    let _daemon = Daemon::with_config(&bus, &RoomConfig::new("Salle Verte", sim.host()))?;
    bus.ctl_ok(&["join", &sim.meeting_url("board")])?;
    let waiting = bus.wait_status(15, "the lobby", |s| s["state"] == "lobby")?;
    assert_eq!(waiting["meeting"]["url"], sim.meeting_url("board").as_str());
    // The host sees the room waiting, under its name; the room keeps its place by polling
    // (an entry nobody polls expires after 3 s), so it is still there a while later.
    let deadline = Instant::now() + Duration::from_secs(4);
    let entry = loop {
        let list = sim.waiting("board")?;
        if Instant::now() >= deadline && !list.is_empty() {
            break list[0].clone();
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(10),
            "the room is not in the lobby list: {list:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(entry["username"], "Salle Verte");
    assert_eq!(bus.status()?["state"], "lobby");
    sim.decide_entry("board", entry["id"].as_str().unwrap(), true)?;
    let in_call = bus.wait_status(20, "in-call after admission", |s| s["state"] == "in-call")?;
    assert_eq!(in_call["health"]["status"], "ok", "{in_call:#}");
    // Media flows: the server receives the room's video and audio, and the room counts what
    // it sends.
    wait_media_at_server(&sim, "board", "Salle Verte", (0, 0))?;
    let sending = bus.wait_status(10, "frames sent", |s| {
        s["media"]["sending_video_frames"].as_u64().unwrap_or(0) > 30
    })?;
    assert_eq!(sending["media"]["sending_video_codec"], "H264");
    // docs/dbus-api.md writes `OPUS`; the daemon reports the codec in lower case.
    let audio_codec = sending["media"]["sending_audio_codec"]
        .as_str()
        .unwrap_or("");
    assert!(audio_codec.eq_ignore_ascii_case("opus"), "{sending:#}");
    Ok(())
}

#[test]
fn lobby_denial_is_reported_and_the_room_goes_back_to_idle() -> Result<()> {
    let sim = Sim::start(&["--room", "board:restricted"])?;
    let bus = Bus::start()?;
    let mut daemon = Daemon::with_config(&bus, &RoomConfig::new("Salle Rouge", sim.host()))?;
    bus.ctl_ok(&["join", &sim.meeting_url("board")])?;
    bus.wait_status(15, "the lobby", |s| s["state"] == "lobby")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let id = loop {
        if let Some(e) = sim.waiting("board")?.first() {
            break e["id"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the room never appeared in the lobby"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    sim.decide_entry("board", &id, false)?;
    let idle = bus.wait_status(15, "idle after the denial", |s| s["state"] == "idle")?;
    assert_eq!(idle["health"]["last_error_kind"], "denied", "{idle:#}");
    assert!(idle["meeting"].is_null(), "{idle:#}");
    assert!(sim.participant("board", "Salle Rouge")?.is_none());
    still_answers(&bus, &mut daemon)
}

/// The lobby timeout is the controller's alone: when nobody answers within
/// `join.lobby_timeout_s`, the controller stops the session (which would otherwise wait on), the
/// room leaves the lobby and shows the reason.
#[test]
fn nobody_admitting_the_room_ends_the_lobby_wait_at_the_configured_timeout() -> Result<()> {
    let sim = Sim::start(&["--room", "board:restricted"])?;
    let bus = Bus::start()?;
    let config = RoomConfig::new("Salle Grise", sim.host()).with("[join]\nlobby_timeout_s = 10\n");
    let mut daemon = Daemon::with_config(&bus, &config)?;
    bus.ctl_ok(&["join", &sim.meeting_url("board")])?;
    bus.wait_status(15, "the lobby", |s| s["state"] == "lobby")?;
    let waiting_since = Instant::now();
    let failed = bus.wait_status(20, "the lobby timeout", |s| {
        s["health"]["last_error_kind"] == "lobby-timeout"
    })?;
    let waited = waiting_since.elapsed();
    println!("lobby left {waited:?} after entering it");
    assert!(waited >= Duration::from_secs(9), "{waited:?}");
    assert_eq!(failed["state"], "error", "{failed:#}");
    // The session stopped polling: its entry expires from the lobby (3 s after the last poll).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sim.waiting("board")?.is_empty() {
        assert!(Instant::now() < deadline, "the room is still in the lobby");
        std::thread::sleep(Duration::from_millis(200));
    }
    still_answers(&bus, &mut daemon)
}

#[test]
fn a_server_mute_mutes_the_room_within_a_second_and_it_stays_muted() -> Result<()> {
    let sim = Sim::start(&[])?;
    let bus = Bus::start()?;
    let _daemon = Daemon::with_config(&bus, &RoomConfig::new("Salle Muette", sim.host()))?;
    bus.ctl_ok(&["join", &sim.meeting_url("abc-defg-hij")])?;
    bus.wait_status(30, "in-call", |s| s["state"] == "in-call")?;
    let me = wait_media_at_server(&sim, "abc-defg-hij", "Salle Muette", (0, 0))?;
    let identity = me["identity"].as_str().unwrap().to_owned();
    let audio = track(&me, "audio").expect("the room publishes audio");
    assert_eq!(audio["muted"], false);
    assert_eq!(bus.status()?["mic_muted"], false);

    let asked = Instant::now();
    sim.mute("abc-defg-hij", &identity, audio["sid"].as_str().unwrap())?;
    bus.wait_status(5, "MicMuted after the server mute", |s| {
        s["mic_muted"] == true
    })?;
    let muted_after = asked.elapsed();
    println!("MicMuted true {muted_after:?} after the server mute");
    assert!(
        muted_after < Duration::from_secs(1),
        "MicMuted took {muted_after:?}"
    );
    // It stays muted: for 3 s the room never reports itself unmuted, nor unmutes at the server.
    let unmuted = bus.wait_status(3, "an unmute", |s| s["mic_muted"] != true);
    assert!(unmuted.is_err(), "the room unmuted itself: {unmuted:?}");
    let status = bus.status()?;
    assert_eq!(status["state"], "in-call", "{status:#}");
    let me = sim.participant("abc-defg-hij", "Salle Muette")?.unwrap();
    assert_eq!(track(&me, "audio").unwrap()["muted"], true, "{me:#}");
    Ok(())
}

#[test]
fn the_media_server_a_meet_host_announces_is_used_and_shown_unless_media_hosts_restrict_it(
) -> Result<()> {
    // Like Visio, the Meet API and the LiveKit server on different hosts: a Meet front on
    // `localhost` passes requests to the simulator's Meet API, whose rooms announce LiveKit
    // on `127.0.0.1` (the origin the front asked it on).
    let sim = Sim::start(&[])?;
    let origin = sim.origin.clone();
    let meet = FakeMeet::start(
        move |path| match request(&origin, "GET", path, None, None) {
            Ok(reply) => (reply.status, reply.body),
            Err(e) => (502, format!("{{\"detail\": {:?}}}", e.to_string())),
        },
    )?;
    let port = meet
        .host()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let meet_host = format!("localhost:{port}");
    let meeting = format!("http://{meet_host}/abc-defg-hij");

    // By default the announced server is used, and Health names it.
    let bus = Bus::start()?;
    let daemon = Daemon::with_config(&bus, &RoomConfig::new("Salle Annonce", &meet_host))?;
    bus.ctl_ok(&["join", &meeting])?;
    let status = bus.wait_status(30, "in the call with the media server in Health", |s| {
        s["state"] == "in-call" && s["health"]["media_server"].is_string()
    })?;
    assert_eq!(
        status["health"]["media_server"],
        format!("ws://{}", sim.host()).as_str(),
        "{status:#}"
    );
    wait_media_at_server(&sim, "abc-defg-hij", "Salle Annonce", (0, 0))?;
    bus.ctl_ok(&["leave"])?;
    drop(daemon);

    // visio.media_hosts restricts it: the join fails at once, naming the host and the key.
    let bus = Bus::start()?;
    let config = RoomConfig::new("Salle Stricte", &meet_host)
        .with_visio("media_hosts = [\"127.0.0.2\"]\n")
        .with("[join]\nmax_attempts = 2\ninitial_backoff_ms = 200\n");
    let mut daemon = Daemon::with_config(&bus, &config)?;
    bus.ctl_ok(&["join", &meeting])?;
    let failed = bus.wait_status(20, "the error state", |s| s["state"] == "error")?;
    assert_eq!(
        failed["health"]["last_error_kind"], "not-available",
        "{failed:#}"
    );
    let message = failed["health"]["last_error"].as_str().unwrap_or("");
    assert!(
        message.contains(sim.host()) && message.contains("visio.media_hosts"),
        "{message}"
    );
    assert!(sim.participant("abc-defg-hij", "Salle Stricte")?.is_none());
    still_answers(&bus, &mut daemon)
}

#[test]
fn the_room_rejoins_by_itself_after_the_server_restarts() -> Result<()> {
    let mut sim = Sim::start(&[])?;
    let bus = Bus::start()?;
    let _daemon = Daemon::with_config(&bus, &RoomConfig::new("Salle Tenace", sim.host()))?;
    bus.ctl_ok(&["join", &sim.meeting_url("abc-defg-hij")])?;
    bus.wait_status(30, "in-call", |s| s["state"] == "in-call")?;
    let before = wait_media_at_server(&sim, "abc-defg-hij", "Salle Tenace", (0, 0))?;
    sim.restart()?;
    // A new server knows nothing: the room must come back by itself, media included.
    let back = wait_media_at_server(&sim, "abc-defg-hij", "Salle Tenace", (0, 0))?;
    assert_ne!(
        before["sid"], back["sid"],
        "a new participant session on the restarted server"
    );
    let status = bus.wait_status(10, "in-call after the restart", |s| s["state"] == "in-call")?;
    assert_eq!(
        status["meeting"]["url"],
        sim.meeting_url("abc-defg-hij").as_str()
    );
    assert_ne!(status["health"]["status"], "error", "{status:#}");
    Ok(())
}

#[test]
fn a_room_nobody_watches_pauses_its_video_and_resumes_when_someone_does() -> Result<()> {
    // Publisher dynacast: the server says which qualities of the room's camera are wanted
    // (`SubscribedQualityUpdate`); once nobody subscribes, the room stops encoding and sending.
    let sim = Sim::start(&[])?;
    let url = sim.meeting_url("abc-defg-hij");
    let (bus_a, bus_b) = (Bus::start()?, Bus::start()?);
    let _a = Daemon::with_config(&bus_a, &RoomConfig::new("Salle Vue", sim.host()))?;
    bus_a.ctl_ok(&["join", &url])?;
    bus_a.wait_status(30, "A in the call", |s| s["state"] == "in-call")?;
    let frames = |s: &serde_json::Value| s["media"]["sending_video_frames"].as_u64().unwrap_or(0);
    let mut b = Daemon::with_config(&bus_b, &RoomConfig::new("Salle Curieuse", sim.host()))?;
    bus_b.ctl_ok(&["join", &url])?;
    bus_b.wait_status(30, "B decodes A", |s| {
        s["media"]["received_video_frames"].as_u64().unwrap_or(0) > 0
    })?;
    assert_eq!(bus_a.status()?["media"]["sending_video_paused"], false);
    // B leaves: nobody watches A any more.
    bus_b.ctl_ok(&["leave"])?;
    let left = Instant::now();
    bus_a.wait_status(30, "A alone, video paused", |s| {
        s["media"]["sending_video_paused"] == true
    })?;
    println!("A paused {:?} after B left", left.elapsed());
    let paused = frames(&bus_a.status()?);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        frames(&bus_a.status()?) <= paused + 1,
        "frames sent while paused"
    );
    // Someone watches again: A resumes and is decoded.
    let asked = Instant::now();
    bus_b.ctl_ok(&["join", &url])?;
    bus_a.wait_status(30, "watched again, video resumed", |s| {
        s["media"]["sending_video_paused"] == false && frames(s) > paused + 1
    })?;
    bus_b.wait_status(30, "B decodes A again", |s| {
        s["media"]["received_video_frames"].as_u64().unwrap_or(0) > 0
    })?;
    println!("B decodes A again {:?} after joining", asked.elapsed());
    b.stop()?;
    Ok(())
}

#[test]
fn two_rooms_join_one_meeting_see_each_other_and_leave() -> Result<()> {
    let sim = Sim::start(&[])?;
    let url = sim.meeting_url("abc-defg-hij");
    let (bus_a, bus_b) = (Bus::start()?, Bus::start()?);
    let _a = Daemon::with_config(&bus_a, &RoomConfig::new("Salle A", sim.host()))?;
    let _b = Daemon::with_config(&bus_b, &RoomConfig::new("Salle B", sim.host()))?;
    let started = Instant::now();
    bus_a.ctl_ok(&["join", &url])?;
    let a = bus_a.wait_status(30, "A in the call", |s| s["state"] == "in-call")?;
    assert_eq!(a["meeting"]["url"], url.as_str());
    assert_eq!(a["meeting"]["source"], "dbus");
    bus_b.ctl_ok(&["join", &url])?;
    let b = bus_b.wait_status(30, "B decoding A's video", |s| {
        s["media"]["received_video_frames"].as_u64().unwrap_or(0) > 0
    })?;
    println!(
        "B decoded A's first frame {:?} after A's join",
        started.elapsed()
    );
    assert_eq!(b["media"]["sending_video_codec"], "H264");
    assert_eq!(b["media"]["sending_video_size"], "320x240");
    let names: Vec<_> = b["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(names, vec!["Salle A".to_owned()]);
    let a = bus_a.wait_status(30, "A decoding B's video", |s| {
        s["media"]["received_video_frames"].as_u64().unwrap_or(0) > 10
    })?;
    assert_eq!(a["participants"][0]["name"], "Salle B");
    // B leaves: B goes idle, A sees it go.
    bus_b.ctl_ok(&["leave"])?;
    bus_b.wait_status(10, "B idle", |s| s["state"] == "idle")?;
    bus_a.wait_status(15, "A alone", |s| {
        s["participants"].as_array().is_some_and(|p| p.is_empty())
    })?;
    Ok(())
}
