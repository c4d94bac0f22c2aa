//! Plain HTTP/1.1 on loopback, enough for the simulator's admin API and for a fake Meet API
//! that answers garbage. No TLS: both ends are on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Result};

/// A reply: status code and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.body).map_err(|e| Error::Unexpected {
            what: format!("not JSON ({e}), status {}: {}", self.status, self.body),
        })
    }
}

/// Sends one request to `origin` (`http://127.0.0.1:PORT`) and reads the whole reply.
pub fn request(
    origin: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    json_body: Option<&serde_json::Value>,
) -> Result<Reply> {
    let authority = origin
        .strip_prefix("http://")
        .ok_or_else(|| Error::Unexpected {
            what: format!("only http:// origins are supported here, not {origin}"),
        })?;
    let what = format!("{method} {origin}{path}");
    let mut stream = TcpStream::connect(authority).map_err(Error::io(what.clone()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(Error::io(what.clone()))?;
    let body = json_body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if let Some(token) = bearer {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if json_body.is_some() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream
        .write_all(format!("{head}{body}").as_bytes())
        .map_err(Error::io(what.clone()))?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .map_err(Error::io(what.clone()))?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Unexpected {
            what: format!("{what}: not an HTTP status line: {status_line:?}"),
        })?;
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(Error::io(what.clone()))?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut raw = Vec::new();
    if let (Some(n), false) = (length, chunked) {
        raw.resize(n, 0);
        reader
            .read_exact(&mut raw)
            .map_err(Error::io(what.clone()))?;
    } else {
        reader
            .read_to_end(&mut raw)
            .map_err(Error::io(what.clone()))?;
        if chunked {
            raw = dechunk(&raw);
        }
    }
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&raw).into_owned(),
    })
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&raw[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || raw.len() < end + 2 + size {
            return out;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[(end + 4 + size).min(raw.len())..];
    }
}

/// A stand-in Meet server on a free loopback port: every request gets `reply(path)`
/// (status, body, sent as `application/json` whatever it holds). Stopped when dropped.
pub struct FakeMeet {
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    stop: Arc<AtomicBool>,
}

impl FakeMeet {
    /// Starts the server.
    pub fn start(
        reply: impl Fn(&str) -> (u16, String) + Send + Sync + 'static,
    ) -> Result<FakeMeet> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(Error::io("bind a loopback port"))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("read the bound address"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let reply = Arc::new(reply);
        std::thread::spawn(move || {
            for socket in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(socket) = socket else { continue };
                let reply = reply.clone();
                std::thread::spawn(move || serve_one(socket, &*reply));
            }
        });
        Ok(FakeMeet {
            origin: format!("http://{addr}"),
            stop,
        })
    }

    /// `127.0.0.1:PORT`, for `visio.allowed_hosts`.
    pub fn host(&self) -> &str {
        self.origin.trim_start_matches("http://")
    }
}

impl Drop for FakeMeet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.host());
    }
}

fn serve_one(socket: TcpStream, reply: &(dyn Fn(&str) -> (u16, String) + Send + Sync)) {
    let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match socket.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers (requests to a Meet API carry no body the fake needs).
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = reply(path);
    let response = format!(
        "HTTP/1.1 {status} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut socket = socket;
    let _ = socket.write_all(response.as_bytes());
}

/// A loopback TCP port that was free a moment ago (nobody listens on it).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(Error::io("bind a loopback port"))?;
    Ok(listener
        .local_addr()
        .map_err(Error::io("read the bound address"))?
        .port())
}
