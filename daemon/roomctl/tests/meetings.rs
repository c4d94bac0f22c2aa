//! End to end with real meetings: `visio-roomd` joins `visio-sim` (the local Visio) with test
//! camera and microphone, driven by `visio-roomctl`, each daemon on its own private bus.

mod support;

use std::time::{Duration, Instant};

use support::{json, Bus, Daemon, Sim};

/// A configuration file for a room allowed to join meetings on `host`, with test sources and
/// no display or speakers (frames are still decoded and counted).
fn room_config(dir: &tempfile::TempDir, name: &str, host: &str, join: &str) -> String {
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[room]\nname = \"{name}\"\n[visio]\nallowed_hosts = [\"{host}\"]\n\
             [media]\nvideo_source = \"test\"\naudio_source = \"test\"\nvideo_sink = \"none\"\n\
             audio_sink = \"none\"\nresolution = \"320x240\"\nframerate = 15\n{join}"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// Polls `status --json` until `done` holds, or fails with the last status.
fn wait_status(
    bus: &Bus,
    secs: u64,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let status = json(&bus.ctl(&["status", "--json"]));
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not reached within {secs} s; last status: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_unreachable_meeting_host_is_retried_then_reported_in_health() {
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{port}");
    let config = room_config(
        &dir,
        "Salle Retry",
        &host,
        "[join]\nmax_attempts = 3\ninitial_backoff_ms = 300\n",
    );
    let bus = Bus::start();
    let _daemon = Daemon::start(&bus, &["--config", &config]);
    let out = bus.ctl(&["join", &format!("http://{host}/abc-defg-hij")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let retrying = wait_status(&bus, 10, "a planned retry", |s| {
        s["health"]["retry_attempt"].as_u64().is_some()
    });
    assert_eq!(retrying["state"], "joining");
    assert_eq!(retrying["health"]["last_error_kind"], "unreachable");
    let failed = wait_status(&bus, 20, "the error state", |s| s["state"] == "error");
    let message = failed["health"]["last_error"].as_str().unwrap().to_owned();
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert_eq!(failed["health"]["status"], "error");
    // The daemon keeps running and recovers: Leave returns to idle.
    assert!(bus.ctl(&["leave"]).status.success());
    wait_status(&bus, 5, "idle", |s| s["state"] == "idle");
}

#[test]
fn a_meeting_that_does_not_exist_is_an_error_without_retries() {
    let sim = Sim::start(&["--no-unregistered-rooms"]);
    let dir = tempfile::tempdir().unwrap();
    let config = room_config(&dir, "Salle 404", sim.host(), "");
    let bus = Bus::start();
    let _daemon = Daemon::start(&bus, &["--config", &config]);
    assert!(bus
        .ctl(&["join", &format!("{}/nowhere-room", sim.origin)])
        .status
        .success());
    let failed = wait_status(&bus, 20, "the error state", |s| s["state"] == "error");
    assert_eq!(
        failed["health"]["last_error_kind"], "room-not-found",
        "{failed:#}"
    );
    assert!(failed["health"].get("retry_attempt").is_none());
}

#[test]
fn two_rooms_join_one_meeting_see_each_other_and_leave() {
    let sim = Sim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}/abc-defg-hij", sim.origin);
    let (bus_a, bus_b) = (Bus::start(), Bus::start());
    let config_a = room_config(&dir, "Salle A", sim.host(), "");
    let config_b = room_config(&dir, "Salle B", sim.host(), "");
    let _a = Daemon::start(&bus_a, &["--config", &config_a]);
    let _b = Daemon::start(&bus_b, &["--config", &config_b]);
    let started = Instant::now();
    assert!(bus_a.ctl(&["join", &url]).status.success());
    let a = wait_status(&bus_a, 30, "A in the call", |s| s["state"] == "in-call");
    assert_eq!(a["meeting"]["url"], url.as_str());
    assert_eq!(a["meeting"]["source"], "dbus");
    assert!(bus_b.ctl(&["join", &url]).status.success());
    let b = wait_status(&bus_b, 30, "B decoding A's video", |s| {
        s["media"]["received_video_frames"].as_u64().unwrap_or(0) > 0
    });
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
    let a = wait_status(&bus_a, 30, "A decoding B's video", |s| {
        s["media"]["received_video_frames"].as_u64().unwrap_or(0) > 10
    });
    assert_eq!(a["participants"][0]["name"], "Salle B");
    // B leaves: B goes idle, A sees it go.
    assert!(bus_b.ctl(&["leave"]).status.success());
    wait_status(&bus_b, 10, "B idle", |s| s["state"] == "idle");
    wait_status(&bus_a, 15, "A alone", |s| {
        s["participants"].as_array().is_some_and(|p| p.is_empty())
    });
}
