//! LiveKit signalling on `/rtc`: token check on the upgrade, then binary protobuf
//! `SignalRequest`s in and `SignalResponse`s out, driving the participant in the SFU.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use livekit_protocol as proto;
use prost::Message;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use tokio::sync::mpsc;

use crate::sfu::{Grants, JoinRequest, Outbound, Participant};
use crate::sim::Sim;
use crate::token::{Claims, TokenError};

/// No message from the client for this long closes the connection (`ping_timeout`).
pub const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// The query of a `/rtc` (or `/rtc/validate`) request.
#[derive(Debug, Clone, Default)]
pub struct RtcQuery {
    /// The JWT.
    pub token: Option<String>,
    /// `auto_subscribe` (default true).
    pub auto_subscribe: bool,
    /// `reconnect=1`: a resume.
    pub reconnect: bool,
    /// `sid` of the participant to resume.
    pub sid: Option<String>,
    /// Client protocol.
    pub protocol: i32,
}

fn truthy(v: &str) -> bool {
    matches!(v, "1" | "true" | "True" | "TRUE")
}

impl RtcQuery {
    /// Reads the query and the `Authorization: Bearer` header.
    pub fn parse(query: &HashMap<String, String>, authorization: Option<&str>) -> Self {
        let token = query.get("access_token").cloned().or_else(|| {
            authorization
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::to_owned)
        });
        RtcQuery {
            token,
            auto_subscribe: query.get("auto_subscribe").is_none_or(|v| truthy(v)),
            reconnect: query.get("reconnect").is_some_and(|v| truthy(v)),
            sid: query.get("sid").cloned(),
            protocol: query
                .get("protocol")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
        }
    }
}

/// Validates the token of a connection request, including that the room exists in Meet.
pub fn authorize(sim: &Sim, q: &RtcQuery) -> Result<Claims, TokenError> {
    let token = q.token.as_deref().ok_or(TokenError::Missing)?;
    let claims = sim.tokens.validate(token)?;
    if !sim.rooms.serves_livekit_room(&claims.video.room) {
        return Err(TokenError::Invalid(format!(
            "room {:?} does not exist on this server (a registered room's LiveKit name is its UUID)",
            claims.video.room
        )));
    }
    Ok(claims)
}

fn source_value(name: &str) -> Option<i32> {
    Some(match name {
        "camera" => proto::TrackSource::Camera as i32,
        "microphone" => proto::TrackSource::Microphone as i32,
        "screen_share" => proto::TrackSource::ScreenShare as i32,
        "screen_share_audio" => proto::TrackSource::ScreenShareAudio as i32,
        _ => return None,
    })
}

fn join_request(claims: &Claims, q: &RtcQuery) -> JoinRequest {
    let v = &claims.video;
    JoinRequest {
        identity: claims.sub.clone(),
        name: claims.name.clone(),
        metadata: claims.metadata.clone(),
        attributes: claims.attributes.clone(),
        grants: Grants {
            can_publish: v.can_publish.unwrap_or(true),
            can_subscribe: v.can_subscribe.unwrap_or(true),
            can_publish_data: v.can_publish_data.unwrap_or(true),
            can_publish_sources: v
                .can_publish_sources
                .iter()
                .filter_map(|s| source_value(s))
                .collect(),
            room_admin: v.room_admin,
            hidden: v.hidden,
        },
        auto_subscribe: q.auto_subscribe,
        protocol: q.protocol,
    }
}

fn encode(msg: Resp) -> WsMessage {
    WsMessage::Binary(
        proto::SignalResponse { message: Some(msg) }
            .encode_to_vec()
            .into(),
    )
}

/// Serves one signalling connection until it closes.
pub async fn serve(sim: Arc<Sim>, mut socket: WebSocket, claims: Claims, q: RtcQuery) {
    let room = sim.sfu.room(&claims.video.room);
    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();
    // Resume an existing participant, or join afresh.
    let participant: Arc<Participant> = if q.reconnect {
        match q
            .sid
            .as_deref()
            .and_then(|sid| room.find_sid(sid))
            .filter(|p| p.identity == claims.sub)
        {
            Some(p) => {
                tracing::info!(room = %room.name, identity = %p.identity, "participant resumed");
                p.replace_outbound(tx.clone());
                p.resumed();
                p
            }
            None => {
                tracing::info!(room = %room.name, identity = %claims.sub, "resume of an unknown participant: asking for a full reconnect");
                let leave = proto::LeaveRequest {
                    can_reconnect: true,
                    reason: proto::DisconnectReason::StateMismatch as i32,
                    action: proto::leave_request::Action::Reconnect as i32,
                    regions: None,
                };
                let _ = socket.send(encode(Resp::Leave(leave))).await;
                let _ = socket.send(WsMessage::Close(None)).await;
                return;
            }
        }
    } else {
        match sim
            .sfu
            .join(&room, join_request(&claims, &q), tx.clone())
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "join failed");
                let _ = socket
                    .send(WsMessage::Close(Some(CloseFrame {
                        code: 1011,
                        reason: "join failed".into(),
                    })))
                    .await;
                return;
            }
        }
    };

    let mut last_heard = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // A refreshed token every `token_refresh`, valid for twice that and at least 10 minutes,
    // so that a client reconnecting late in a long call still holds a valid one.
    let refresh_period = sim.token_refresh.max(Duration::from_secs(1));
    let refresh_ttl = (refresh_period * 2).max(Duration::from_secs(600));
    let mut refresh =
        tokio::time::interval_at(tokio::time::Instant::now() + refresh_period, refresh_period);
    let mut left = false;
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outbound::Signal(msg)) => {
                    if socket.send(WsMessage::Binary(msg.encode_to_vec().into())).await.is_err() { break; }
                }
                Some(Outbound::Drop) => {
                    tracing::info!(identity = %participant.identity, "signalling connection dropped on request: the client should resume");
                    break;
                }
                Some(Outbound::Close(leave)) => {
                    left = leave.action != proto::leave_request::Action::Resume as i32;
                    let _ = socket.send(encode(Resp::Leave(leave))).await;
                    let _ = socket.send(WsMessage::Close(None)).await;
                    break;
                }
                None => break,
            },
            incoming = socket.recv() => {
                let msg = match incoming {
                    Some(Ok(m)) => m,
                    _ => break,
                };
                last_heard = Instant::now();
                let bytes = match msg {
                    WsMessage::Binary(b) => b,
                    WsMessage::Close(_) => break,
                    WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                    WsMessage::Text(_) => {
                        garbage(&mut socket, "text frames are not supported: send binary protobuf SignalRequest").await;
                        left = true;
                        break;
                    }
                };
                let req = match proto::SignalRequest::decode(bytes) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::info!(identity = %participant.identity, error = %e, "undecodable signal message: closing that connection");
                        garbage(&mut socket, "invalid SignalRequest protobuf").await;
                        // A protocol violation is not a network drop: no resume window.
                        left = true;
                        break;
                    }
                };
                match handle(&participant, req).await {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Leave) => { left = true; break; }
                    Err(e) => tracing::warn!(identity = %participant.identity, error = %e, "signal request failed"),
                }
            }
            _ = refresh.tick() => {
                tracing::debug!(identity = %participant.identity, "refreshed token sent");
                participant.reply(Resp::RefreshToken(sim.tokens.refresh(&claims, refresh_ttl)));
            }
            _ = tick.tick() => {
                if last_heard.elapsed() > PING_TIMEOUT {
                    tracing::info!(identity = %participant.identity, "no ping within ping_timeout: closing the connection");
                    let _ = socket.send(WsMessage::Close(None)).await;
                    break;
                }
            }
        }
    }
    let Some(room) = participant.room() else {
        return;
    };
    if left {
        room.remove(&participant).await;
        return;
    }
    // Vanished without leave. As LiveKit (pkg/rtc/participant.go, `HandleSignalSourceClose`):
    // a participant whose peer connections never connected is closed now; one whose ICE has
    // connected stays, for as long as its peer connections do (a failure removes it, see
    // `Participant::transport_failed`), and may resume.
    if !participant.is_current_outbound(&tx) {
        return; // already resumed on a newer connection
    }
    if participant.has_ice_connected() {
        tracing::info!(identity = %participant.identity, "signalling dropped without leave: kept while its peer connections are up");
    } else {
        tracing::info!(identity = %participant.identity, "signalling closed before ICE ever connected: participant removed");
        room.remove(&participant).await;
    }
}

async fn garbage(socket: &mut WebSocket, reason: &'static str) {
    let _ = socket
        .send(WsMessage::Close(Some(CloseFrame {
            code: 1007,
            reason: reason.into(),
        })))
        .await;
}

enum Flow {
    Continue,
    Leave,
}

async fn handle(
    p: &Arc<Participant>,
    req: proto::SignalRequest,
) -> Result<Flow, crate::sfu::SfuError> {
    let Some(msg) = req.message else {
        return Ok(Flow::Continue);
    };
    tracing::trace!(identity = %p.identity, request = ?msg, "signal request");
    match msg {
        Req::Offer(desc) => p.publisher_offer(desc).await?,
        Req::Answer(desc) => p.subscriber_answer(desc.sdp).await?,
        Req::Trickle(t) => p.trickle(t).await?,
        Req::AddTrack(t) => p.add_track(t),
        Req::Mute(m) => {
            p.set_muted(&m.sid, m.muted, false);
        }
        Req::Leave(_) => {
            tracing::info!(identity = %p.identity, "client leave");
            return Ok(Flow::Leave);
        }
        Req::Ping(ts) => p.reply(Resp::Pong(ts)),
        Req::PingReq(ping) => p.reply(Resp::PongResp(proto::Pong {
            last_ping_timestamp: ping.timestamp,
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        })),
        Req::TrackSetting(settings) => p.update_track_settings(settings).await,
        Req::Subscription(update) => p.update_subscription(update).await,
        Req::SyncState(sync) => match p.unknown_synced_track(&sync) {
            None => tracing::debug!(identity = %p.identity, "sync state after resume"),
            Some(track) => {
                tracing::info!(identity = %p.identity, track = %track, "resume names a track this server does not know: asking for a full reconnect");
                p.ask_full_reconnect();
            }
        },
        Req::UpdateMetadata(_) => {
            tracing::debug!(identity = %p.identity, "metadata update refused: Meet tokens have canUpdateOwnMetadata=false")
        }
        other => {
            tracing::debug!(identity = %p.identity, request = ?std::mem::discriminant(&other), "request accepted without effect")
        }
    }
    Ok(Flow::Continue)
}
