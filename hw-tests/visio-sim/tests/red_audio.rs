//! Opus RED (`audio/red`, RFC 2198) as LiveKit forwards it (livekit/livekit
//! `pkg/rtc/participant_sdp.go`, `pkg/sfu/downtrack.go`, `pkg/sfu/redprimaryreceiver.go`):
//! headless Chromium publishes its microphone with livekit-client's defaults as Meet's web app
//! does (RED on, DTX), and the SFU's answer makes it send RED. A subscriber that negotiated
//! RED receives RED; one that did not receives the primary Opus; both decode the audio.
//! Private loopback-only network namespace (root); needs `scripts/deps.d/sim.sh`.

mod common;

use std::time::Duration;

use common::{
    enter_loopback_only_netns, media_lock, require_chromium_and_livekit_client, venv_python, Peer,
    SimServer,
};
use serde_json::Value;

const ROOM: &str = "abc-defg-hij";

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(0.0)
}

/// The browser's published audio, from the admin listing.
fn browser_audio(rt: &tokio::runtime::Runtime, sim: &SimServer) -> Option<Value> {
    rt.block_on(async {
        let v: Value = reqwest::Client::new()
            .get(format!("{}/sim/v1/rooms/{ROOM}/participants", sim.url))
            .bearer_auth("host-secret")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["participants"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == "Navigatrice Meet")?["tracks"]
            .as_array()?
            .iter()
            .find(|t| t["kind"] == "audio")
            .cloned()
    })
}

/// The Python peer's view of the first remote audio.
fn audio(line: &Value) -> Option<Value> {
    line["remote"]
        .as_object()?
        .values()
        .find(|t| t["kind"] == "audio")
        .cloned()
}

/// The browser viewer's view of the first remote audio.
fn viewer_audio(line: &Value) -> Option<Value> {
    line["remote"]
        .as_array()?
        .iter()
        .find(|t| t["kind"] == "audio")
        .cloned()
}

#[test]
fn red_reaches_who_negotiated_it_and_the_primary_opus_the_others() {
    let python = venv_python();
    require_chromium_and_livekit_client();
    let _one_browser_at_a_time = media_lock();
    enter_loopback_only_netns();
    at_most_twice("RED", || scenario(&python));
}

/// Runs a browser scenario, and once more if it fails (a 2-core machine shared with other
/// suites can starve Chromium and libwebrtc); the first failure is printed, never hidden.
fn at_most_twice(label: &str, scenario: impl Fn()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(&scenario)).is_err() {
        eprintln!("{label}: the first attempt failed (above); trying once more");
        scenario();
    }
}

fn scenario(python: &std::path::Path) {
    let sim = SimServer::start(&["--admin-token", "host-secret"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let chromium = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "--url",
            &sim.url,
            "--room",
            ROOM,
            "--name",
            name,
            "--seconds",
            "90",
        ];
        args.extend_from_slice(extra);
        Peer::start(python, "chrome_peer.py", &args)
    };
    let _publisher = chromium(
        "Navigatrice Meet",
        &["--resolution", "h360", "--publish", "meet"],
    );
    // A viewer whose browser does not take RED, and the Python SDK, which does.
    let mut viewer = chromium("Sans RED", &["--publish", "none", "--no-red"]);
    let mut sdk = Peer::start(
        python,
        "python_peer.py",
        &[
            "--url",
            &sim.url,
            "--room",
            ROOM,
            "--name",
            "Salle",
            "--seconds",
            "90",
            "--no-media",
        ],
    );
    let heard = sdk
        .wait_for(Duration::from_secs(40), |l| {
            audio(l).is_some_and(|a| num(&a, "frames") > 100.0 && num(&a, "peak_rms") > 0.01)
        })
        .unwrap_or_else(|| panic!("no browser audio at the SDK: {}\n{}", sdk.last(), sim.log()));
    let a1 = audio(&heard).unwrap();
    let v1 = viewer
        .wait_for(Duration::from_secs(40), |l| {
            viewer_audio(l).is_some_and(|a| num(&a, "totalAudioEnergy") > 0.0)
        })
        .unwrap_or_else(|| {
            panic!(
                "the viewer without RED hears nothing: {}\n{}",
                viewer.last(),
                sim.log()
            )
        });
    let v1 = viewer_audio(&v1).unwrap();

    // The publisher sends RED: the SFU's answer put it first.
    let track = browser_audio(&rt, &sim).expect("the browser's microphone");
    assert_eq!(track["mime_type"], "audio/red", "{track:#}");
    let sdk_id = sdk.last()["identity"].as_str().unwrap().to_owned();
    let codec_of = |t: &Value, identity: &str| {
        t["subscriptions"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["identity"] == identity))
            .map(|s| s["codec"].clone())
    };
    let viewer_id = viewer.last()["identity"].as_str().unwrap().to_owned();
    assert_eq!(
        codec_of(&track, &sdk_id),
        Some("audio/red".into()),
        "{track:#}"
    );
    assert_eq!(
        codec_of(&track, &viewer_id),
        Some("audio/opus".into()),
        "{track:#}"
    );

    // Both keep decoding: the SDK's frames and level, the viewer's packets and energy.
    let later = sdk
        .wait_for(Duration::from_secs(10), |l| {
            audio(l).is_some_and(|a| num(&a, "frames") > num(&a1, "frames") + 200.0)
        })
        .unwrap_or_else(|| panic!("the SDK's audio stalled: {}", sdk.last()));
    let a2 = audio(&later).unwrap();
    let later = viewer
        .wait_for(Duration::from_secs(10), |l| {
            viewer_audio(l).is_some_and(|a| {
                num(&a, "packetsReceived") > num(&v1, "packetsReceived") + 100.0
                    && num(&a, "totalAudioEnergy") > num(&v1, "totalAudioEnergy")
            })
        })
        .unwrap_or_else(|| panic!("the viewer's audio stalled: {}", viewer.last()));
    let v2 = viewer_audio(&later).unwrap();
    println!(
        "RED to the Python SDK: {} frames decoded, peak level {:.2}; primary Opus to the \
         browser without RED: {} packets, {} ({}), energy {:.3}",
        num(&a2, "frames"),
        num(&a2, "peak_rms"),
        num(&v2, "packetsReceived"),
        v2["mimeType"],
        v2["codecId"],
        num(&v2, "totalAudioEnergy")
    );
    assert_eq!(v2["mimeType"], "audio/opus", "{v2}");
}
