//! A real Radicale CalDAV server for the tests, on a free loopback port, with htpasswd (plain)
//! authentication and a temporary storage directory; and helpers to write calendars into it.
//! Radicale comes from `scripts/deps.d/calendar.sh` (a venv under `hw-tests/.work/`).

#![allow(dead_code)] // each test file uses a part of it

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use url::Url;
use visio_room_calendar::Auth;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens on `port`, or fails with the server's log.
pub fn wait_listening(port: u16, child: &mut Child, log: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what} did not listen on port {port} within 30 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// The room's account on the test server.
pub const USER: &str = "room-3";
/// Its password.
pub const PASSWORD: &str = "s3cret-Pa55";

/// A running Radicale.
pub struct Radicale {
    child: Child,
    /// `http://127.0.0.1:PORT/`.
    pub base: Url,
    /// Temporary directory: config, users, storage, log, secret files.
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
    python: PathBuf,
    config: PathBuf,
}

impl Radicale {
    /// Starts Radicale, or fails saying how to install it.
    pub fn start() -> Radicale {
        Radicale::start_inner(None)
    }

    /// Starts Radicale serving HTTPS with `cert` and `key` (PEM); the test's own requests
    /// trust `tls`.
    pub fn start_https(cert: &Path, key: &Path, tls: Arc<rustls::ClientConfig>) -> Radicale {
        Radicale::start_inner(Some((cert, key, tls)))
    }

    fn start_inner(https: Option<(&Path, &Path, Arc<rustls::ClientConfig>)>) -> Radicale {
        let python = repo().join("hw-tests/.work/venv-radicale/bin/python");
        assert!(
            python.exists(),
            "Radicale is not installed: run `scripts/deps.d/calendar.sh {}` (expected {})",
            repo().display(),
            python.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let users = dir.path().join("users");
        std::fs::write(&users, format!("{USER}:{PASSWORD}\n")).unwrap();
        let storage = dir.path().join("collections");
        let config = dir.path().join("config");
        let ssl = match &https {
            Some((cert, key, _)) => format!(
                "ssl = True\ncertificate = {}\nkey = {}\n",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        std::fs::write(
            &config,
            format!(
                "[server]\nhosts = 127.0.0.1:{port}\n{ssl}\
                 [auth]\ntype = htpasswd\nhtpasswd_filename = {}\nhtpasswd_encryption = plain\ndelay = 0\n\
                 [storage]\nfilesystem_folder = {}\n\
                 [rights]\ntype = owner_only\n\
                 [logging]\nlevel = info\n",
                users.display(),
                storage.display()
            ),
        )
        .unwrap();
        let child = Radicale::spawn(&python, &config, &dir.path().join("radicale.log"), port);
        let (scheme, http) = match https {
            Some((_, _, tls)) => (
                "https",
                reqwest::Client::builder()
                    .use_preconfigured_tls((*tls).clone())
                    .build()
                    .unwrap(),
            ),
            None => ("http", reqwest::Client::new()),
        };
        Radicale {
            child,
            base: Url::parse(&format!("{scheme}://127.0.0.1:{port}/")).unwrap(),
            dir,
            http,
            python,
            config,
        }
    }

    fn spawn(python: &Path, config: &Path, log: &Path, port: u16) -> Child {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut child = Command::new(python)
            .args(["-m", "radicale", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start Radicale");
        wait_listening(port, &mut child, log, "Radicale");
        child
    }

    /// Stops the server (its storage stays: [`Radicale::restart`] brings it back).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        let log = self.dir.path().join("radicale.log");
        self.child = Radicale::spawn(&self.python, &self.config, &log, self.base.port().unwrap());
    }

    /// Basic auth with the room's password in a file.
    pub fn auth(&self) -> Auth {
        self.auth_with_password(PASSWORD)
    }

    /// Basic auth with `password` in a file (written with a trailing newline, as editors do).
    pub fn auth_with_password(&self, password: &str) -> Auth {
        let file = self.dir.path().join("password");
        std::fs::write(&file, format!("{password}\n")).unwrap();
        Auth::Basic {
            username: USER.into(),
            password_file: file,
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("radicale.log")).unwrap_or_default()
    }

    /// The storage folder of a collection (`room-3/meetings`).
    pub fn storage_of(&self, collection: &str) -> PathBuf {
        self.dir
            .path()
            .join("collections/collection-root")
            .join(collection)
    }

    /// `http://…/path`.
    pub fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap()
    }

    async fn request(&self, method: &str, path: &str, body: Option<String>) -> u16 {
        let mut request = self
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                self.url(path),
            )
            .basic_auth(USER, Some(PASSWORD));
        if let Some(body) = body {
            let kind = if method == "PUT" {
                "text/calendar; charset=utf-8"
            } else {
                "application/xml; charset=utf-8"
            };
            request = request.header("Content-Type", kind).body(body);
        }
        let response = request.send().await.expect("Radicale answers");
        let status = response.status().as_u16();
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status}: {}",
            response.text().await.unwrap_or_default()
        );
        status
    }

    /// Creates a calendar collection (`/room-3/meetings/`).
    pub async fn mkcalendar(&self, path: &str) {
        self.request("MKCALENDAR", path, None).await;
    }

    /// Creates a calendar collection that only holds tasks (VTODO).
    pub async fn mkcalendar_for_tasks(&self, path: &str) {
        let body = r#"<?xml version="1.0" encoding="utf-8"?><c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><c:supported-calendar-component-set><c:comp name="VTODO"/></c:supported-calendar-component-set></d:prop></d:set></c:mkcalendar>"#;
        self.request("MKCALENDAR", path, Some(body.into())).await;
    }

    /// Creates or replaces a calendar resource.
    pub async fn put(&self, path: &str, ics: &str) {
        self.request("PUT", path, Some(ics.to_owned())).await;
    }

    /// Deletes a resource.
    pub async fn delete(&self, path: &str) {
        self.request("DELETE", path, None).await;
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An iCalendar object with one event (`rrule`, `status` optional).
pub fn event(
    uid: &str,
    start: DateTime<Utc>,
    minutes: i64,
    summary: &str,
    status: Option<&str>,
    rrule: Option<&str>,
) -> String {
    let fmt = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let end = start + chrono::TimeDelta::minutes(minutes);
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".into(),
        "PRODID:-//visio-room tests//EN".into(),
        "BEGIN:VEVENT".into(),
        format!("UID:{uid}"),
        format!("DTSTAMP:{}", fmt(now())),
        format!("DTSTART:{}", fmt(start)),
        format!("DTEND:{}", fmt(end)),
        format!("SUMMARY:{summary}"),
        "URL:https://visio.example.org/abc-defg-hij".into(),
    ];
    if let Some(s) = status {
        lines.push(format!("STATUS:{s}"));
    }
    if let Some(r) = rrule {
        lines.push(format!("RRULE:{r}"));
    }
    lines.extend(["END:VEVENT".into(), "END:VCALENDAR".into(), String::new()]);
    lines.join("\r\n")
}

/// Now, in UTC.
pub fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(std::time::SystemTime::now())
}

/// A whole hour `hours` from now (UTC).
pub fn hours_from_now(hours: i64) -> DateTime<Utc> {
    use chrono::Timelike;
    let top = now()
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap();
    top + chrono::TimeDelta::hours(hours)
}

/// Texts of a `Changed`, or a panic saying what came instead.
pub fn changed(fetched: visio_room_calendar::Fetched) -> Vec<String> {
    match fetched {
        visio_room_calendar::Fetched::Changed(texts) => texts,
        other => panic!("expected Changed, got {other:?}"),
    }
}

/// Logs of the crate under test go to the test's output.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("visio_room_calendar=debug")
        .with_test_writer()
        .try_init();
}

/// A running Xandikos (no authentication; `--defaults` makes `/user/calendars/calendar/`).
pub struct Xandikos {
    child: Child,
    /// `http://127.0.0.1:PORT/`.
    pub base: Url,
    /// Storage and log.
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Xandikos {
    /// The calendar `--defaults` creates.
    pub const CALENDAR: &'static str = "/user/calendars/calendar/";

    /// Starts Xandikos, or fails saying how to install it.
    pub fn start() -> Xandikos {
        let bin = repo().join("hw-tests/.work/venv-xandikos/bin/xandikos");
        assert!(
            bin.exists(),
            "Xandikos is not installed: run `scripts/deps.d/calendar.sh {}` (expected {})",
            repo().display(),
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("xandikos.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(&bin)
            .args([
                "serve",
                "--defaults",
                "--no-detect-systemd",
                "-l",
                "127.0.0.1",
                "-p",
            ])
            .arg(port.to_string())
            .arg("-d")
            .arg(dir.path().join("store"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start Xandikos");
        wait_listening(port, &mut child, &log, "Xandikos");
        Xandikos {
            child,
            base: Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            dir,
            http: reqwest::Client::new(),
        }
    }

    /// The server's access log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("xandikos.log")).unwrap_or_default()
    }

    /// Sends a request that must succeed.
    pub async fn request(&self, method: &str, path: &str, body: Option<String>) {
        let mut request = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            self.base.join(path).unwrap(),
        );
        if let Some(body) = body {
            request = request
                .header("Content-Type", "text/calendar; charset=utf-8")
                .body(body);
        }
        let response = request.send().await.expect("Xandikos answers");
        let status = response.status().as_u16();
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
}

impl Drop for Xandikos {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
