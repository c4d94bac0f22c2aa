//! `visio-roomd` on a private bus, with a configuration file written for the test.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::binaries::{binary, ROOMD};
use crate::bus::Bus;
use crate::process::{terminate, usage, ProcessUsage};
use crate::{Error, Result};

/// A room's configuration file, as the tests need it: test camera and microphone, no display
/// or speakers (remote media is still decoded and counted), meetings allowed on given hosts.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// `room.name`, the name other participants see.
    pub name: String,
    /// `visio.allowed_hosts`.
    pub allowed_hosts: Vec<String>,
    /// `media.resolution` as `(width, height)`.
    pub resolution: (u32, u32),
    /// `media.framerate`.
    pub framerate: u32,
    /// Lines appended as they are (e.g. a `[join]` table).
    pub extra: String,
    /// Lines added to the `[visio]` table (e.g. `media_hosts = [...]`).
    pub visio_extra: String,
}

impl RoomConfig {
    /// A room named `name` allowed to join meetings on `host` (`127.0.0.1:PORT`), sending a
    /// 320x240 test pattern at 15 frames/s (cheap on a loaded 2-core machine).
    pub fn new(name: &str, host: &str) -> RoomConfig {
        RoomConfig {
            name: name.to_owned(),
            allowed_hosts: vec![host.to_owned()],
            resolution: (320, 240),
            framerate: 15,
            extra: String::new(),
            visio_extra: String::new(),
        }
    }

    /// The same with another sending size and frame rate.
    pub fn sending(mut self, width: u32, height: u32, framerate: u32) -> RoomConfig {
        self.resolution = (width, height);
        self.framerate = framerate;
        self
    }

    /// The same with `lines` appended (TOML, e.g. `"[join]\nmax_attempts = 2\n"`).
    pub fn with(mut self, lines: &str) -> RoomConfig {
        self.extra.push_str(lines);
        self
    }

    /// The same with `lines` added to the `[visio]` table.
    pub fn with_visio(mut self, lines: &str) -> RoomConfig {
        self.visio_extra.push_str(lines);
        self
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        let hosts: Vec<String> = self
            .allowed_hosts
            .iter()
            .map(|h| format!("{h:?}"))
            .collect();
        format!(
            "[room]\nname = {:?}\n\n[visio]\nallowed_hosts = [{}]\n{}\n[media]\n\
             video_source = \"test\"\naudio_source = \"test\"\nvideo_sink = \"none\"\n\
             audio_sink = \"none\"\nresolution = \"{}x{}\"\nframerate = {}\n\n{}",
            self.name,
            hosts.join(", "),
            self.visio_extra,
            self.resolution.0,
            self.resolution.1,
            self.framerate,
            self.extra
        )
    }
}

/// A running `visio-roomd --session-bus`, killed when dropped. Its log (stderr) goes to a
/// temporary file, printed when a test panics while the daemon is alive.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    dir: tempfile::TempDir,
    /// The command line and environment, for [`Daemon::restart`].
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Daemon {
    /// Starts the daemon on `bus` with `config` and waits until it answers on the bus.
    pub fn with_config(bus: &Bus, config: &RoomConfig) -> Result<Daemon> {
        Self::with_config_and_env(bus, config, &[])
    }

    /// Like [`Daemon::with_config`], with extra environment variables (e.g. the
    /// `MALLOC_ARENA_MAX=2` the systemd unit sets).
    pub fn with_config_and_env(
        bus: &Bus,
        config: &RoomConfig,
        env: &[(&str, &str)],
    ) -> Result<Daemon> {
        let dir = tempfile::tempdir().map_err(Error::io("create a temporary directory"))?;
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config.to_toml())
            .map_err(Error::io(format!("write {}", path.display())))?;
        let path = path.to_string_lossy().into_owned();
        Self::spawn(bus, &["--config", &path], env, dir)
    }

    /// Starts the daemon on `bus` with command-line arguments `extra` (e.g. `--config FILE`)
    /// and waits until it answers on the bus.
    pub fn start(bus: &Bus, extra: &[&str]) -> Result<Daemon> {
        let dir = tempfile::tempdir().map_err(Error::io("create a temporary directory"))?;
        Self::spawn(bus, extra, &[], dir)
    }

    /// Starts the daemon with `extra` arguments, its state (`--state-dir`) in `dir` unless
    /// `extra` says where, and waits until it answers on `bus`.
    fn spawn(
        bus: &Bus,
        extra: &[&str],
        env: &[(&str, &str)],
        dir: tempfile::TempDir,
    ) -> Result<Daemon> {
        let log = dir.path().join("visio-roomd.log");
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        // Unless the test says where (the flag, or systemd's variable), each daemon gets its own.
        if !extra.contains(&"--state-dir") && !env.iter().any(|(k, _)| *k == "STATE_DIRECTORY") {
            args.push("--state-dir".into());
            args.push(dir.path().join("state").to_string_lossy().into_owned());
        }
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = launch(bus, &args, &env, &log)?;
        let mut daemon = Daemon {
            child,
            log,
            dir,
            args,
            env,
        };
        daemon.wait_ready(bus)?;
        Ok(daemon)
    }

    fn wait_ready(&mut self, bus: &Bus) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = bus.ctl(&["status", "--json"])?;
            if out.status.success() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait().ok().flatten() {
                return Err(Error::Unexpected {
                    what: format!("visio-roomd exited ({status}) at start:\n{}", self.log()),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "visio-roomd owning its bus name".into(),
                    secs: 15,
                    last: String::from_utf8_lossy(&out.stderr).into_owned(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the daemon with SIGKILL, as a crash would end it (no leave, no clean-up).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the daemon again, with the same command line, configuration and state
    /// directory, as systemd's `Restart=always` would; waits until it answers on `bus`.
    pub fn restart(&mut self, bus: &Bus) -> Result<()> {
        if self.is_running() {
            return Err(Error::Unexpected {
                what: "restart asked while visio-roomd still runs".into(),
            });
        }
        self.child = launch(bus, &self.args, &self.env, &self.log)?;
        self.wait_ready(bus)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// CPU time and resident memory now.
    pub fn usage(&self) -> Result<ProcessUsage> {
        usage(self.pid())
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A temporary directory that lives as long as the daemon (for extra files).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Sends SIGTERM and waits (10 s at most) for the exit status.
    pub fn terminate(mut self) -> Result<ExitStatus> {
        self.stop()
    }

    /// Sends SIGTERM (a clean stop, as systemd stops the unit) and waits (10 s at most) for
    /// the exit status; the daemon can be started again with [`Daemon::restart`].
    pub fn stop(&mut self) -> Result<ExitStatus> {
        terminate(self.pid());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(Error::io("wait for visio-roomd"))?
            {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "visio-roomd exiting on SIGTERM".into(),
                    secs: 10,
                    last: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "---- visio-roomd log (last 80 lines) ----\n{}",
                tail.join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn launch(
    bus: &Bus,
    args: &[String],
    env: &[(String, String)],
    log: &std::path::Path,
) -> Result<Child> {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(Error::io(format!("open {}", log.display())))?;
    Command::new(binary(ROOMD)?)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env(
            "RUST_LOG",
            std::env::var("VISIO_ROOMD_LOG").unwrap_or_else(|_| "info".into()),
        )
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("--session-bus")
        .args(args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(Error::spawn(ROOMD))
}
