//! The HTTP side: one router serving the Meet REST API (`/api/v1.0/`), LiveKit signalling
//! (`/rtc`, `/rtc/validate`, `404` on `/rtc/v1`), the simulator's admin API (`/sim/v1/`) and
//! the meeting page (`/<slug>`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::lobby::{color_for, EntryStatus};
use crate::rooms::{AccessLevel, Lookup};
use crate::signal::{self, RtcQuery};
use crate::sim::Sim;
use crate::token::VideoGrant;

/// Cookie carrying the lobby participant id (Meet `LOBBY_COOKIE_NAME`).
pub const LOBBY_COOKIE: &str = "lobbyParticipantId";
/// Lifetime of the LiveKit tokens Meet issues.
pub const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

type Shared = Arc<Sim>;

/// Builds the router.
pub fn router(sim: Shared) -> Router {
    Router::new()
        .route("/api/v1.0/config/", get(config))
        .route("/api/v1.0/rooms/{room}/", get(room_lookup))
        .route("/api/v1.0/rooms/{room}/request-entry/", post(request_entry))
        .route(
            "/api/v1.0/rooms/{room}/waiting-participants/",
            get(waiting_participants),
        )
        .route("/api/v1.0/rooms/{room}/enter/", post(enter))
        .route("/api/v1.0/rooms/{room}/toggle-hand/", post(toggle_hand))
        .route("/api/v1.0/rooms/{room}/rename/", post(rename))
        .merge(livekit_routes())
        .route("/sim/v1/rooms/{room}/participants", get(admin_participants))
        .route(
            "/sim/v1/rooms/{room}/participants/{identity}",
            axum::routing::delete(admin_remove),
        )
        .route(
            "/sim/v1/rooms/{room}/participants/{identity}/mute",
            post(admin_mute),
        )
        .route(
            "/sim/v1/rooms/{room}/participants/{identity}/drop-signalling",
            post(admin_drop_signalling),
        )
        .route("/sim/web/livekit-client.umd.js", get(livekit_client_js))
        .route("/{slug}", get(crate::web::meeting_page))
        .with_state(sim)
}

/// The LiveKit HTTP endpoints, with LiveKit's CORS (any origin): the v0 signalling and its
/// validation, and `404` on the v1 (single peer connection) paths so that clients fall back to
/// v0 (livekit-client reads the `404` of `/rtc/v1/validate`, cross-origin too).
fn livekit_routes() -> Router<Shared> {
    Router::new()
        .route("/rtc", get(rtc))
        .route("/rtc/validate", get(rtc_validate))
        .route("/rtc/v1", any(v1_not_served))
        .route("/rtc/v1/validate", any(v1_not_served))
        .layer(axum::middleware::from_fn(crate::cors::allow_any_origin))
}

async fn v1_not_served() -> Response {
    (
        StatusCode::NOT_FOUND,
        "this server speaks only v0 signalling: connect to /rtc",
    )
        .into_response()
}

fn detail(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "detail": text }))).into_response()
}

/// The origin the client used: the URI authority (HTTP/2) or the `Host` header (HTTP/1.1).
fn origin(uri: &Uri, headers: &HeaderMap, tls: bool) -> String {
    if let Some(authority) = uri.authority() {
        return format!("{}://{authority}", if tls { "https" } else { "http" });
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("{}://{host}", if tls { "https" } else { "http" })
}

async fn config(State(sim): State<Shared>, uri: Uri, headers: HeaderMap) -> Response {
    Json(json!({
        "analytics": {},
        "support": {},
        "feedback": {},
        "silence_livekit_debug_logs": false,
        "is_silent_login_enabled": false,
        "custom_css_url": "",
        "use_french_gov_footer": false,
        "use_proconnect_button": false,
        "transcript": {"enabled": false},
        "recording": {"is_enabled": false, "available_modes": [], "expiration_days": null, "max_duration": null},
        "telephony": {"enabled": false},
        "subtitle": {"enabled": false},
        "manifest_link": null,
        "auto_mute_on_join_threshold": 50,
        "livekit": {
            "url": origin(&uri, &headers, sim.tls),
            "force_wss_protocol": false,
            "enable_firefox_proxy_workaround": false,
            "default_sources": ["camera", "microphone", "screen_share", "screen_share_audio"],
        },
    }))
    .into_response()
}

/// A LiveKit token as Meet issues it to an anonymous participant (suitenumerique/meet
/// `src/backend/core/utils.py`, `generate_token`): name "Anonymous" when no username is given,
/// attributes `color`, `room_role` (null: no role) and `is_authenticated`.
fn meet_token(sim: &Sim, room: &str, identity: &str, username: &str, color: &str) -> String {
    let username = if username.is_empty() {
        "Anonymous"
    } else {
        username
    };
    let grant = VideoGrant {
        room_join: true,
        room: room.to_owned(),
        can_publish: Some(true),
        can_subscribe: Some(true),
        can_publish_data: Some(true),
        can_publish_sources: ["camera", "microphone", "screen_share", "screen_share_audio"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        can_update_own_metadata: Some(false),
        ..Default::default()
    };
    let mut claims = sim.tokens.claims(identity, username, grant, TOKEN_TTL);
    claims.attributes.insert("color".into(), color.to_owned());
    claims
        .attributes
        .insert("is_authenticated".into(), "false".into());
    let mut json = serde_json::to_value(&claims).expect("claims are serializable");
    json["attributes"]["room_role"] = Value::Null;
    sim.tokens.sign_json(&json)
}

fn livekit_object(
    sim: &Sim,
    origin: &str,
    room: &str,
    identity: &str,
    username: &str,
    color: &str,
) -> Value {
    json!({
        "url": origin,
        "room": room,
        "token": meet_token(sim, room, identity, username, color),
    })
}

#[derive(Deserialize)]
struct UsernameQuery {
    username: Option<String>,
}

fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "No Room matches the given query.")
}

async fn room_lookup(
    State(sim): State<Shared>,
    Path(room): Path<String>,
    Query(q): Query<UsernameQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let here = origin(&uri, &headers, sim.tls);
    let Some(found) = sim.rooms.lookup(&room) else {
        return not_found();
    };
    let username = q.username.unwrap_or_default();
    let identity = Uuid::new_v4().to_string();
    let color = color_for(&identity);
    let livekit = (found.access_level() == AccessLevel::Public).then(|| {
        livekit_object(
            &sim,
            &here,
            &found.livekit_room(),
            &identity,
            &username,
            &color,
        )
    });
    // Shapes of suitenumerique/meet `src/backend/core/api/serializers.py` (`RoomSerializer`:
    // `pin_code` only for who may enter, that is with `livekit`) and `core/api/viewsets.py`
    // (the unregistered room).
    let mut body = match &found {
        Lookup::Registered(r) => {
            let mut body = json!({
                "id": r.id,
                "name": r.name,
                "slug": r.slug,
                "configuration": {},
                "access_level": r.access_level.as_str(),
            });
            if livekit.is_some() {
                body["pin_code"] = Value::Null;
            }
            body
        }
        Lookup::Unregistered { slug } => json!({
            "id": null,
            "slug": slug,
            "is_administrable": false,
            "access_level": "public",
        }),
    };
    if let Some(lk) = livekit {
        body["livekit"] = lk;
    }
    Json(body).into_response()
}

#[derive(Deserialize)]
struct EntryRequest {
    #[serde(default)]
    username: String,
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

async fn request_entry(
    State(sim): State<Shared>,
    Path(room): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Option<Json<EntryRequest>>,
) -> Response {
    let here = origin(&uri, &headers, sim.tls);
    let Some(found) = sim.rooms.lookup(&room) else {
        return not_found();
    };
    let username = body.map(|b| b.0.username).unwrap_or_default();
    if username.trim().is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"username": ["This field may not be blank."]})),
        )
            .into_response();
    }
    let existing = cookie(&headers, LOBBY_COOKIE).filter(|c| !c.is_empty());
    let id = existing
        .clone()
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    let livekit_room = found.livekit_room();
    let (entry, newly_waiting) = if found.access_level() == AccessLevel::Public {
        (crate::lobby::LobbyEntry::accepted(&id, &username), false)
    } else {
        let mut lobby = sim.lobby.lock().unwrap();
        let was_waiting = lobby
            .waiting(&livekit_room, Instant::now())
            .iter()
            .any(|e| e.id == id);
        let entry = lobby.request_entry(&livekit_room, &id, &username, Instant::now());
        let newly = entry.status == EntryStatus::Waiting && !was_waiting;
        (entry, newly)
    };
    if newly_waiting {
        if let Some(r) = sim.sfu.existing_room(&livekit_room) {
            tokio::spawn(async move {
                r.send_server_data(br#"{"type":"participantWaiting"}"#.to_vec())
                    .await;
            });
        }
    }
    let livekit = (entry.status == EntryStatus::Accepted).then(|| {
        livekit_object(
            &sim,
            &here,
            &livekit_room,
            &entry.id,
            &username,
            &entry.color,
        )
    });
    let body = json!({
        "id": entry.id,
        "username": entry.username,
        "status": entry.status,
        "color": entry.color,
        "livekit": livekit,
    });
    // On every reply, a session cookie (no Max-Age), as suitenumerique/meet
    // `src/backend/core/services/lobby.py` (`prepare_response`) sets it.
    let mut response = Json(body).into_response();
    let cookie = format!("{LOBBY_COOKIE}={id}; HttpOnly; Secure; SameSite=Lax; Path=/");
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie.parse().expect("valid cookie header"),
    );
    response
}

/// The refusal to send when the request lacks the admin token, if it does.
fn refuse_unless_admin(sim: &Sim, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = sim.admin_token.as_deref() else {
        return Some(detail(
            StatusCode::FORBIDDEN,
            "host actions are disabled: start visio-sim with --admin-token <TOKEN> and send Authorization: Bearer <TOKEN>",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    (given != Some(expected)).then(|| {
        detail(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials were not provided.",
        )
    })
}

async fn waiting_participants(
    State(sim): State<Shared>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refuse_unless_admin(&sim, &headers) {
        return r;
    }
    let Some(found) = sim.rooms.lookup(&room) else {
        return not_found();
    };
    let list = sim
        .lobby
        .lock()
        .unwrap()
        .waiting(&found.livekit_room(), Instant::now());
    Json(json!({ "participants": list })).into_response()
}

#[derive(Deserialize)]
struct EnterRequest {
    participant_id: String,
    allow_entry: bool,
}

async fn enter(
    State(sim): State<Shared>,
    Path(room): Path<String>,
    headers: HeaderMap,
    Json(req): Json<EnterRequest>,
) -> Response {
    if let Some(r) = refuse_unless_admin(&sim, &headers) {
        return r;
    }
    let Some(found) = sim.rooms.lookup(&room) else {
        return not_found();
    };
    let result = sim.lobby.lock().unwrap().decide(
        &found.livekit_room(),
        &req.participant_id,
        req.allow_entry,
        Instant::now(),
    );
    match result {
        Ok(_) => Json(json!({ "message": "Participant was updated." })).into_response(),
        Err(e) => detail(StatusCode::NOT_FOUND, &e.to_string()),
    }
}

fn rtc_query(query: &HashMap<String, String>, headers: &HeaderMap) -> RtcQuery {
    RtcQuery::parse(
        query,
        headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok()),
    )
}

async fn rtc(
    State(sim): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let q = rtc_query(&query, &headers);
    let claims = match signal::authorize(&sim, &q) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(error = %e, "signalling connection refused");
            return (StatusCode::UNAUTHORIZED, e.to_string()).into_response();
        }
    };
    match ws {
        Ok(ws) => ws.on_upgrade(move |socket| signal::serve(sim, socket, claims, q)),
        Err(rejection) => rejection.into_response(),
    }
}

async fn rtc_validate(
    State(sim): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    match signal::authorize(&sim, &rtc_query(&query, &headers)) {
        Ok(_) => (StatusCode::OK, "success").into_response(),
        Err(e) => (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    }
}

fn admin_room(sim: &Sim, room: &str) -> Option<Arc<crate::sfu::Room>> {
    let name = sim
        .rooms
        .lookup(room)
        .map(|l| l.livekit_room())
        .unwrap_or_else(|| room.to_owned());
    sim.sfu
        .existing_room(&name)
        .or_else(|| sim.sfu.existing_room(room))
}

async fn admin_participants(
    State(sim): State<Shared>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refuse_unless_admin(&sim, &headers) {
        return r;
    }
    let mut list = Vec::new();
    if let Some(room) = admin_room(&sim, &room) {
        for p in room.participants() {
            list.push(p.summary().await);
        }
    }
    Json(json!({ "participants": list })).into_response()
}

async fn admin_remove(
    State(sim): State<Shared>,
    Path((room, identity)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refuse_unless_admin(&sim, &headers) {
        return r;
    }
    let Some(room) = admin_room(&sim, &room) else {
        return detail(StatusCode::NOT_FOUND, "no such room");
    };
    let Some(p) = room.find_identity(&identity) else {
        return detail(StatusCode::NOT_FOUND, "no such participant");
    };
    p.close_with(livekit_protocol::DisconnectReason::ParticipantRemoved);
    room.remove(&p).await;
    Json(json!({ "removed": identity })).into_response()
}

/// Closes a participant's signalling socket without `LeaveRequest`, as a network failure
/// would: the client must resume (`reconnect=1`) within the resume window.
async fn admin_drop_signalling(
    State(sim): State<Shared>,
    Path((room, identity)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refuse_unless_admin(&sim, &headers) {
        return r;
    }
    let Some(room) = admin_room(&sim, &room) else {
        return detail(StatusCode::NOT_FOUND, "no such room");
    };
    let Some(p) = room.find_identity(&identity) else {
        return detail(StatusCode::NOT_FOUND, "no such participant");
    };
    p.drop_signalling();
    Json(json!({ "dropped": identity, "sid": p.sid })).into_response()
}

#[derive(Deserialize)]
struct MuteRequest {
    track_sid: String,
    muted: bool,
}

async fn admin_mute(
    State(sim): State<Shared>,
    Path((room, identity)): Path<(String, String)>,
    headers: HeaderMap,
    Json(req): Json<MuteRequest>,
) -> Response {
    if let Some(r) = refuse_unless_admin(&sim, &headers) {
        return r;
    }
    let Some(room) = admin_room(&sim, &room) else {
        return detail(StatusCode::NOT_FOUND, "no such room");
    };
    let Some(p) = room.find_identity(&identity) else {
        return detail(StatusCode::NOT_FOUND, "no such participant");
    };
    if p.set_muted(&req.track_sid, req.muted, true) {
        Json(json!({ "track_sid": req.track_sid, "muted": req.muted })).into_response()
    } else {
        detail(StatusCode::NOT_FOUND, "no such track")
    }
}

async fn livekit_client_js(State(sim): State<Shared>) -> Response {
    let Some(dir) = sim.node_modules.as_ref() else {
        return (
            StatusCode::NOT_FOUND,
            "livekit-client is not installed: run scripts/deps.d/sim.sh and pass --web-modules",
        )
            .into_response();
    };
    let path = dir.join("livekit-client/dist/livekit-client.umd.js");
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, "text/javascript")],
            Body::from(bytes),
        )
            .into_response(),
        Err(e) => (
            StatusCode::NOT_FOUND,
            format!(
                "{}: {e}; run scripts/deps.d/sim.sh to install livekit-client",
                path.display()
            ),
        )
            .into_response(),
    }
}

/// The connected participant a LiveKit bearer token speaks for, in the room of the path.
fn token_participant(
    sim: &Sim,
    room: &str,
    headers: &HeaderMap,
) -> Result<Arc<crate::sfu::Participant>, Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Box::new(detail(
                StatusCode::UNAUTHORIZED,
                "send the LiveKit token as Authorization: Bearer <token>",
            ))
        })?;
    let claims = sim
        .tokens
        .validate(token)
        .map_err(|e| Box::new(detail(StatusCode::UNAUTHORIZED, &e.to_string())))?;
    let found = sim
        .rooms
        .lookup(room)
        .ok_or_else(|| Box::new(not_found()))?;
    if claims.video.room != found.livekit_room() {
        return Err(Box::new(detail(
            StatusCode::FORBIDDEN,
            "the token is for another room",
        )));
    }
    sim.sfu
        .existing_room(&claims.video.room)
        .and_then(|r| r.find_identity(&claims.sub))
        .ok_or_else(|| {
            Box::new(detail(
                StatusCode::NOT_FOUND,
                "the participant is not connected to the room",
            ))
        })
}

#[derive(Deserialize)]
struct HandRequest {
    raised: bool,
}

/// Meet's raised hand: attribute `handRaisedAt` (ISO time, removed when lowered).
async fn toggle_hand(
    State(sim): State<Shared>,
    Path(room): Path<String>,
    headers: HeaderMap,
    Json(req): Json<HandRequest>,
) -> Response {
    let p = match token_participant(&sim, &room, &headers) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let value = if req.raised { iso_now() } else { String::new() };
    p.set_attribute("handRaisedAt", &value);
    Json(json!({ "status": "success" })).into_response()
}

#[derive(Deserialize)]
struct RenameRequest {
    name: String,
}

async fn rename(
    State(sim): State<Shared>,
    Path(room): Path<String>,
    headers: HeaderMap,
    Json(req): Json<RenameRequest>,
) -> Response {
    if req.name.trim().is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"name": ["This field may not be blank."]})),
        )
            .into_response();
    }
    let p = match token_participant(&sim, &room, &headers) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    p.set_name(req.name.trim());
    Json(json!({ "status": "success" })).into_response()
}

/// The current UTC time as ISO 8601 (`2026-11-23T10:00:00.000Z`).
fn iso_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_time_has_the_shape_meet_uses() {
        let t = super::iso_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T",
            "{t}"
        );
    }
}
