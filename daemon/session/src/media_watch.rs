//! Whether media gets through, sans-IO: a room whose signalling works but whose media finds
//! no network path (UDP blocked and no usable TURN relay), or that receives nothing for long,
//! is not in a call as far as people and staff are concerned. The connection feeds it the peer
//! connections' state and the received packet counter once a second; it answers whether media
//! flows, and why not in words a technician can act on.

use std::time::Duration;

/// No peer connection connected this long after a (re)connection: no network path.
pub const NO_PATH_AFTER: Duration = Duration::from_secs(5);
/// Nothing received this long while others publish: the media path is broken.
pub const SILENCE_AFTER: Duration = Duration::from_secs(10);

/// What the watch concludes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Media gets through (or it is too early to say otherwise).
    Ok,
    /// It does not: why.
    Broken(String),
}

/// One LiveKit connection's media, watched. Times are milliseconds on any monotonic clock.
#[derive(Debug, Clone)]
pub struct MediaWatch {
    /// When the path was last known absent (connection start, or a peer connection lost).
    unconnected_since: Option<u64>,
    /// Received packets at the last change, and when it changed.
    received: u64,
    received_changed_at: u64,
}

impl MediaWatch {
    /// A watch for a connection that starts at `now`.
    pub fn new(now: u64) -> Self {
        MediaWatch {
            unconnected_since: Some(now),
            received: 0,
            received_changed_at: now,
        }
    }

    /// A peer connection is (or is no longer) connected.
    pub fn peer_connected(&mut self, connected: bool, now: u64) {
        match (connected, self.unconnected_since) {
            (true, _) => {
                self.unconnected_since = None;
                self.received_changed_at = now;
            }
            (false, None) => self.unconnected_since = Some(now),
            (false, Some(_)) => {}
        }
    }

    /// The verdict at `now`, given the packets received so far and whether anyone else
    /// publishes media the room should be receiving.
    pub fn check(&mut self, now: u64, received: u64, others_publish: bool) -> Flow {
        if received != self.received {
            self.received = received;
            self.received_changed_at = now;
        }
        if let Some(since) = self.unconnected_since {
            if now.saturating_sub(since) >= NO_PATH_AFTER.as_millis() as u64 {
                return Flow::Broken(format!(
                    "no network path to the media server for {} s: is UDP blocked? (the network must let UDP through to the media server, or the meeting service must offer a TURN relay over TCP or TLS)",
                    now.saturating_sub(since) / 1000
                ));
            }
            return Flow::Ok;
        }
        if others_publish
            && now.saturating_sub(self.received_changed_at) >= SILENCE_AFTER.as_millis() as u64
        {
            return Flow::Broken(format!(
                "nothing received from the meeting for {} s although others publish: the media path is broken (a firewall dropping the media server's packets?)",
                now.saturating_sub(self.received_changed_at) / 1000
            ));
        }
        Flow::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_path_is_reported_after_five_seconds_and_cleared_when_connected() {
        let mut w = MediaWatch::new(0);
        assert_eq!(w.check(4_000, 0, true), Flow::Ok);
        match w.check(5_000, 0, true) {
            Flow::Broken(r) => assert!(r.contains("is UDP blocked"), "{r}"),
            Flow::Ok => panic!("not reported"),
        }
        w.peer_connected(true, 6_000);
        assert_eq!(w.check(6_000, 10, true), Flow::Ok);
        // Lost again: five more seconds.
        w.peer_connected(false, 7_000);
        assert_eq!(w.check(11_000, 10, true), Flow::Ok);
        assert!(matches!(w.check(12_000, 10, true), Flow::Broken(_)));
    }

    #[test]
    fn silence_counts_only_while_others_publish() {
        let mut w = MediaWatch::new(0);
        w.peer_connected(true, 1_000);
        assert_eq!(w.check(5_000, 100, true), Flow::Ok);
        assert_eq!(w.check(14_000, 100, true), Flow::Ok);
        match w.check(15_000, 100, true) {
            Flow::Broken(r) => assert!(r.contains("nothing received"), "{r}"),
            Flow::Ok => panic!("not reported"),
        }
        // Alone in the meeting: nothing to receive is no fault.
        assert_eq!(w.check(16_000, 100, false), Flow::Ok);
        assert_eq!(w.check(17_000, 150, true), Flow::Ok);
    }
}
