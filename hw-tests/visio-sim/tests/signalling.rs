//! LiveKit signalling on `/rtc` of the real `visio-sim` binary, spoken with the protocol's own
//! prost types: join, ping, publish, updates, leave, duplicate identity, garbage, server mute.

mod common;

use std::time::Duration;

use common::SimServer;
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use visio_sim::token::{TokenAuthority, VideoGrant};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn token(identity: &str, room: &str) -> String {
    let auth = TokenAuthority::new("devkey", "secret");
    let grant = VideoGrant {
        room_join: true,
        room: room.into(),
        ..Default::default()
    };
    auth.sign(&auth.claims(identity, identity, grant, Duration::from_secs(600)))
}

async fn connect(sim: &SimServer, identity: &str, room: &str) -> Ws {
    let url = format!(
        "{}/rtc?access_token={}&auto_subscribe=1&protocol=16&sdk=rust",
        sim.ws_url(),
        token(identity, room)
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("signalling upgrade")
        .0
}

async fn send(ws: &mut Ws, msg: Req) {
    let bytes = proto::SignalRequest { message: Some(msg) }.encode_to_vec();
    ws.send(WsMessage::Binary(bytes.into())).await.unwrap();
}

/// The next response for which `pick` returns Some, skipping others (offers, trickles...).
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

async fn join(ws: &mut Ws) -> proto::JoinResponse {
    next(ws, |m| match m {
        Resp::Join(j) => Some(j),
        _ => None,
    })
    .await
}

async fn update_about(ws: &mut Ws, identity: &str) -> proto::ParticipantInfo {
    let identity = identity.to_owned();
    next(ws, move |m| match m {
        Resp::Update(u) => u.participants.into_iter().find(|p| p.identity == identity),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn a_participant_joins_and_is_announced_to_the_room() {
    let sim = SimServer::start(&[]);
    let mut salle = connect(&sim, "salle", "abc-defg-hij").await;
    let j = join(&mut salle).await;
    let me = j.participant.unwrap();
    assert!(me.sid.starts_with("PA_"), "{}", me.sid);
    assert_eq!(me.identity, "salle");
    assert_eq!(j.room.as_ref().unwrap().name, "abc-defg-hij");
    assert!(j.room.unwrap().sid.starts_with("RM_"));
    assert!(j.subscriber_primary);
    assert_eq!((j.ping_interval, j.ping_timeout), (5, 15));
    assert_eq!(j.server_info.unwrap().protocol, 16);
    assert!(j.other_participants.is_empty());
    assert!(j
        .enabled_publish_codecs
        .iter()
        .any(|c| c.mime == "video/VP8"));
    // The server offers the subscriber connection (with its data channels) right away.
    let offer = next(&mut salle, |m| match m {
        Resp::Offer(o) => Some(o),
        _ => None,
    })
    .await;
    assert!(offer.sdp.contains("m=application"), "{}", offer.sdp);

    let mut alice = connect(&sim, "alice", "abc-defg-hij").await;
    let j = join(&mut alice).await;
    assert_eq!(j.other_participants.len(), 1);
    assert_eq!(j.other_participants[0].identity, "salle");
    let seen = update_about(&mut salle, "alice").await;
    assert_eq!(seen.name, "alice");
}

#[tokio::test]
async fn pings_are_answered_in_both_forms() {
    let sim = SimServer::start(&[]);
    let mut ws = connect(&sim, "salle", "abc-defg-hij").await;
    join(&mut ws).await;
    send(&mut ws, Req::Ping(1234)).await;
    assert_eq!(
        next(&mut ws, |m| if let Resp::Pong(t) = m {
            Some(t)
        } else {
            None
        })
        .await,
        1234
    );
    send(
        &mut ws,
        Req::PingReq(proto::Ping {
            timestamp: 5678,
            rtt: 12,
        }),
    )
    .await;
    let pong = next(&mut ws, |m| {
        if let Resp::PongResp(p) = m {
            Some(p)
        } else {
            None
        }
    })
    .await;
    assert_eq!(pong.last_ping_timestamp, 5678);
    assert!(pong.timestamp > 0);
}

#[tokio::test]
async fn add_track_is_answered_with_a_published_track_that_others_see() {
    let sim = SimServer::start(&[]);
    let mut salle = connect(&sim, "salle", "abc-defg-hij").await;
    join(&mut salle).await;
    let mut alice = connect(&sim, "alice", "abc-defg-hij").await;
    join(&mut alice).await;
    send(
        &mut salle,
        Req::AddTrack(proto::AddTrackRequest {
            cid: "camera-cid".into(),
            name: "camera".into(),
            r#type: proto::TrackType::Video as i32,
            source: proto::TrackSource::Camera as i32,
            width: 1280,
            height: 720,
            ..Default::default()
        }),
    )
    .await;
    let published = next(&mut salle, |m| {
        if let Resp::TrackPublished(t) = m {
            Some(t)
        } else {
            None
        }
    })
    .await;
    assert_eq!(published.cid, "camera-cid");
    let track = published.track.unwrap();
    assert!(track.sid.starts_with("TR_"));
    assert_eq!((track.width, track.height), (1280, 720));
    let info = next(&mut alice, |m| match m {
        Resp::Update(u) => u
            .participants
            .into_iter()
            .find(|p| p.identity == "salle" && !p.tracks.is_empty()),
        _ => None,
    })
    .await;
    assert_eq!(info.tracks[0].sid, track.sid);
    assert_eq!(info.tracks[0].source, proto::TrackSource::Camera as i32);

    // Muting is announced too.
    send(
        &mut salle,
        Req::Mute(proto::MuteTrackRequest {
            sid: track.sid.clone(),
            muted: true,
        }),
    )
    .await;
    let info = next(&mut alice, |m| match m {
        Resp::Update(u) => u
            .participants
            .into_iter()
            .find(|p| p.tracks.first().is_some_and(|t| t.muted)),
        _ => None,
    })
    .await;
    assert_eq!(info.identity, "salle");
}

/// Connects with a token whose grant `grant` adjusts.
async fn connect_with(
    sim: &SimServer,
    identity: &str,
    room: &str,
    adjust: impl FnOnce(&mut VideoGrant),
) -> Ws {
    let auth = TokenAuthority::new("devkey", "secret");
    let mut grant = VideoGrant {
        room_join: true,
        room: room.into(),
        ..Default::default()
    };
    adjust(&mut grant);
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

fn add_track(cid: &str, kind: proto::TrackType, source: proto::TrackSource) -> Req {
    Req::AddTrack(proto::AddTrackRequest {
        cid: cid.into(),
        name: cid.into(),
        r#type: kind as i32,
        source: source as i32,
        ..Default::default()
    })
}

/// The answer to an `AddTrack`: the sid it was published under, or the refusal.
async fn add_track_answer(ws: &mut Ws) -> Result<String, proto::RequestResponse> {
    next(ws, |m| match m {
        Resp::TrackPublished(t) => Some(Ok(t.track.unwrap().sid)),
        Resp::RequestResponse(r) => Some(Err(r)),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn a_track_the_grant_does_not_allow_is_refused_with_not_allowed() {
    let sim = SimServer::start(&[]);
    let mut mic_only = connect_with(&sim, "micro", "abc-defg-hij", |g| {
        g.can_publish_sources = vec!["microphone".into()];
    })
    .await;
    join(&mut mic_only).await;
    send(
        &mut mic_only,
        add_track("cam", proto::TrackType::Video, proto::TrackSource::Camera),
    )
    .await;
    let refused = add_track_answer(&mut mic_only).await.unwrap_err();
    assert_eq!(
        refused.reason,
        proto::request_response::Reason::NotAllowed as i32
    );
    match refused.request {
        Some(proto::request_response::Request::AddTrack(t)) => assert_eq!(t.cid, "cam"),
        other => panic!("the refusal should carry the AddTrack: {other:?}"),
    }
    // The source it may publish is published.
    send(
        &mut mic_only,
        add_track(
            "mic",
            proto::TrackType::Audio,
            proto::TrackSource::Microphone,
        ),
    )
    .await;
    assert!(add_track_answer(&mut mic_only).await.is_ok());

    // canPublish=false refuses every source.
    let mut viewer = connect_with(&sim, "viewer", "abc-defg-hij", |g| {
        g.can_publish = Some(false);
    })
    .await;
    join(&mut viewer).await;
    send(
        &mut viewer,
        add_track(
            "mic",
            proto::TrackType::Audio,
            proto::TrackSource::Microphone,
        ),
    )
    .await;
    let refused = add_track_answer(&mut viewer).await.unwrap_err();
    assert_eq!(
        refused.reason,
        proto::request_response::Reason::NotAllowed as i32
    );
}

#[tokio::test]
async fn a_host_can_mute_a_participant_from_the_server() {
    let sim = SimServer::start(&["--admin-token", "host-secret"]);
    let mut salle = connect(&sim, "salle", "abc-defg-hij").await;
    join(&mut salle).await;
    send(
        &mut salle,
        Req::AddTrack(proto::AddTrackRequest {
            cid: "mic".into(),
            r#type: proto::TrackType::Audio as i32,
            source: proto::TrackSource::Microphone as i32,
            ..Default::default()
        }),
    )
    .await;
    let sid = next(&mut salle, |m| {
        if let Resp::TrackPublished(t) = m {
            t.track.map(|t| t.sid)
        } else {
            None
        }
    })
    .await;
    let r = reqwest::Client::new()
        .post(format!(
            "{}/sim/v1/rooms/abc-defg-hij/participants/salle/mute",
            sim.url
        ))
        .bearer_auth("host-secret")
        .json(&serde_json::json!({"track_sid": sid, "muted": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mute = next(&mut salle, |m| {
        if let Resp::Mute(m) = m {
            Some(m)
        } else {
            None
        }
    })
    .await;
    assert_eq!(mute.sid, sid);
    assert!(mute.muted);
    let list: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/sim/v1/rooms/abc-defg-hij/participants",
            sim.url
        ))
        .bearer_auth("host-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["participants"][0]["tracks"][0]["muted"], true);
}

#[tokio::test]
async fn leaving_is_announced_as_disconnected() {
    let sim = SimServer::start(&[]);
    let mut salle = connect(&sim, "salle", "abc-defg-hij").await;
    join(&mut salle).await;
    let mut alice = connect(&sim, "alice", "abc-defg-hij").await;
    join(&mut alice).await;
    update_about(&mut salle, "alice").await;
    send(
        &mut alice,
        Req::Leave(proto::LeaveRequest {
            reason: proto::DisconnectReason::ClientInitiated as i32,
            action: proto::leave_request::Action::Disconnect as i32,
            ..Default::default()
        }),
    )
    .await;
    let gone = update_about(&mut salle, "alice").await;
    assert_eq!(
        gone.state,
        proto::participant_info::State::Disconnected as i32
    );
}

#[tokio::test]
async fn a_second_connection_with_the_same_identity_evicts_the_first() {
    let sim = SimServer::start(&[]);
    let mut first = connect(&sim, "salle", "abc-defg-hij").await;
    join(&mut first).await;
    let mut second = connect(&sim, "salle", "abc-defg-hij").await;
    join(&mut second).await;
    let leave = next(&mut first, |m| {
        if let Resp::Leave(l) = m {
            Some(l)
        } else {
            None
        }
    })
    .await;
    assert_eq!(
        leave.reason,
        proto::DisconnectReason::DuplicateIdentity as i32
    );
    assert_eq!(
        leave.action,
        proto::leave_request::Action::Disconnect as i32
    );
    // The first socket is then closed.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = first.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok());
}

#[tokio::test]
async fn garbage_on_one_socket_closes_only_that_connection() {
    let mut sim = SimServer::start(&[]);
    let mut salle = connect(&sim, "salle", "abc-defg-hij").await;
    join(&mut salle).await;
    let mut vandal = connect(&sim, "vandal", "abc-defg-hij").await;
    join(&mut vandal).await;
    vandal
        .send(WsMessage::Binary(vec![0xff, 0x13, 0x37, 0x00, 0x99].into()))
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match vandal.next().await {
                Some(Ok(WsMessage::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the garbage connection is closed");
    assert_eq!(closed, Some(1007));
    let disconnected = proto::participant_info::State::Disconnected as i32;
    next(&mut salle, |m| match m {
        Resp::Update(u) => u
            .participants
            .into_iter()
            .find(|p| p.identity == "vandal" && p.state == disconnected),
        _ => None,
    })
    .await;
    send(&mut salle, Req::Ping(42)).await;
    assert_eq!(
        next(&mut salle, |m| if let Resp::Pong(t) = m {
            Some(t)
        } else {
            None
        })
        .await,
        42
    );
    assert!(sim.is_running());
}

#[tokio::test]
async fn a_resume_of_an_unknown_participant_asks_for_a_full_reconnect() {
    let sim = SimServer::start(&[]);
    let url = format!(
        "{}/rtc?access_token={}&reconnect=1&sid=PA_nobody&protocol=16",
        sim.ws_url(),
        token("salle", "abc-defg-hij")
    );
    let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
    let leave = next(&mut ws, |m| {
        if let Resp::Leave(l) = m {
            Some(l)
        } else {
            None
        }
    })
    .await;
    assert_eq!(leave.action, proto::leave_request::Action::Reconnect as i32);
}

#[tokio::test]
async fn a_dropped_connection_whose_ice_never_connected_cannot_be_resumed() {
    // LiveKit keeps a participant whose signalling dropped only if its ICE has connected
    // (these raw clients never connect theirs): the resume is answered with a full reconnect.
    // Resumes of connected clients are proven by the official clients (official_clients.rs).
    let sim = SimServer::start(&[]);
    let mut ws = connect(&sim, "salle", "abc-defg-hij").await;
    let sid = join(&mut ws).await.participant.unwrap().sid;
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = format!(
        "{}/rtc?access_token={}&reconnect=1&sid={sid}&protocol=16",
        sim.ws_url(),
        token("salle", "abc-defg-hij")
    );
    let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
    let leave = next(&mut ws, |m| match m {
        Resp::Leave(l) => Some(l),
        _ => None,
    })
    .await;
    assert_eq!(leave.action, proto::leave_request::Action::Reconnect as i32);
}

#[tokio::test]
async fn a_sync_state_naming_an_unknown_track_asks_for_a_full_reconnect() {
    let sim = SimServer::start(&[]);
    let mut ws = connect(&sim, "salle", "abc-defg-hij").await;
    join(&mut ws).await;
    send(
        &mut ws,
        add_track(
            "mic",
            proto::TrackType::Audio,
            proto::TrackSource::Microphone,
        ),
    )
    .await;
    let sid = add_track_answer(&mut ws).await.unwrap();
    let sync = |track_sid: &str| {
        Req::SyncState(proto::SyncState {
            publish_tracks: vec![proto::TrackPublishedResponse {
                cid: "mic".into(),
                track: Some(proto::TrackInfo {
                    sid: track_sid.into(),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        })
    };
    // The track it published: nothing to say.
    send(&mut ws, sync(&sid)).await;
    send(&mut ws, Req::Ping(3)).await;
    let answered = next(&mut ws, |m| match m {
        Resp::Pong(t) => Some(Ok(t)),
        Resp::Leave(l) => Some(Err(l)),
        _ => None,
    })
    .await;
    assert_eq!(answered, Ok(3));
    // A track this server never published: full reconnect.
    send(&mut ws, sync("TR_unknown")).await;
    let leave = next(&mut ws, |m| match m {
        Resp::Leave(l) => Some(l),
        _ => None,
    })
    .await;
    assert_eq!(leave.action, proto::leave_request::Action::Reconnect as i32);
    assert_eq!(leave.reason, proto::DisconnectReason::StateMismatch as i32);
}

#[tokio::test]
async fn many_participants_each_see_all_the_others() {
    let sim = SimServer::start(&[]);
    let mut sockets = Vec::new();
    for i in 0..12 {
        let mut ws = connect(&sim, &format!("p{i}"), "abc-defg-hij").await;
        let j = join(&mut ws).await;
        assert_eq!(
            j.other_participants.len(),
            i,
            "participant {i} sees the ones before it"
        );
        sockets.push(ws);
    }
    // The first one was told about each of the 11 others.
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 11 {
        let p = next(&mut sockets[0], |m| match m {
            Resp::Update(u) => u.participants.into_iter().next(),
            _ => None,
        })
        .await;
        seen.insert(p.identity);
    }
}

#[tokio::test]
async fn a_participant_that_vanishes_before_its_ice_connected_is_removed_at_once() {
    let sim = SimServer::start(&[]);
    let mut salle = connect(&sim, "salle", "abc-defg-hij").await;
    join(&mut salle).await;
    let mut ghost = connect(&sim, "ghost", "abc-defg-hij").await;
    join(&mut ghost).await;
    drop(ghost); // the TCP connection goes away, no LeaveRequest
    let disconnected = proto::participant_info::State::Disconnected as i32;
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Keep our own connection alive with pings while waiting.
        send(&mut salle, Req::Ping(1)).await;
        let msg = tokio::time::timeout_at(deadline, salle.next())
            .await
            .expect("ghost removed within 20 s")
            .unwrap()
            .unwrap();
        if let WsMessage::Binary(b) = msg {
            if let Some(Resp::Update(u)) = proto::SignalResponse::decode(b).unwrap().message {
                if u.participants
                    .iter()
                    .any(|p| p.identity == "ghost" && p.state == disconnected)
                {
                    break;
                }
            }
        }
    }
    // No resume window for a participant whose ICE never connected (LiveKit closes it).
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "removed after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn repeated_joins_and_leaves_do_not_grow_the_server() {
    let sim = SimServer::start(&[]);
    let mut salle = connect(&sim, "salle", "abc-defg-hij").await;
    join(&mut salle).await;
    let cycle = |i: usize| {
        let sim = &sim;
        async move {
            let mut ws = connect(sim, &format!("visitor-{i}"), "abc-defg-hij").await;
            join(&mut ws).await;
            send(
                &mut ws,
                Req::Leave(proto::LeaveRequest {
                    reason: proto::DisconnectReason::ClientInitiated as i32,
                    action: proto::leave_request::Action::Disconnect as i32,
                    ..Default::default()
                }),
            )
            .await;
            while let Some(Ok(m)) = ws.next().await {
                if m.is_close() {
                    break;
                }
            }
        }
    };
    for i in 0..30 {
        cycle(i).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let warm = sim.rss_kib();
    for i in 30..130 {
        cycle(i).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = sim.rss_kib();
    eprintln!("server RSS after 30 join/leave cycles: {warm} KiB, after 130: {after} KiB");
    assert!(warm > 0);
    // 100 more joins (two peer connections each) must not leave their state behind.
    assert!(
        after < warm + 8 * 1024,
        "RSS grew from {warm} KiB to {after} KiB over 100 join/leave cycles"
    );
    // And the room is still answering.
    send(&mut salle, Req::Ping(9)).await;
    assert_eq!(
        next(&mut salle, |m| if let Resp::Pong(t) = m {
            Some(t)
        } else {
            None
        })
        .await,
        9
    );
}

#[tokio::test]
async fn raising_a_hand_and_renaming_through_meet_reach_the_room() {
    let sim = SimServer::start(&[]);
    let mut salle = connect(&sim, "salle", "xyz-abcd-efg").await;
    join(&mut salle).await;
    let mut alice = connect(&sim, "alice", "xyz-abcd-efg").await;
    join(&mut alice).await;
    let client = reqwest::Client::new();
    let post = |path: &'static str, body: serde_json::Value, token: String| {
        let req = client
            .post(format!("{}/api/v1.0/rooms/xyz-abcd-efg/{path}/", sim.url))
            .bearer_auth(token)
            .json(&body);
        async move { req.send().await.unwrap().status() }
    };
    let status = post(
        "toggle-hand",
        serde_json::json!({"raised": true}),
        token("alice", "xyz-abcd-efg"),
    )
    .await;
    assert_eq!(status, 200);
    let raised = next(&mut salle, |m| match m {
        Resp::Update(u) => u
            .participants
            .into_iter()
            .find(|p| p.identity == "alice" && p.attributes.contains_key("handRaisedAt")),
        _ => None,
    })
    .await;
    assert!(raised.attributes["handRaisedAt"].ends_with('Z'));
    assert_eq!(
        post(
            "toggle-hand",
            serde_json::json!({"raised": false}),
            token("alice", "xyz-abcd-efg")
        )
        .await,
        200
    );
    next(&mut salle, |m| match m {
        Resp::Update(u) => u
            .participants
            .into_iter()
            .find(|p| p.identity == "alice" && !p.attributes.contains_key("handRaisedAt")),
        _ => None,
    })
    .await;
    assert_eq!(
        post(
            "rename",
            serde_json::json!({"name": "Alice B."}),
            token("alice", "xyz-abcd-efg")
        )
        .await,
        200
    );
    next(&mut salle, |m| match m {
        Resp::Update(u) => u
            .participants
            .into_iter()
            .find(|p| p.identity == "alice" && p.name == "Alice B."),
        _ => None,
    })
    .await;
    // Without a token, or with one for another room, nothing happens.
    let anonymous = client
        .post(format!(
            "{}/api/v1.0/rooms/xyz-abcd-efg/toggle-hand/",
            sim.url
        ))
        .json(&serde_json::json!({"raised": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        post(
            "toggle-hand",
            serde_json::json!({"raised": true}),
            token("alice", "other-room-xyz")
        )
        .await,
        403
    );
}

#[tokio::test]
async fn a_connected_participant_receives_refreshed_tokens_with_the_same_grants() {
    let sim = SimServer::start(&["--token-refresh-s", "1"]);
    let mut ws = connect(&sim, "salle", "abc-defg-hij").await;
    join(&mut ws).await;
    let started = std::time::Instant::now();
    let refreshed = next(&mut ws, |m| match m {
        Resp::RefreshToken(t) => Some(t),
        _ => None,
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let auth = TokenAuthority::new("devkey", "secret");
    let claims = auth
        .validate(&refreshed)
        .expect("the refreshed token validates");
    assert_eq!(claims.sub, "salle");
    assert_eq!(claims.video.room, "abc-defg-hij");
    assert!(claims.video.room_join);
    // It opens a connection like the original.
    let check = reqwest::get(format!("{}/rtc/validate?access_token={refreshed}", sim.url))
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    // And keeps coming.
    next(&mut ws, |m| {
        matches!(m, Resp::RefreshToken(_)).then_some(())
    })
    .await;
}

async fn room_sid(sim: &SimServer, identity: &str) -> (Ws, String) {
    let mut ws = connect(sim, identity, "abc-defg-hij").await;
    let room = join(&mut ws).await.room.unwrap();
    assert_eq!(room.departure_timeout, 2, "announced departure timeout");
    (ws, room.sid)
}

async fn leave(mut ws: Ws) {
    send(
        &mut ws,
        Req::Leave(proto::LeaveRequest {
            can_reconnect: false,
            reason: proto::DisconnectReason::ClientInitiated as i32,
            ..Default::default()
        }),
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
}

#[tokio::test]
async fn an_empty_room_is_freed_after_its_departure_timeout() {
    let sim = SimServer::start(&["--departure-timeout-s", "2"]);
    let (ws, first) = room_sid(&sim, "salle").await;
    leave(ws).await;
    // Back within the departure timeout: the same room.
    let (ws, again) = room_sid(&sim, "salle").await;
    assert_eq!(again, first);
    leave(ws).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        sim.log().contains("empty room freed"),
        "room not freed: {}",
        sim.log()
    );
    let (ws, later) = room_sid(&sim, "salle").await;
    assert_ne!(
        later, first,
        "the empty room was kept past its departure timeout"
    );
    leave(ws).await;
}
