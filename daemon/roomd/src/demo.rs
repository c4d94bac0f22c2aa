//! `visio-roomd --demo`: the room in a meeting on this machine, with no Visio account and no
//! hardware.
//!
//! Starts the workspace's `visio-sim` (a local Visio) on a free loopback port, allows only that
//! host, uses test camera and microphone sources when the machine has none (the media engine's
//! `auto` does that), joins a demo meeting, and prints the address of the sim's meeting page,
//! where a person can join from a browser and see and hear the room.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use visio_room_core::config::Config;

/// The demo meeting's room name on the sim.
pub const DEMO_ROOM: &str = "demo-room";

/// A running `visio-sim`, stopped when dropped.
pub struct DemoSim {
    _child: Child,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
}

impl DemoSim {
    /// The demo meeting's URL.
    pub fn meeting_url(&self) -> String {
        format!("{}/{DEMO_ROOM}", self.origin)
    }

    /// The few lines a person needs: where to see the room, where its D-Bus API is, how to
    /// stop. `session_bus` says which bus the daemon serves on.
    pub fn banner(&self, session_bus: bool) -> String {
        let url = self.meeting_url();
        let (bus, ctl) = if session_bus {
            let address = std::env::var("DBUS_SESSION_BUS_ADDRESS")
                .unwrap_or_else(|_| "the session bus".into());
            let ctl =
                format!("DBUS_SESSION_BUS_ADDRESS={address} visio-roomctl --session-bus status");
            (address, ctl)
        } else {
            (
                "the system bus".to_owned(),
                "visio-roomctl status".to_owned(),
            )
        };
        format!(
            "\n\
             visio-roomd demo: the room is joining {url}\n\
             \x20 See and hear the room: open {url} in a browser.\n\
             \x20 D-Bus API (org.visioroom.Room1) on {bus}; try: {ctl}\n\
             \x20 Stop: Ctrl-C.\n"
        )
    }
}

/// Where the `visio-sim` binary is: next to `visio-roomd` (a workspace build), else on `PATH`.
fn sim_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("visio-sim"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("visio-sim"))
}

/// Starts `visio-sim --listen 127.0.0.1:0` and waits for the address it prints.
pub async fn start_sim() -> anyhow::Result<DemoSim> {
    let binary = sim_binary();
    let mut child = Command::new(&binary)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        // The sim's own log is for its developers: only its errors, unless RUST_LOG says more.
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
        )
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (build it with `cargo build --workspace --bins`)",
                binary.display()
            )
        })?;
    let stdout = child.stdout.take().context("visio-sim has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .context("visio-sim did not start within 20 s")??
        .unwrap_or_default();
    let Some(origin) = first.strip_prefix("visio-sim listening on ") else {
        bail!("visio-sim printed {first:?} instead of its address");
    };
    let origin = origin.trim().to_owned();
    // Keep reading its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(DemoSim {
        _child: child,
        origin,
    })
}

/// The configuration for the demo: `config` with the sim as the only allowed host.
pub fn demo_config(mut config: Config, sim: &DemoSim) -> anyhow::Result<Config> {
    let host = sim
        .origin
        .strip_prefix("http://")
        .context("the sim serves plain http on loopback")?;
    config.visio.allowed_hosts = vec![host.to_owned()];
    Ok(config)
}
