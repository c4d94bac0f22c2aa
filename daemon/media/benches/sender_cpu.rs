//! CPU time and memory of the room's video sender (test pattern → x264enc → RTP) at 720p30
//! and 1080p30, side by side with the same GStreamer pipeline run by `gst-launch-1.0` in the
//! same run, as the baseline; then the engine's own capture-to-decode latency (sender →
//! receiver in one process, no network), read from the picture clock. Prints Markdown tables.
//!
//! `cargo bench -p visio-room-media --bench sender_cpu` (seconds per run:
//! `VISIO_BENCH_SECONDS`, default 10). Runs one after the other, never concurrently.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use visio_room_media::probe::probe_h264_encoder;
use visio_room_media::{
    AudioSinkSetting, CameraSource, EncoderCandidate, EncoderSettings, Receiver, ReceiverConfig,
    RemoteCodec, RemoteTrack, VideoSender, VideoSenderConfig, VideoSinkSetting,
};

/// Linux's USER_HZ: /proc times are in 1/100 s on every architecture the appliance runs on.
const TICKS_PER_SECOND: f64 = 100.0;

struct Usage {
    cpu_seconds: f64,
    rss_kib: u64,
    peak_rss_kib: u64,
}

fn usage(pid: &str) -> Usage {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Usage {
        cpu_seconds: ticks as f64 / TICKS_PER_SECOND,
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
    }
}

struct Row {
    what: String,
    cpu_percent: f64,
    rss_mib: f64,
    fps: f64,
}

fn run_engine(width: u32, height: u32, bitrate: u32, seconds: u64) -> Row {
    let x264 = EncoderCandidate::default_order()
        .into_iter()
        .find(|c| c.factory == "x264enc")
        .unwrap();
    let choice = probe_h264_encoder(&[x264], &CameraSource::Test).expect("x264enc");
    let before = usage("self");
    let started = Instant::now();
    let (sender, mut rx) = VideoSender::start(
        VideoSenderConfig {
            width,
            height,
            fps: 30,
            encoder: EncoderSettings {
                bitrate_bps: bitrate,
                keyframe_interval_frames: 60,
            },
            ..VideoSenderConfig::default()
        },
        &choice,
    )
    .expect("sender starts");
    // The meeting session's side: take every packet.
    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let (stop2, bytes2) = (stop.clone(), bytes.clone());
    let drain = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            match rx.try_recv() {
                Ok(p) => {
                    bytes2.fetch_add(p.len() as u64, Ordering::Relaxed);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    std::thread::sleep(Duration::from_secs(seconds));
    let after = usage("self");
    let elapsed = started.elapsed().as_secs_f64();
    let frames = sender.stats().frames_sent;
    drop(sender);
    stop.store(true, Ordering::Relaxed);
    drain.join().unwrap();
    Row {
        what: format!("visio-room-media VideoSender {width}x{height}@30"),
        cpu_percent: 100.0 * (after.cpu_seconds - before.cpu_seconds) / elapsed,
        rss_mib: after.rss_kib as f64 / 1024.0,
        fps: frames as f64 / elapsed,
    }
}

fn run_gst_launch(width: u32, height: u32, bitrate: u32, seconds: u64) -> Row {
    let kbps = bitrate / 1000;
    let pipeline = format!(
        "videotestsrc pattern=ball is-live=true \
         ! video/x-raw,width={width},height={height},framerate=30/1,pixel-aspect-ratio=1/1 \
         ! timeoverlay halignment=right valignment=bottom time-mode=running-time ! valve \
         ! queue max-size-buffers=2 max-size-bytes=0 max-size-time=0 leaky=downstream \
         ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast b-adapt=false bframes=0 \
           sliced-threads=true key-int-max=60 bitrate={kbps} \
         ! video/x-h264,profile=constrained-baseline ! h264parse config-interval=-1 \
         ! rtph264pay mtu=1200 pt=102 aggregate-mode=zero-latency \
         ! identity name=count silent=true ! fakesink sync=false"
    );
    let mut child = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 (gstreamer1.0-tools, see scripts/deps.d/media.sh)");
    let pid = child.id().to_string();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let after = usage(&pid);
    let elapsed = started.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    Row {
        what: format!("gst-launch-1.0, same pipeline {width}x{height}@30"),
        cpu_percent: 100.0 * after.cpu_seconds / elapsed,
        rss_mib: after.rss_kib as f64 / 1024.0,
        fps: f64::NAN,
    }
}

/// Sender → receiver in one process; samples the picture-clock latency of decoded pictures.
fn run_latency(width: u32, height: u32, jitter_latency_ms: u32, seconds: u64) -> (u32, u32, usize) {
    let x264 = EncoderCandidate::default_order()
        .into_iter()
        .find(|c| c.factory == "x264enc")
        .unwrap();
    let choice = probe_h264_encoder(&[x264], &CameraSource::Test).expect("x264enc");
    let (receiver, _events) = Receiver::start(ReceiverConfig {
        video_sink: VideoSinkSetting::None,
        audio_sink: AudioSinkSetting::None,
        jitter_latency_ms,
        ..ReceiverConfig::default()
    })
    .expect("receiver starts");
    let receiver = Arc::new(receiver);
    receiver
        .add_track(RemoteTrack {
            id: "TR_room".into(),
            codec: RemoteCodec::H264,
            payload_type: 102,
            screen_share: false,
        })
        .unwrap();
    let (sender, mut rx) = VideoSender::start(
        VideoSenderConfig {
            width,
            height,
            ..VideoSenderConfig::default()
        },
        &choice,
    )
    .expect("sender starts");
    let forward = receiver.clone();
    let pump = std::thread::spawn(move || {
        while let Some(packet) = rx.blocking_recv() {
            let _ = forward.push_rtp("TR_room", packet);
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let mut samples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if let Some(ms) = receiver.stats().tracks[0].picture_latency_ms {
            samples.push(ms);
        }
        std::thread::sleep(Duration::from_millis(33));
    }
    drop(sender);
    pump.join().unwrap();
    samples.sort_unstable();
    let pick = |q: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    (pick(0.5), pick(0.95), samples.len())
}

fn main() {
    let seconds: u64 = std::env::var("VISIO_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    visio_room_media::init().expect("GStreamer (scripts/deps.d/media.sh)");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "sender CPU benchmark: {seconds} s per run, {cores} cores, {}",
        visio_room_media::gstreamer_version()
    );
    println!();
    println!("| pipeline | CPU (% of one core) | RSS (MiB) | frames/s sent |");
    println!("|---|---|---|---|");
    for (w, h, bitrate) in [(1280, 720, 2_500_000), (1920, 1080, 4_000_000)] {
        for row in [
            run_engine(w, h, bitrate, seconds),
            run_gst_launch(w, h, bitrate, seconds),
        ] {
            let fps = if row.fps.is_nan() {
                "-".to_owned()
            } else {
                format!("{:.1}", row.fps)
            };
            println!(
                "| {} | {:.0} | {:.0} | {} |",
                row.what, row.cpu_percent, row.rss_mib, fps
            );
        }
    }
    println!();
    println!("| capture → encode → RTP → jitter buffer → decode, one process | p50 (ms) | p95 (ms) | samples |");
    println!("|---|---|---|---|");
    for jitter in [150, 50] {
        let (p50, p95, n) = run_latency(1280, 720, jitter, seconds);
        println!("| 1280x720@30, x264enc, jitter buffer {jitter} ms | {p50} | {p95} | {n} |");
    }
    let peak = usage("self").peak_rss_kib;
    println!();
    println!(
        "peak RSS of the benchmark process: {:.0} MiB",
        peak as f64 / 1024.0
    );
}
