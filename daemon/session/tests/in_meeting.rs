//! In the meeting, signalling only (no media engine): participants, leaving, being removed,
//! and rejoining after the server restarts. Against a real `visio-sim`.

mod common;

use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use visio_room_core::controller::{EndReason, SessionEvent};
use visio_room_session::start;

fn has_participant(e: &SessionEvent, name: &str) -> bool {
    matches!(e, SessionEvent::Participants(list) if list.iter().any(|p| p.name == name))
}

async fn identity_of(sim: &Sim, room: &str, name: &str) -> Option<String> {
    let list = sim.get(&format!("/sim/v1/rooms/{room}/participants")).await;
    list["participants"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["identity"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn two_rooms_in_one_meeting_see_each_other_and_the_one_leaving_disappears() {
    init_tracing();
    let sim = Sim::start(&[]);
    let url = sim.meeting_url("abc-defg-hij");
    let (tx_a, mut a) = mpsc::unbounded_channel();
    let (tx_b, mut b) = mpsc::unbounded_channel();
    let room_a = start(request(1, &url, "Salle A"), sim_config(&url), tx_a);
    expect_event(&mut a, 10, "Connected", |e| *e == SessionEvent::Connected).await;
    let room_b = start(request(2, &url, "Salle B"), sim_config(&url), tx_b);
    expect_event(&mut b, 10, "Connected", |e| *e == SessionEvent::Connected).await;
    expect_event(&mut b, 10, "Salle A in B's list", |e| {
        has_participant(e, "Salle A")
    })
    .await;
    expect_event(&mut a, 10, "Salle B in A's list", |e| {
        has_participant(e, "Salle B")
    })
    .await;

    room_b.stop();
    expect_event(&mut b, 5, "Stopped", |e| *e == SessionEvent::Stopped).await;
    expect_event(
        &mut a,
        10,
        "Salle B gone from A's list",
        |e| matches!(e, SessionEvent::Participants(list) if list.is_empty()),
    )
    .await;
    drop(room_a);
    expect_event(&mut a, 5, "Stopped after drop", |e| {
        *e == SessionEvent::Stopped
    })
    .await;
}

#[tokio::test]
async fn a_host_removing_the_room_ends_the_call_as_removed() {
    let sim = Sim::start(&[]);
    let (tx, mut events) = mpsc::unbounded_channel();
    let _room = start(
        request(1, &sim.meeting_url("abc-defg-hij"), "Salle A"),
        sim_config(&sim.base),
        tx,
    );
    expect_event(&mut events, 10, "Connected", |e| {
        *e == SessionEvent::Connected
    })
    .await;
    let identity = identity_of(&sim, "abc-defg-hij", "Salle A")
        .await
        .expect("the room in the sim");
    let status = sim
        .delete(&format!(
            "/sim/v1/rooms/abc-defg-hij/participants/{identity}"
        ))
        .await;
    assert!(status.is_success());
    expect_event(&mut events, 10, "Ended(Removed)", |e| {
        *e == SessionEvent::Ended(EndReason::Removed)
    })
    .await;
}

#[tokio::test]
async fn the_room_rejoins_by_itself_after_the_server_restarts() {
    init_tracing();
    let mut sim = Sim::start(&[]);
    let (tx, mut events) = mpsc::unbounded_channel();
    let room = start(
        request(1, &sim.meeting_url("abc-defg-hij"), "Salle A"),
        sim_config(&sim.base),
        tx,
    );
    expect_event(&mut events, 10, "Connected", |e| {
        *e == SessionEvent::Connected
    })
    .await;
    assert!(identity_of(&sim, "abc-defg-hij", "Salle A").await.is_some());
    // The restarted server does not know the participant: the resume is refused and the
    // room joins again as a new participant.
    sim.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if identity_of(&sim, "abc-defg-hij", "Salle A").await.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room did not come back within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // No failure was reported on the way.
    while let Ok((_, e)) = events.try_recv() {
        assert!(
            !matches!(e, SessionEvent::Failed(_) | SessionEvent::Ended(_)),
            "{e:?}"
        );
    }
    let status = room.media_status();
    assert_eq!((status.resumes, status.rejoins), (0, 1), "{status:#?}");
}

#[tokio::test]
async fn a_second_connection_with_the_same_identity_ends_the_first_as_duplicate() {
    // One token used twice (as when the same lobby admission is used by two devices): the
    // Meet API is a stand-in serving the token the simulator issued once.
    let sim = Sim::start(&[]);
    let room: serde_json::Value = reqwest::get(format!(
        "{}/api/v1.0/rooms/abc-defg-hij/?username=Salle",
        sim.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let body = room.to_string();
    let base = fake_meet(move |path| {
        if path.contains("config") {
            (200, "{}".into())
        } else {
            (200, body.clone())
        }
    })
    .await;
    let url = format!("{base}/abc-defg-hij");
    let (tx_a, mut a) = mpsc::unbounded_channel();
    let (tx_b, mut b) = mpsc::unbounded_channel();
    let _first = start(request(1, &url, "Salle"), sim_config(&url), tx_a);
    expect_event(&mut a, 10, "first Connected", |e| {
        *e == SessionEvent::Connected
    })
    .await;
    let _second = start(request(2, &url, "Salle"), sim_config(&url), tx_b);
    expect_event(&mut b, 10, "second Connected", |e| {
        *e == SessionEvent::Connected
    })
    .await;
    expect_event(&mut a, 10, "Ended(DuplicateIdentity)", |e| {
        *e == SessionEvent::Ended(EndReason::DuplicateIdentity)
    })
    .await;
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_and_leaving_many_times_does_not_leak_sockets() {
    let sim = Sim::start(&[]);
    let url = sim.meeting_url("abc-defg-hij");
    let mut counts = Vec::new();
    for i in 0..8u64 {
        let (tx, mut events) = mpsc::unbounded_channel();
        let room = start(request(i, &url, "Salle"), sim_config(&url), tx);
        expect_event(&mut events, 10, "Connected", |e| {
            *e == SessionEvent::Connected
        })
        .await;
        // Let ICE and DTLS finish so every socket of a real call exists.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        room.stop();
        expect_event(&mut events, 5, "Stopped", |e| *e == SessionEvent::Stopped).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        counts.push(open_fds());
    }
    println!("open file descriptors after each join/leave: {counts:?}");
    // The first cycles warm up lazily created resources; after that the count must be flat.
    assert!(
        counts[7] <= counts[2] + 4,
        "file descriptors grow with each call: {counts:?}"
    );
}

/// The `access_token` of a `/rtc` request line.
fn token_of(request_line: &str) -> Option<String> {
    let target = request_line.split_whitespace().nth(1)?;
    let url = url::Url::parse(&format!("http://x{target}")).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn a_resume_uses_the_newest_token_the_server_sent() {
    init_tracing();
    // The server refreshes the token every second, as LiveKit does during long calls.
    let sim = Sim::start(&["--token-refresh-s", "1"]);
    let relay = Relay::start(&sim.addr).await;
    let url = format!("{}/abc-defg-hij", relay.base);
    let (tx, mut events) = mpsc::unbounded_channel();
    let room = start(request(1, &url, "Salle A"), sim_config(&url), tx);
    expect_event(&mut events, 10, "Connected", |e| {
        *e == SessionEvent::Connected
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    relay.cut_connections();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while room.media_status().resumes == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no resume in 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = relay.requests();
    let rtc: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("GET /rtc?"))
        .collect();
    assert_eq!(rtc.len(), 2, "a join then a resume: {requests:?}");
    assert!(rtc[1].contains("reconnect=1"), "{}", rtc[1]);
    let (first, resumed) = (token_of(rtc[0]).unwrap(), token_of(rtc[1]).unwrap());
    assert_ne!(
        first, resumed,
        "the resume must use the refreshed token, not the one from the Meet API"
    );
    assert_eq!(room.media_status().rejoins, 0);
}
