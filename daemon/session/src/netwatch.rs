//! Address and route changes that move the room's media path: a DHCP lease with a new
//! address, Wi-Fi roaming to another network, a cable moved to another switch, a VPN going up
//! or down. The kernel says so on its rtnetlink groups; the session then resumes at once and
//! restarts ICE (gathering again from the new addresses) instead of waiting seconds for ICE
//! to notice that its pair is dead. livekit-client does the same on the browser's `online`
//! event (`RTCEngine.handleBrowserOnLine` → `attemptReconnect`).
//!
//! [`NetPaths`] is the sans-IO part: it keeps the links, IPv4 addresses and default routes
//! the kernel reported and says what changed; [`NetWatch`] owns the netlink socket.
//!
//! Only IPv4 counts (the room gathers UDP over IPv4 only, see `rtc.rs`): IPv6 privacy
//! addresses come and go every day without touching the media path. Loopback, and an
//! address whose link has no carrier, do not count. A DHCP renewal that keeps the address
//! changes nothing here.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
use tokio::sync::mpsc;

/// How long the kernel's messages must be quiet before a change is reported: `ip addr del`
/// then `add`, or a DHCP client replacing its lease, come as a burst of messages.
const SETTLE: Duration = Duration::from_millis(150);
/// The longest a burst may delay the report.
const SETTLE_MAX: Duration = Duration::from_millis(1000);

/// What the media path may use: IPv4 addresses on links with a carrier, and default routes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usable {
    /// `(interface index, address)`.
    pub addresses: BTreeSet<(u32, Ipv4Addr)>,
    /// `(outgoing interface, gateway)` of each IPv4 default route of the main table.
    pub default_routes: BTreeSet<(u32, Option<Ipv4Addr>)>,
}

impl Usable {
    /// Whether anything but loopback can carry media.
    pub fn online(&self) -> bool {
        !self.addresses.is_empty()
    }

    /// What differs from `before`, in words for the log ("address 10.0.0.3 on interface 2
    /// new; address 10.0.0.2 on interface 2 gone").
    pub fn describe_change(&self, before: &Usable) -> String {
        let mut parts = Vec::new();
        for (index, ip) in before.addresses.difference(&self.addresses) {
            parts.push(format!("address {ip} on interface {index} gone"));
        }
        for (index, ip) in self.addresses.difference(&before.addresses) {
            parts.push(format!("address {ip} on interface {index} new"));
        }
        let route = |(index, gw): &(u32, Option<Ipv4Addr>)| match gw {
            Some(gw) => format!("default route via {gw} on interface {index}"),
            None => format!("default route on interface {index}"),
        };
        for r in before.default_routes.difference(&self.default_routes) {
            parts.push(format!("{} gone", route(r)));
        }
        for r in self.default_routes.difference(&before.default_routes) {
            parts.push(format!("{} new", route(r)));
        }
        if parts.is_empty() {
            "the network came back".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// The kernel's view of links, addresses and default routes, kept from its messages
/// (sans-IO: fed [`RouteNetlinkMessage`]s, asked what is usable).
#[derive(Debug, Default)]
pub struct NetPaths {
    /// Links with a carrier (`IFF_LOWER_UP`), by index.
    carrier: BTreeSet<u32>,
    /// Links the kernel told us about at all (an address on an unknown link counts: its
    /// link message may come later, or never for some virtual devices).
    known_links: BTreeSet<u32>,
    addresses: BTreeSet<(u32, Ipv4Addr)>,
    default_routes: BTreeSet<(u32, Option<Ipv4Addr>)>,
}

impl NetPaths {
    /// Takes one message into account.
    pub fn apply(&mut self, message: &RouteNetlinkMessage) {
        match message {
            RouteNetlinkMessage::NewLink(link) => {
                let index = link.header.index;
                self.known_links.insert(index);
                if has_carrier(link) {
                    self.carrier.insert(index);
                } else {
                    self.carrier.remove(&index);
                }
            }
            RouteNetlinkMessage::DelLink(link) => {
                let index = link.header.index;
                self.known_links.remove(&index);
                self.carrier.remove(&index);
                self.addresses.retain(|(i, _)| *i != index);
                self.default_routes.retain(|(i, _)| *i != index);
            }
            RouteNetlinkMessage::NewAddress(address) => {
                if let Some(key) = address_key(address) {
                    self.addresses.insert(key);
                }
            }
            RouteNetlinkMessage::DelAddress(address) => {
                if let Some(key) = address_key(address) {
                    self.addresses.remove(&key);
                }
            }
            RouteNetlinkMessage::NewRoute(route) => {
                if let Some(key) = default_route_key(route) {
                    self.default_routes.insert(key);
                }
            }
            RouteNetlinkMessage::DelRoute(route) => {
                if let Some(key) = default_route_key(route) {
                    self.default_routes.remove(&key);
                }
            }
            _ => {}
        }
    }

    /// What the media path may use now.
    pub fn usable(&self) -> Usable {
        let up = |index: &u32| !self.known_links.contains(index) || self.carrier.contains(index);
        Usable {
            addresses: self
                .addresses
                .iter()
                .filter(|(index, _)| up(index))
                .copied()
                .collect(),
            default_routes: self
                .default_routes
                .iter()
                .filter(|(index, _)| up(index))
                .copied()
                .collect(),
        }
    }
}

fn has_carrier(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Up) && link.header.flags.contains(LinkFlags::LowerUp)
}

/// `(interface, address)` of an IPv4 address other than loopback.
fn address_key(address: &AddressMessage) -> Option<(u32, Ipv4Addr)> {
    if address.header.family != AddressFamily::Inet {
        return None;
    }
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on point-to-point
    // links such as VPN tunnels); without IFA_LOCAL they are the same.
    let local = address.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
        _ => None,
    });
    let plain = address.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
        _ => None,
    });
    let ip = local.or(plain)?;
    (!ip.is_loopback() && !ip.is_unspecified()).then_some((address.header.index, ip))
}

/// `(outgoing interface, gateway)` of an IPv4 default route of the main table.
fn default_route_key(route: &RouteMessage) -> Option<(u32, Option<Ipv4Addr>)> {
    if route.header.address_family != AddressFamily::Inet
        || route.header.destination_prefix_length != 0
    {
        return None;
    }
    let table = route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table));
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let oif = route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })?;
    let gateway = route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(gw)) => Some(*gw),
        _ => None,
    });
    Some((oif, gateway))
}

/// A change of the media path worth an ICE restart: the room is online (it has an address)
/// and what it may use differs from the last change reported, or it was offline meanwhile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetChange {
    /// What changed, for the log.
    pub description: String,
}

/// The sans-IO decision on top of [`NetPaths`]: which settled states are reported.
#[derive(Debug)]
pub struct ChangeFilter {
    reported: Usable,
    offline_since_report: bool,
}

impl ChangeFilter {
    /// Starts from the state the kernel dumped at start.
    pub fn new(baseline: Usable) -> Self {
        ChangeFilter {
            offline_since_report: !baseline.online(),
            reported: baseline,
        }
    }

    /// Looks at a settled state: `Some` when the session should resume and restart ICE.
    /// Going offline is only noted (nothing can be done without an address; livekit-client
    /// waits for `online` too); coming back, or a new address, is reported.
    pub fn settled(&mut self, now: Usable) -> Option<NetChange> {
        if !now.online() {
            if !self.offline_since_report {
                tracing::info!("the network is gone (no IPv4 address with a carrier)");
            }
            self.offline_since_report = true;
            return None;
        }
        if now == self.reported && !self.offline_since_report {
            return None;
        }
        let description = now.describe_change(&self.reported);
        self.reported = now;
        self.offline_since_report = false;
        Some(NetChange { description })
    }
}

/// Watches the kernel's rtnetlink groups for the session; dropping it stops the watch.
pub struct NetWatch {
    changes: mpsc::UnboundedReceiver<NetChange>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NetWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NetWatch {
    /// Opens the netlink socket and reads the current state; `Err` when the kernel refuses
    /// (the session then works without it: ICE notices a dead path by itself, only later).
    pub async fn start() -> std::io::Result<NetWatch> {
        let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
        let groups = libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV4_ROUTE;
        socket
            .socket_mut()
            .bind(&SocketAddr::new(0, groups as u32))?;
        let mut paths = NetPaths::default();
        // The present state, one dump at a time (the kernel runs one per socket); messages
        // of the groups that arrive meanwhile count too.
        for (sequence, request) in [
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            RouteNetlinkMessage::GetRoute(RouteMessage::default()),
        ]
        .into_iter()
        .enumerate()
        {
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_DUMP;
            header.sequence_number = sequence as u32 + 1;
            let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request));
            message.finalize();
            let mut buffer = vec![0; message.buffer_len()];
            message.serialize(&mut buffer);
            socket.send(&buffer).await?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            loop {
                let received = tokio::time::timeout_at(deadline, recv(&mut socket)).await;
                let Ok(messages) = received else {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the kernel did not finish its rtnetlink dump",
                    ));
                };
                if apply_all(&mut paths, messages?) {
                    break;
                }
            }
        }
        let baseline = paths.usable();
        tracing::debug!(?baseline, "watching address and route changes");
        let (tx, changes) = mpsc::unbounded_channel();
        let task = tokio::spawn(watch(socket, paths, ChangeFilter::new(baseline), tx));
        Ok(NetWatch { changes, task })
    }

    /// The next change worth an ICE restart (pending forever once the watch stopped).
    pub async fn changed(&mut self) -> NetChange {
        match self.changes.recv().await {
            Some(change) => change,
            None => std::future::pending().await,
        }
    }

    /// Forgets changes already reported (the resume about to start covers them).
    pub fn drain(&mut self) {
        while self.changes.try_recv().is_ok() {}
    }
}

/// The next [`NetWatch::changed`] of an optional watch (pending forever without one).
pub async fn changed(watch: &mut Option<NetWatch>) -> NetChange {
    match watch {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

/// Reads one datagram of netlink messages.
async fn recv(
    socket: &mut TokioSocket,
) -> std::io::Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
    let (data, _) = socket.recv_from_full().await?;
    let mut messages = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let bytes = &data[offset..];
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
            Ok(message) => {
                let length = message.header.length as usize;
                messages.push(message);
                if length == 0 {
                    break;
                }
                offset += (length + 3) & !3;
            }
            Err(e) => {
                // A message this crate cannot read (a newer kernel's attribute): skip the
                // datagram's rest rather than guess at lengths.
                tracing::debug!(error = %e, "unreadable rtnetlink message skipped");
                break;
            }
        }
    }
    Ok(messages)
}

/// Applies messages; `true` when a dump's end (`NLMSG_DONE`) was among them.
fn apply_all(paths: &mut NetPaths, messages: Vec<NetlinkMessage<RouteNetlinkMessage>>) -> bool {
    let mut done = false;
    for message in messages {
        match message.payload {
            NetlinkPayload::InnerMessage(m) => paths.apply(&m),
            NetlinkPayload::Done(_) | NetlinkPayload::Error(_) => done = true,
            _ => {}
        }
    }
    done
}

async fn watch(
    mut socket: TokioSocket,
    mut paths: NetPaths,
    mut filter: ChangeFilter,
    changes: mpsc::UnboundedSender<NetChange>,
) {
    loop {
        match recv(&mut socket).await {
            Ok(messages) => {
                apply_all(&mut paths, messages);
            }
            Err(e) => {
                // ENOBUFS: the kernel dropped messages; what we hold may be stale, and only
                // a new dump would say. Reporting a change is the safe side.
                tracing::warn!(error = %e, "reading address changes failed; watching stops");
                return;
            }
        }
        // Let the burst settle: more messages within SETTLE extend the wait, up to SETTLE_MAX.
        let burst_end = tokio::time::Instant::now() + SETTLE_MAX;
        loop {
            let quiet = tokio::time::Instant::now() + SETTLE;
            let until = quiet.min(burst_end);
            match tokio::time::timeout_at(until, recv(&mut socket)).await {
                Ok(Ok(messages)) => {
                    apply_all(&mut paths, messages);
                    if tokio::time::Instant::now() >= burst_end {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "reading address changes failed; watching stops");
                    return;
                }
                Err(_) => break,
            }
        }
        if let Some(change) = filter.settled(paths.usable()) {
            tracing::info!(change = %change.description, "the network changed");
            if changes.send(change).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
// The netlink message types are built field by field, as their crate documents them.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use netlink_packet_route::address::AddressHeader;
    use netlink_packet_route::link::LinkHeader;

    fn link(index: u32, carrier: bool) -> RouteNetlinkMessage {
        let mut header = LinkHeader::default();
        header.index = index;
        if carrier {
            header.flags = LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Running;
        } else {
            header.flags = LinkFlags::Up;
        }
        let mut m = LinkMessage::default();
        m.header = header;
        RouteNetlinkMessage::NewLink(m)
    }

    fn address(new: bool, index: u32, ip: &str) -> RouteNetlinkMessage {
        let ip: IpAddr = ip.parse().unwrap();
        let mut header = AddressHeader::default();
        header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        header.prefix_len = 24;
        header.index = index;
        let mut m = AddressMessage::default();
        m.header = header;
        m.attributes = vec![AddressAttribute::Address(ip), AddressAttribute::Local(ip)];
        if new {
            RouteNetlinkMessage::NewAddress(m)
        } else {
            RouteNetlinkMessage::DelAddress(m)
        }
    }

    fn default_route(new: bool, index: u32, gateway: &str) -> RouteNetlinkMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = 0;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.attributes = vec![
            RouteAttribute::Table(u32::from(RouteHeader::RT_TABLE_MAIN)),
            RouteAttribute::Oif(index),
            RouteAttribute::Gateway(RouteAddress::Inet(gateway.parse().unwrap())),
        ];
        if new {
            RouteNetlinkMessage::NewRoute(m)
        } else {
            RouteNetlinkMessage::DelRoute(m)
        }
    }

    fn start() -> (NetPaths, ChangeFilter) {
        let mut paths = NetPaths::default();
        for m in [
            link(1, true),
            address(true, 1, "127.0.0.1"),
            link(2, true),
            address(true, 2, "192.168.1.20"),
            address(true, 2, "fe80::1"),
            default_route(true, 2, "192.168.1.1"),
        ] {
            paths.apply(&m);
        }
        let filter = ChangeFilter::new(paths.usable());
        (paths, filter)
    }

    #[test]
    fn a_new_dhcp_address_is_a_change_and_a_renewal_of_the_same_is_not() {
        let (mut paths, mut filter) = start();
        // Renewal: the same address again (new lifetimes).
        paths.apply(&address(true, 2, "192.168.1.20"));
        assert_eq!(filter.settled(paths.usable()), None);
        // A new lease: the old address goes, a new one comes.
        paths.apply(&address(false, 2, "192.168.1.20"));
        paths.apply(&address(true, 2, "192.168.1.57"));
        let change = filter.settled(paths.usable()).expect("a change");
        assert!(
            change
                .description
                .contains("192.168.1.20 on interface 2 gone")
                && change
                    .description
                    .contains("192.168.1.57 on interface 2 new"),
            "{change:?}"
        );
        assert_eq!(filter.settled(paths.usable()), None, "reported once");
    }

    #[test]
    fn loopback_and_ipv6_addresses_do_not_count() {
        let (mut paths, mut filter) = start();
        paths.apply(&address(true, 2, "2001:db8::5"));
        paths.apply(&address(false, 2, "fe80::1"));
        paths.apply(&address(true, 1, "127.0.0.2"));
        assert_eq!(filter.settled(paths.usable()), None);
    }

    #[test]
    fn going_offline_waits_and_coming_back_with_the_same_address_is_a_change() {
        let (mut paths, mut filter) = start();
        // Cable out: no carrier.
        paths.apply(&link(2, false));
        assert!(!paths.usable().online());
        assert_eq!(
            filter.settled(paths.usable()),
            None,
            "nothing to do offline"
        );
        // Cable in, same lease: ICE must restart anyway (its checks failed meanwhile).
        paths.apply(&link(2, true));
        let change = filter.settled(paths.usable()).expect("back online");
        assert_eq!(change.description, "the network came back");
    }

    #[test]
    fn a_new_default_route_is_a_change() {
        let (mut paths, mut filter) = start();
        // A VPN up: its tunnel takes the default route.
        paths.apply(&link(7, true));
        paths.apply(&address(true, 7, "10.8.0.2"));
        paths.apply(&default_route(false, 2, "192.168.1.1"));
        paths.apply(&default_route(true, 7, "10.8.0.1"));
        let change = filter.settled(paths.usable()).expect("a change");
        assert!(
            change
                .description
                .contains("default route via 10.8.0.1 on interface 7 new"),
            "{change:?}"
        );
        // VPN down: the tunnel disappears with its address and route.
        let mut gone = LinkMessage::default();
        gone.header.index = 7;
        paths.apply(&RouteNetlinkMessage::DelLink(gone));
        paths.apply(&default_route(true, 2, "192.168.1.1"));
        let change = filter.settled(paths.usable()).expect("a change");
        assert!(
            change.description.contains("10.8.0.2 on interface 7 gone"),
            "{change:?}"
        );
    }

    #[test]
    fn an_address_on_a_link_never_reported_counts() {
        let mut paths = NetPaths::default();
        paths.apply(&address(true, 9, "10.0.0.9"));
        assert!(paths.usable().online());
    }
}
