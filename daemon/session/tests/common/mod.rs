//! Test support: a real `visio-sim` process (built from this workspace) and helpers to drive
//! sessions against it.
#![allow(dead_code)]

pub mod netns;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::mpsc;
use visio_room_core::controller::{SessionEvent, SessionId};
use visio_room_core::meeting_url::AllowedHosts;
use visio_room_media::{AudioSinkSetting, ReceiverConfig, VideoSenderConfig, VideoSinkSetting};
use visio_room_session::{MediaSettings, SessionConfig, SessionRequest};

pub const ADMIN: &str = "test-admin-token";

/// The media of a test room: test camera at 320x240, 15 frames/s (cheap on a loaded 2-core
/// machine), test tone without voice processing, nothing drawn or played.
pub fn test_media() -> MediaSettings {
    MediaSettings {
        video: VideoSenderConfig {
            width: 320,
            height: 240,
            fps: 15,
            ..VideoSenderConfig::default()
        },
        audio: visio_room_media::AudioSenderConfig {
            voice_processing: false,
            ..Default::default()
        },
        receiver: ReceiverConfig {
            video_sink: VideoSinkSetting::None,
            audio_sink: AudioSinkSetting::None,
            width: 320,
            height: 240,
            fps: 15,
            ..ReceiverConfig::default()
        },
        encoder: None,
    }
}

/// The `visio-sim` binary: `$VISIO_SIM_BIN`, or built with cargo into this target directory.
pub fn sim_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("VISIO_SIM_BIN") {
            return PathBuf::from(bin);
        }
        // <target>/debug/deps/<test exe> → <target>/debug/visio-sim
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(|d| d.parent())
            .expect("target/<profile>");
        let target_dir = profile_dir.parent().expect("target dir");
        let bin = profile_dir.join("visio-sim");
        // `cargo nextest run --workspace` has built it already; building it again with
        // `-p visio-sim` would resolve features differently and rebuild half the tree.
        if is_fresh(&bin) {
            return bin;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "visio-sim"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cannot run cargo to build visio-sim");
        assert!(
            status.success(),
            "building visio-sim failed: run `cargo build -p visio-sim` to see why"
        );
        let bin = profile_dir.join("visio-sim");
        assert!(
            bin.exists(),
            "visio-sim binary not found at {}",
            bin.display()
        );
        bin
    })
    .clone()
}

/// Whether `bin` exists and is newer than every source file of visio-sim.
fn is_fresh(bin: &std::path::Path) -> bool {
    let Ok(built) = bin.metadata().and_then(|m| m.modified()) else {
        return false;
    };
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hw-tests/visio-sim");
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m > built)
            {
                return false;
            }
        }
    }
    true
}

/// A running simulator; killed on drop.
pub struct Sim {
    child: Child,
    pub base: String,
    pub addr: String,
    args: Vec<String>,
}

impl Sim {
    /// Starts `visio-sim` on a free loopback port with extra arguments.
    pub fn start(extra: &[&str]) -> Sim {
        Self::start_on("127.0.0.1:0", extra)
    }

    /// Starts `visio-sim` on `listen`.
    pub fn start_on(listen: &str, extra: &[&str]) -> Sim {
        let mut args: Vec<String> = vec![
            "--listen".into(),
            listen.into(),
            "--admin-token".into(),
            ADMIN.into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = Command::new(sim_binary())
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("SIM_LOG").unwrap_or_else(|_| "visio_sim=warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start visio-sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("visio-sim output");
        let base = line
            .trim()
            .strip_prefix("visio-sim listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from visio-sim: {line:?}"))
            .to_owned();
        let addr = base.trim_start_matches("http://").to_owned();
        Sim {
            child,
            base,
            addr,
            args,
        }
    }

    /// Kills and starts the simulator again on the same address (a server restart).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let extra: Vec<String> = self.args[4..].to_vec();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let mut last = None;
        for _ in 0..50 {
            match std::panic::catch_unwind(|| Sim::start_on(&self.addr, &extra)) {
                Ok(new) => {
                    *self = new;
                    return;
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::panic::resume_unwind(last.unwrap());
    }

    pub fn meeting_url(&self, slug: &str) -> String {
        format!("{}/{slug}", self.base)
    }

    /// Admin API GET returning JSON.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("sim admin request");
        r.json().await.expect("sim admin JSON")
    }

    /// Admin API POST with JSON.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::StatusCode {
        reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .expect("sim admin request")
            .status()
    }

    /// Admin API DELETE.
    pub async fn delete(&self, path: &str) -> reqwest::StatusCode {
        reqwest::Client::new()
            .delete(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("sim admin request")
            .status()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A session configuration for a meeting at `meeting_url` (its host and port allowed):
/// loopback ICE, fast lobby polling, no media.
pub fn sim_config(meeting_url: &str) -> SessionConfig {
    let url = url::Url::parse(meeting_url).expect("meeting URL");
    let host = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port_or_known_default().expect("port")
    );
    SessionConfig {
        allowed_hosts: AllowedHosts::parse(&[host]).expect("allow-list entry"),
        ice_loopback_only: true,
        lobby_poll_interval: Duration::from_millis(300),
        reconnect_budget: Duration::from_secs(30),
        ..SessionConfig::default()
    }
}

pub fn request(id: u64, url: &str, name: &str) -> SessionRequest {
    SessionRequest {
        id: SessionId(id),
        url: url.to_owned(),
        display_name: name.to_owned(),
        mic_muted: false,
        camera_enabled: true,
    }
}

pub type Events = mpsc::UnboundedReceiver<(SessionId, SessionEvent)>;

/// Waits for the first event matching `pred` (others are skipped), failing after `secs`.
pub async fn expect_event(
    events: &mut Events,
    secs: u64,
    what: &str,
    pred: impl Fn(&SessionEvent) -> bool,
) -> SessionEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some((_, e))) if pred(&e) => return e,
            Ok(Some((_, e))) => eprintln!("(skipping event {e:?} while waiting for {what})"),
            Ok(None) => panic!("event channel closed while waiting for {what}"),
            Err(_) => panic!("no {what} within {secs} s"),
        }
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "visio_room_session=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A minimal HTTP server answering every request with `reply(path)` (status, JSON body).
pub async fn fake_meet(reply: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reply = std::sync::Arc::new(reply);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, body) = reply(&path);
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

/// A TCP relay in front of the simulator, standing for the network between the room and the
/// meeting service: the test can cut every open connection (as a Wi-Fi roam or a NAT timeout
/// would) and read the request lines that went through it. The simulator derives its LiveKit
/// URL from the `Host` header, so the signalling WebSocket goes through the relay too, while
/// the media (UDP, ICE) goes directly to the simulator and is not cut.
pub struct Relay {
    /// `http://127.0.0.1:<port>`: use it as the meeting's base URL.
    pub base: String,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Relays connections to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Relay {
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Default::default();
        let requests: Arc<Mutex<Vec<String>>> = Default::default();
        let upstream = upstream.to_owned();
        let (conns, reqs) = (connections.clone(), requests.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let reqs = reqs.clone();
                let task = tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    // Record the request line of the first request on the connection.
                    let mut head = vec![0u8; 8192];
                    let n = client.read(&mut head).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    let text = String::from_utf8_lossy(&head[..n]);
                    if let Some(line) = text.lines().next() {
                        reqs.lock().unwrap().push(line.to_owned());
                    }
                    if server.write_all(&head[..n]).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                let mut list = conns.lock().unwrap();
                list.retain(|t| !t.is_finished());
                list.push(task);
            }
        });
        Relay {
            base,
            connections,
            requests,
            accept,
        }
    }

    /// Cuts every connection open now (both ends see a reset or an end of stream).
    pub fn cut_connections(&self) -> usize {
        let mut list = self.connections.lock().unwrap();
        let open = list.iter().filter(|t| !t.is_finished()).count();
        for task in list.drain(..) {
            task.abort();
        }
        open
    }

    /// The request lines seen so far (`GET /rtc?access_token=…&reconnect=1… HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_connections();
    }
}
