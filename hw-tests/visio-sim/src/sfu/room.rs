//! A room: its participants, what they are told about each other (`ParticipantUpdate`,
//! `SpeakersChanged`), and a participant's removal.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use livekit_protocol as proto;
use proto::signal_response::Message as Resp;

use super::forward::Forwarder;
use super::participant::Participant;
use super::publish::unpublish_forwarder;

/// A room.
pub struct Room {
    /// LiveKit room name.
    pub name: String,
    pub(super) sid: String,
    pub(super) created_ms: i64,
    pub(super) participants: Mutex<Vec<Arc<Participant>>>,
    /// The departure timeout announced to clients, in seconds.
    pub(super) departure_timeout_s: u32,
    /// Since when the room is empty (created, or its last participant left); `None` while
    /// someone is in it.
    pub(super) empty_since: Mutex<Option<Instant>>,
}

impl Room {
    pub(super) fn info(&self) -> proto::Room {
        let participants = self.participants.lock().unwrap();
        proto::Room {
            sid: self.sid.clone(),
            name: self.name.clone(),
            empty_timeout: 300,
            departure_timeout: self.departure_timeout_s,
            creation_time: self.created_ms / 1000,
            creation_time_ms: self.created_ms,
            num_participants: participants.len() as u32,
            num_publishers: participants
                .iter()
                .filter(|p| !p.state.lock().unwrap().tracks.is_empty())
                .count() as u32,
            ..Default::default()
        }
    }

    /// The participants now in the room.
    pub fn participants(&self) -> Vec<Arc<Participant>> {
        self.participants.lock().unwrap().clone()
    }

    /// The participant with that identity.
    pub fn find_identity(&self, identity: &str) -> Option<Arc<Participant>> {
        self.participants
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.identity == identity)
            .cloned()
    }

    /// The participant with that sid.
    pub fn find_sid(&self, sid: &str) -> Option<Arc<Participant>> {
        self.participants
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.sid == sid)
            .cloned()
    }

    /// The forwarder of a published track.
    pub(super) fn forwarder(&self, track_sid: &str) -> Option<Arc<Forwarder>> {
        self.participants()
            .iter()
            .find_map(|p| p.state.lock().unwrap().forwarders.get(track_sid).cloned())
    }

    pub(super) fn others(&self, me: &Participant) -> Vec<Arc<Participant>> {
        self.participants
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.sid != me.sid)
            .cloned()
            .collect()
    }

    /// Tells everyone else about `who` (joined, published, muted, left).
    pub(super) fn broadcast_update(&self, who: &Participant) {
        let info = who.info();
        if info.permission.as_ref().is_some_and(|p| p.hidden) {
            return;
        }
        for other in self.others(who) {
            other.send(Resp::Update(proto::ParticipantUpdate {
                participants: vec![info.clone()],
            }));
        }
    }

    /// Removes a participant: closes its peer connections, stops forwarding its tracks to
    /// others, removes its subscriptions, and tells everyone.
    pub async fn remove(&self, who: &Arc<Participant>) {
        let was_here = {
            let mut list = self.participants.lock().unwrap();
            let before = list.len();
            list.retain(|p| p.sid != who.sid);
            if list.is_empty() {
                *self.empty_since.lock().unwrap() = Some(Instant::now());
            }
            before != list.len()
        };
        if !was_here {
            return;
        }
        {
            let mut st = who.state.lock().unwrap();
            st.info.state = proto::participant_info::State::Disconnected as i32;
            st.info.version += 1;
        }
        let forwarders = who.forwarders();
        for f in forwarders {
            unpublish_forwarder(&f).await;
        }
        for other in self.participants() {
            other.drop_subscriptions_to(who).await;
            // And what the leaver subscribed to: no longer forwarded, no longer wanted.
            let forwarders = other.forwarders();
            for f in forwarders {
                who.unsubscribe(&f).await;
            }
        }
        let info = who.info();
        for other in self.participants() {
            other.send(Resp::Update(proto::ParticipantUpdate {
                participants: vec![info.clone()],
            }));
        }
        let _ = who.publisher.close().await;
        let _ = who.subscriber.close().await;
        if let Some(front) = &who.ice_tcp {
            front.forget(&who.sid);
        }
        tracing::info!(room = %self.name, identity = %who.identity, "participant left");
    }

    /// The active speakers, loudest first, levels quantised as LiveKit does.
    pub fn speakers(&self) -> Vec<proto::SpeakerInfo> {
        let mut speakers: Vec<proto::SpeakerInfo> = self
            .participants()
            .iter()
            .filter_map(|p| p.speaking())
            .collect();
        speakers.sort_by(|a, b| b.level.total_cmp(&a.level));
        speakers
    }

    /// Sends `SpeakersChanged` (a delta) to everyone.
    pub fn announce_speakers(&self, speakers: Vec<proto::SpeakerInfo>) {
        for p in self.participants() {
            p.send(Resp::SpeakersChanged(proto::SpeakersChanged {
                speakers: speakers.clone(),
            }));
        }
    }
}
