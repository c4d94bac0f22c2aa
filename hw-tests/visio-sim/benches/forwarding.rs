//! Forwarding benchmark: N publishers × M subscribers of a 720p-rate VP8 stream through a real
//! `visio-sim`, on loopback. Prints the SFU's CPU per forwarded Mbit/s and the latency a packet
//! gains crossing it (publisher send → subscriber receive, p50/p95).
//!
//! The peers are lightweight webrtc-rs clients speaking LiveKit signalling, sending synthetic
//! VP8 RTP at a 720p bitrate (no encoder, so the machine's cores go to the SFU), each packet
//! stamped with its send time.
//!
//! After the window, `BENCH_LATE_JOINS` more subscribers join one after the other while the
//! publishers keep sending: the time from opening the signalling socket to the first forwarded
//! packet is a mid-call join (signalling, subscriber ICE and DTLS, first packet).
//!
//! `cargo bench -p visio-sim --bench forwarding` (env: BENCH_PUBLISHERS=2, BENCH_SUBSCRIBERS=3,
//! BENCH_SECONDS=10, BENCH_KBPS=2500, BENCH_LATE_JOINS=5).

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use visio_sim::token::{TokenAuthority, VideoGrant};
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_VP8};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn api() -> API {
    let mut media = MediaEngine::default();
    media.register_default_codecs().unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
    let mut settings = SettingEngine::default();
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build()
}

/// One participant: signalling socket, publisher and subscriber peer connections.
struct Client {
    out: mpsc::UnboundedSender<Req>,
    publisher: Arc<RTCPeerConnection>,
    published: Mutex<Option<oneshot::Sender<()>>>,
}

async fn add_candidate(pc: Arc<RTCPeerConnection>, init: RTCIceCandidateInit) {
    for _ in 0..50 {
        if pc.remote_description().await.is_some() {
            let _ = pc.add_ice_candidate(init).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connect(api: &API, ws_url: &str, identity: &str, received: Arc<Stats>) -> Arc<Client> {
    let auth = TokenAuthority::new("devkey", "secret");
    let grant = VideoGrant {
        room_join: true,
        room: "bench-room".into(),
        ..Default::default()
    };
    let token = auth.sign(&auth.claims(identity, identity, grant, Duration::from_secs(3600)));
    let (ws, _) =
        tokio_tungstenite::connect_async(format!("{ws_url}/rtc?access_token={token}&protocol=16"))
            .await
            .unwrap();
    let (mut sink, mut stream) = ws.split();
    let (out, mut out_rx) = mpsc::unbounded_channel::<Req>();
    tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let bytes = proto::SignalRequest { message: Some(m) }.encode_to_vec();
            if sink.send(WsMessage::Binary(bytes.into())).await.is_err() {
                break;
            }
        }
    });
    let publisher = Arc::new(
        api.new_peer_connection(RTCConfiguration::default())
            .await
            .unwrap(),
    );
    let subscriber = Arc::new(
        api.new_peer_connection(RTCConfiguration::default())
            .await
            .unwrap(),
    );
    for (pc, target) in [(&publisher, 0), (&subscriber, 1)] {
        let out = out.clone();
        pc.on_ice_candidate(Box::new(move |c| {
            let out = out.clone();
            Box::pin(async move {
                if let Some(c) = c {
                    let mut init = c.to_json().unwrap();
                    init.sdp_mid = Some("0".into());
                    let _ = out.send(Req::Trickle(proto::TrickleRequest {
                        candidate_init: serde_json::to_string(&init).unwrap(),
                        target,
                        r#final: false,
                    }));
                }
            })
        }));
    }
    subscriber.on_track(Box::new(move |track, _, _| {
        let received = received.clone();
        Box::pin(async move {
            tokio::spawn(async move {
                while let Ok((pkt, _)) = track.read_rtp().await {
                    received.record(&pkt.payload);
                }
            });
        })
    }));
    let client = Arc::new(Client {
        out: out.clone(),
        publisher: publisher.clone(),
        published: Mutex::new(None),
    });
    let c = client.clone();
    tokio::spawn(async move {
        while let Some(Ok(WsMessage::Binary(b))) = stream.next().await {
            let Ok(resp) = proto::SignalResponse::decode(b) else {
                break;
            };
            match resp.message {
                Some(Resp::Offer(o)) => {
                    subscriber
                        .set_remote_description(RTCSessionDescription::offer(o.sdp).unwrap())
                        .await
                        .unwrap();
                    let answer = subscriber.create_answer(None).await.unwrap();
                    subscriber
                        .set_local_description(answer.clone())
                        .await
                        .unwrap();
                    let _ = out.send(Req::Answer(proto::SessionDescription {
                        r#type: "answer".into(),
                        sdp: answer.sdp,
                        id: o.id,
                        ..Default::default()
                    }));
                }
                Some(Resp::Answer(a)) => {
                    publisher
                        .set_remote_description(RTCSessionDescription::answer(a.sdp).unwrap())
                        .await
                        .unwrap();
                }
                Some(Resp::Trickle(t)) => {
                    let init: RTCIceCandidateInit =
                        serde_json::from_str(&t.candidate_init).unwrap();
                    let pc = if t.target == 0 {
                        publisher.clone()
                    } else {
                        subscriber.clone()
                    };
                    tokio::spawn(add_candidate(pc, init));
                }
                Some(Resp::TrackPublished(_)) => {
                    if let Some(tx) = c.published.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                }
                _ => {}
            }
        }
    });
    client
}

/// What subscribers received.
#[derive(Default)]
struct Stats {
    bytes: AtomicU64,
    packets: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    measuring: std::sync::atomic::AtomicBool,
    first_packet: Mutex<Option<std::time::Instant>>,
}

impl Stats {
    fn record(&self, payload: &[u8]) {
        self.first_packet
            .lock()
            .unwrap()
            .get_or_insert_with(std::time::Instant::now);
        if !self.measuring.load(Ordering::Relaxed) || payload.len() < 10 {
            return;
        }
        self.bytes
            .fetch_add(payload.len() as u64 + 12, Ordering::Relaxed);
        self.packets.fetch_add(1, Ordering::Relaxed);
        let sent = u64::from_be_bytes(payload[2..10].try_into().unwrap());
        self.latencies_us
            .lock()
            .unwrap()
            .push(now_us().saturating_sub(sent));
    }
}

async fn publish(client: &Client, kbps: u64) {
    let track = Arc::new(TrackLocalStaticRTP::new(
        RTCRtpCodecCapability {
            mime_type: MIME_TYPE_VP8.into(),
            clock_rate: 90000,
            ..Default::default()
        },
        "camera".into(),
        "stream".into(),
    ));
    let sender = client.publisher.add_track(track.clone()).await.unwrap();
    tokio::spawn(async move { while sender.read_rtcp().await.is_ok() {} });
    let (tx, rx) = oneshot::channel();
    *client.published.lock().unwrap() = Some(tx);
    let _ = client.out.send(Req::AddTrack(proto::AddTrackRequest {
        cid: "camera".into(),
        name: "camera".into(),
        r#type: proto::TrackType::Video as i32,
        source: proto::TrackSource::Camera as i32,
        width: 1280,
        height: 720,
        ..Default::default()
    }));
    rx.await.unwrap();
    let offer = client.publisher.create_offer(None).await.unwrap();
    client
        .publisher
        .set_local_description(offer.clone())
        .await
        .unwrap();
    let _ = client.out.send(Req::Offer(proto::SessionDescription {
        r#type: "offer".into(),
        sdp: offer.sdp,
        id: 1,
        ..Default::default()
    }));
    tokio::spawn(async move {
        let frame_bytes = (kbps * 1000 / 8 / 30) as usize;
        let mut seq: u16 = 0;
        let mut ts: u32 = 0;
        let mut frame: u64 = 0;
        let mut tick = tokio::time::interval(Duration::from_micros(33_333));
        loop {
            tick.tick().await;
            let keyframe = frame % 60 == 0;
            let chunks = frame_bytes.div_ceil(1100);
            for i in 0..chunks {
                let mut payload = vec![0u8; 1100.min(frame_bytes - i * 1100).max(12)];
                payload[0] = if i == 0 { 0x10 } else { 0x00 };
                payload[1] = if keyframe { 0x00 } else { 0x01 };
                payload[2..10].copy_from_slice(&now_us().to_be_bytes());
                let pkt = webrtc::rtp::packet::Packet {
                    header: webrtc::rtp::header::Header {
                        version: 2,
                        marker: i + 1 == chunks,
                        sequence_number: seq,
                        timestamp: ts,
                        ..Default::default()
                    },
                    payload: Bytes::from(payload),
                };
                seq = seq.wrapping_add(1);
                if track.write_rtp(&pkt).await.is_err() {
                    return;
                }
            }
            ts = ts.wrapping_add(3000);
            frame += 1;
        }
    });
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let publishers = env_num("BENCH_PUBLISHERS", 2);
    let subscribers = env_num("BENCH_SUBSCRIBERS", 3);
    let seconds = env_num("BENCH_SECONDS", 10);
    let kbps = env_num("BENCH_KBPS", 2500);
    let late_joins = env_num("BENCH_LATE_JOINS", 5);
    let mut child = Command::new(env!("CARGO_BIN_EXE_visio-sim"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "visio_sim=warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start visio-sim");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("visio-sim listening on ")
        .unwrap()
        .replacen("http", "ws", 1);
    let api = api();
    let stats = Arc::new(Stats::default());
    let mut clients = Vec::new();
    for i in 0..publishers {
        let c = connect(&api, &url, &format!("pub-{i}"), Arc::new(Stats::default())).await;
        publish(&c, kbps).await;
        clients.push(c);
    }
    for i in 0..subscribers {
        clients.push(connect(&api, &url, &format!("sub-{i}"), stats.clone()).await);
    }
    // Let ICE, DTLS and the first keyframes settle.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ticks0 = cpu_ticks(child.id());
    stats.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stats.measuring.store(false, Ordering::Relaxed);
    let ticks = cpu_ticks(child.id()) - ticks0;
    let mut joins = Vec::new();
    for i in 0..late_joins {
        let late = Arc::new(Stats::default());
        let started = std::time::Instant::now();
        let c = connect(&api, &url, &format!("late-{i}"), late.clone()).await;
        let first = loop {
            if let Some(t) = *late.first_packet.lock().unwrap() {
                break Some(t.duration_since(started));
            }
            if started.elapsed() > Duration::from_secs(15) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        joins.push(first.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0));
        drop(c);
    }
    let _ = child.kill();
    let _ = child.wait();
    let cpu_percent = ticks as f64 / seconds as f64; // 100 ticks/s = one core
    let mbps = stats.bytes.load(Ordering::Relaxed) as f64 * 8.0 / seconds as f64 / 1e6;
    let mut lat = stats.latencies_us.lock().unwrap().clone();
    lat.sort_unstable();
    let expected = (publishers * subscribers * kbps) as f64 / 1000.0;
    println!(
        "forwarding {publishers} publishers x {subscribers} subscribers at {kbps} kbit/s (720p-rate VP8): \
         {mbps:.1} Mbit/s forwarded of {expected:.1} expected, SFU CPU {cpu_percent:.0}% of one core, \
         {:.1}% CPU per forwarded Mbit/s, latency publisher->subscriber p50 {:.2} ms p95 {:.2} ms ({} packets)",
        cpu_percent / mbps,
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        lat.len()
    );
    if !joins.is_empty() {
        let shown: Vec<String> = joins.iter().map(|ms| format!("{ms:.0}")).collect();
        println!(
            "mid-call join (signalling socket opened -> first forwarded packet), ms: {}",
            shown.join(", ")
        );
    }
    drop(clients);
}
