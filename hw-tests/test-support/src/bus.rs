//! A private D-Bus daemon per test, and `visio-roomctl` pointed at it.
//!
//! Each test gets its own `dbus-daemon` (a real one, on a socket in a temporary directory), so
//! tests run in parallel and never touch the machine's buses.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::binaries::{binary, ROOMCTL};
use crate::{Error, Result};

/// A private session bus, stopped when dropped.
pub struct Bus {
    /// The bus address (`unix:path=…,guid=…`), for `DBUS_SESSION_BUS_ADDRESS`.
    pub address: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Bus {
    /// Starts `dbus-daemon --session` on a private socket.
    pub fn start() -> Result<Bus> {
        let dir = tempfile::tempdir().map_err(Error::io("create a temporary directory"))?;
        let socket = dir.path().join("bus");
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    Error::MissingDependency {
                        what: "dbus-daemon".into(),
                        fix: "apt-get install dbus-daemon (scripts/setup does it)".into(),
                    }
                } else {
                    Error::spawn("dbus-daemon")(source)
                }
            })?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout is piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(Error::io("read the address dbus-daemon prints"))?;
        if line.trim().is_empty() {
            return Err(Error::Unexpected {
                what: "dbus-daemon printed no address".into(),
            });
        }
        Ok(Bus {
            address: line.trim().to_owned(),
            child,
            _dir: dir,
        })
    }

    /// A `visio-roomctl --session-bus` command on this bus.
    pub fn roomctl(&self) -> Result<Command> {
        let mut c = Command::new(binary(ROOMCTL)?);
        c.env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .arg("--session-bus");
        Ok(c)
    }

    /// Runs `visio-roomctl --session-bus ARGS` and returns its output, whatever its status.
    pub fn ctl(&self, args: &[&str]) -> Result<Output> {
        self.roomctl()?
            .args(args)
            .output()
            .map_err(Error::spawn(ROOMCTL))
    }

    /// Runs `visio-roomctl --session-bus ARGS`, which must succeed; returns its stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.ctl(args)?;
        if !out.status.success() {
            return Err(Error::Unexpected {
                what: format!(
                    "`visio-roomctl {}` failed ({}): {}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `visio-roomctl status --json`, parsed.
    pub fn status(&self) -> Result<serde_json::Value> {
        json(&self.ctl(&["status", "--json"])?)
    }

    /// Polls `status --json` every 100 ms until `done` holds (returns that status), or fails
    /// after `secs` with the last status in the error.
    pub fn wait_status(
        &self,
        secs: u64,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let status = self.status()?;
            if done(&status) {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: what.to_owned(),
                    secs,
                    last: format!("{status:#}"),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A zbus connection to this bus.
    pub async fn connect(&self) -> Result<zbus::Connection> {
        let unexpected = |e: zbus::Error| Error::Unexpected {
            what: format!("cannot connect to the private bus {}: {e}", self.address),
        };
        zbus::connection::Builder::address(self.address.as_str())
            .map_err(unexpected)?
            .build()
            .await
            .map_err(unexpected)
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses a command's stdout as JSON; the command must have succeeded.
pub fn json(out: &Output) -> Result<serde_json::Value> {
    if !out.status.success() {
        return Err(Error::Unexpected {
            what: format!(
                "command failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| Error::Unexpected {
        what: format!(
            "not JSON on stdout ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        ),
    })
}
