//! Benchmark: `visio-roomd` in a real call on `visio-sim`, measured from outside as a
//! participant sees it. Prints, for 1280x720 and 1920x1080 at 30 frames/s with the software
//! H.264 encoder (x264enc) and the test camera and microphone:
//!
//! - **join time**: from `visio-roomctl join` to the first frame of the room's video decoded
//!   by an official client (the PyPI `livekit` SDK, libwebrtc) already in the meeting;
//! - **glass-to-glass latency** p50/p95: the test pattern carries the wall clock in its
//!   picture (`daemon/media/src/picture_clock.rs`), read back from every frame the client
//!   decodes (`hw-tests/test-support/peers/picture_clock_peer.py`);
//! - **CPU and RSS of `visio-roomd`** in the call, side by side with the same GStreamer encode
//!   pipeline (test pattern → x264enc → RTP, tone → Opus → RTP) run alone by `gst-launch-1.0`
//!   in the same run, and the simulator's CPU for context;
//! - **a participant joining mid-call**: from its connection to its first decoded frame of
//!   the room's video;
//! - **RSS after repeated join/leave cycles** (50 by default).
//!
//! Run (as root: the clients need a loopback-only network namespace):
//! `cargo build --release --workspace --bins && cargo bench -p visio-roomd --bench in_call`.
//! Environment: `VISIO_BENCH_SECONDS` (measurement window per size, default 15),
//! `VISIO_BENCH_CYCLES` (default 50). Needs `scripts/deps.d/sim.sh` and
//! `scripts/deps.d/media.sh`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use visio_room_test_support::{
    enter_loopback_only_netns, media_lock, quantile, thread_cpu_seconds, usage, venv_python, Bus,
    Daemon, Peer, Result, RoomConfig, Sim,
};

const ROOM_NAME: &str = "Salle Mesure";

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `n` thread names that used the most CPU between two [`thread_cpu_seconds`] readings, as
/// "name N %" over `elapsed` seconds.
fn top_threads(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    elapsed: f64,
    n: usize,
) -> String {
    let mut used: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .collect();
    used.sort_by(|a, b| b.1.total_cmp(&a.1));
    used.iter()
        .take(n)
        .map(|(k, v)| format!("{k} {:.0} %", 100.0 * v / elapsed))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one call at one size measured.
struct CallRow {
    size: String,
    join_ms: u64,
    latency_p50: u32,
    latency_p95: u32,
    latency_samples: usize,
    unreadable: u64,
    decoded_fps: f64,
    sent_fps: f64,
    encoder: String,
    cpu_percent: f64,
    rss_mib: f64,
    sim_cpu_percent: f64,
    mid_call_ms: u64,
    video_kbps: f64,
    threads: String,
}

/// One call: the measuring client waits in the meeting, the room joins, then `seconds` of
/// steady state are measured after a short warm-up.
fn run_call(sim: &Sim, slug: &str, width: u32, height: u32, seconds: u64) -> Result<CallRow> {
    let bus = Bus::start()?;
    let config = RoomConfig::new(ROOM_NAME, sim.host()).sending(width, height, 30);
    let daemon = Daemon::with_config(&bus, &config)?;
    let mut peer = Peer::picture_clock(&sim.origin, slug, ROOM_NAME, (seconds + 60) as u32)?;
    peer.expect(30, "the measuring client in the meeting", |l| {
        l["state"] == "connected"
    })?;

    let asked = now_unix_ms();
    bus.ctl_ok(&["join", &sim.meeting_url(slug)])?;
    let first = peer.expect(40, "the room's first frame at the client", |l| {
        l["first_frame_unix_ms"].as_u64().is_some()
    })?;
    let join_ms = first["first_frame_unix_ms"].as_u64().unwrap_or(0) - asked;

    // Warm-up: the encoder's rate control and the congestion estimate settle.
    peer.wait_for(Duration::from_secs(3), |_| false);
    let status0 = bus.status()?;
    let frames0 = peer.last()["frames"].as_u64().unwrap_or(0);
    let t_client0 = peer.last()["t"].as_f64().unwrap_or(0.0);
    let unreadable0 = peer.last()["unreadable"].as_u64().unwrap_or(0);
    let video_bytes = |sim: &Sim| -> Result<u64> {
        Ok(sim
            .participant(slug, ROOM_NAME)?
            .and_then(|p| {
                p["tracks"]
                    .as_array()?
                    .iter()
                    .find(|t| t["kind"] == "video")
                    .and_then(|t| t["bytes_in"].as_u64())
            })
            .unwrap_or(0))
    };
    let bytes0 = video_bytes(sim)?;
    let threads0 = thread_cpu_seconds(daemon.pid());
    let (u0, s0, t0) = (daemon.usage()?, sim.usage()?, Instant::now());
    let mut latencies: Vec<u32> = Vec::new();
    let deadline = t0 + Duration::from_secs(seconds);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(line) = peer.wait_for(left, |_| true) {
            latencies.extend(
                line["latency_ms"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_u64().map(|v| v as u32)),
            );
        }
    }
    let (u1, s1, elapsed) = (daemon.usage()?, sim.usage()?, t0.elapsed().as_secs_f64());
    let threads = top_threads(&threads0, &thread_cpu_seconds(daemon.pid()), elapsed, 8);
    let status1 = bus.status()?;
    let video_kbps = (video_bytes(sim)? - bytes0) as f64 * 8.0 / 1000.0 / elapsed;
    // A participant joining mid-call: from its connection to the room's first decoded frame
    // (the room must send a keyframe when the newcomer's subscription asks for one).
    let mut late = Peer::picture_clock(&sim.origin, slug, ROOM_NAME, 60)?;
    let seen = late.expect(40, "the room's first frame at the mid-call client", |l| {
        l["first_frame_unix_ms"].as_u64().is_some()
    })?;
    let mid_call_ms = seen["first_frame_unix_ms"].as_u64().unwrap_or(0)
        - seen["connected_unix_ms"].as_u64().unwrap_or(0);
    drop(late);
    let frames1 = peer.last()["frames"].as_u64().unwrap_or(0);
    let t_client1 = peer.last()["t"].as_f64().unwrap_or(0.0);
    let sent = |s: &Value| s["media"]["sending_video_frames"].as_u64().unwrap_or(0);
    let row = CallRow {
        size: format!("{width}x{height}@30"),
        join_ms,
        latency_p50: quantile(&mut latencies, 0.5).unwrap_or(0),
        latency_p95: quantile(&mut latencies, 0.95).unwrap_or(0),
        latency_samples: latencies.len(),
        unreadable: peer.last()["unreadable"].as_u64().unwrap_or(0) - unreadable0,
        decoded_fps: (frames1 - frames0) as f64 / (t_client1 - t_client0).max(1.0),
        sent_fps: (sent(&status1) - sent(&status0)) as f64 / elapsed,
        encoder: status1["media"]["sending_video_encoder"]
            .as_str()
            .unwrap_or("?")
            .to_owned(),
        cpu_percent: 100.0 * (u1.cpu_seconds - u0.cpu_seconds) / elapsed,
        rss_mib: u1.rss_kib as f64 / 1024.0,
        sim_cpu_percent: 100.0 * (s1.cpu_seconds - s0.cpu_seconds) / elapsed,
        mid_call_ms,
        video_kbps,
        threads,
    };
    bus.ctl_ok(&["leave"])?;
    bus.wait_status(10, "idle", |s| s["state"] == "idle")?;
    Ok(row)
}

/// The same encode pipelines as the room's senders, alone in `gst-launch-1.0`: CPU and RSS.
/// `kbps` is the bitrate the room's encoder was seen sending at in the call.
fn run_gst_launch(width: u32, height: u32, kbps: u32, seconds: u64) -> Result<(f64, f64)> {
    let pipeline = format!(
        "videotestsrc pattern=ball is-live=true \
         ! video/x-raw,width={width},height={height},framerate=30/1,pixel-aspect-ratio=1/1 \
         ! queue max-size-buffers=2 max-size-bytes=0 max-size-time=0 leaky=downstream \
         ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast b-adapt=false bframes=0 \
           sliced-threads=true key-int-max=60 bitrate={kbps} \
         ! video/x-h264,profile=constrained-baseline ! h264parse config-interval=-1 \
         ! rtph264pay mtu=1200 pt=102 aggregate-mode=zero-latency ! fakesink sync=false \
         audiotestsrc freq=440 volume=0.3 samplesperbuffer=480 is-live=true \
         ! audioconvert ! audioresample \
         ! audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved \
         ! webrtcdsp probe=echo noise-suppression=true gain-control=true ! volume ! audioconvert \
         ! opusenc bitrate=32000 frame-size=20 audio-type=voice inband-fec=true \
           packet-loss-percentage=10 ! rtpopuspay pt=111 ! fakesink sync=false \
         audiotestsrc wave=silence samplesperbuffer=480 is-live=true \
         ! audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved \
         ! webrtcechoprobe name=echo ! fakesink sync=false"
    );
    let mut child = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| visio_room_test_support::Error::Spawn {
            program: "gst-launch-1.0 (gstreamer1.0-tools, scripts/deps.d/media.sh)".into(),
            source,
        })?;
    let pid = child.id();
    // The same warm-up as the call, then the same window.
    std::thread::sleep(Duration::from_secs(3));
    if let Ok(Some(status)) = child.try_wait() {
        return Err(visio_room_test_support::Error::Unexpected {
            what: format!(
                "gst-launch-1.0 exited ({status}); run it by hand:\ngst-launch-1.0 {pipeline}"
            ),
        });
    }
    let (u0, t0) = (usage(pid)?, Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (u1, elapsed) = (usage(pid)?, t0.elapsed().as_secs_f64());
    let _ = child.kill();
    let _ = child.wait();
    Ok((
        100.0 * (u1.cpu_seconds - u0.cpu_seconds) / elapsed,
        u1.rss_kib as f64 / 1024.0,
    ))
}

/// Join/leave `cycles` times (each join waits for video to be sent, each leave for idle);
/// returns (cycle, RSS MiB) at a few checkpoints, cycle 0 being before the first join.
fn run_cycles(
    sim: &Sim,
    slug: &str,
    cycles: u64,
    env: &[(&str, &str)],
) -> Result<Vec<(u64, f64, f64)>> {
    let bus = Bus::start()?;
    let config = RoomConfig::new(ROOM_NAME, sim.host()).sending(1280, 720, 30);
    let daemon = Daemon::with_config_and_env(&bus, &config, env)?;
    let started = Instant::now();
    let mut points = vec![(0, daemon.usage()?.rss_kib as f64 / 1024.0, 0.0)];
    for cycle in 1..=cycles {
        bus.ctl_ok(&["join", &sim.meeting_url(slug)])?;
        bus.wait_status(30, "in-call, sending video", |s| {
            s["state"] == "in-call" && s["media"]["sending_video_frames"].as_u64().unwrap_or(0) > 0
        })?;
        bus.ctl_ok(&["leave"])?;
        bus.wait_status(15, "idle", |s| s["state"] == "idle")?;
        if [1, 5, 10].contains(&cycle) || cycle % 25 == 0 || cycle == cycles {
            points.push((
                cycle,
                daemon.usage()?.rss_kib as f64 / 1024.0,
                started.elapsed().as_secs_f64(),
            ));
        }
    }
    Ok(points)
}

fn main() -> Result<()> {
    let seconds = env_u64("VISIO_BENCH_SECONDS", 15);
    let cycles = env_u64("VISIO_BENCH_CYCLES", 50);
    venv_python()?;
    let _one_media_run_at_a_time = media_lock()?;
    enter_loopback_only_netns()?;
    let sim = Sim::start(&[])?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "in-call benchmark: {seconds} s windows, {cores} cores, load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut calls = Vec::new();
    for (slug, w, h) in [
        ("salle-mesure-hd", 1280, 720),
        ("salle-mesure-fhd", 1920, 1080),
    ] {
        let call = run_call(&sim, slug, w, h, seconds)?;
        let kbps = (call.video_kbps.round() as u32).max(100);
        let alone = run_gst_launch(w, h, kbps, seconds)?;
        calls.push((call, alone));
    }
    println!();
    println!("| size | join → first frame at the client | mid-call joiner: connected → first frame | glass-to-glass p50 / p95 (samples) | frames/s sent / decoded |");
    println!("|---|---|---|---|---|");
    for (c, _) in &calls {
        println!(
            "| {} | {} ms | {} ms | {} / {} ms ({}, {} unreadable) | {:.1} / {:.1} |",
            c.size,
            c.join_ms,
            c.mid_call_ms,
            c.latency_p50,
            c.latency_p95,
            c.latency_samples,
            c.unreadable,
            c.sent_fps,
            c.decoded_fps
        );
    }
    println!();
    println!("| | CPU (% of one core) | RSS |");
    println!("|---|---|---|");
    for (c, (cpu, rss)) in &calls {
        println!(
            "| {}, visio-roomd in the call ({}, {:.0} kbit/s of video at the server) | {:.0} | {:.0} MiB |",
            c.size, c.encoder, c.video_kbps, c.cpu_percent, c.rss_mib
        );
        println!(
            "| {}, same encode pipelines in gst-launch-1.0, x264 at {:.0} kbit/s (baseline) | {:.0} | {:.0} MiB |",
            c.size, c.video_kbps, cpu, rss
        );
        println!(
            "| {}, visio-sim forwarding (context) | {:.0} | |",
            c.size, c.sim_cpu_percent
        );
    }
    println!();
    for (c, _) in &calls {
        println!("{}: visio-roomd's busiest threads: {}", c.size, c.threads);
    }
    // As under systemd (the unit caps glibc's malloc arenas), and with glibc's default.
    let capped = run_cycles(&sim, "mesure-cycles", cycles, &[("MALLOC_ARENA_MAX", "2")])?;
    let default = run_cycles(&sim, "mesure-cycles-b", cycles, &[])?;
    println!();
    println!("| join/leave cycles (1280x720@30) | RSS, MALLOC_ARENA_MAX=2 (systemd unit) | RSS, glibc default arenas |");
    println!("|---|---|---|");
    for ((cycle, rss, secs), (_, rss_default, secs_default)) in capped.into_iter().zip(default) {
        println!(
            "| {cycle} | {rss:.1} MiB ({secs:.0} s) | {rss_default:.1} MiB ({secs_default:.0} s) |"
        );
    }
    Ok(())
}
