//! The LiveKit signalling connection (v0 path, protocol 16): a WebSocket carrying protobuf
//! `SignalRequest`s out and `SignalResponse`s in, with pings.
//!
//! [`connect`] opens `/rtc`, waits for the `JoinResponse` (or `ReconnectResponse`), and hands
//! back a [`Signal`]: a sender of requests and a receiver of responses. A task owns the socket;
//! when the connection ends, the receiver yields [`Inbound::Closed`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message};
use url::Url;
use visio_room_core::controller::FailureKind;

/// The protocol version advertised: 16 (no packet trailers), as the spec asks of a custom stack.
pub const PROTOCOL_VERSION: u32 = 16;
/// How long to wait for the `JoinResponse` (the JS SDK waits 5 s; we allow slow links).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The signalling connection could not be established or broke.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// TCP/TLS/WebSocket connection failed.
    #[error("cannot connect to the LiveKit server at {url}: {reason}")]
    Unreachable {
        /// Where (without the token).
        url: String,
        /// Why.
        reason: String,
    },
    /// The server refused the token (HTTP 401/403 on the upgrade).
    #[error("the LiveKit server refused the access token (HTTP {status}): {detail}; the meeting link may have expired, join again")]
    Refused {
        /// HTTP status.
        status: u16,
        /// `/rtc/validate`-style explanation when the server gave one.
        detail: String,
    },
    /// The server answered the upgrade with another status.
    #[error("the LiveKit server answered the WebSocket upgrade with HTTP {status}: {detail}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Body excerpt.
        detail: String,
    },
    /// The server sent something else than the protocol expects.
    #[error("LiveKit protocol error: {0}")]
    Protocol(String),
    /// No `JoinResponse` in time.
    #[error("the LiveKit server did not answer the join within {0:?}")]
    Timeout(Duration),
}

impl SignalError {
    /// The controller's classification.
    pub fn kind(&self) -> FailureKind {
        match self {
            SignalError::Unreachable { .. } | SignalError::Timeout(_) => FailureKind::Unreachable,
            SignalError::Refused { .. } => FailureKind::Refused,
            SignalError::Status { status, .. } if *status >= 500 => FailureKind::Unreachable,
            SignalError::Status { .. } | SignalError::Protocol(_) => FailureKind::Protocol,
        }
    }
}

/// What comes out of the connection.
#[derive(Debug)]
pub enum Inbound {
    /// A message from the server (pongs are consumed by the connection task).
    Response(Box<Resp>),
    /// The connection ended (closed, failed, or no message within the ping timeout).
    Closed(String),
}

/// How to open the connection.
#[derive(Debug, Clone)]
pub enum Mode {
    /// A fresh join.
    Join,
    /// Resume the participant `sid` (`reconnect=1`).
    Resume {
        /// Our participant sid.
        sid: String,
    },
}

/// The first answer of the server.
#[derive(Debug)]
pub enum Opened {
    /// To a join.
    Join(Box<proto::JoinResponse>),
    /// To a resume.
    Reconnect(Box<proto::ReconnectResponse>),
}

/// A live signalling connection.
pub struct Signal {
    out: Option<mpsc::UnboundedSender<Req>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Signal {
    /// Queues a request; false when the connection is gone.
    pub fn send(&self, message: Req) -> bool {
        self.out.as_ref().is_some_and(|o| o.send(message).is_ok())
    }

    /// Sends `Leave(CLIENT_INITIATED)` and closes, waiting at most `grace` for it to go out.
    pub async fn leave(mut self, grace: Duration) {
        let Some(out) = self.out.take() else { return };
        let _ = out.send(Req::Leave(proto::LeaveRequest {
            can_reconnect: false,
            reason: proto::DisconnectReason::ClientInitiated as i32,
            action: proto::leave_request::Action::Disconnect as i32,
            regions: None,
        }));
        drop(out);
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The `/rtc` URL for `base` (the LiveKit WebSocket URL from Meet).
pub fn rtc_url(base: &Url, token: &str, mode: &Mode) -> Url {
    let mut url = base.clone();
    let path = format!("{}/rtc", url.path().trim_end_matches('/'));
    url.set_path(&path);
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        q.append_pair("access_token", token)
            .append_pair("auto_subscribe", "1")
            .append_pair("sdk", "rust")
            .append_pair("version", env!("CARGO_PKG_VERSION"))
            .append_pair("protocol", &PROTOCOL_VERSION.to_string())
            .append_pair("adaptive_stream", "0");
        if let Mode::Resume { sid } = mode {
            q.append_pair("reconnect", "1").append_pair("sid", sid);
        }
    }
    url
}

fn redacted(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

fn frame(message: Req) -> Message {
    let request = proto::SignalRequest {
        message: Some(message),
    };
    Message::Binary(request.encode_to_vec().into())
}

/// Server messages, then one [`Inbound::Closed`].
pub type InboundRx = mpsc::UnboundedReceiver<Inbound>;

/// Opens the signalling connection and waits for the server's first answer.
pub async fn connect(
    base: &Url,
    token: &str,
    mode: Mode,
    tls: Arc<rustls::ClientConfig>,
) -> Result<(Signal, InboundRx, Opened), SignalError> {
    let url = rtc_url(base, token, &mode);
    let shown = redacted(&url);
    let connector = tokio_tungstenite::Connector::Rustls(tls);
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        url.as_str(),
        None,
        false,
        Some(connector),
    );
    let (mut ws, _) = match tokio::time::timeout(JOIN_TIMEOUT, connecting).await {
        Err(_) => return Err(SignalError::Timeout(JOIN_TIMEOUT)),
        Ok(Ok(ok)) => ok,
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            let detail = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).chars().take(200).collect())
                .unwrap_or_default();
            return Err(if status == 401 || status == 403 {
                SignalError::Refused { status, detail }
            } else {
                SignalError::Status { status, detail }
            });
        }
        Ok(Err(e)) => {
            return Err(SignalError::Unreachable {
                url: shown,
                reason: e.to_string(),
            })
        }
    };
    tracing::debug!(url = %shown, "signalling WebSocket open");
    let first = tokio::time::timeout(JOIN_TIMEOUT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(data))) => {
                    let response = proto::SignalResponse::decode(data.as_ref()).map_err(|e| {
                        SignalError::Protocol(format!("undecodable SignalResponse: {e}"))
                    })?;
                    match response.message {
                        Some(Resp::Join(join)) => return Ok(Opened::Join(Box::new(join))),
                        Some(Resp::Reconnect(r)) => return Ok(Opened::Reconnect(Box::new(r))),
                        Some(Resp::Leave(leave)) => {
                            return Err(SignalError::Protocol(format!(
                                "the server refused the connection (leave, reason {})",
                                reason_name(leave.reason)
                            )))
                        }
                        other => tracing::debug!(?other, "message before the join answer ignored"),
                    }
                }
                Some(Ok(Message::Close(c))) => {
                    return Err(SignalError::Protocol(format!(
                        "connection closed before the join answer: {c:?}"
                    )))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    return Err(SignalError::Unreachable {
                        url: shown.clone(),
                        reason: e.to_string(),
                    })
                }
                None => {
                    return Err(SignalError::Protocol(
                        "connection closed before the join answer".into(),
                    ))
                }
            }
        }
    })
    .await
    .map_err(|_| SignalError::Timeout(JOIN_TIMEOUT))??;

    let (ping_interval, ping_timeout) = match &first {
        Opened::Join(j) => (j.ping_interval, j.ping_timeout),
        Opened::Reconnect(_) => (0, 0),
    };
    let ping_interval = Duration::from_secs(if ping_interval > 0 {
        ping_interval as u64
    } else {
        5
    });
    let ping_timeout = Duration::from_secs(if ping_timeout > 0 {
        ping_timeout as u64
    } else {
        15
    });
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(pump(ws, out_rx, in_tx, ping_interval, ping_timeout));
    Ok((
        Signal {
            out: Some(out_tx),
            task: Some(task),
        },
        in_rx,
        first,
    ))
}

/// Human name of a `DisconnectReason`.
pub fn reason_name(reason: i32) -> &'static str {
    proto::DisconnectReason::try_from(reason)
        .map(|r| r.as_str_name())
        .unwrap_or("UNKNOWN")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn pump<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    mut out: mpsc::UnboundedReceiver<Req>,
    inbound: mpsc::UnboundedSender<Inbound>,
    ping_interval: Duration,
    ping_timeout: Duration,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let mut ping = tokio::time::interval(ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_seen = tokio::time::Instant::now();
    let mut rtt = 0i64;
    let reason = loop {
        tokio::select! {
            request = out.recv() => match request {
                Some(request) => {
                    let leaving = matches!(request, Req::Leave(_));
                    if let Err(e) = sink.send(frame(request)).await {
                        break format!("send failed: {e}");
                    }
                    if leaving {
                        let _ = sink.close().await;
                        // Read until the server closes too: dropping the socket with unread
                        // data in it makes the kernel reset the connection, and the server may
                        // then lose our Leave (and keep us as a ghost for its resume window).
                        let drain = async { while let Some(Ok(_)) = stream.next().await {} };
                        let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
                        break "left".to_owned();
                    }
                }
                None => {
                    let _ = sink.close().await;
                    break "closed by us".to_owned();
                }
            },
            message = stream.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    last_seen = tokio::time::Instant::now();
                    match proto::SignalResponse::decode(data.as_ref()) {
                        Ok(proto::SignalResponse { message: Some(Resp::PongResp(p)) }) => {
                            rtt = now_ms() - p.last_ping_timestamp;
                        }
                        Ok(proto::SignalResponse { message: Some(Resp::Pong(_)) }) => {}
                        Ok(proto::SignalResponse { message: Some(m) }) => {
                            if inbound.send(Inbound::Response(Box::new(m))).is_err() {
                                break "session gone".to_owned();
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "undecodable signalling message ignored"),
                    }
                }
                Some(Ok(Message::Close(c))) => break format!("closed by the server: {c:?}"),
                Some(Ok(_)) => last_seen = tokio::time::Instant::now(),
                Some(Err(e)) => break format!("connection error: {e}"),
                None => break "connection closed".to_owned(),
            },
            _ = ping.tick() => {
                if last_seen.elapsed() > ping_timeout {
                    break format!("no message from the server for {ping_timeout:?}");
                }
                let ping = Req::PingReq(proto::Ping { timestamp: now_ms(), rtt });
                if let Err(e) = sink.send(frame(ping)).await {
                    break format!("send failed: {e}");
                }
            }
        }
    };
    tracing::debug!(%reason, "signalling connection ended");
    let _ = inbound.send(Inbound::Closed(reason));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rtc_url_advertises_protocol_16_and_auto_subscribe() {
        let base = Url::parse("wss://livekit.example.org/").unwrap();
        let url = rtc_url(&base, "tok", &Mode::Join);
        assert_eq!(url.path(), "/rtc");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["protocol"], "16");
        assert_eq!(q["auto_subscribe"], "1");
        assert_eq!(q["access_token"], "tok");
        assert!(!q.contains_key("reconnect"));
        let resume = rtc_url(&base, "tok", &Mode::Resume { sid: "PA_x".into() });
        let q: std::collections::HashMap<_, _> = resume.query_pairs().into_owned().collect();
        assert_eq!(q["reconnect"], "1");
        assert_eq!(q["sid"], "PA_x");
        assert!(!redacted(&resume).contains("tok"));
    }
}
