//! `Sim`: the state every request shares (tokens, rooms, lobby, SFU, settings). Both the HTTP
//! routes (`server.rs`) and the signalling (`signal.rs`) read it; it knows neither.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::lobby::Lobby;
use crate::rooms::RoomDirectory;
use crate::sfu::Sfu;
use crate::token::TokenAuthority;

/// Everything the server shares between requests.
pub struct Sim {
    /// Token signer/validator.
    pub tokens: TokenAuthority,
    /// Registered rooms.
    pub rooms: RoomDirectory,
    /// The lobby.
    pub lobby: Mutex<Lobby>,
    /// Bearer token guarding host and admin actions; `None` disables them.
    pub admin_token: Option<String>,
    /// The SFU.
    pub sfu: Sfu,
    /// Directory holding `livekit-client/dist/` (npm modules) for the meeting page.
    pub node_modules: Option<PathBuf>,
    /// Served over TLS (the `livekit.url` scheme).
    pub tls: bool,
    /// How often a connected participant is sent a refreshed token (`refresh_token`).
    pub token_refresh: Duration,
}
