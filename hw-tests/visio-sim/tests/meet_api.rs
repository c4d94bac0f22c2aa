//! The Meet REST API and token checks of the real `visio-sim` binary, as a device and a host
//! see them.

mod common;

use std::time::Duration;

use common::SimServer;
use reqwest::StatusCode;
use serde_json::{json, Value};
use visio_sim::token::{TokenAuthority, VideoGrant};

async fn get(url: &str) -> (StatusCode, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// POST request-entry with an explicit cookie (the real one is `Secure`, so it is sent back by
/// hand over plain http, as the spec says a device must).
async fn request_entry(
    sim: &SimServer,
    slug: &str,
    cookie: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = client()
        .post(format!("{}/api/v1.0/rooms/{slug}/request-entry/", sim.url))
        .json(&json!({"username": "Salle Jaurès"}));
    if let Some(c) = cookie {
        req = req.header("Cookie", format!("lobbyParticipantId={c}"));
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let set_cookie = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, r.json().await.unwrap(), set_cookie)
}

async fn host_get(sim: &SimServer, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = client().get(format!("{}{path}", sim.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn host_enter(sim: &SimServer, room: &str, id: &str, allow: bool) -> StatusCode {
    client()
        .post(format!("{}/api/v1.0/rooms/{room}/enter/", sim.url))
        .bearer_auth("host-secret")
        .json(&json!({"participant_id": id, "allow_entry": allow}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn validate(sim: &SimServer, token: &str) -> (StatusCode, String) {
    let r = reqwest::get(format!("{}/rtc/validate?access_token={token}", sim.url))
        .await
        .unwrap();
    let s = r.status();
    (s, r.text().await.unwrap())
}

#[tokio::test]
async fn config_points_livekit_at_the_simulator_itself() {
    let sim = SimServer::start(&[]);
    let (status, config) = get(&format!("{}/api/v1.0/config/", sim.url)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["livekit"]["url"], sim.url.as_str());
    assert_eq!(config["livekit"]["force_wss_protocol"], false);
    assert_eq!(config["auto_mute_on_join_threshold"], 50);
    assert_eq!(config["silence_livekit_debug_logs"], false);
    assert!(config.get("default_sources").is_none());
    assert_eq!(config["livekit"]["default_sources"][0], "camera");
}

#[tokio::test]
async fn an_unregistered_room_is_public_and_its_livekit_room_is_the_slug() {
    let sim = SimServer::start(&[]);
    let (status, room) = get(&format!(
        "{}/api/v1.0/rooms/ABCDEFGHIJ/?username=Salle",
        sim.url
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(room["id"], Value::Null);
    assert_eq!(room["is_administrable"], false);
    assert_eq!(room["slug"], "abc-defg-hij");
    assert_eq!(room["access_level"], "public");
    assert_eq!(room["livekit"]["room"], "abc-defg-hij");
    assert_eq!(room["livekit"]["url"], sim.url.as_str());
    let token = room["livekit"]["token"].as_str().unwrap();
    let claims = TokenAuthority::new("devkey", "secret")
        .validate(token)
        .unwrap();
    assert_eq!(claims.name, "Salle");
    assert_eq!(claims.video.room, "abc-defg-hij");
    assert_eq!(claims.video.can_update_own_metadata, Some(false));
    assert_eq!(claims.attributes["is_authenticated"], "false");
    assert!(claims.attributes["color"].starts_with("hsl("));
    assert!(claims.exp - claims.nbf >= 6 * 3600);
    assert_eq!(validate(&sim, token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn unknown_rooms_are_404_when_unregistered_rooms_are_off() {
    let sim = SimServer::start(&["--no-unregistered-rooms", "--room", "abc-defg-hij:public"]);
    let (status, body) = get(&format!(
        "{}/api/v1.0/rooms/xyz-abcd-efg/?username=A",
        sim.url
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "No Room matches the given query.");
    let (status, room) = get(&format!(
        "{}/api/v1.0/rooms/abc-defg-hij/?username=A",
        sim.url
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    // A registered room's LiveKit room is its UUID, and it can be looked up by UUID too.
    let id = room["id"].as_str().unwrap().to_owned();
    assert_eq!(room["livekit"]["room"], id.as_str());
    let (status, again) = get(&format!("{}/api/v1.0/rooms/{id}/?username=A", sim.url)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["slug"], "abc-defg-hij");
    // Meet's RoomSerializer fields, no is_administrable.
    assert_eq!(
        keys(&room),
        [
            "access_level",
            "configuration",
            "id",
            "livekit",
            "name",
            "pin_code",
            "slug"
        ]
    );
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

/// The raw JSON claims of a JWT (no signature check).
fn raw_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let mut bytes = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in payload.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
        }
    }
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn meet_tokens_carry_a_null_room_role_and_an_anonymous_default_name() {
    let sim = SimServer::start(&[]);
    let (_, room) = get(&format!("{}/api/v1.0/rooms/abc-defg-hij/", sim.url)).await;
    let token = room["livekit"]["token"].as_str().unwrap();
    let raw = raw_claims(token);
    assert_eq!(raw["attributes"]["room_role"], Value::Null, "{raw}");
    assert_eq!(raw["name"], "Anonymous");
    // LiveKit (and the sim) read the null attribute as empty.
    let claims = TokenAuthority::new("devkey", "secret")
        .validate(token)
        .unwrap();
    assert_eq!(claims.attributes["room_role"], "");
    assert_eq!(validate(&sim, token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_trusted_room_puts_an_anonymous_device_in_the_lobby_until_the_host_admits_it() {
    let sim = SimServer::start(&[
        "--room",
        "abc-defg-hij:trusted",
        "--admin-token",
        "host-secret",
    ]);
    let (_, room) = get(&format!(
        "{}/api/v1.0/rooms/abc-defg-hij/?username=Salle",
        sim.url
    ))
    .await;
    assert_eq!(room["access_level"], "trusted");
    assert!(
        room.get("livekit").is_none(),
        "no token for an anonymous participant: {room}"
    );
    // Meet's RoomSerializer drops pin_code for who may not enter.
    assert_eq!(
        keys(&room),
        ["access_level", "configuration", "id", "name", "slug"]
    );
    let room_id = room["id"].as_str().unwrap().to_owned();

    let (status, entry, cookie) = request_entry(&sim, "abc-defg-hij", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(entry["status"], "waiting");
    assert_eq!(entry["livekit"], Value::Null);
    let id = entry["id"].as_str().unwrap().to_owned();
    let cookie = cookie.expect("the first reply sets the lobby cookie");
    assert!(
        cookie.starts_with(&format!("lobbyParticipantId={id};")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
    assert!(!cookie.contains("Max-Age"), "a session cookie: {cookie}");

    // The host sees it waiting, only with the admin token.
    let path = format!("/api/v1.0/rooms/{room_id}/waiting-participants/");
    assert_eq!(
        host_get(&sim, &path, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        host_get(&sim, &path, Some("wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, waiting) = host_get(&sim, &path, Some("host-secret")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(waiting["participants"][0]["id"], id.as_str());
    assert_eq!(waiting["participants"][0]["username"], "Salle Jaurès");
    assert_eq!(waiting["participants"][0]["status"], "waiting");

    assert_eq!(host_enter(&sim, &room_id, &id, true).await, StatusCode::OK);
    let (_, entry, cookie_again) = request_entry(&sim, "abc-defg-hij", Some(&id)).await;
    let cookie_again = cookie_again.expect("every reply sets the lobby cookie (Meet lobby.py)");
    assert!(
        cookie_again.starts_with(&format!("lobbyParticipantId={id};")),
        "{cookie_again}"
    );
    assert_eq!(entry["status"], "accepted");
    assert_eq!(entry["livekit"]["room"], room_id.as_str());
    let token = entry["livekit"]["token"].as_str().unwrap();
    let claims = TokenAuthority::new("devkey", "secret")
        .validate(token)
        .unwrap();
    assert_eq!(claims.sub, id, "the lobby id becomes the LiveKit identity");
    assert_eq!(validate(&sim, token).await.0, StatusCode::OK);
    assert!(
        host_get(&sim, &path, Some("host-secret")).await.1["participants"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_denied_device_is_told_so_and_may_ask_again_later() {
    let sim = SimServer::start(&[
        "--room",
        "abc-defg-hij:restricted",
        "--admin-token",
        "host-secret",
    ]);
    let (_, entry, _) = request_entry(&sim, "abc-defg-hij", None).await;
    let id = entry["id"].as_str().unwrap().to_owned();
    assert_eq!(
        host_enter(&sim, "abc-defg-hij", &id, false).await,
        StatusCode::OK
    );
    let (_, entry, _) = request_entry(&sim, "abc-defg-hij", Some(&id)).await;
    assert_eq!(entry["status"], "denied");
    assert_eq!(entry["livekit"], Value::Null);
}

#[tokio::test]
async fn a_waiting_entry_expires_3_s_after_the_last_poll() {
    let sim = SimServer::start(&[
        "--room",
        "abc-defg-hij:trusted",
        "--admin-token",
        "host-secret",
    ]);
    let path = "/api/v1.0/rooms/abc-defg-hij/waiting-participants/";
    let (_, entry, _) = request_entry(&sim, "abc-defg-hij", None).await;
    let id = entry["id"].as_str().unwrap().to_owned();
    // Polling every second keeps it waiting.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            request_entry(&sim, "abc-defg-hij", Some(&id)).await.1["status"],
            "waiting"
        );
    }
    assert_eq!(
        host_get(&sim, path, Some("host-secret")).await.1["participants"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(3300)).await;
    assert!(
        host_get(&sim, path, Some("host-secret")).await.1["participants"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Admitting an expired entry fails like Meet's "participant not found".
    assert_eq!(
        host_enter(&sim, "abc-defg-hij", &id, true).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn host_actions_are_refused_without_an_admin_token_configured() {
    let sim = SimServer::start(&["--room", "abc-defg-hij:trusted"]);
    let (status, body) = host_get(
        &sim,
        "/api/v1.0/rooms/abc-defg-hij/waiting-participants/",
        Some("x"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["detail"].as_str().unwrap().contains("--admin-token"));
}

#[tokio::test]
async fn request_entry_needs_a_username() {
    let sim = SimServer::start(&["--room", "abc-defg-hij:trusted"]);
    let r = client()
        .post(format!(
            "{}/api/v1.0/rooms/abc-defg-hij/request-entry/",
            sim.url
        ))
        .json(&json!({"username": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

fn grant(room: &str) -> VideoGrant {
    VideoGrant {
        room_join: true,
        room: room.into(),
        ..Default::default()
    }
}

/// Tries a WebSocket upgrade on /rtc and returns the HTTP status of a refusal (or 101).
async fn upgrade_status(sim: &SimServer, token: &str) -> u16 {
    let url = format!("{}/rtc?access_token={token}&protocol=16", sim.ws_url());
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected upgrade error: {e}"),
    }
}

#[tokio::test]
async fn forged_expired_and_wrong_room_tokens_are_refused_with_401() {
    let sim = SimServer::start(&["--room", "abc-defg-hij:trusted"]);
    let ours = TokenAuthority::new("devkey", "secret");
    let good = ours.sign(&ours.claims(
        "alice",
        "Alice",
        grant("xyz-abcd-efg"),
        Duration::from_secs(600),
    ));
    assert_eq!(upgrade_status(&sim, &good).await, 101);

    let forged = TokenAuthority::new("devkey", "not-the-secret").sign(&ours.claims(
        "mallory",
        "",
        grant("xyz-abcd-efg"),
        Duration::from_secs(600),
    ));
    let mut expired_claims =
        ours.claims("bob", "", grant("xyz-abcd-efg"), Duration::from_secs(600));
    expired_claims.nbf -= 7200;
    expired_claims.exp -= 3600;
    let expired = ours.sign(&expired_claims);
    // A registered room's LiveKit room is its UUID: its slug is not a room Meet hands out.
    let wrong_room =
        ours.sign(&ours.claims("carol", "", grant("abc-defg-hij"), Duration::from_secs(600)));
    let no_join =
        ours.sign(&ours.claims("dave", "", VideoGrant::default(), Duration::from_secs(600)));
    for (what, token) in [
        ("forged", &forged),
        ("expired", &expired),
        ("wrong room", &wrong_room),
        ("no roomJoin", &no_join),
    ] {
        assert_eq!(upgrade_status(&sim, token).await, 401, "{what} token");
        let (status, text) = validate(&sim, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} token");
        assert!(!text.is_empty());
    }
    assert!(validate(&sim, &expired).await.1.contains("expired"));
    assert_eq!(upgrade_status(&sim, "").await, 401);
}

#[tokio::test]
async fn the_single_peer_connection_path_is_404_so_clients_fall_back_to_rtc() {
    let sim = SimServer::start(&[]);
    let r = reqwest::get(format!("{}/rtc/v1?join_request=abc", sim.url))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn livekit_endpoints_answer_cors_for_any_origin_like_a_livekit_server() {
    let sim = SimServer::start(&[]);
    let origin = "https://meet.example.org";
    // A cross-origin read of /rtc/validate (what livekit-client does after a failed upgrade).
    let r = client()
        .get(format!("{}/rtc/validate?access_token=forged", sim.url))
        .header("Origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["access-control-allow-origin"], origin);
    // The v1 path's 404, which makes the client fall back to v0, is readable too.
    let r = client()
        .get(format!("{}/rtc/v1/validate?join_request=abc", sim.url))
        .header("Origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["access-control-allow-origin"], origin);
    // A preflight is answered (204), echoing the method and headers asked for.
    let r = client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/rtc/validate", sim.url),
        )
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], origin);
    assert_eq!(h["access-control-allow-methods"], "GET");
    assert_eq!(h["access-control-allow-headers"], "authorization");
    assert_eq!(h["access-control-max-age"], "86400");
    // The Meet REST API is not opened to any origin.
    let r = client()
        .get(format!("{}/api/v1.0/config/", sim.url))
        .header("Origin", origin)
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn with_a_certificate_it_serves_https_and_announces_an_https_livekit_url() {
    let dir = std::env::temp_dir().join(format!("visio-sim-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (Debian package openssl) makes the test certificate");
    assert!(status.success());
    let sim = SimServer::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(sim.url.starts_with("https://"), "{}", sim.url);
    let out = std::process::Command::new("curl")
        .args(["-sk", &format!("{}/api/v1.0/config/", sim.url)])
        .output()
        .expect("curl");
    let config: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(config["livekit"]["url"], sim.url.as_str());
    std::fs::remove_dir_all(&dir).ok();
}
