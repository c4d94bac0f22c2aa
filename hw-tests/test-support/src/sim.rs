//! `visio-sim`, the local Visio, as a child process with its host/admin API at hand.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::binaries::{binary, SIM};
use crate::http::{request, Reply};
use crate::process::{usage, ProcessUsage};
use crate::{Error, Result};

/// The admin token every [`Sim`] is started with (stands in for a room owner's session).
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A running `visio-sim`, killed when dropped. Its log (stderr) goes to a temporary file,
/// printed when a test panics.
pub struct Sim {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    args: Vec<String>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sim {
    /// Starts `visio-sim --listen 127.0.0.1:0 --admin-token …  ARGS` on a free port.
    pub fn start(args: &[&str]) -> Result<Sim> {
        Self::start_on("127.0.0.1:0", args)
    }

    /// Starts `visio-sim` listening on `listen` (`127.0.0.1:PORT`).
    pub fn start_on(listen: &str, args: &[&str]) -> Result<Sim> {
        let dir = tempfile::tempdir().map_err(Error::io("create a temporary directory"))?;
        let log = dir.path().join("visio-sim.log");
        let stderr =
            std::fs::File::create(&log).map_err(Error::io(format!("create {}", log.display())))?;
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let program = binary(SIM)?;
        let mut child = Command::new(&program)
            .args(["--listen", listen, "--admin-token", ADMIN_TOKEN])
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("VISIO_SIM_LOG").unwrap_or_else(|_| "visio_sim=info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(Error::spawn(SIM))?;
        let mut out = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        out.read_line(&mut line)
            .map_err(Error::io("read visio-sim's address line"))?;
        // Keep draining stdout so the simulator never blocks on it.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while out.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        let Some(origin) = line.trim().strip_prefix("visio-sim listening on ") else {
            let _ = child.kill();
            let status = child.wait();
            return Err(Error::Unexpected {
                what: format!(
                    "{} did not start on {listen} (first line {line:?}, {status:?}); \
                     if it is a stale build, rebuild it (`cargo build --workspace --bins`). \
                     Its log: {}",
                    program.display(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            });
        };
        Ok(Sim {
            origin: origin.to_owned(),
            child,
            args,
            log,
            _dir: dir,
        })
    }

    /// Kills the simulator and starts it again on the same address with the same arguments
    /// (a server restart: every room and connection is gone). Retries while the port is
    /// still held by the old process's sockets.
    pub fn restart(&mut self) -> Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let listen = self.host().to_owned();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Sim::start_on(&listen, &args) {
                Ok(new) => {
                    *self = new;
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `127.0.0.1:PORT`, for `visio.allowed_hosts`.
    pub fn host(&self) -> &str {
        self.origin.trim_start_matches("http://")
    }

    /// The meeting link of room `slug` on this simulator.
    pub fn meeting_url(&self, slug: &str) -> String {
        format!("{}/{slug}", self.origin)
    }

    /// The simulator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time and resident memory now.
    pub fn usage(&self) -> Result<ProcessUsage> {
        usage(self.pid())
    }

    /// A host/admin API call with the admin token.
    pub fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Reply> {
        request(&self.origin, method, path, Some(ADMIN_TOKEN), body.as_ref())
    }

    /// The participants of `room` (slug, UUID or LiveKit room), as the admin API lists them:
    /// `identity`, `name`, `tracks` (`sid`, `kind`, `muted`, `packets_in`, …).
    pub fn participants(&self, room: &str) -> Result<Vec<serde_json::Value>> {
        let reply = self.admin("GET", &format!("/sim/v1/rooms/{room}/participants"), None)?;
        let list = reply.json()?;
        Ok(list["participants"].as_array().cloned().unwrap_or_default())
    }

    /// The participant of `room` named `name`, if connected.
    pub fn participant(&self, room: &str, name: &str) -> Result<Option<serde_json::Value>> {
        Ok(self
            .participants(room)?
            .into_iter()
            .find(|p| p["name"] == name))
    }

    /// Waits until `room` has a participant named `name` for which `pred` holds.
    pub fn wait_participant(
        &self,
        room: &str,
        name: &str,
        secs: u64,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let found = self.participant(room, name)?;
            if let Some(p) = found.as_ref().filter(|p| pred(p)) {
                return Ok(p.clone());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("participant {name:?} in room {room} as expected"),
                    secs,
                    last: serde_json::Value::from(self.participants(room).unwrap_or_default())
                        .to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The lobby of room `slug`: the waiting participants (`id`, `username`).
    pub fn waiting(&self, slug: &str) -> Result<Vec<serde_json::Value>> {
        let reply = self.admin(
            "GET",
            &format!("/api/v1.0/rooms/{slug}/waiting-participants/"),
            None,
        )?;
        Ok(reply.json()?["participants"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The host admits (`allow = true`) or denies the waiting participant `id` of `slug`.
    pub fn decide_entry(&self, slug: &str, id: &str, allow: bool) -> Result<()> {
        let reply = self.admin(
            "POST",
            &format!("/api/v1.0/rooms/{slug}/enter/"),
            Some(serde_json::json!({"participant_id": id, "allow_entry": allow})),
        )?;
        if !(200..300).contains(&reply.status) {
            return Err(Error::Unexpected {
                what: format!("the host's entry decision was refused: {reply:?}"),
            });
        }
        Ok(())
    }

    /// Server-initiated mute of track `track_sid` of `identity` in `room`.
    pub fn mute(&self, room: &str, identity: &str, track_sid: &str) -> Result<()> {
        let reply = self.admin(
            "POST",
            &format!("/sim/v1/rooms/{room}/participants/{identity}/mute"),
            Some(serde_json::json!({"track_sid": track_sid, "muted": true})),
        )?;
        if reply.status != 200 {
            return Err(Error::Unexpected {
                what: format!("the server mute was refused: {reply:?}"),
            });
        }
        Ok(())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "---- visio-sim log (last 60 lines) ----\n{}",
                tail.join("\n")
            );
        }
    }
}
