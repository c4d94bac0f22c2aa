//! Loss recovery through the SFU, with webrtc-rs peers speaking LiveKit signalling (the
//! official clients cannot be made to lose packets on demand here: no `netem` on these
//! machines). A subscriber's NACK must be answered with the very packet it names, resent by
//! the SFU from its send buffer, as libwebrtc and browsers expect when RTX is not negotiated.

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::SimServer;
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use tokio::sync::mpsc;
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
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;

fn api() -> API {
    let mut media = MediaEngine::default();
    media.register_default_codecs().unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
    let mut settings = SettingEngine::default();
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    // The test "loses" packets it did receive: SRTP replay protection would (rightly) drop
    // their retransmissions, which a real receiver never saw.
    settings.disable_srtp_replay_protection(true);
    APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build()
}

/// One participant: its signalling requests, its two peer connections, and the RTP packets
/// (sequence number, payload) its subscriber connection received.
struct Client {
    out: mpsc::UnboundedSender<Req>,
    publisher: Arc<RTCPeerConnection>,
    subscriber: Arc<RTCPeerConnection>,
    received: Arc<Mutex<Vec<(u32, u16, Bytes)>>>,
    published: Arc<tokio::sync::Notify>,
}

async fn add_candidate(pc: Arc<RTCPeerConnection>, init: RTCIceCandidateInit) {
    for _ in 0..100 {
        if pc.remote_description().await.is_some() {
            let _ = pc.add_ice_candidate(init).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connect(api: &API, sim: &SimServer, identity: &str) -> Client {
    let auth = TokenAuthority::new("devkey", "secret");
    let grant = VideoGrant {
        room_join: true,
        room: "abc-defg-hij".into(),
        ..Default::default()
    };
    let token = auth.sign(&auth.claims(identity, identity, grant, Duration::from_secs(600)));
    let (ws, _) = tokio_tungstenite::connect_async(format!(
        "{}/rtc?access_token={token}&protocol=16",
        sim.ws_url()
    ))
    .await
    .expect("signalling upgrade");
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
    let new_pc = || async {
        Arc::new(
            api.new_peer_connection(RTCConfiguration::default())
                .await
                .unwrap(),
        )
    };
    let (publisher, subscriber) = (new_pc().await, new_pc().await);
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
    let received = Arc::new(Mutex::new(Vec::new()));
    let r = received.clone();
    subscriber.on_track(Box::new(move |track, _, _| {
        let r = r.clone();
        Box::pin(async move {
            tokio::spawn(async move {
                while let Ok((pkt, _)) = track.read_rtp().await {
                    r.lock().unwrap().push((
                        pkt.header.ssrc,
                        pkt.header.sequence_number,
                        pkt.payload,
                    ));
                }
            });
        })
    }));
    let published = Arc::new(tokio::sync::Notify::new());
    let (p, s, o, n) = (
        publisher.clone(),
        subscriber.clone(),
        out.clone(),
        published.clone(),
    );
    tokio::spawn(async move {
        while let Some(Ok(WsMessage::Binary(b))) = stream.next().await {
            let Ok(resp) = proto::SignalResponse::decode(b) else {
                break;
            };
            match resp.message {
                Some(Resp::Offer(offer)) => {
                    s.set_remote_description(RTCSessionDescription::offer(offer.sdp).unwrap())
                        .await
                        .unwrap();
                    let answer = s.create_answer(None).await.unwrap();
                    s.set_local_description(answer.clone()).await.unwrap();
                    let _ = o.send(Req::Answer(proto::SessionDescription {
                        r#type: "answer".into(),
                        sdp: answer.sdp,
                        id: offer.id,
                        ..Default::default()
                    }));
                }
                Some(Resp::Answer(a)) => {
                    p.set_remote_description(RTCSessionDescription::answer(a.sdp).unwrap())
                        .await
                        .unwrap();
                }
                Some(Resp::Trickle(t)) => {
                    let init: RTCIceCandidateInit =
                        serde_json::from_str(&t.candidate_init).unwrap();
                    let pc = if t.target == 0 { p.clone() } else { s.clone() };
                    tokio::spawn(add_candidate(pc, init));
                }
                Some(Resp::TrackPublished(_)) => n.notify_one(),
                _ => {}
            }
        }
    });
    Client {
        out,
        publisher,
        subscriber,
        received,
        published,
    }
}

/// Sequence numbers a publisher "loses" on the way out (sent only when NACKed).
fn lost_on_the_way(seq: u16) -> bool {
    seq % 50 == 45
}

/// Publishes a camera track and sends 50 VP8-shaped packets a second, each payload unique
/// (its own sequence number in bytes 2..6), keyframe-marked every 25. With `lossy`, the
/// packets `lost_on_the_way` are not sent, only resent when a NACK names them. Returns the
/// sequence numbers NACKed by the SFU.
async fn publish(client: &Client, lossy: bool) -> Arc<Mutex<Vec<u16>>> {
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
    let nacked = Arc::new(Mutex::new(Vec::new()));
    let kept: Arc<Mutex<std::collections::HashMap<u16, webrtc::rtp::packet::Packet>>> =
        Arc::default();
    let (n, k, t) = (nacked.clone(), kept.clone(), track.clone());
    tokio::spawn(async move {
        while let Ok((packets, _)) = sender.read_rtcp().await {
            for p in packets {
                let Some(nack) = p.as_any().downcast_ref::<TransportLayerNack>() else {
                    continue;
                };
                for pair in &nack.nacks {
                    for seq in pair.packet_list() {
                        n.lock().unwrap().push(seq);
                        let pkt = k.lock().unwrap().get(&seq).cloned();
                        if let Some(pkt) = pkt {
                            let _ = t.write_rtp(&pkt).await;
                        }
                    }
                }
            }
        }
    });
    client
        .out
        .send(Req::AddTrack(proto::AddTrackRequest {
            cid: "camera".into(),
            name: "camera".into(),
            r#type: proto::TrackType::Video as i32,
            source: proto::TrackSource::Camera as i32,
            width: 320,
            height: 240,
            ..Default::default()
        }))
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), client.published.notified())
        .await
        .expect("TrackPublished");
    let offer = client.publisher.create_offer(None).await.unwrap();
    client
        .publisher
        .set_local_description(offer.clone())
        .await
        .unwrap();
    client
        .out
        .send(Req::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp: offer.sdp,
            id: 1,
            ..Default::default()
        }))
        .unwrap();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for n in 0u32.. {
            tick.tick().await;
            let mut payload = vec![0u8; 200];
            payload[0] = 0x10;
            payload[1] = if n % 25 == 0 { 0x00 } else { 0x01 };
            payload[2..6].copy_from_slice(&n.to_be_bytes());
            let pkt = webrtc::rtp::packet::Packet {
                header: webrtc::rtp::header::Header {
                    version: 2,
                    marker: true,
                    sequence_number: n as u16,
                    timestamp: n * 3000,
                    ..Default::default()
                },
                payload: Bytes::from(payload),
            };
            if lossy && lost_on_the_way(n as u16) {
                kept.lock().unwrap().insert(n as u16, pkt);
                continue;
            }
            if track.write_rtp(&pkt).await.is_err() {
                return;
            }
        }
    });
    nacked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_nack_is_answered_with_the_lost_packet() {
    let sim = SimServer::start(&[]);
    let api = api();
    let speaker = connect(&api, &sim, "orateur").await;
    publish(&speaker, false).await;
    let room = connect(&api, &sim, "salle").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while room.received.lock().unwrap().len() < 60 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room received {} packets\n{}",
            room.received.lock().unwrap().len(),
            sim.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The room "lost" three packets received a moment ago, and asks for them again.
    let (ssrc, wanted): (u32, Vec<(u16, Bytes)>) = {
        let got = room.received.lock().unwrap();
        let n = got.len();
        (
            got[n - 1].0,
            got[n - 30..n - 27]
                .iter()
                .map(|(_, seq, payload)| (*seq, payload.clone()))
                .collect(),
        )
    };
    let count_before = room.received.lock().unwrap().len();
    room.subscriber
        .write_rtcp(&[Box::new(TransportLayerNack {
            sender_ssrc: 0,
            media_ssrc: ssrc,
            nacks: vec![NackPair {
                packet_id: wanted[0].0,
                // The next two packets as well.
                lost_packets: 0b11,
            }],
        })])
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let resent: Vec<(u16, Bytes)> = room.received.lock().unwrap()[count_before..]
            .iter()
            .filter(|(_, seq, _)| wanted.iter().any(|(w, _)| w == seq))
            .map(|(_, seq, payload)| (*seq, payload.clone()))
            .collect();
        if resent.len() >= wanted.len() {
            assert_eq!(resent, wanted, "the resent packets are the ones asked for");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the SFU did not resend packets {:?}: got {:?}",
            wanted.iter().map(|w| w.0).collect::<Vec<_>>(),
            resent.iter().map(|r| r.0).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_lost_from_the_publisher_is_nacked_and_its_retransmission_forwarded() {
    let sim = SimServer::start(&[]);
    let api = api();
    let speaker = connect(&api, &sim, "orateur").await;
    let nacked = publish(&speaker, true).await;
    let room = connect(&api, &sim, "salle").await;
    // The publisher skips one packet in 50; the SFU notices the gaps, NACKs them, and
    // forwards the retransmissions: the room ends up with every packet of the stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let recovered: Vec<u32> = room
            .received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, payload)| u32::from_be_bytes(payload[2..6].try_into().unwrap()))
            .filter(|n| lost_on_the_way(*n as u16))
            .collect();
        if recovered.len() >= 3 {
            println!(
                "NACKed by the SFU: {:?}; recovered at the room: {recovered:?}",
                nacked.lock().unwrap()
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lost packets recovered at the room: {recovered:?}; NACKed by the SFU: {:?}\n{}",
            nacked.lock().unwrap(),
            sim.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(nacked.lock().unwrap().iter().all(|s| lost_on_the_way(*s)));
}
