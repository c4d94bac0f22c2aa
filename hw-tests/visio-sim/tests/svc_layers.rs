//! Layer selection per subscriber, as LiveKit does it (livekit/livekit `pkg/sfu/forwarder.go`,
//! `pkg/sfu/videolayerselector/vp9.go`): headless Chromium publishes its camera as Meet's web
//! app does (VP9 SVC `L3T3_KEY`, npm `livekit-client`); two official Python SDK participants
//! subscribe. The one that asks for a low quality (`UpdateTrackSettings`) decodes the lower
//! spatial layer only and receives fewer bytes, while the other keeps the top layer; when it
//! asks for the high quality again it decodes the top layer after a keyframe.
//! Private loopback-only network namespace (root); needs `scripts/deps.d/sim.sh`.

mod common;

use std::time::{Duration, Instant};

use common::{
    enter_loopback_only_netns, media_lock, require_chromium_and_livekit_client, venv_python, Peer,
    SimServer,
};
use serde_json::Value;

const ROOM: &str = "abc-defg-hij";

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(0.0)
}

/// The Python peer's view of the first remote video.
fn video(line: &Value) -> Option<Value> {
    line["remote"]
        .as_object()?
        .values()
        .find(|t| t["kind"] == "video")
        .cloned()
}

/// The admin listing's subscription of `identity` to the browser's camera.
fn subscription(rt: &tokio::runtime::Runtime, sim: &SimServer, identity: &str) -> Option<Value> {
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
            .find(|t| t["kind"] == "video")?["subscriptions"]
            .as_array()?
            .iter()
            .find(|s| s["identity"] == identity)
            .cloned()
    })
}

/// Bytes per second forwarded to each of `identities` over the same 3 s.
fn rates(rt: &tokio::runtime::Runtime, sim: &SimServer, identities: &[&str]) -> Vec<f64> {
    let before: Vec<f64> = identities
        .iter()
        .map(|i| subscription(rt, sim, i).map_or(0.0, |s| num(&s, "bytes_out")))
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    identities
        .iter()
        .zip(before)
        .map(|(i, b)| {
            let after = subscription(rt, sim, i).map_or(0.0, |s| num(&s, "bytes_out"));
            (after - b) / t0.elapsed().as_secs_f64()
        })
        .collect()
}

fn command(file: &std::path::Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

/// Runs a browser scenario, and once more if it fails (a 2-core machine shared with other
/// suites can starve Chromium and libwebrtc); the first failure is printed, never hidden.
fn at_most_twice(label: &str, scenario: impl Fn()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(&scenario)).is_err() {
        eprintln!("{label}: the first attempt failed (above); trying once more");
        scenario();
    }
}

#[test]
fn each_subscriber_gets_the_svc_layer_it_asks_for_and_moves_up_at_a_keyframe() {
    let python = venv_python();
    require_chromium_and_livekit_client();
    let _one_browser_at_a_time = media_lock();
    enter_loopback_only_netns();
    at_most_twice("VP9 SVC layers", || {
        let sim = SimServer::start(&["--admin-token", "host-secret"]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let control = std::env::temp_dir().join(format!("visio-sim-svc-{}", std::process::id()));
        let _ = std::fs::remove_file(&control);
        let mut browser = Peer::start(
            &python,
            "chrome_peer.py",
            &[
                "--url",
                &sim.url,
                "--room",
                ROOM,
                "--name",
                "Navigatrice Meet",
                "--seconds",
                "120",
                // 640x360: libwebrtc sends two spatial layers (320x180 and 640x360) of
                // L3T3_KEY at this size, and the unoptimised SFU keeps up.
                "--resolution",
                "h360",
                "--publish",
                "meet",
            ],
        );
        let peer = |name: &str, extra: &[&str]| {
            let mut args = vec![
                "--url",
                &sim.url,
                "--room",
                ROOM,
                "--name",
                name,
                "--seconds",
                "120",
                "--no-media",
            ];
            args.extend_from_slice(extra);
            Peer::start(&python, "python_peer.py", &args)
        };
        let mut small = peer("Petite", &["--control", control.to_str().unwrap()]);
        let mut large = peer("Grande", &[]);

        let decoding = |p: &mut Peer, who: &str, frames: f64| {
            p.wait_for(Duration::from_secs(40), |l| {
                video(l).is_some_and(|v| num(&v, "frames") >= frames)
            })
            .unwrap_or_else(|| panic!("{who} decoded no VP9 video: {}\n{}", p.last(), p.log()))
        };
        decoding(&mut small, "Petite", 30.0);
        // Both at the top layer first (no settings: LiveKit's highest quality), once the
        // browser's encoder has ramped up to its two spatial layers.
        let top = large
            .wait_for(Duration::from_secs(30), |l| {
                video(l).is_some_and(|v| num(&v, "width") >= 600.0)
            })
            .unwrap_or_else(|| panic!("Grande never decoded the top layer: {}", large.last()));
        let top = video(&top).unwrap();
        let (top_w, top_h) = (num(&top, "width"), num(&top, "height"));
        let small_id = small.last()["identity"].as_str().unwrap().to_owned();
        let large_id = large.last()["identity"].as_str().unwrap().to_owned();
        // The browser really publishes VP9 SVC: L3T3_KEY asked for, which libwebrtc reduces
        // to L2T3_KEY at 640x360 (its lowest spatial layer may not be smaller than 320x180).
        let sending = browser
            .wait_for(Duration::from_secs(10), |l| {
                l["local"].as_array().is_some_and(|pubs| {
                    pubs.iter().any(|p| {
                        p["sent"].as_array().is_some_and(|s| {
                            s.iter().any(|s| {
                                s["mimeType"] == "video/VP9"
                                    && (s["scalabilityMode"] == "L3T3_KEY"
                                        || s["scalabilityMode"] == "L2T3_KEY")
                            })
                        })
                    })
                })
            })
            .unwrap_or_else(|| panic!("the browser does not send VP9 SVC: {}", browser.last()));
        println!("browser sends {}", sending["local"]);

        // Petite asks for the low quality: it decodes the lower layer only.
        command(&control, "quality-low");
        let low = small
            .wait_for(Duration::from_secs(15), |l| {
                video(l).is_some_and(|v| num(&v, "width") > 0.0 && num(&v, "width") <= top_w / 2.0)
            })
            .unwrap_or_else(|| {
                panic!(
                    "Petite still decodes {:?} after asking for the low quality\n{}",
                    video(&small.last()),
                    sim.log()
                )
            });
        let low = video(&low).unwrap();
        let f0 = num(&low, "frames");
        let later = decoding(&mut small, "Petite", f0 + 20.0);
        let low = video(&later).unwrap();
        assert!(
            num(&low, "width") <= top_w / 2.0,
            "Petite went back to {low}"
        );
        let r = rates(&rt, &sim, &[&small_id, &large_id]);
        let (s, l) = (
            subscription(&rt, &sim, &small_id).unwrap(),
            subscription(&rt, &sim, &large_id).unwrap(),
        );
        println!(
            "Petite (low): {}x{}, layer {}, {:.0} kbit/s; Grande: {top_w}x{top_h}, layer {}, {:.0} kbit/s",
            num(&low, "width"),
            num(&low, "height"),
            s["layer"],
            r[0] * 8.0 / 1000.0,
            l["layer"],
            r[1] * 8.0 / 1000.0
        );
        assert_eq!(s["layer"], "S0", "{s}");
        assert_ne!(l["layer"], "S0", "{l}");
        assert!(
            r[0] < r[1] * 0.6,
            "the low layer alone should cost well under the full stream: {r:?} bytes/s"
        );
        let big = video(&large.last()).unwrap();
        assert_eq!(
            (num(&big, "width"), num(&big, "height")),
            (top_w, top_h),
            "Grande lost the top layer: {big}"
        );

        // Back to the high quality: the top layer after a keyframe.
        let asked = Instant::now();
        command(&control, "quality-high");
        small
            .wait_for(Duration::from_secs(15), |l| {
                video(l).is_some_and(|v| num(&v, "width") == top_w)
            })
            .unwrap_or_else(|| {
                panic!(
                    "Petite never got the top layer back: {:?}\n{}",
                    video(&small.last()),
                    sim.log()
                )
            });
        let s = subscription(&rt, &sim, &small_id).unwrap();
        println!(
            "Petite back at {top_w}x{top_h} (layer {}) {} ms after asking",
            s["layer"],
            asked.elapsed().as_millis()
        );
        assert_eq!(s["layer"], l["layer"], "{s}");
        let _ = std::fs::remove_file(&control);
    });
}
