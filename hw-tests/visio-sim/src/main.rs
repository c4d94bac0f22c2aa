//! `visio-sim` command line: serves the Meet REST API, LiveKit signalling and the meeting page
//! on one address. See `docs/visio-sim.md`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use visio_sim::lobby::Lobby;
use visio_sim::rooms::RoomDirectory;
use visio_sim::server::router;
use visio_sim::sfu::{IceAgent, IceScope, IceTcpFront, Sfu};
use visio_sim::sim::Sim;
use visio_sim::speakers::SpeakerChanges;
use visio_sim::token::TokenAuthority;

/// A local Visio: La Suite Meet REST API + LiveKit-compatible SFU + meeting page.
#[derive(Debug, Parser)]
#[command(name = "visio-sim", version)]
struct Cli {
    /// Address to serve on (port 0 picks a free port; the first stdout line tells which).
    #[arg(long, default_value = "127.0.0.1:7880")]
    listen: SocketAddr,
    /// LiveKit API key (the `iss` of tokens).
    #[arg(long, default_value = "devkey")]
    api_key: String,
    /// LiveKit API secret (HS256 key).
    #[arg(long, default_value = "secret")]
    api_secret: String,
    /// Bearer token for host actions (lobby admission) and the admin API (/sim/v1/...).
    /// Without it those are refused with 403.
    #[arg(long, env = "VISIO_SIM_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Registers a room: SLUG:public|trusted|restricted (repeatable).
    #[arg(long = "room", value_name = "SLUG:LEVEL")]
    rooms: Vec<String>,
    /// TOML file with [[room]] tables (slug, access_level, optional name and id).
    #[arg(long)]
    rooms_file: Option<PathBuf>,
    /// Answer 404 for unknown slugs instead of serving them as public rooms
    /// (Meet ALLOW_UNREGISTERED_ROOMS=false).
    #[arg(long)]
    no_unregistered_rooms: bool,
    /// Gather and accept ICE candidates on every interface (default: loopback only).
    #[arg(long)]
    ice_any_interface: bool,
    /// Run an ICE-lite agent (LiveKit's `rtc.use_ice_lite: true`): the SFU only answers
    /// connectivity checks and clients nominate. Default: a full agent, as a default LiveKit
    /// server.
    #[arg(long, env = "VISIO_SIM_ICE_LITE", value_parser = clap::builder::BoolishValueParser::new())]
    ice_lite: bool,
    /// An ICE server URL to announce to every participant in `JoinResponse` and
    /// `ReconnectResponse` (repeatable), as LiveKit announces its TURN servers: e.g.
    /// `turns:turn.example:443?transport=tcp`, `turn:10.0.0.1:3478?transport=udp`.
    #[arg(long = "ice-server", value_name = "URL")]
    ice_servers: Vec<String>,
    /// The user name for the announced ICE servers (TURN long-term credentials).
    #[arg(long, default_value = "")]
    ice_username: String,
    /// The credential for the announced ICE servers.
    #[arg(long, default_value = "")]
    ice_credential: String,
    /// Offer ICE over TCP on this port (0: any free port), as LiveKit's `rtc.tcp_port` (7881):
    /// every peer connection also announces a passive TCP host candidate (RFC 6544, RFC 4571
    /// framing) relayed to its UDP one. Absent: UDP only.
    #[arg(long, value_name = "PORT")]
    ice_tcp_port: Option<u16>,
    /// Directory holding the npm modules (livekit-client) for the meeting page.
    #[arg(long, env = "VISIO_SIM_WEB_MODULES")]
    web_modules: Option<PathBuf>,
    /// TLS certificate (PEM); with --tls-key, serve https/wss.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Send each connected participant a refreshed token (same grants) this often, in seconds,
    /// as a LiveKit server does during long calls.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    token_refresh_s: u64,
    /// Free a room (and its state) once it has been empty this long, in seconds (LiveKit's
    /// `departure_timeout`).
    #[arg(long, default_value_t = 20)]
    departure_timeout_s: u64,
}

fn default_web_modules() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.work/web/node_modules");
    dir.is_dir().then_some(dir)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "visio_sim=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Both the DTLS stack and the HTTPS listener use rustls: pick one crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut rooms = RoomDirectory::new(!cli.no_unregistered_rooms);
    if let Some(file) = &cli.rooms_file {
        rooms.load_file(file)?;
    }
    for arg in &cli.rooms {
        rooms.register_arg(arg)?;
    }
    let ice = if cli.ice_any_interface {
        IceScope::Any
    } else {
        IceScope::Loopback
    };
    let agent = if cli.ice_lite {
        IceAgent::Lite
    } else {
        IceAgent::Full
    };
    tracing::info!(?agent, scope = ?ice, "ICE agent");
    let mut sfu = Sfu::new(ice, agent).context("cannot set up the WebRTC stack")?;
    if let Some(port) = cli.ice_tcp_port {
        let front = IceTcpFront::listen(ice, port).await.with_context(|| {
            format!("cannot listen for ICE over TCP on port {port}: is another server using it? try --ice-tcp-port 0")
        })?;
        sfu = sfu.with_ice_tcp(front);
    }
    let sim = Arc::new(Sim {
        tokens: TokenAuthority::new(&cli.api_key, &cli.api_secret),
        rooms,
        lobby: Mutex::new(Lobby::default()),
        admin_token: cli.admin_token.clone(),
        sfu: sfu
            .with_departure_timeout(Duration::from_secs(cli.departure_timeout_s))
            .with_ice_servers(if cli.ice_servers.is_empty() {
                Vec::new()
            } else {
                vec![livekit_protocol::IceServer {
                    urls: cli.ice_servers.clone(),
                    username: cli.ice_username.clone(),
                    credential: cli.ice_credential.clone(),
                }]
            }),
        node_modules: cli.web_modules.clone().or_else(default_web_modules),
        tls: cli.tls_cert.is_some(),
        token_refresh: Duration::from_secs(cli.token_refresh_s),
    });
    for room in sim.rooms.registered() {
        tracing::info!(slug = %room.slug, id = %room.id, level = room.access_level.as_str(), "registered room");
    }
    spawn_speaker_updates(sim.clone());
    let app = router(sim.clone());
    let listener = std::net::TcpListener::bind(cli.listen).with_context(|| {
        format!(
            "cannot listen on {}: is another server using it? try --listen 127.0.0.1:0",
            cli.listen
        )
    })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let scheme = if sim.tls { "https" } else { "http" };
    println!("visio-sim listening on {scheme}://{addr}");
    use std::io::Write;
    std::io::stdout().flush()?;
    match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "cannot load TLS certificate {} / key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            axum_server::from_tcp_rustls(listener, config)?
                .serve(app.into_make_service())
                .await?;
        }
        _ => {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown())
                .await?;
        }
    }
    Ok(())
}

async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Every `UPDATE_INTERVAL` (400 ms), tells each room which speakers changed (SpeakersChanged,
/// deltas, as LiveKit does); every second, frees the rooms empty for longer than the departure
/// timeout.
fn spawn_speaker_updates(sim: Arc<Sim>) {
    tokio::spawn(async move {
        let mut changes: HashMap<String, SpeakerChanges> = HashMap::new();
        let mut speakers_tick = tokio::time::interval(visio_sim::speakers::UPDATE_INTERVAL);
        let mut rooms_tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = speakers_tick.tick() => {
                    for room in sim.sfu.rooms() {
                        let delta = changes
                            .entry(room.name.clone())
                            .or_default()
                            .update(&room.speakers());
                        if !delta.is_empty() {
                            room.announce_speakers(delta);
                        }
                    }
                }
                _ = rooms_tick.tick() => {
                    for freed in sim.sfu.free_empty_rooms() {
                        changes.remove(&freed);
                    }
                }
            }
        }
    });
}
