//! `visio-roomd`: the meeting-room appliance daemon.
//!
//! It wires the parts together and owns the I/O: configuration file, logging, the D-Bus service,
//! systemd notification, and the room loop that drives the controller. Decisions live in
//! `visio-room-core`; this binary only connects them to the world.

mod calendar;
mod dbus;
mod demo;
mod intent;
mod meeting;
mod room;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use clap::Parser;
use tokio::sync::mpsc;
use tracing::{error, info};
use visio_room_core::config::{Config, ConfigSource};

use crate::dbus::{BusPublisher, RoomInterface};
use crate::meeting::Visio;
use crate::room::{Facts, RoomLoop, Shared, Snapshot};

/// The visio-room appliance daemon: joins Visio meetings from a meeting room.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (default: /etc/visio-room/config.toml if it exists, else built-in
    /// defaults).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit (status 0 when valid).
    #[arg(long)]
    check_config: bool,
    /// Print every configuration key (section, key, TOML type, what it must be, default,
    /// documentation) as JSON, and exit.
    #[arg(long)]
    print_config_schema: bool,
    /// Serve on the session bus instead of the system bus (development).
    #[arg(long)]
    session_bus: bool,
    /// Demo: start a local visio-sim, join its demo meeting with the room's camera and
    /// microphone (test sources when there are none), and print the meeting page's address.
    #[arg(long)]
    demo: bool,
    /// Where the daemon keeps state across restarts, such as the last calendar fetched
    /// (default: $STATE_DIRECTORY under systemd, else /var/lib/visio-room).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_config_schema {
        return print_config_schema();
    }
    let (config, source) = match Config::load_or_default(args.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("visio-roomd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.room.log_filter);
    if args.check_config {
        match &source {
            ConfigSource::File(path) => println!("{}: configuration is valid", path.display()),
            ConfigSource::Defaults => {
                println!("no configuration file; built-in defaults are valid")
            }
        }
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("visio-roomd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, config, source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("visio-roomd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What is logged by default: our crates (`visio_roomd`, `visio_room_*`: a target matches the
/// directives it starts with) at `info`, which says what the room does; every other crate only
/// from `warn` (webrtc-rs logs each ICE state change, and more, at `info`).
const DEFAULT_LOG_FILTER: &str = "warn,visio_room=info";

/// Logs to the journal when started by systemd with its stderr on the journal, else to stderr.
/// The filter is `RUST_LOG` when set, else `room.log_filter` when set, else
/// [`DEFAULT_LOG_FILTER`].
fn init_logging(configured: &str) {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let env = std::env::var("RUST_LOG").unwrap_or_default();
    let (origin, directives) = if !env.trim().is_empty() {
        ("RUST_LOG", env.as_str())
    } else if !configured.trim().is_empty() {
        ("room.log_filter", configured)
    } else {
        ("the default", DEFAULT_LOG_FILTER)
    };
    let filter = EnvFilter::try_new(directives).unwrap_or_else(|e| {
        eprintln!("visio-roomd: {origin} {directives:?} is not a log filter ({e}); using {DEFAULT_LOG_FILTER:?}");
        EnvFilter::new(DEFAULT_LOG_FILTER)
    });
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            registry.with(journald).init();
            return;
        }
    }
    registry
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
}

async fn run(args: Args, config: Config, source: ConfigSource) -> anyhow::Result<()> {
    let config_file = match &source {
        ConfigSource::File(path) => Some(path.display().to_string()),
        ConfigSource::Defaults => None,
    };
    info!(
        config = config_file.as_deref().unwrap_or("built-in defaults"),
        room = %config.room.name,
        "starting visio-roomd {}",
        env!("CARGO_PKG_VERSION")
    );
    let sim = if args.demo {
        Some(demo::start_sim().await?)
    } else {
        None
    };
    let config = match &sim {
        Some(sim) => demo::demo_config(config, sim)?,
        None => config,
    };
    let allowed_hosts = config.visio.allow_list();
    let tls = room_tls();
    let backend = Visio::new(&config, tls.clone());
    let facts = Facts {
        config_file,
        started_at: room::unix_ms(SystemTime::now()) / 1000,
        media: settings::media_facts(&config.media),
        next_meetings: Vec::new(),
        recovery: None,
    };
    let policy = settings::controller_policy(&config);
    let shared = Shared::new(Snapshot {
        status: visio_room_core::controller::Controller::new(policy)
            .status()
            .clone(),
        retry_at_unix_ms: None,
        facts,
        media_live: None,
        calendar: None,
    });
    let mut room_loop = RoomLoop::new(policy, backend, config.room.name.clone(), shared.clone());
    // The demo starts its own meeting server each time: nothing to go back to.
    if sim.is_none() {
        let store = intent::IntentStore::in_dir(&calendar::state_dir(args.state_dir.as_deref()));
        room_loop = room_loop.with_intent(store);
    }
    if let Some(room_calendar) = calendar::RoomCalendar::new(&config) {
        let (updates_tx, updates_rx) = mpsc::channel(16);
        let cache = calendar::state_dir(args.state_dir.as_deref()).join("calendar");
        info!(sources = config.calendar.sources.len(), cache = %cache.display(), "following the room's calendar");
        calendar::spawn_sources(&config.calendar, &config.room.name, &cache, tls, updates_tx);
        room_loop = room_loop.with_calendar(room_calendar, updates_rx);
    }

    let (commands_tx, commands_rx) = mpsc::channel(32);
    let iface = RoomInterface::new(commands_tx.clone(), shared, allowed_hosts);
    let builder = if args.session_bus {
        zbus::connection::Builder::session()?
    } else {
        zbus::connection::Builder::system()?
    };
    let bus = if args.session_bus {
        "session"
    } else {
        "system"
    };
    let connection = builder
        .serve_at(visio_room_bus::OBJECT_PATH, iface)?
        .name(visio_room_bus::BUS_NAME)?
        .build()
        .await
        .with_context(|| {
            format!(
                "cannot own {} on the {bus} bus (is another visio-roomd running, and does the \
                 D-Bus policy allow this user to own it?)",
                visio_room_bus::BUS_NAME
            )
        })?;
    let iface_ref = connection
        .object_server()
        .interface::<_, RoomInterface>(visio_room_bus::OBJECT_PATH)
        .await?;
    info!(
        bus,
        name = visio_room_bus::BUS_NAME,
        "bus name owned; ready"
    );
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "could not notify systemd");
    }

    if let Some(sim) = &sim {
        join_demo(sim, args.session_bus, commands_tx).await;
    }
    room_loop
        .run(commands_rx, BusPublisher::new(iface_ref), shutdown_signal())
        .await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    info!("stopped");
    Ok(())
}

/// Asks the room loop (once it runs) to join the demo meeting, and tells the person where to
/// see the room.
async fn join_demo(sim: &demo::DemoSim, session_bus: bool, commands: mpsc::Sender<room::Command>) {
    let url = sim.meeting_url();
    println!("{}", sim.banner(session_bus));
    let (reply, _outcome) = tokio::sync::oneshot::channel();
    let input = visio_room_core::controller::Input::Join {
        url,
        source: visio_room_core::controller::Source::DBus,
    };
    // The channel has room: the loop starts right after this.
    if commands.try_send(room::Command { input, reply }).is_err() {
        error!("could not queue the demo join");
    }
}

/// The room's one TLS client configuration (the system trust store, verification always on),
/// shared by the meeting sessions and the calendar. Without it the daemon still runs: joins fail
/// with the reason in `Health`, https calendars are refused.
fn room_tls() -> Option<std::sync::Arc<visio_room_session::tls::ClientConfig>> {
    let roots = visio_room_session::TlsRoots::default();
    match visio_room_session::tls::client_config(&roots) {
        Ok(tls) => Some(tls),
        Err(e) => {
            error!(error = %e, "no TLS: meetings and https calendars will fail");
            None
        }
    }
}

/// `--print-config-schema`: the keys of the configuration file, for programs (the fleet's
/// configuration push).
fn print_config_schema() -> ExitCode {
    match serde_json::to_string_pretty(&Config::schema()) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("visio-roomd: cannot write the configuration schema: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot watch SIGTERM; only Ctrl-C will stop the daemon");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
    }
}
