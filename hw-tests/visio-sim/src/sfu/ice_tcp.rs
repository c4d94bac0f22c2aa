//! ICE over TCP, as a LiveKit server offers it on `rtc.tcp_port` (7881): passive TCP host
//! candidates, RFC 6544, every STUN/DTLS/SRTP packet framed as RFC 4571 says (a 2-byte
//! big-endian length, then the packet). webrtc-ice 0.17 has no TCP candidates, so this is a
//! *front*: a TCP listener that, for each accepted connection, reads the first framed message (a
//! STUN Binding request), finds the peer connection whose local ufrag opens its USERNAME, and
//! then relays frames to that peer connection's UDP host candidate from a UDP socket of its own
//! (and datagrams back as frames). The peer connection's ICE agent sees the client as a
//! peer-reflexive UDP candidate; the client sees a TCP connection, as with pion's TCP mux
//! (pion/ice `tcp_mux.go`, which also routes a connection by the first Binding request's
//! USERNAME).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::ice::IceScope;

/// How long an accepted connection has to send its first framed message.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection on which the peer connection has sent nothing for this long is closed: a live
/// ICE agent sends keepalives or answers the client's every 2 s, and gives up after 15 s
/// (`ICE_DISCONNECTED_TIMEOUT` + `ICE_FAILED_TIMEOUT`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// RFC 6544 local preference of a passive TCP host candidate, as pion/ice computes it
/// (`candidate_base.go`, `LocalPreference`): direction preference 4 (passive, host) × 2^13 +
/// other preference 8191. UDP host candidates have 65535: TCP ones always rank lower.
const TCP_PASSIVE_LOCAL_PREFERENCE: u32 = (4 << 13) + 8191;
/// Type preference of a host candidate (RFC 8445, 126).
const HOST_TYPE_PREFERENCE: u32 = 126;

/// Why an accepted TCP connection was closed.
#[derive(Debug, thiserror::Error)]
pub enum IceTcpError {
    /// The socket failed or the peer closed it.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The first framed message did not arrive in time.
    #[error("no framed message within {0:?} of accepting the connection")]
    NoFirstMessage(Duration),
    /// The first framed message was not a STUN Binding request with a USERNAME.
    #[error("the first framed message is not a STUN Binding request with a USERNAME attribute")]
    NotBindingRequest,
    /// No peer connection of this SFU has that local ufrag (closed, or never existed).
    #[error("no peer connection has the local ufrag {0:?}")]
    UnknownUfrag(String),
    /// The peer connection sent nothing for `IDLE_TIMEOUT`.
    #[error("the peer connection sent nothing for {0:?}")]
    Idle(Duration),
}

/// Where a peer connection can be reached over UDP, under one of its local ufrags.
#[derive(Debug, Clone)]
struct Registration {
    /// The participant sid and trickle target (publisher/subscriber) of the peer connection.
    owner: (String, i32),
    /// Its UDP host candidates.
    udp: Vec<SocketAddr>,
}

/// The ICE/TCP front: the listener's port and the peer connections it can route to.
pub struct IceTcpFront {
    port: u16,
    registry: Mutex<HashMap<String, Registration>>,
}

impl IceTcpFront {
    /// Listens on `port` (0: any free port) on the loopback address, or on every interface
    /// with `IceScope::Any`, and serves connections until the process ends. Must run inside
    /// a tokio runtime.
    pub async fn listen(scope: IceScope, port: u16) -> std::io::Result<Arc<Self>> {
        let ip = match scope {
            IceScope::Loopback => Ipv4Addr::LOCALHOST,
            IceScope::Any => Ipv4Addr::UNSPECIFIED,
        };
        let listener = TcpListener::bind((ip, port)).await?;
        let front = Arc::new(Self {
            port: listener.local_addr()?.port(),
            registry: Mutex::new(HashMap::new()),
        });
        tracing::info!(address = %listener.local_addr()?, "ICE/TCP listening");
        let me = Arc::downgrade(&front);
        tokio::spawn(async move {
            loop {
                let (stream, from) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "ICE/TCP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(front) = me.upgrade() else { return };
                tokio::spawn(async move {
                    match front.serve(stream).await {
                        Ok(()) => tracing::debug!(%from, "ICE/TCP connection closed"),
                        Err(e) => tracing::debug!(%from, error = %e, "ICE/TCP connection closed"),
                    }
                });
            }
        });
        Ok(front)
    }

    /// The port the listener is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Records that the peer connection `owner` (participant sid, trickle target) with local
    /// ufrag `ufrag` has the UDP host candidate `udp`. Returns whether that candidate is new
    /// for that ufrag (then a TCP candidate with its address is to be announced).
    pub(super) fn register(&self, ufrag: &str, owner: (String, i32), udp: SocketAddr) -> bool {
        let mut registry = self.registry.lock().unwrap();
        let entry = registry
            .entry(ufrag.to_owned())
            .or_insert_with(|| Registration {
                owner,
                udp: Vec::new(),
            });
        if entry.udp.contains(&udp) {
            return false;
        }
        entry.udp.push(udp);
        true
    }

    /// Forgets every ufrag of the participant `sid` (its peer connections are closed).
    pub(super) fn forget(&self, sid: &str) {
        self.registry
            .lock()
            .unwrap()
            .retain(|_, r| r.owner.0 != sid);
    }

    /// The UDP host candidate to relay to for `ufrag`: the one on `local_ip` (the address the
    /// client connected to) if there is one, else the first.
    fn route(&self, ufrag: &str, local_ip: IpAddr) -> Option<SocketAddr> {
        let registry = self.registry.lock().unwrap();
        let udp = &registry.get(ufrag)?.udp;
        udp.iter()
            .find(|a| a.ip() == local_ip)
            .or(udp.first())
            .copied()
    }

    /// Relays one accepted connection until either side ends.
    async fn serve(&self, stream: TcpStream) -> Result<(), IceTcpError> {
        stream.set_nodelay(true)?;
        let local_ip = stream.local_addr()?.ip();
        let (mut rd, mut wr) = stream.into_split();
        let first = tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, read_frame(&mut rd))
            .await
            .map_err(|_| IceTcpError::NoFirstMessage(FIRST_MESSAGE_TIMEOUT))??;
        let username = binding_request_username(&first).ok_or(IceTcpError::NotBindingRequest)?;
        let ufrag = username.split(':').next().unwrap_or_default();
        let target = self
            .route(ufrag, local_ip)
            .ok_or_else(|| IceTcpError::UnknownUfrag(ufrag.to_owned()))?;
        let udp = UdpSocket::bind((target.ip(), 0)).await?;
        udp.connect(target).await?;
        tracing::debug!(%ufrag, %target, relay = %udp.local_addr()?, "ICE/TCP connection relayed");
        udp.send(&first).await?;
        // Two loops, each owning one direction: reading a frame is not cancel-safe, so neither
        // is ever interrupted halfway by the other.
        let up = async {
            loop {
                let frame = read_frame(&mut rd).await?;
                udp.send(&frame).await?;
            }
        };
        let down = async {
            let mut buf = vec![0u8; 65535];
            loop {
                let n = tokio::time::timeout(IDLE_TIMEOUT, udp.recv(&mut buf))
                    .await
                    .map_err(|_| IceTcpError::Idle(IDLE_TIMEOUT))??;
                write_frame(&mut wr, &buf[..n]).await?;
            }
        };
        tokio::select! {
            r = up => r,
            r = down => r,
        }
    }
}

/// The trickled candidate line of a passive TCP host candidate on `ip:port` (RFC 6544), with
/// the priority pion/ice gives it (`TCP_PASSIVE_LOCAL_PREFERENCE`, component 1).
pub(super) fn passive_candidate(ip: IpAddr, port: u16) -> String {
    let priority = (HOST_TYPE_PREFERENCE << 24) + (TCP_PASSIVE_LOCAL_PREFERENCE << 8) + (256 - 1);
    // A foundation differs between candidates of different type, base address or transport
    // (RFC 8445 §5.1.1.3); a hash of the three, as pion does (crc32 there, FNV-1a here).
    let foundation = format!("host{ip}tcp").bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("candidate:{foundation} 1 tcp {priority} {ip} {port} typ host tcptype passive")
}

/// The `a=ice-ufrag` of an SDP.
pub(super) fn sdp_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .map(str::trim)
}

/// Reads one RFC 4571 frame: a 2-byte big-endian length, then that many bytes.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let len = r.read_u16().await?;
    let mut frame = vec![0u8; usize::from(len)];
    r.read_exact(&mut frame).await?;
    Ok(frame)
}

/// Writes one RFC 4571 frame (in one write, so that frames never interleave).
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, packet: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(packet.len()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a packet longer than 65535 bytes cannot be framed",
        )
    })?;
    let mut frame = Vec::with_capacity(packet.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(packet);
    w.write_all(&frame).await
}

/// The USERNAME (`<receiver ufrag>:<sender ufrag>`) of a STUN Binding request (RFC 5389:
/// 20-byte header with the magic cookie, then type-length-value attributes padded to 4
/// bytes), or `None` if `msg` is not a Binding request or has no USERNAME.
pub fn binding_request_username(msg: &[u8]) -> Option<&str> {
    const BINDING_REQUEST: u16 = 0x0001;
    const MAGIC_COOKIE: u32 = 0x2112_A442;
    const USERNAME: u16 = 0x0006;
    let header = msg.get(..20)?;
    let u16_at = |b: &[u8], i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    if u16_at(header, 0) != BINDING_REQUEST
        || u32::from_be_bytes([header[4], header[5], header[6], header[7]]) != MAGIC_COOKIE
    {
        return None;
    }
    let mut attributes = msg.get(20..20 + usize::from(u16_at(header, 2)))?;
    while attributes.len() >= 4 {
        let (typ, len) = (u16_at(attributes, 0), usize::from(u16_at(attributes, 2)));
        let value = attributes.get(4..4 + len)?;
        if typ == USERNAME {
            return std::str::from_utf8(value).ok();
        }
        attributes = attributes
            .get((4 + len).next_multiple_of(4)..)
            .unwrap_or_default();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Binding request with these attributes (type, value), padded.
    fn binding_request(attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (typ, value) in attributes {
            body.extend_from_slice(&typ.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(body.len() as u16).to_be_bytes());
        msg.extend_from_slice(&0x2112_A442u32.to_be_bytes());
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn the_username_of_a_binding_request_is_found_after_other_attributes() {
        // PRIORITY (4 bytes), then a USERNAME whose length is not a multiple of 4.
        let msg = binding_request(&[(0x0024, &[0, 0, 0, 1]), (0x0006, b"sfuA:cli")]);
        assert_eq!(binding_request_username(&msg), Some("sfuA:cli"));
        let msg = binding_request(&[(0x8022, b"odd"), (0x0006, b"abcd:efghi")]);
        assert_eq!(binding_request_username(&msg), Some("abcd:efghi"));
    }

    #[test]
    fn other_messages_have_no_username() {
        assert_eq!(binding_request_username(&binding_request(&[])), None);
        // A Binding success response with a USERNAME is not a request.
        let mut response = binding_request(&[(0x0006, b"a:b")]);
        response[..2].copy_from_slice(&0x0101u16.to_be_bytes());
        assert_eq!(binding_request_username(&response), None);
        // Without the magic cookie (e.g. DTLS or RTP), truncated, or too short.
        let mut no_cookie = binding_request(&[(0x0006, b"a:b")]);
        no_cookie[4] = 0;
        assert_eq!(binding_request_username(&no_cookie), None);
        let whole = binding_request(&[(0x0006, b"a:b")]);
        assert_eq!(binding_request_username(&whole[..whole.len() - 4]), None);
        assert_eq!(binding_request_username(&[0, 1, 0]), None);
    }

    #[tokio::test]
    async fn frames_carry_a_big_endian_length_and_round_trip() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello").await.unwrap();
        write_frame(&mut wire, &[]).await.unwrap();
        write_frame(&mut wire, &[9; 300]).await.unwrap();
        assert_eq!(&wire[..7], b"\x00\x05hello");
        assert_eq!(&wire[9..11], &[0x01, 0x2c]);
        let mut r = wire.as_slice();
        assert_eq!(read_frame(&mut r).await.unwrap(), b"hello");
        assert_eq!(read_frame(&mut r).await.unwrap(), b"");
        assert_eq!(read_frame(&mut r).await.unwrap(), vec![9; 300]);
        assert!(read_frame(&mut r).await.is_err(), "end of stream");
        assert!(write_frame(&mut Vec::new(), &[0; 65536]).await.is_err());
    }

    #[test]
    fn the_tcp_candidate_ranks_below_udp_host_candidates() {
        let line = passive_candidate(IpAddr::V4(Ipv4Addr::LOCALHOST), 7881);
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(fields[0].starts_with("candidate:"));
        assert_eq!(&fields[1..3], ["1", "tcp"]);
        assert_eq!(
            &fields[4..],
            ["127.0.0.1", "7881", "typ", "host", "tcptype", "passive"]
        );
        let priority: u32 = fields[3].parse().unwrap();
        assert_eq!(priority, 2_124_414_975);
        // webrtc-ice's (and pion's) UDP host candidate, component 1.
        assert!(priority < (126 << 24) + (65535 << 8) + 255);
    }

    #[tokio::test]
    async fn an_unknown_ufrag_closes_the_connection() {
        let front = IceTcpFront::listen(IceScope::Loopback, 0).await.unwrap();
        let mut tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, front.port()))
            .await
            .unwrap();
        write_frame(&mut tcp, &binding_request(&[(0x0006, b"nobody:cli")]))
            .await
            .unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("closed within 5 s")
            .unwrap_or(0);
        assert_eq!(n, 0, "the connection is closed");
    }

    #[tokio::test]
    async fn frames_are_relayed_as_datagrams_both_ways() {
        let front = IceTcpFront::listen(IceScope::Loopback, 0).await.unwrap();
        let pc = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        assert!(front.register("sfuX", ("PA_1".into(), 0), pc.local_addr().unwrap()));
        assert!(!front.register("sfuX", ("PA_1".into(), 0), pc.local_addr().unwrap()));
        let mut tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, front.port()))
            .await
            .unwrap();
        let request = binding_request(&[(0x0006, b"sfuX:cli")]);
        write_frame(&mut tcp, &request).await.unwrap();
        write_frame(&mut tcp, b"second").await.unwrap();
        let mut buf = [0u8; 2048];
        let (n, relay) = pc.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], request.as_slice());
        let (n, from) = pc.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"second"[..], relay));
        pc.send_to(b"answer", relay).await.unwrap();
        assert_eq!(read_frame(&mut tcp).await.unwrap(), b"answer");
        // Forgotten with its participant: new connections are refused.
        front.forget("PA_1");
        assert!(front
            .route("sfuX", IpAddr::V4(Ipv4Addr::LOCALHOST))
            .is_none());
    }
}
