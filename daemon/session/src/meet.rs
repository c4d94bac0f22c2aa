//! The La Suite Meet REST client: `config/`, room lookup, and the lobby (`request-entry`).
//!
//! It turns a canonical meeting URL and a display name into LiveKit [`Credentials`], waiting
//! in the lobby when the room is not public. Errors are typed and map onto the controller's
//! [`FailureKind`]s.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use url::Url;
use visio_room_core::controller::FailureKind;
use visio_room_core::meeting_url::{AllowedHosts, MeetingUrl, MeetingUrlError};

/// The cookie Meet uses to recognise a participant waiting in the lobby.
pub const LOBBY_COOKIE: &str = "lobbyParticipantId";

/// How long Meet remembers an admitted participant by its lobby cookie (`settings.py`,
/// `LOBBY_ACCEPTED_TIMEOUT`: 6 h).
pub const LOBBY_ADMISSION_LASTS: Duration = Duration::from_secs(6 * 3600);

/// The lobby cookies of the meetings the room asked to enter, kept across the attempts
/// (sessions) of the same meeting. A browser keeps its cookie, so Meet lets an admitted
/// participant back in without the host admitting it again; a room that retries after a
/// network blip must do the same. Shared by the sessions of one daemon (cheap to clone);
/// entries are forgotten after [`LOBBY_ADMISSION_LASTS`]. Cookie values never appear in
/// `Debug` output or logs.
#[derive(Clone, Default)]
pub struct LobbyCookies(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (String, Instant)>>>,
);

impl std::fmt::Debug for LobbyCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "LobbyCookies({n} meetings)")
    }
}

impl LobbyCookies {
    /// The cookie last given for `meeting` (its API base and slug), if still fresh at `now`.
    pub fn get(&self, meeting: &str, now: Instant) -> Option<String> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(meeting)
            .filter(|(_, at)| now.saturating_duration_since(*at) < LOBBY_ADMISSION_LASTS)
            .map(|(cookie, _)| cookie.clone())
    }

    /// Remembers `cookie` for `meeting` at `now`, and forgets stale entries.
    pub fn set(&self, meeting: &str, cookie: &str, now: Instant) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, at)| now.saturating_duration_since(*at) < LOBBY_ADMISSION_LASTS);
        map.insert(meeting.to_owned(), (cookie.to_owned(), now));
    }
}

/// What the session needs to open the LiveKit connection.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// WebSocket base URL of the LiveKit server (`ws://` or `wss://`).
    pub ws_url: Url,
    /// The LiveKit room name (Meet: the room UUID, or the slug of an unregistered room).
    pub room: String,
    /// The access token (HS256 JWT).
    pub token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never log the token.
        f.debug_struct("Credentials")
            .field("ws_url", &self.ws_url.as_str())
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

/// Why the Meet API did not give us a way into the meeting.
#[derive(Debug, thiserror::Error)]
pub enum MeetError {
    /// The meeting URL is not one this session may use.
    #[error("the meeting URL {url} cannot be used: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The meeting's host is not in `visio.allowed_hosts`.
    #[error("meetings on {host} are not allowed: add it to visio.allowed_hosts in the configuration to allow it")]
    HostNotAllowed {
        /// Host (and port) of the meeting URL.
        host: String,
    },
    /// The Meet API sent the room to a LiveKit server on a host the configuration does not name.
    #[error("the meeting service on {meeting_host} sends its media through {host}, which is not in visio.media_hosts: add \"{host}\" to visio.media_hosts (or remove the key to use the media server each meeting service announces)")]
    LiveKitHostNotAllowed {
        /// Host (and port) of the LiveKit URL.
        host: String,
        /// Host of the meeting.
        meeting_host: String,
    },
    /// The server could not be reached (DNS, connection refused, TLS, timeout).
    #[error("cannot reach the meeting service at {url}: {reason}; check the network, the host name and its TLS certificate")]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The underlying error, with its causes.
        reason: String,
    },
    /// The room does not exist.
    #[error("the meeting room {slug:?} does not exist on {host}: check the link")]
    RoomNotFound {
        /// The slug.
        slug: String,
        /// The host.
        host: String,
    },
    /// The service refused us (401/403).
    #[error("the meeting service refused the request {url} with HTTP {status}: {body}")]
    Refused {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The beginning of the reply.
        body: String,
    },
    /// The service answered with an unexpected HTTP status.
    #[error("the meeting service answered {url} with HTTP {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The beginning of the reply.
        body: String,
    },
    /// The reply was not the JSON we expect (a proxy error page, an incompatible version).
    #[error("the meeting service sent an unexpected reply to {url}: {reason}; is this a Visio (La Suite Meet) server?")]
    Malformed {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A host refused to let the room in.
    #[error("a host of the meeting denied the room's entry from the lobby")]
    Denied,
}

impl MeetError {
    /// The controller's classification (decides retries).
    pub fn kind(&self) -> FailureKind {
        match self {
            MeetError::BadUrl { .. } => FailureKind::RoomNotFound,
            MeetError::HostNotAllowed { .. } | MeetError::LiveKitHostNotAllowed { .. } => {
                FailureKind::NotAvailable
            }
            MeetError::Unreachable { .. } => FailureKind::Unreachable,
            MeetError::RoomNotFound { .. } => FailureKind::RoomNotFound,
            MeetError::Refused { .. } => FailureKind::Refused,
            MeetError::Status { status, .. } if *status >= 500 || *status == 429 => {
                FailureKind::Unreachable
            }
            MeetError::Status { .. } | MeetError::Malformed { .. } => FailureKind::Protocol,
            MeetError::Denied => FailureKind::Denied,
        }
    }
}

/// `GET config/` (only what a room device needs).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ServiceConfig {
    /// LiveKit settings.
    #[serde(default)]
    pub livekit: Option<LiveKitConfig>,
}

/// `config.livekit`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LiveKitConfig {
    /// LiveKit URL, `http(s)://` or `ws(s)://`.
    #[serde(default)]
    pub url: Option<String>,
    /// Always use `wss://`.
    #[serde(default)]
    pub force_wss_protocol: bool,
}

/// The `livekit` object of a room or lobby reply.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LiveKitGrant {
    /// LiveKit URL.
    pub url: String,
    /// LiveKit room name.
    pub room: String,
    /// Access token.
    pub token: String,
}

/// `GET rooms/<slug>/?username=`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RoomReply {
    /// Room UUID (`null` for an unregistered room).
    #[serde(default)]
    pub id: Option<String>,
    /// Slug.
    #[serde(default)]
    pub slug: Option<String>,
    /// `public`, `trusted` or `restricted`.
    pub access_level: String,
    /// Present when we may join directly.
    #[serde(default)]
    pub livekit: Option<LiveKitGrant>,
}

/// Lobby status.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EntryStatus {
    /// Waiting for a host.
    Waiting,
    /// Admitted.
    Accepted,
    /// Refused.
    Denied,
}

/// `POST rooms/<slug>/request-entry/`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct EntryReply {
    /// Lobby participant id (becomes the LiveKit identity).
    pub id: String,
    /// Status.
    pub status: EntryStatus,
    /// Present once accepted.
    #[serde(default)]
    pub livekit: Option<LiveKitGrant>,
}

/// A meeting URL split into what the API needs, with the allow-list that also decides where
/// the meeting's media server may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingTarget {
    /// `https://host[:port]/api/v1.0/`.
    pub api: Url,
    /// The room slug.
    pub slug: String,
    /// The host, for messages.
    pub host: String,
    /// `visio.media_hosts`: where the LiveKit server may be; `None` accepts the one the Meet
    /// API announces.
    media_hosts: Option<AllowedHosts>,
}

impl MeetingTarget {
    /// Validates `meeting_url` with [`MeetingUrl::parse`] (the one meeting-URL parser: host on
    /// the allow-list, `https` unless loopback, one room). An empty allow-list allows nothing.
    pub fn parse(meeting_url: &str, allowed: &AllowedHosts) -> Result<Self, MeetError> {
        let meeting = MeetingUrl::parse(meeting_url, allowed).map_err(|e| match e {
            MeetingUrlError::HostNotAllowed { host } => MeetError::HostNotAllowed { host },
            other => MeetError::BadUrl {
                url: meeting_url.to_owned(),
                reason: other.to_string(),
            },
        })?;
        let api = Url::parse(&meeting.api_base()).map_err(|e| MeetError::BadUrl {
            url: meeting_url.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(MeetingTarget {
            host: host_port(&api),
            slug: meeting.slug().to_owned(),
            api,
            media_hosts: None,
        })
    }

    /// Restricts the LiveKit server to the meeting's own host and `hosts`
    /// (`visio.media_hosts`); `None` accepts the one the Meet API announces.
    pub fn with_media_hosts(mut self, hosts: Option<AllowedHosts>) -> Self {
        self.media_hosts = hosts;
        self
    }

    /// Checks the LiveKit (media server) URL the Meet API returned. The rule:
    /// - the meeting's own host (any port) is always accepted;
    /// - without `visio.media_hosts`, the server the meeting service announces is accepted:
    ///   the announcement comes from a host the configuration allows, over TLS that is always
    ///   verified (or from a loopback host), and Visio's LiveKit host is not public, so a
    ///   fixed list would break rooms whenever the service moves it;
    /// - with `visio.media_hosts`, only its hosts are (for administrations that must pin every
    ///   host the device talks to).
    ///
    /// Plain `ws://` is refused for other than loopback hosts before this (`livekit_ws_url`).
    pub fn check_livekit_url(&self, livekit: &Url) -> Result<(), MeetError> {
        let host = livekit.host_str().unwrap_or_default();
        let meeting_host = self.api.host_str().unwrap_or_default();
        if !host.is_empty() && host.eq_ignore_ascii_case(meeting_host) {
            return Ok(());
        }
        let Some(allowed) = &self.media_hosts else {
            return Ok(());
        };
        // Ask the one allow-list matcher: the same host and port as an https (wss) or http
        // (ws) meeting link would have.
        let scheme = if livekit.scheme() == "ws" {
            "http"
        } else {
            "https"
        };
        let probe = format!("{scheme}://{}/livekit", host_port(livekit));
        match MeetingUrl::parse(&probe, allowed) {
            Ok(_) => Ok(()),
            Err(MeetingUrlError::HostNotAllowed { host }) => {
                Err(MeetError::LiveKitHostNotAllowed {
                    host,
                    meeting_host: self.host.clone(),
                })
            }
            Err(e) => Err(MeetError::Malformed {
                url: livekit.to_string(),
                reason: format!("unusable LiveKit URL: {e}"),
            }),
        }
    }
}

fn host_port(url: &Url) -> String {
    match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    }
}

/// Whether `host` is a loopback name or address.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Turns a LiveKit URL as Meet gives it into the WebSocket base URL.
pub fn livekit_ws_url(raw: &str, force_wss: bool) -> Result<Url, MeetError> {
    let malformed = |reason: String| MeetError::Malformed {
        url: raw.to_owned(),
        reason,
    };
    let mut url = Url::parse(raw).map_err(|e| malformed(format!("bad LiveKit URL: {e}")))?;
    let scheme = match (url.scheme(), force_wss) {
        (_, true) | ("https", _) | ("wss", _) => "wss",
        ("http", false) | ("ws", false) => "ws",
        (other, _) => return Err(malformed(format!("LiveKit URL scheme {other:?}"))),
    };
    if scheme == "ws" && !url.host_str().is_some_and(is_loopback) {
        return Err(malformed(
            "the LiveKit URL is not encrypted (ws://) and not local; refusing to send a token over it"
                .into(),
        ));
    }
    url.set_scheme(scheme)
        .map_err(|_| malformed("cannot convert to a WebSocket URL".into()))?;
    Ok(url)
}

/// The Meet REST client for one meeting.
#[derive(Clone)]
pub struct MeetClient {
    http: reqwest::Client,
    target: MeetingTarget,
}

fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn excerpt(body: &str) -> String {
    let trimmed: String = body.chars().take(200).collect();
    trimmed.replace('\n', " ")
}

impl MeetClient {
    /// A client for `target` trusting `tls`.
    pub fn new(target: MeetingTarget, tls: Arc<rustls::ClientConfig>) -> Result<Self, MeetError> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(20))
            .user_agent(concat!("visio-room/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MeetError::Unreachable {
                url: target.api.to_string(),
                reason: describe(&e),
            })?;
        Ok(MeetClient { http, target })
    }

    /// The meeting this client talks about.
    pub fn target(&self) -> &MeetingTarget {
        &self.target
    }

    fn endpoint(&self, path: &str) -> Url {
        // `api` ends with '/', `path` never starts with one.
        self.target.api.join(path).expect("relative API path")
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<(T, reqwest::header::HeaderMap), MeetError> {
        let response = response.map_err(|e| MeetError::Unreachable {
            url: url.to_string(),
            reason: describe(&e),
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(|e| MeetError::Unreachable {
            url: url.to_string(),
            reason: describe(&e),
        })?;
        match status.as_u16() {
            200..=299 => {}
            404 => {
                return Err(MeetError::RoomNotFound {
                    slug: self.target.slug.clone(),
                    host: self.target.host.clone(),
                })
            }
            401 | 403 => {
                return Err(MeetError::Refused {
                    url: url.to_string(),
                    status: status.as_u16(),
                    body: excerpt(&body),
                })
            }
            code => {
                return Err(MeetError::Status {
                    url: url.to_string(),
                    status: code,
                    body: excerpt(&body),
                })
            }
        }
        let value = serde_json::from_str(&body).map_err(|e| MeetError::Malformed {
            url: url.to_string(),
            reason: format!("{e} in {:?}", excerpt(&body)),
        })?;
        Ok((value, headers))
    }

    /// `GET config/`.
    pub async fn config(&self) -> Result<ServiceConfig, MeetError> {
        let url = self.endpoint("config/");
        let response = self.http.get(url.clone()).send().await;
        Ok(self.read(&url, response).await?.0)
    }

    /// `GET rooms/<slug>/?username=<name>`.
    pub async fn room(&self, username: &str) -> Result<RoomReply, MeetError> {
        let mut url = self.endpoint(&format!("rooms/{}/", self.target.slug));
        url.query_pairs_mut().append_pair("username", username);
        let response = self.http.get(url.clone()).send().await;
        Ok(self.read(&url, response).await?.0)
    }

    /// `POST rooms/<slug>/request-entry/` with the lobby cookie when we have one. Returns the
    /// reply and the cookie value to send next time.
    pub async fn request_entry(
        &self,
        username: &str,
        lobby_id: Option<&str>,
    ) -> Result<(EntryReply, Option<String>), MeetError> {
        let url = self.endpoint(&format!("rooms/{}/request-entry/", self.target.slug));
        let mut request = self
            .http
            .post(url.clone())
            .json(&serde_json::json!({ "username": username }));
        if let Some(id) = lobby_id {
            // The cookie is `Secure`: a cookie store would not send it back over plain http
            // (tests), so it is sent explicitly.
            request = request.header(reqwest::header::COOKIE, format!("{LOBBY_COOKIE}={id}"));
        }
        let response = request.send().await;
        let (reply, headers): (EntryReply, _) = self.read(&url, response).await?;
        let cookie = headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(lobby_cookie_value)
            .or_else(|| lobby_id.map(str::to_owned));
        Ok((reply, cookie))
    }

    /// Resolves the meeting to LiveKit credentials: room lookup, then the lobby if needed,
    /// with the cookie of an earlier attempt at the same meeting from `cookies` (kept there).
    /// `on_waiting` runs once when the room starts waiting in the lobby. The lobby is waited in
    /// until a host answers or the future is dropped: how long to wait is the controller's
    /// decision (`join.lobby_timeout_s`), which stops the session.
    pub async fn join_credentials<F, Fut>(
        &self,
        username: &str,
        poll_interval: Duration,
        cookies: &LobbyCookies,
        on_waiting: F,
    ) -> Result<Credentials, MeetError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ()>,
    {
        let config = self.config().await?;
        let force_wss = config
            .livekit
            .as_ref()
            .is_some_and(|l| l.force_wss_protocol);
        let room = self.room(username).await?;
        tracing::info!(slug = %self.target.slug, access_level = %room.access_level, direct = room.livekit.is_some(), "meeting room found");
        if let Some(grant) = room.livekit {
            return self.credentials(&grant, force_wss);
        }
        let meeting = format!("{}rooms/{}", self.target.api, self.target.slug);
        let mut lobby_id = cookies.get(&meeting, Instant::now());
        if lobby_id.is_some() {
            tracing::info!("asking to enter with the lobby cookie of an earlier attempt");
        }
        let mut on_waiting = Some(on_waiting);
        loop {
            match self.request_entry(username, lobby_id.as_deref()).await {
                Ok((reply, cookie)) => {
                    let id = cookie.unwrap_or_else(|| reply.id.clone());
                    cookies.set(&meeting, &id, Instant::now());
                    lobby_id = Some(id);
                    match reply.status {
                        EntryStatus::Accepted => {
                            let grant = reply.livekit.ok_or_else(|| MeetError::Malformed {
                                url: self.target.api.to_string(),
                                reason:
                                    "admitted from the lobby but the reply has no livekit token"
                                        .into(),
                            })?;
                            tracing::info!(id = %reply.id, "admitted from the lobby");
                            return self.credentials(&grant, force_wss);
                        }
                        EntryStatus::Denied => return Err(MeetError::Denied),
                        EntryStatus::Waiting => {
                            if let Some(f) = on_waiting.take() {
                                tracing::info!(id = %reply.id, "waiting in the lobby");
                                f().await;
                            }
                        }
                    }
                }
                // Rate limited: keep our place, poll a little slower.
                Err(MeetError::Status { status: 429, .. }) => {
                    tokio::time::sleep(poll_interval).await;
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(poll_interval).await;
        }
    }
}

impl MeetClient {
    /// The credentials of a grant, once its LiveKit URL passed the allow-list.
    fn credentials(&self, grant: &LiveKitGrant, force_wss: bool) -> Result<Credentials, MeetError> {
        let credentials = grant_credentials(grant, force_wss)?;
        self.target.check_livekit_url(&credentials.ws_url)?;
        Ok(credentials)
    }
}

fn grant_credentials(grant: &LiveKitGrant, force_wss: bool) -> Result<Credentials, MeetError> {
    if grant.token.is_empty() {
        return Err(MeetError::Malformed {
            url: grant.url.clone(),
            reason: "empty LiveKit token".into(),
        });
    }
    Ok(Credentials {
        ws_url: livekit_ws_url(&grant.url, force_wss)?,
        room: grant.room.clone(),
        token: grant.token.clone(),
    })
}

/// The value of `lobbyParticipantId` in one `Set-Cookie` header, if it is that cookie.
pub fn lobby_cookie_value(set_cookie: &str) -> Option<String> {
    let first = set_cookie.split(';').next()?.trim();
    let (name, value) = first.split_once('=')?;
    (name.trim() == LOBBY_COOKIE && !value.trim().is_empty()).then(|| value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shapes of Meet 1.27 replies (core/api/serializers.py RoomSerializer, LobbyService).
    const PUBLIC_ROOM: &str = r#"{"id":"4d1a7e0c-5b1e-4c70-9c52-1b2f7f6f0a11","name":"abc-defg-hij",
        "slug":"abc-defg-hij","configuration":{},"access_level":"public","is_administrable":false,
        "livekit":{"url":"https://livekit.example.org","room":"4d1a7e0c-5b1e-4c70-9c52-1b2f7f6f0a11",
        "token":"eyJhbGciOiJIUzI1NiJ9.e30.sig"}}"#;
    const TRUSTED_ROOM: &str = r#"{"id":"4d1a7e0c-5b1e-4c70-9c52-1b2f7f6f0a11","name":"Board",
        "slug":"board","configuration":{},"access_level":"trusted","is_administrable":false}"#;
    const UNREGISTERED: &str = r#"{"id":null,"slug":"abc-defg-hij","access_level":"public",
        "livekit":{"url":"wss://livekit.example.org","room":"abc-defg-hij","token":"t"}}"#;
    const WAITING: &str = r#"{"id":"2f0c1d1e-0000-4000-8000-000000000001","username":"Salle 3",
        "status":"waiting","color":"hsl(120, 45%, 50%)","livekit":null}"#;
    const CONFIG: &str = r#"{"analytics":{},"support":null,"silence_livekit_debug_logs":false,
        "telephony":{"enabled":false},"livekit":{"url":"https://livekit.example.org",
        "force_wss_protocol":false,"enable_firefox_proxy_workaround":false,
        "default_sources":["camera","microphone","screen_share"]},"auto_mute_on_join_threshold":50}"#;

    #[test]
    fn a_public_room_reply_gives_a_token_for_the_room_uuid() {
        let room: RoomReply = serde_json::from_str(PUBLIC_ROOM).unwrap();
        let creds = grant_credentials(room.livekit.as_ref().unwrap(), false).unwrap();
        assert_eq!(creds.room, "4d1a7e0c-5b1e-4c70-9c52-1b2f7f6f0a11");
        assert_eq!(creds.ws_url.as_str(), "wss://livekit.example.org/");
    }

    #[test]
    fn a_trusted_room_reply_has_no_token_so_the_room_waits_in_the_lobby() {
        let room: RoomReply = serde_json::from_str(TRUSTED_ROOM).unwrap();
        assert_eq!(room.access_level, "trusted");
        assert!(room.livekit.is_none());
    }

    #[test]
    fn an_unregistered_room_uses_its_slug_as_livekit_room() {
        let room: RoomReply = serde_json::from_str(UNREGISTERED).unwrap();
        assert_eq!(room.id, None);
        assert_eq!(room.livekit.unwrap().room, "abc-defg-hij");
    }

    #[test]
    fn a_lobby_reply_while_waiting_parses() {
        let entry: EntryReply = serde_json::from_str(WAITING).unwrap();
        assert_eq!(entry.status, EntryStatus::Waiting);
        assert!(entry.livekit.is_none());
    }

    #[test]
    fn the_service_config_gives_the_livekit_url_and_wss_flag() {
        let config: ServiceConfig = serde_json::from_str(CONFIG).unwrap();
        let lk = config.livekit.unwrap();
        assert_eq!(lk.url.as_deref(), Some("https://livekit.example.org"));
        assert!(!lk.force_wss_protocol);
    }

    #[test]
    fn livekit_urls_become_websocket_urls_and_plain_ones_only_locally() {
        assert_eq!(
            livekit_ws_url("http://127.0.0.1:7880", false)
                .unwrap()
                .as_str(),
            "ws://127.0.0.1:7880/"
        );
        assert_eq!(
            livekit_ws_url("http://127.0.0.1:7880", true)
                .unwrap()
                .scheme(),
            "wss"
        );
        assert!(livekit_ws_url("http://livekit.example.org", false).is_err());
        assert!(livekit_ws_url("ftp://livekit.example.org", false).is_err());
    }

    #[test]
    fn the_lobby_cookie_is_read_from_set_cookie() {
        assert_eq!(
            lobby_cookie_value("lobbyParticipantId=abc-1; HttpOnly; Secure; Path=/").as_deref(),
            Some("abc-1")
        );
        assert_eq!(lobby_cookie_value("csrftoken=x; Path=/"), None);
    }

    fn allow(hosts: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(hosts).unwrap()
    }

    #[test]
    fn meeting_urls_outside_the_allow_list_or_over_plain_http_are_refused() {
        let allowed = allow(&["visio.numerique.gouv.fr"]);
        let t =
            MeetingTarget::parse("https://visio.numerique.gouv.fr/abc-defg-hij", &allowed).unwrap();
        assert_eq!(t.slug, "abc-defg-hij");
        assert_eq!(t.api.as_str(), "https://visio.numerique.gouv.fr/api/v1.0/");
        assert!(matches!(
            MeetingTarget::parse("https://evil.example/abc-defg-hij", &allowed),
            Err(MeetError::HostNotAllowed { .. })
        ));
        assert!(
            MeetingTarget::parse("http://visio.numerique.gouv.fr/abc-defg-hij", &allowed).is_err()
        );
        assert!(MeetingTarget::parse(
            "http://127.0.0.1:8080/abc-defg-hij",
            &allow(&["127.0.0.1:8080"])
        )
        .is_ok());
    }

    #[test]
    fn an_empty_allow_list_allows_no_meeting_at_all() {
        let refused = MeetingTarget::parse("http://127.0.0.1:8080/abc-defg-hij", &allow(&[]));
        assert!(matches!(refused, Err(MeetError::HostNotAllowed { .. })));
        assert_eq!(refused.unwrap_err().kind(), FailureKind::NotAvailable);
    }

    #[test]
    fn the_announced_livekit_server_is_used_unless_media_hosts_restrict_it() {
        let meeting = "https://visio.numerique.gouv.fr/abc-defg-hij";
        let target = MeetingTarget::parse(meeting, &allow(&["visio.numerique.gouv.fr"])).unwrap();
        let url = |u: &str| Url::parse(u).unwrap();
        // Real Visio: LiveKit on another host, announced by the allowed Meet host over TLS.
        assert!(target
            .check_livekit_url(&url("wss://livekit.visio.numerique.gouv.fr/"))
            .is_ok());
        // Restricted: the meeting's own host (any port) and the listed hosts only.
        let pinned = target
            .clone()
            .with_media_hosts(Some(allow(&["livekit.visio.numerique.gouv.fr"])));
        assert!(pinned
            .check_livekit_url(&url("wss://visio.numerique.gouv.fr:7880/"))
            .is_ok());
        assert!(pinned
            .check_livekit_url(&url("wss://livekit.visio.numerique.gouv.fr/"))
            .is_ok());
        let refused = pinned.check_livekit_url(&url("wss://media.elsewhere.example/"));
        let message = refused.unwrap_err().to_string();
        assert!(
            message.contains("add \"media.elsewhere.example\" to visio.media_hosts"),
            "{message}"
        );
        // A listed host on another port is not allowed (entries without a port mean 443).
        assert!(pinned
            .check_livekit_url(&url("wss://livekit.visio.numerique.gouv.fr:8443/"))
            .is_err());
    }

    #[test]
    fn failures_map_onto_the_controllers_kinds() {
        assert_eq!(MeetError::Denied.kind(), FailureKind::Denied);
        let s = |status| MeetError::Status {
            url: String::new(),
            status,
            body: String::new(),
        };
        assert_eq!(s(502).kind(), FailureKind::Unreachable);
        assert_eq!(s(400).kind(), FailureKind::Protocol);
    }
}
