//! The Meet lobby (waiting room), sans-IO: time is an input. Semantics of Meet's
//! `LobbyService`: an entry is keyed by room and participant id (the `lobbyParticipantId`
//! cookie); a waiting entry lives 3 s after the last request, a denied one 5 s, an accepted one
//! 6 h; an expired entry is forgotten, so the next request starts waiting again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long a waiting entry lives after the participant's last request (`LOBBY_WAITING_TIMEOUT`).
pub const WAITING_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a denial is remembered (`LOBBY_DENIED_TIMEOUT`).
pub const DENIED_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an admission is remembered (`LOBBY_ACCEPTED_TIMEOUT`).
pub const ACCEPTED_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Where a participant stands in the lobby.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryStatus {
    /// Waiting for a host's decision.
    Waiting,
    /// Admitted: the reply carries a LiveKit token.
    Accepted,
    /// Refused.
    Denied,
}

/// One participant in the lobby, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LobbyEntry {
    /// Participant id; becomes the LiveKit identity once admitted.
    pub id: String,
    /// Display name given in the request.
    pub username: String,
    /// Status.
    pub status: EntryStatus,
    /// Colour derived from the id (`hsl(H, S%, L%)`).
    pub color: String,
    #[serde(skip)]
    expires: Instant,
}

/// A host decision could not be applied.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LobbyError {
    /// No entry (never requested, or expired).
    #[error("participant {0} is not in the lobby (never asked, or its entry expired after 3 s without polling)")]
    NotFound(String),
}

/// Lobby entries of every room.
#[derive(Debug, Default)]
pub struct Lobby {
    entries: HashMap<(String, String), LobbyEntry>,
}

/// The colour Meet gives a participant, derived from its id so it is stable.
pub fn color_for(id: &str) -> String {
    let h = id.bytes().fold(0u32, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    format!(
        "hsl({}, {}%, {}%)",
        h % 360,
        45 + (h / 360) % 30,
        40 + (h / 10800) % 20
    )
}

impl LobbyEntry {
    /// The entry of a participant who bypasses the lobby (public room).
    pub fn accepted(id: &str, username: &str) -> Self {
        LobbyEntry {
            id: id.to_owned(),
            username: username.to_owned(),
            status: EntryStatus::Accepted,
            color: color_for(id),
            expires: Instant::now() + ACCEPTED_TIMEOUT,
        }
    }
}

impl Lobby {
    fn live(&mut self, room: &str, id: &str, now: Instant) -> Option<&mut LobbyEntry> {
        let key = (room.to_owned(), id.to_owned());
        if self.entries.get(&key).is_some_and(|e| e.expires <= now) {
            self.entries.remove(&key);
        }
        self.entries.get_mut(&key)
    }

    /// A request for entry by participant `id` into `room` (the room UUID). A new or expired
    /// entry starts waiting; a waiting entry is kept alive for another 3 s; a decided entry
    /// answers with its decision.
    pub fn request_entry(
        &mut self,
        room: &str,
        id: &str,
        username: &str,
        now: Instant,
    ) -> LobbyEntry {
        if let Some(entry) = self.live(room, id, now) {
            if entry.status == EntryStatus::Waiting {
                entry.expires = now + WAITING_TIMEOUT;
            }
            return entry.clone();
        }
        let entry = LobbyEntry {
            id: id.to_owned(),
            username: username.to_owned(),
            status: EntryStatus::Waiting,
            color: color_for(id),
            expires: now + WAITING_TIMEOUT,
        };
        self.entries
            .insert((room.to_owned(), id.to_owned()), entry.clone());
        entry
    }

    /// The participants currently waiting in `room`, oldest id order.
    pub fn waiting(&mut self, room: &str, now: Instant) -> Vec<LobbyEntry> {
        self.entries.retain(|_, e| e.expires > now);
        let mut list: Vec<_> = self
            .entries
            .iter()
            .filter(|((r, _), e)| r == room && e.status == EntryStatus::Waiting)
            .map(|(_, e)| e.clone())
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// A host admits (`allow`) or denies a participant.
    pub fn decide(
        &mut self,
        room: &str,
        id: &str,
        allow: bool,
        now: Instant,
    ) -> Result<LobbyEntry, LobbyError> {
        let entry = self
            .live(room, id, now)
            .ok_or_else(|| LobbyError::NotFound(id.to_owned()))?;
        if allow {
            entry.status = EntryStatus::Accepted;
            entry.expires = now + ACCEPTED_TIMEOUT;
        } else {
            entry.status = EntryStatus::Denied;
            entry.expires = now + DENIED_TIMEOUT;
        }
        Ok(entry.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_polling_participant_keeps_waiting_and_one_who_stops_expires_after_3_s() {
        let mut lobby = Lobby::default();
        let t0 = Instant::now();
        assert_eq!(
            lobby.request_entry("r", "p", "Salle", t0).status,
            EntryStatus::Waiting
        );
        lobby.request_entry("r", "p", "Salle", t0 + Duration::from_secs(2));
        assert_eq!(lobby.waiting("r", t0 + Duration::from_secs(4)).len(), 1);
        assert!(lobby
            .waiting("r", t0 + Duration::from_millis(5001))
            .is_empty());
        assert!(matches!(
            lobby.decide("r", "p", true, t0 + Duration::from_secs(6)),
            Err(LobbyError::NotFound(_))
        ));
    }

    #[test]
    fn admission_is_seen_on_the_next_poll_and_denial_is_forgotten_after_5_s() {
        let mut lobby = Lobby::default();
        let t0 = Instant::now();
        lobby.request_entry("r", "a", "A", t0);
        lobby.request_entry("r", "d", "D", t0);
        lobby
            .decide("r", "a", true, t0 + Duration::from_secs(1))
            .unwrap();
        lobby
            .decide("r", "d", false, t0 + Duration::from_secs(1))
            .unwrap();
        let later = t0 + Duration::from_secs(5);
        assert_eq!(
            lobby.request_entry("r", "a", "A", later).status,
            EntryStatus::Accepted
        );
        assert_eq!(
            lobby.request_entry("r", "d", "D", later).status,
            EntryStatus::Denied
        );
        let much_later = t0 + Duration::from_secs(7);
        assert_eq!(
            lobby.request_entry("r", "d", "D", much_later).status,
            EntryStatus::Waiting
        );
        assert!(lobby.waiting("other", later).is_empty());
    }
}
