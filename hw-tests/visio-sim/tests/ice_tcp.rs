//! ICE over TCP (`--ice-tcp-port`) on the real `visio-sim` binary: a participant joining
//! through `/rtc` is offered a passive TCP candidate beside its UDP ones, and a framed STUN
//! Binding request sent to that TCP port reaches the subscriber peer connection, which answers
//! through the same TCP connection.

mod common;

use std::time::Duration;

use common::SimServer;
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use visio_sim::sfu::{read_frame, write_frame};
use visio_sim::token::{TokenAuthority, VideoGrant};
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::APIBuilder;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::stun::agent::TransactionId;
use webrtc::stun::attributes::ATTR_USERNAME;
use webrtc::stun::fingerprint::FINGERPRINT;
use webrtc::stun::integrity::MessageIntegrity;
use webrtc::stun::message::{Message, BINDING_REQUEST, BINDING_SUCCESS};
use webrtc::stun::textattrs::TextAttribute;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(sim: &SimServer, identity: &str, room: &str) -> Ws {
    let auth = TokenAuthority::new("devkey", "secret");
    let grant = VideoGrant {
        room_join: true,
        room: room.into(),
        ..Default::default()
    };
    let token = auth.sign(&auth.claims(identity, identity, grant, Duration::from_secs(600)));
    let url = format!(
        "{}/rtc?access_token={token}&auto_subscribe=1&protocol=16&sdk=rust",
        sim.ws_url()
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("signalling upgrade")
        .0
}

/// The next response for which `pick` returns Some, skipping others.
async fn next<T>(ws: &mut Ws, mut pick: impl FnMut(Resp) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("expected signal response within 5 s")
            .expect("socket open")
            .expect("socket ok");
        if let WsMessage::Binary(b) = msg {
            let resp = proto::SignalResponse::decode(b).expect("valid SignalResponse");
            if let Some(t) = resp.message.and_then(&mut pick) {
                return t;
            }
        }
    }
}

fn sdp_attribute<'a>(sdp: &'a str, name: &str) -> &'a str {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {sdp}"))
        .trim()
}

#[tokio::test]
async fn a_framed_binding_request_over_tcp_is_answered_by_the_subscriber_connection() {
    let sim = SimServer::start(&["--ice-tcp-port", "0"]);
    let mut ws = connect(&sim, "room-device", "tcp-room").await;
    let offer = next(&mut ws, |m| match m {
        Resp::Offer(o) => Some(o),
        _ => None,
    })
    .await;
    // The subscriber connection trickles its UDP host candidate, then the TCP one.
    let tcp_candidate = next(&mut ws, |m| match m {
        Resp::Trickle(t) if t.target == 1 => {
            let init: RTCIceCandidateInit = serde_json::from_str(&t.candidate_init).unwrap();
            init.candidate.contains(" tcp ").then_some(init)
        }
        _ => None,
    })
    .await;
    let fields: Vec<&str> = tcp_candidate.candidate.split_whitespace().collect();
    assert_eq!(fields[1..3], ["1", "tcp"], "{}", tcp_candidate.candidate);
    assert_eq!(fields[6..], ["typ", "host", "tcptype", "passive"]);
    assert_eq!(fields[3], "2124414975");
    assert_eq!(fields[4], "127.0.0.1");
    assert!(tcp_candidate.sdp_mid.is_some());
    let port: u16 = fields[5].parse().unwrap();

    // Answer the offer with a real webrtc-rs peer connection, so that the SFU knows our ufrag.
    let mut media = MediaEngine::default();
    media.register_default_codecs().unwrap();
    let api = APIBuilder::new().with_media_engine(media).build();
    let pc = api
        .new_peer_connection(RTCConfiguration::default())
        .await
        .unwrap();
    pc.set_remote_description(RTCSessionDescription::offer(offer.sdp.clone()).unwrap())
        .await
        .unwrap();
    let answer = pc.create_answer(None).await.unwrap();
    pc.set_local_description(answer.clone()).await.unwrap();
    let client_ufrag = sdp_attribute(&answer.sdp, "a=ice-ufrag:").to_owned();
    let bytes = proto::SignalRequest {
        message: Some(Req::Answer(proto::SessionDescription {
            r#type: "answer".into(),
            sdp: answer.sdp.clone(),
            id: offer.id,
            ..Default::default()
        })),
    }
    .encode_to_vec();
    ws.send(WsMessage::Binary(bytes.into())).await.unwrap();

    let sfu_ufrag = sdp_attribute(&offer.sdp, "a=ice-ufrag:");
    let sfu_pwd = sdp_attribute(&offer.sdp, "a=ice-pwd:");
    // The SFU controls the subscriber connection it offers, unless it runs ICE-lite
    // (VISIO_SIM_ICE_LITE=1): then the client controls.
    let role: Box<dyn webrtc::stun::message::Setter> = if offer.sdp.contains("a=ice-lite") {
        Box::new(webrtc::ice::control::AttrControlling(42))
    } else {
        Box::new(webrtc::ice::control::AttrControlled(42))
    };
    let mut request = Message::new();
    request
        .build(&[
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(TextAttribute::new(
                ATTR_USERNAME,
                format!("{sfu_ufrag}:{client_ufrag}"),
            )),
            role,
            Box::new(webrtc::ice::priority::PriorityAttr(1_845_501_695)),
            Box::new(MessageIntegrity::new_short_term_integrity(
                sfu_pwd.to_owned(),
            )),
            Box::new(FINGERPRINT),
        ])
        .unwrap();
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the ICE/TCP port accepts connections");
    // The answer may still be on its way to the SFU: ask again until it answers, as an ICE
    // agent retransmits its checks.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let response = loop {
        write_frame(&mut tcp, &request.raw).await.unwrap();
        let wait = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                let frame = read_frame(&mut tcp)
                    .await
                    .expect("the TCP connection stays open");
                let mut m = Message::new();
                m.raw = frame;
                if m.decode().is_ok() && m.transaction_id == request.transaction_id {
                    return m;
                }
            }
        });
        if let Ok(m) = wait.await {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Binding response over TCP within 10 s"
        );
    };
    assert_eq!(response.typ, BINDING_SUCCESS);
    let _ = pc.close().await;
}

#[tokio::test]
async fn without_the_flag_no_tcp_candidate_is_offered() {
    let sim = SimServer::start(&[]);
    let mut ws = connect(&sim, "udp-only", "udp-room").await;
    // Collect the trickles of the first second: UDP only.
    let mut candidates = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            candidates.push(
                next(&mut ws, |m| match m {
                    Resp::Trickle(t) => Some(t.candidate_init),
                    _ => None,
                })
                .await,
            );
        }
    })
    .await;
    assert!(!candidates.is_empty(), "UDP candidates are trickled");
    assert!(
        candidates.iter().all(|c| !c.contains(" tcp ")),
        "{candidates:?}"
    );
}
