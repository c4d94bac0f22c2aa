//! TURN over TCP and TLS, and ICE over TCP, for webrtc-rs, whose ICE agent relays only through
//! `turn:` over UDP and has no TCP candidates at all.
//!
//! Ministry networks often let only TCP (443) out. LiveKit's answer, and Visio's documented
//! fallback, is TURN over TLS (LiveKit's embedded TURN on 443, `turns:…?transport=tcp` in
//! `JoinResponse.ice_servers`). webrtc-ice 0.17 gathers relay candidates over UDP only (the TCP
//! and TLS cases are a TODO in its `agent_gather.rs`).
//!
//! TURN speaks the same messages over every transport (RFC 8656 §3.1): a STUN message carries
//! its length, and so does a ChannelData message (padded to four bytes on a stream, §12.5). So
//! each stream TURN server gets a [`StreamBridge`] bridge: a UDP socket on `127.0.0.1` that
//! webrtc-rs's TURN client uses as its server, and, per local client socket, one TCP stream (or
//! TLS, verified with the session's one rustls configuration) to the real server. Messages pass
//! through untouched — credentials, nonces and MESSAGE-INTEGRITY included — so the relay is the
//! real server's, allocated for the room's stream connection, and nothing is faked. The
//! datagrams between webrtc-rs and the bridge never leave the machine.
//!
//! [`bridge_ice_servers`] rewrites the servers a `JoinResponse` or `ReconnectResponse` gives:
//! stream TURN URLs point at a bridge, the rest is kept as it is.
//!
//! ICE over TCP (RFC 6544; LiveKit's passive candidates on port 7881) works the same way with
//! RFC 4571 framing (a two-byte length before each packet): [`bridge_tcp_candidate`] turns a
//! remote `tcp … tcptype passive` candidate into a UDP host candidate on `127.0.0.1` whose
//! socket carries every packet — STUN checks, DTLS, SRTP — over one TCP connection per local
//! socket to the server. The server sees an active TCP client, as from a browser.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use livekit_protocol as proto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// How a TURN server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnTransport {
    /// `turn:host:port` (or `?transport=udp`): webrtc-rs handles it.
    Udp,
    /// `turn:host:port?transport=tcp`.
    Tcp,
    /// `turns:host:port?transport=tcp`: TLS over TCP.
    Tls,
}

impl TurnTransport {
    /// How the path is named in `Health` and `Media`.
    pub fn path_name(self) -> &'static str {
        match self {
            TurnTransport::Udp => "turn/udp",
            TurnTransport::Tcp => "turn/tcp",
            TurnTransport::Tls => "turn/tls",
        }
    }
}

/// A TURN URL taken apart (`turn[s]:host[:port][?transport=udp|tcp]`, RFC 7065).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnUrl {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (3478 for `turn:`, 5349 for `turns:` when absent).
    pub port: u16,
    /// Transport.
    pub transport: TurnTransport,
}

impl TurnUrl {
    /// Parses a `turn:`/`turns:` URL; `None` for anything else (`stun:`, malformed).
    pub fn parse(url: &str) -> Option<TurnUrl> {
        let (secure, rest) = if let Some(r) = url.strip_prefix("turns:") {
            (true, r)
        } else {
            (false, url.strip_prefix("turn:")?)
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let transport_tcp = match query {
            "" => secure,
            "transport=udp" => false,
            "transport=tcp" => true,
            _ => return None,
        };
        let transport = match (secure, transport_tcp) {
            (true, true) => TurnTransport::Tls,
            (true, false) => return None, // DTLS TURN: not offered by LiveKit.
            (false, true) => TurnTransport::Tcp,
            (false, false) => TurnTransport::Udp,
        };
        let default_port = if secure { 5349 } else { 3478 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => default_port,
                None => return None,
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().ok()?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(TurnUrl {
            host,
            port,
            transport,
        })
    }
}

/// How packets are framed on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// TURN's own framing: STUN and ChannelData carry their length (RFC 8656).
    Turn,
    /// A two-byte length before each packet (RFC 4571), for ICE over TCP.
    Rfc4571,
}

/// Where a bridge carries packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTarget {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS over the TCP connection (verified like every connection of the room).
    pub tls: bool,
    /// How packets are framed.
    pub framing: Framing,
    /// The media path this makes, for `Health` (`turn/tcp`, `turn/tls`, `tcp`).
    pub path: &'static str,
}

impl TurnUrl {
    /// Where a bridge to this stream TURN server connects.
    pub fn target(&self) -> StreamTarget {
        StreamTarget {
            host: self.host.clone(),
            port: self.port,
            tls: self.transport == TurnTransport::Tls,
            framing: Framing::Turn,
            path: self.transport.path_name(),
        }
    }
}

/// A running bridge to one stream server (TURN or ICE over TCP). Stops when dropped.
pub struct StreamBridge {
    local: SocketAddr,
    target: StreamTarget,
    /// The local client sockets (webrtc-rs TURN clients) that have used this bridge.
    clients: Arc<Mutex<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StreamBridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StreamBridge {
    /// Starts a bridge to `target`, listening on a free UDP port of `127.0.0.1`.
    pub async fn start(
        target: StreamTarget,
        tls: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<StreamBridge> {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let local = socket.local_addr()?;
        let clients = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(serve(socket, target.clone(), tls, clients.clone()));
        Ok(StreamBridge {
            local,
            target,
            clients,
            task,
        })
    }

    /// The address webrtc-rs is given (as the TURN server, or as the remote candidate).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The real server.
    pub fn target(&self) -> &StreamTarget {
        &self.target
    }

    /// Whether the TURN client bound to `addr` talks through this bridge.
    pub fn serves(&self, addr: SocketAddr) -> bool {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&addr)
    }

    /// Whether a TURN client bound to local port `port` talks through this bridge (webrtc-rs
    /// gives a relay candidate's base as `0.0.0.0:port`).
    pub fn serves_port(&self, port: u16) -> bool {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|a| a.port() == port)
    }
}

async fn serve(
    socket: Arc<UdpSocket>,
    server: StreamTarget,
    tls: Arc<rustls::ClientConfig>,
    clients: Arc<Mutex<Vec<SocketAddr>>>,
) {
    let mut streams: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        // Only this machine can reach a socket on 127.0.0.1 (the kernel drops packets for a
        // loopback address from outside), but webrtc-rs's sockets are bound to the host's
        // interface addresses, so the source is not a loopback address: any source is a local
        // socket.
        let datagram = buf[..n].to_vec();
        if let Some(tx) = streams.get(&from) {
            if tx.try_send(datagram.clone()).is_ok() {
                continue;
            }
            // The stream is gone (or hopelessly behind): start a new one.
            streams.remove(&from);
        }
        let (tx, rx) = mpsc::channel(256);
        let _ = tx.try_send(datagram);
        streams.insert(from, tx);
        {
            let mut known = clients.lock().unwrap_or_else(|e| e.into_inner());
            if !known.contains(&from) {
                known.push(from);
            }
        }
        tokio::spawn(carry(socket.clone(), from, server.clone(), tls.clone(), rx));
    }
}

/// One local TURN client's stream to the server, both ways, until either side ends.
async fn carry(
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    server: StreamTarget,
    tls: Arc<rustls::ClientConfig>,
    rx: mpsc::Receiver<Vec<u8>>,
) {
    let tcp = match TcpStream::connect((server.host.as_str(), server.port)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(host = %server.host, port = server.port, path = server.path, error = %e, "cannot reach the server over TCP");
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let framing = server.framing;
    let result = match server.tls {
        true => {
            let name = match rustls::pki_types::ServerName::try_from(server.host.clone()) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(host = %server.host, error = %e, "unusable TURN server name");
                    return;
                }
            };
            let connector = tokio_rustls::TlsConnector::from(tls);
            match connector.connect(name, tcp).await {
                Ok(stream) => pump(stream, framing, &socket, client, rx).await,
                Err(e) => {
                    tracing::warn!(host = %server.host, port = server.port, error = %e, "TLS to the TURN server failed");
                    return;
                }
            }
        }
        false => pump(tcp, framing, &socket, client, rx).await,
    };
    if let Err(e) = result {
        tracing::debug!(host = %server.host, path = server.path, error = %e, "stream ended");
    }
}

async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    framing: Framing,
    socket: &UdpSocket,
    client: SocketAddr,
    mut rx: mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<()> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let up = async {
        while let Some(mut message) = rx.recv().await {
            match framing {
                Framing::Turn => pad_channel_data(&mut message),
                Framing::Rfc4571 => {
                    let length = u16::try_from(message.len()).unwrap_or(u16::MAX);
                    message.splice(0..0, length.to_be_bytes());
                }
            }
            writer.write_all(&message).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let down = async {
        loop {
            let message = match framing {
                Framing::Turn => read_message(&mut reader).await?,
                Framing::Rfc4571 => {
                    let mut length = [0u8; 2];
                    reader.read_exact(&mut length).await?;
                    let mut packet = vec![0u8; usize::from(u16::from_be_bytes(length))];
                    reader.read_exact(&mut packet).await?;
                    packet
                }
            };
            socket.send_to(&message, client).await?;
        }
        #[allow(unreachable_code)]
        Ok::<_, std::io::Error>(())
    };
    tokio::select! {
        r = up => r,
        r = down => r,
    }
}

/// Over a stream, a ChannelData message is padded to a multiple of four bytes (RFC 8656
/// §12.5); over UDP it need not be.
fn pad_channel_data(message: &mut Vec<u8>) {
    if message.first().is_some_and(|b| b >> 6 == 0b01) {
        let padded = message.len().div_ceil(4) * 4;
        message.resize(padded, 0);
    }
}

/// The length of the TURN message at the start of a stream, from its first four bytes: a STUN
/// message (first two bits 00: 20-byte header + length) or ChannelData (01: 4-byte header +
/// length, padded to four on a stream). Returns (length to deliver, length to consume).
pub fn message_length(head: [u8; 4]) -> std::io::Result<(usize, usize)> {
    let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
    match head[0] >> 6 {
        0b00 => Ok((20 + length, 20 + length)),
        0b01 => Ok((4 + length, (4 + length).div_ceil(4) * 4)),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a TURN message on the stream",
        )),
    }
}

async fn read_message<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Vec<u8>> {
    let mut head = [0u8; 4];
    reader.read_exact(&mut head).await?;
    let (deliver, consume) = message_length(head)?;
    let mut message = vec![0u8; consume];
    message[..4].copy_from_slice(&head);
    reader.read_exact(&mut message[4..]).await?;
    message.truncate(deliver);
    Ok(message)
}

/// The ICE servers to give webrtc-rs: each stream TURN URL (`turns:`, `?transport=tcp`) is
/// replaced by a `turn:127.0.0.1:PORT?transport=udp` bridge to it (started here, kept in
/// `bridges`), with the same credentials; other URLs are kept. A bridge that cannot start is
/// left out and logged.
pub async fn bridge_ice_servers(
    servers: &[proto::IceServer],
    tls: &Arc<rustls::ClientConfig>,
    bridges: &mut Vec<StreamBridge>,
) -> Vec<proto::IceServer> {
    let mut out = Vec::with_capacity(servers.len());
    for server in servers {
        let mut urls = Vec::with_capacity(server.urls.len());
        for url in &server.urls {
            match TurnUrl::parse(url) {
                Some(turn) if turn.transport != TurnTransport::Udp => {
                    let target = turn.target();
                    let existing = bridges.iter().find(|b| *b.target() == target);
                    let local = match existing {
                        Some(b) => Some(b.local_addr()),
                        None => match StreamBridge::start(target, tls.clone()).await {
                            Ok(b) => {
                                let local = b.local_addr();
                                bridges.push(b);
                                Some(local)
                            }
                            Err(e) => {
                                tracing::warn!(%url, error = %e, "cannot start a TURN bridge");
                                None
                            }
                        },
                    };
                    if let Some(local) = local {
                        tracing::info!(%url, %local, "TURN over a stream through a local bridge");
                        urls.push(format!("turn:{local}?transport=udp"));
                    }
                }
                _ => urls.push(url.clone()),
            }
        }
        if !urls.is_empty() {
            out.push(proto::IceServer {
                urls,
                ..server.clone()
            });
        }
    }
    out
}

/// A remote ICE candidate over TCP, as the server announces it (RFC 6544).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpCandidate {
    /// Foundation.
    pub foundation: String,
    /// Component (1: RTP).
    pub component: u32,
    /// Priority.
    pub priority: u32,
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
}

impl TcpCandidate {
    /// A `candidate:… tcp … tcptype passive` line (with or without `a=`); `None` for any other
    /// candidate (UDP, or TCP active/simultaneous-open, which an active client cannot use).
    pub fn parse_passive(line: &str) -> Option<TcpCandidate> {
        let line = line.trim_start_matches("a=");
        let mut fields = line.strip_prefix("candidate:")?.split_whitespace();
        let foundation = fields.next()?.to_owned();
        let component = fields.next()?.parse().ok()?;
        if !fields.next()?.eq_ignore_ascii_case("tcp") {
            return None;
        }
        let priority = fields.next()?.parse().ok()?;
        let address = fields.next()?.to_owned();
        let port = fields.next()?.parse().ok()?;
        let rest: Vec<&str> = fields.collect();
        let passive = rest
            .windows(2)
            .any(|w| w[0] == "tcptype" && w[1] == "passive");
        passive.then_some(TcpCandidate {
            foundation,
            component,
            priority,
            address,
            port,
        })
    }

    /// The UDP host candidate webrtc-rs is given instead: the bridge on `local`, with the same
    /// priority (so a direct UDP path, when there is one, still wins).
    pub fn as_bridged(&self, local: SocketAddr) -> String {
        format!(
            "candidate:{} {} udp {} {} {} typ host",
            self.foundation,
            self.component,
            self.priority,
            local.ip(),
            local.port()
        )
    }
}

/// For a remote passive TCP candidate (a `candidate_init` JSON as trickled), starts a bridge to
/// it (kept in `bridges`) and returns the `candidate_init` to give webrtc-rs instead; `None`
/// for other candidates (use them as they are).
pub async fn bridge_tcp_candidate(
    candidate_init: &str,
    tls: &Arc<rustls::ClientConfig>,
    bridges: &mut Vec<StreamBridge>,
) -> Option<String> {
    let mut init: serde_json::Value = serde_json::from_str(candidate_init).ok()?;
    let tcp = TcpCandidate::parse_passive(init.get("candidate")?.as_str()?)?;
    let target = StreamTarget {
        host: tcp.address.clone(),
        port: tcp.port,
        tls: false,
        framing: Framing::Rfc4571,
        path: "tcp",
    };
    let local = match bridges.iter().find(|b| *b.target() == target) {
        Some(b) => b.local_addr(),
        None => match StreamBridge::start(target, tls.clone()).await {
            Ok(b) => {
                let local = b.local_addr();
                bridges.push(b);
                local
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start an ICE-over-TCP bridge");
                return None;
            }
        },
    };
    tracing::info!(remote = %format!("{}:{}", tcp.address, tcp.port), %local, "ICE over TCP through a local bridge");
    init["candidate"] = serde_json::Value::from(tcp.as_bridged(local));
    Some(init.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_urls_are_read_as_rfc_7065_says() {
        let p = |u: &str| TurnUrl::parse(u);
        assert_eq!(
            p("turns:turn.visio.example:443?transport=tcp"),
            Some(TurnUrl {
                host: "turn.visio.example".into(),
                port: 443,
                transport: TurnTransport::Tls
            })
        );
        assert_eq!(p("turns:t.example").unwrap().port, 5349);
        assert_eq!(p("turns:t.example").unwrap().transport, TurnTransport::Tls);
        assert_eq!(
            p("turn:10.0.0.1:3478?transport=tcp").unwrap().transport,
            TurnTransport::Tcp
        );
        assert_eq!(p("turn:10.0.0.1").unwrap().transport, TurnTransport::Udp);
        assert_eq!(
            p("turn:[::1]:3478?transport=udp"),
            Some(TurnUrl {
                host: "::1".into(),
                port: 3478,
                transport: TurnTransport::Udp
            })
        );
        assert_eq!(p("stun:stun.example:3478"), None);
        assert_eq!(p("turns:t.example?transport=udp"), None);
        assert_eq!(p("turn:"), None);
        assert_eq!(p("turn:h:notaport"), None);
    }

    #[test]
    fn stream_framing_follows_the_message_kind() {
        // A STUN Binding request header: type 0x0001, length 8.
        assert_eq!(message_length([0x00, 0x01, 0x00, 0x08]).unwrap(), (28, 28));
        // ChannelData on channel 0x4000 with 5 bytes: 9 delivered, 12 consumed.
        assert_eq!(message_length([0x40, 0x00, 0x00, 0x05]).unwrap(), (9, 12));
        assert!(message_length([0xC0, 0, 0, 0]).is_err());
        let mut data = vec![0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5];
        pad_channel_data(&mut data);
        assert_eq!(data.len(), 12);
        let mut stun = vec![0x00, 0x01, 0x00, 0x00];
        pad_channel_data(&mut stun);
        assert_eq!(stun.len(), 4);
    }

    #[tokio::test]
    async fn messages_cross_the_bridge_both_ways_split_and_framed() {
        // A stand-in stream server that echoes each framed message back in two writes.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            loop {
                let Ok(m) = read_message(&mut s).await else {
                    return;
                };
                let mut framed = m.clone();
                pad_channel_data(&mut framed);
                let (a, b) = framed.split_at(3);
                s.write_all(a).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                s.write_all(b).await.unwrap();
            }
        });
        let tls = crate::tls::client_config(&crate::TlsRoots::default()).unwrap();
        let bridge = StreamBridge::start(
            TurnUrl {
                host: "127.0.0.1".into(),
                port,
                transport: TurnTransport::Tcp,
            }
            .target(),
            tls,
        )
        .await
        .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stun = [0x00, 0x01, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x42, 9, 9, 9, 9]
            .iter()
            .chain([0u8; 12].iter())
            .copied()
            .collect::<Vec<u8>>();
        let channel = vec![0x40, 0x01, 0x00, 0x03, 7, 8, 9];
        for message in [&stun, &channel] {
            client.send_to(message, bridge.local_addr()).await.unwrap();
            let mut buf = [0u8; 100];
            let (n, _) = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                client.recv_from(&mut buf),
            )
            .await
            .expect("the echo comes back")
            .unwrap();
            assert_eq!(&buf[..n], &message[..]);
        }
        assert!(bridge.serves(client.local_addr().unwrap()));
    }

    #[test]
    fn passive_tcp_candidates_are_bridged_and_the_rest_kept() {
        let c = TcpCandidate::parse_passive(
            "candidate:2 1 tcp 1671430143 10.77.0.1 7881 typ host tcptype passive generation 0",
        )
        .unwrap();
        assert_eq!(
            (c.address.as_str(), c.port, c.priority),
            ("10.77.0.1", 7881, 1671430143)
        );
        assert_eq!(
            c.as_bridged("127.0.0.1:5000".parse().unwrap()),
            "candidate:2 1 udp 1671430143 127.0.0.1 5000 typ host"
        );
        for other in [
            "candidate:1 1 udp 2130706431 10.77.0.1 50000 typ host",
            "candidate:3 1 tcp 1671430143 10.77.0.1 9 typ host tcptype active",
            "garbage",
        ] {
            assert_eq!(TcpCandidate::parse_passive(other), None, "{other}");
        }
    }

    #[tokio::test]
    async fn rfc_4571_packets_cross_the_bridge_both_ways() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            loop {
                let mut length = [0u8; 2];
                if s.read_exact(&mut length).await.is_err() {
                    return;
                }
                let mut packet = vec![0u8; usize::from(u16::from_be_bytes(length))];
                s.read_exact(&mut packet).await.unwrap();
                packet.reverse();
                s.write_all(&length).await.unwrap();
                s.write_all(&packet).await.unwrap();
            }
        });
        let tls = crate::tls::client_config(&crate::TlsRoots::default()).unwrap();
        let mut bridges = Vec::new();
        let init = format!(
            r#"{{"candidate":"candidate:7 1 tcp 1000 127.0.0.1 {port} typ host tcptype passive","sdpMid":"0","sdpMLineIndex":0}}"#
        );
        let bridged = bridge_tcp_candidate(&init, &tls, &mut bridges)
            .await
            .unwrap();
        let local = bridges[0].local_addr();
        assert!(
            bridged.contains(&format!("udp 1000 127.0.0.1 {}", local.port())),
            "{bridged}"
        );
        assert!(bridged.contains("sdpMid"), "{bridged}");
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for packet in [vec![1u8, 2, 3], vec![9u8; 1200]] {
            client.send_to(&packet, local).await.unwrap();
            let mut buf = [0u8; 2000];
            let (n, _) = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                client.recv_from(&mut buf),
            )
            .await
            .expect("the answer comes back")
            .unwrap();
            let mut expected = packet.clone();
            expected.reverse();
            assert_eq!(&buf[..n], &expected[..]);
        }
    }
}
