//! Joining through the Meet REST API and the lobby, against a real `visio-sim`, and the bad
//! inputs a room meets in the field (unreachable host, unknown room, broken API, refused token).

mod common;

use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use visio_room_core::controller::{FailureKind, SessionEvent};
use visio_room_core::meeting_url::AllowedHosts;
use visio_room_session::meet::{MeetClient, MeetingTarget};
use visio_room_session::{start, SessionConfig, TlsRoots};

fn tls() -> std::sync::Arc<rustls::ClientConfig> {
    visio_room_session::tls::client_config(&TlsRoots::default()).expect("system trust store")
}

fn failure(e: &SessionEvent) -> Option<FailureKind> {
    match e {
        SessionEvent::Failed(f) => Some(f.kind),
        _ => None,
    }
}

#[tokio::test]
async fn a_public_room_gives_livekit_credentials_for_its_uuid() {
    let sim = Sim::start(&["--room", "abc-defg-hij:public"]);
    let target = MeetingTarget::parse(
        &sim.meeting_url("abc-defg-hij"),
        &sim_config(&sim.base).allowed_hosts,
    )
    .unwrap();
    let client = MeetClient::new(target, tls()).unwrap();
    let room = client.room("Salle Jaune").await.unwrap();
    assert_eq!(room.access_level, "public");
    let creds = client
        .join_credentials(
            "Salle Jaune",
            Duration::from_millis(200),
            &Default::default(),
            || async {},
        )
        .await
        .unwrap();
    assert_eq!(
        Some(creds.room.clone()),
        room.id,
        "the LiveKit room is the room UUID"
    );
    assert_eq!(creds.ws_url.scheme(), "ws");
}

#[tokio::test]
async fn the_room_waits_in_the_lobby_until_a_host_admits_it_then_joins() {
    init_tracing();
    let sim = Sim::start(&["--room", "board:trusted"]);
    let (tx, mut events) = mpsc::unbounded_channel();
    let config = sim_config(&sim.base);
    let session = start(
        request(1, &sim.meeting_url("board"), "Salle Verte"),
        config.clone(),
        tx.clone(),
    );
    expect_event(&mut events, 10, "WaitingInLobby", |e| {
        *e == SessionEvent::WaitingInLobby
    })
    .await;
    // Stay a few poll periods: the entry must be kept alive by polling (it expires after 3 s).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let waiting = sim.get("/api/v1.0/rooms/board/waiting-participants/").await;
    let list = waiting["participants"]
        .as_array()
        .expect("participants list");
    assert_eq!(list.len(), 1, "the room is still waiting: {waiting}");
    assert_eq!(list[0]["username"], "Salle Verte");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let status = sim
        .post(
            "/api/v1.0/rooms/board/enter/",
            serde_json::json!({"participant_id": id, "allow_entry": true}),
        )
        .await;
    assert!(status.is_success());
    expect_event(&mut events, 10, "Connected", |e| {
        *e == SessionEvent::Connected
    })
    .await;

    // The connection is lost for good and the daemon retries with a new session: Meet
    // recognises the room by its lobby cookie (admission lasts 6 h) and lets it in without a
    // host, as it does for a browser that kept its cookie.
    session.stop();
    expect_event(&mut events, 10, "Stopped", |e| *e == SessionEvent::Stopped).await;
    let _retry = start(
        request(2, &sim.meeting_url("board"), "Salle Verte"),
        config,
        tx,
    );
    let (_, event) = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event from the retry")
        .expect("events");
    assert_eq!(
        event,
        SessionEvent::Connected,
        "the retry had to wait in the lobby again"
    );
}

#[tokio::test]
async fn a_room_denied_by_the_host_reports_denied() {
    let sim = Sim::start(&["--room", "board:restricted"]);
    let (tx, mut events) = mpsc::unbounded_channel();
    let _session = start(
        request(1, &sim.meeting_url("board"), "Salle Rouge"),
        sim_config(&sim.base),
        tx,
    );
    expect_event(&mut events, 10, "WaitingInLobby", |e| {
        *e == SessionEvent::WaitingInLobby
    })
    .await;
    let waiting = sim.get("/api/v1.0/rooms/board/waiting-participants/").await;
    let id = waiting["participants"][0]["id"]
        .as_str()
        .expect("a waiting participant")
        .to_owned();
    sim.post(
        "/api/v1.0/rooms/board/enter/",
        serde_json::json!({"participant_id": id, "allow_entry": false}),
    )
    .await;
    let e = expect_event(&mut events, 10, "Failed", |e| failure(e).is_some()).await;
    assert_eq!(failure(&e), Some(FailureKind::Denied), "{e:?}");
}

/// The lobby timeout is the controller's (it stops the session): the session itself waits in
/// the lobby for as long as nobody answers.
#[tokio::test]
async fn the_session_waits_in_the_lobby_until_it_is_stopped() {
    let sim = Sim::start(&["--room", "board:trusted"]);
    let (tx, mut events) = mpsc::unbounded_channel();
    let session = start(
        request(1, &sim.meeting_url("board"), "Salle Bleue"),
        sim_config(&sim.base),
        tx,
    );
    expect_event(&mut events, 10, "WaitingInLobby", |e| {
        *e == SessionEvent::WaitingInLobby
    })
    .await;
    // Lobby entries expire 3 s after the last poll: still waiting after 5 s means it polls on.
    tokio::time::sleep(Duration::from_secs(5)).await;
    while let Ok((_, event)) = events.try_recv() {
        assert!(failure(&event).is_none(), "{event:?}");
    }
    assert_eq!(
        sim.get("/api/v1.0/rooms/board/waiting-participants/").await["participants"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "still in the lobby"
    );
    session.stop();
    expect_event(&mut events, 5, "Stopped", |e| *e == SessionEvent::Stopped).await;
}

#[tokio::test]
async fn stopping_while_in_the_lobby_reports_stopped() {
    let sim = Sim::start(&["--room", "board:trusted"]);
    let (tx, mut events) = mpsc::unbounded_channel();
    let session = start(
        request(1, &sim.meeting_url("board"), "Salle Bleue"),
        sim_config(&sim.base),
        tx,
    );
    expect_event(&mut events, 10, "WaitingInLobby", |e| {
        *e == SessionEvent::WaitingInLobby
    })
    .await;
    session.stop();
    expect_event(&mut events, 5, "Stopped", |e| *e == SessionEvent::Stopped).await;
}

#[tokio::test]
async fn an_unknown_room_is_reported_as_not_found() {
    let sim = Sim::start(&["--no-unregistered-rooms"]);
    let (tx, mut events) = mpsc::unbounded_channel();
    let _session = start(
        request(1, &sim.meeting_url("zzz-zzzz-zzz"), "Salle"),
        sim_config(&sim.base),
        tx,
    );
    let e = expect_event(&mut events, 10, "Failed", |e| failure(e).is_some()).await;
    assert_eq!(failure(&e), Some(FailureKind::RoomNotFound), "{e:?}");
}

#[tokio::test]
async fn an_unreachable_host_is_reported_as_unreachable() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (tx, mut events) = mpsc::unbounded_channel();
    let _session = start(
        request(1, &format!("http://127.0.0.1:{port}/abc-defg-hij"), "Salle"),
        sim_config(&format!("http://127.0.0.1:{port}")),
        tx,
    );
    let e = expect_event(&mut events, 10, "Failed", |e| failure(e).is_some()).await;
    assert_eq!(failure(&e), Some(FailureKind::Unreachable), "{e:?}");
    let SessionEvent::Failed(f) = e else {
        unreachable!()
    };
    assert!(f.message.contains("cannot reach"), "{}", f.message);
}

#[tokio::test]
async fn a_broken_api_reply_is_a_protocol_error_with_a_clear_message() {
    let base = fake_meet(|path| {
        if path.contains("config") {
            (200, r#"{"livekit": {"url": "http://127.0.0.1:1"}}"#.into())
        } else {
            (200, "<html>502 Bad Gateway</html>".into())
        }
    })
    .await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let _session = start(
        request(1, &format!("{base}/abc-defg-hij"), "Salle"),
        sim_config(&base),
        tx,
    );
    let e = expect_event(&mut events, 10, "Failed", |e| failure(e).is_some()).await;
    let SessionEvent::Failed(f) = e else {
        unreachable!()
    };
    assert_eq!(f.kind, FailureKind::Protocol);
    assert!(f.message.contains("unexpected reply"), "{}", f.message);
}

#[tokio::test]
async fn a_token_refused_by_livekit_is_reported_as_refused() {
    // The Meet API is fake; the LiveKit server is the real simulator, which rejects the token.
    let sim = Sim::start(&[]);
    let livekit = sim.base.clone();
    let base = fake_meet(move |path| {
        if path.contains("config") {
            (200, "{}".into())
        } else {
            (
                200,
                format!(
                    r#"{{"id":"4d1a7e0c","slug":"abc-defg-hij","access_level":"public",
                    "livekit":{{"url":"{livekit}","room":"4d1a7e0c","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.bad"}}}}"#
                ),
            )
        }
    })
    .await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let _session = start(
        request(1, &format!("{base}/abc-defg-hij"), "Salle"),
        sim_config(&base),
        tx,
    );
    let e = expect_event(&mut events, 10, "Failed", |e| failure(e).is_some()).await;
    assert_eq!(failure(&e), Some(FailureKind::Refused), "{e:?}");
}

#[tokio::test]
async fn a_media_server_outside_visio_media_hosts_is_refused() {
    // The Meet API (allowed) sends the room to a LiveKit server on another host, and the
    // configuration pins the media servers (`visio.media_hosts`): the room must not follow it
    // there, and says which setting would allow it. (Without the key the announced server is
    // used: `daemon/roomctl/tests/meetings.rs`.)
    let base = fake_meet(|path| {
        if path.contains("config") {
            (200, "{}".into())
        } else {
            (
                200,
                r#"{"id":"4d1a7e0c","slug":"abc-defg-hij","access_level":"public",
                "livekit":{"url":"http://localhost:7880","room":"4d1a7e0c","token":"t.t.t"}}"#
                    .into(),
            )
        }
    })
    .await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let config = SessionConfig {
        media_hosts: Some(AllowedHosts::parse(&["livekit.example"]).unwrap()),
        ..sim_config(&base)
    };
    let _session = start(
        request(1, &format!("{base}/abc-defg-hij"), "Salle"),
        config,
        tx,
    );
    let e = expect_event(&mut events, 10, "Failed", |e| failure(e).is_some()).await;
    let SessionEvent::Failed(f) = e else {
        unreachable!()
    };
    assert_eq!(f.kind, FailureKind::NotAvailable);
    assert!(
        f.message
            .contains("add \"localhost:7880\" to visio.media_hosts"),
        "{}",
        f.message
    );
}
