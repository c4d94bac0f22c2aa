//! The room as a participant of the meeting, sans-IO: what it sends, what it publishes, who
//! else is there and who speaks.
//!
//! [`LocalParticipant`] takes [`Input`]s (the daemon's commands, what the server said) and
//! returns [`Effect`]s (set a pipeline, send a signalling request, report to the daemon);
//! `session.rs` carries them out. Nothing here awaits, reads a clock or touches a pipeline, so
//! every rule below is unit-tested without a network.
//!
//! **The rule it keeps** — what the room sends equals what it reports: the microphone and
//! camera pipelines are set only through [`Effect::Microphone`] and [`Effect::Camera`], whose
//! values come from the one `mic_muted` / `camera_enabled` pair here. That pair changes only
//! through [`Input::SetMicMuted`] / [`Input::SetCameraEnabled`] (the daemon, whatever asked it)
//! and through a server mute ([`Input::ServerMute`], which can only mute, and is reported with
//! [`SessionEvent::RemoteMute`] so the daemon's `MicMuted` / `CameraEnabled` follow). Every new
//! or resumed connection restates the pair, so no reconnection can bring back an old value.
//!
//! Meet's `participantMuted` data message is a notification, as in Meet's web app (a toast,
//! `useMuteParticipant` in suitenumerique/meet): the mute itself is the server's `Mute` for
//! the track, which LiveKit sends only when the muting participant may (Meet's backend checks
//! the room's permissions before calling `MutePublishedTrack`). Any participant can send data
//! messages, so obeying them would let anyone mute the room; it is logged and changes nothing.

use std::collections::HashMap;

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use visio_room_core::controller::{Participant, SessionEvent, Track};

/// What the room sends: the one truth for `MicMuted` and `CameraEnabled` inside a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sending {
    /// The microphone sends silence.
    pub mic_muted: bool,
    /// The camera sends pictures.
    pub camera_enabled: bool,
}

/// What happened, for the participant to take into account.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The daemon mutes or unmutes the microphone.
    SetMicMuted(bool),
    /// The daemon turns the camera on or off.
    SetCameraEnabled(bool),
    /// A new LiveKit connection (first join or a full rejoin): our sid and the others. What was
    /// known of the previous connection (track sids, participants, speakers) is forgotten.
    Joined {
        /// Our participant sid.
        my_sid: String,
        /// The participants already there.
        others: Vec<proto::ParticipantInfo>,
    },
    /// The server acknowledged our `AddTrack` for `track` with this sid.
    TrackPublished {
        /// Which of our tracks.
        track: Track,
        /// Its sid.
        sid: String,
        /// Whether the server has it muted (what our `AddTrack` said).
        muted: bool,
    },
    /// The signalling connection was resumed as the same participant.
    Resumed,
    /// The server's `Mute` for one of our tracks.
    ServerMute {
        /// Track sid.
        sid: String,
        /// Muted or (asked to be) unmuted.
        muted: bool,
    },
    /// `ParticipantUpdate`: changed participants.
    ParticipantUpdate(Vec<proto::ParticipantInfo>),
    /// `SpeakersChanged`: the speakers whose state changed (LiveKit sends deltas).
    SpeakersChanged(Vec<proto::SpeakerInfo>),
    /// A Meet data message (`{"type": kind, …}`) from another participant.
    MeetMessage {
        /// Its `type`.
        kind: String,
        /// The sender's identity.
        from: String,
    },
}

/// What must be done, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Set the microphone pipeline: silence when `muted`.
    Microphone {
        /// Send silence.
        muted: bool,
    },
    /// Set the camera pipeline: black/no pictures when not `enabled`.
    Camera {
        /// Send pictures.
        enabled: bool,
    },
    /// Send a signalling request (boxed: requests are large).
    Signal(Box<Req>),
    /// Tell the daemon.
    Report(SessionEvent),
    /// The loudest remote participant (sid) is now this one.
    ActiveSpeaker(String),
}

/// The room in the meeting. See the module documentation.
#[derive(Debug)]
pub struct LocalParticipant {
    sending: Sending,
    my_sid: String,
    camera_sid: Option<String>,
    mic_sid: Option<String>,
    participants: HashMap<String, proto::ParticipantInfo>,
    last_reported: Option<Vec<Participant>>,
    /// Active speakers (sid → level), merged from the deltas.
    speakers: HashMap<String, f32>,
    active_speaker: Option<String>,
}

impl LocalParticipant {
    /// A participant that will send as `sending` says.
    pub fn new(sending: Sending) -> Self {
        LocalParticipant {
            sending,
            my_sid: String::new(),
            camera_sid: None,
            mic_sid: None,
            participants: HashMap::new(),
            last_reported: None,
            speakers: HashMap::new(),
            active_speaker: None,
        }
    }

    /// What the room sends.
    pub fn sending(&self) -> Sending {
        self.sending
    }

    /// Our participant sid on the current connection (empty before the first join).
    pub fn sid(&self) -> &str {
        &self.my_sid
    }

    /// Our published tracks with their sid and whether they are muted (for `SyncState`).
    pub fn published(&self) -> Vec<(Track, String, bool)> {
        let mut tracks = Vec::new();
        if let Some(sid) = &self.camera_sid {
            tracks.push((Track::Camera, sid.clone(), !self.sending.camera_enabled));
        }
        if let Some(sid) = &self.mic_sid {
            tracks.push((Track::Microphone, sid.clone(), self.sending.mic_muted));
        }
        tracks
    }

    /// A remote participant by sid.
    pub fn participant(&self, sid: &str) -> Option<&proto::ParticipantInfo> {
        self.participants.get(sid)
    }

    /// Takes one input; returns what must be done, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        let mut effects = Vec::new();
        match input {
            Input::SetMicMuted(muted) => self.set_mic(muted, &mut effects),
            Input::SetCameraEnabled(enabled) => self.set_camera(enabled, &mut effects),
            Input::Joined { my_sid, others } => {
                self.my_sid = my_sid;
                self.camera_sid = None;
                self.mic_sid = None;
                self.participants.clear();
                self.last_reported = None;
                self.speakers.clear();
                self.active_speaker = None;
                self.restate(&mut effects);
                for p in others {
                    self.update_participant(p);
                }
                self.report_participants(&mut effects);
            }
            Input::TrackPublished { track, sid, muted } => {
                let ours = match track {
                    Track::Camera => !self.sending.camera_enabled,
                    Track::Microphone => self.sending.mic_muted,
                };
                // Changed between our AddTrack and its answer: tell the server now.
                if muted != ours {
                    effects.push(mute_request(&sid, ours));
                }
                match track {
                    Track::Camera => self.camera_sid = Some(sid),
                    Track::Microphone => self.mic_sid = Some(sid),
                }
            }
            Input::Resumed => self.restate(&mut effects),
            Input::ServerMute { sid, muted } => self.server_mute(&sid, muted, &mut effects),
            Input::ParticipantUpdate(list) => {
                for p in list {
                    self.update_participant(p);
                }
                self.report_participants(&mut effects);
            }
            Input::SpeakersChanged(changed) => self.speakers_changed(changed, &mut effects),
            Input::MeetMessage { kind, from } => match kind.as_str() {
                "participantMuted" => tracing::info!(
                    %from,
                    "a participant says it muted the room; only the server's mute changes what the room sends"
                ),
                _ => tracing::info!(%kind, %from, "meeting message"),
            },
        }
        effects
    }

    fn set_mic(&mut self, muted: bool, effects: &mut Vec<Effect>) {
        if self.sending.mic_muted == muted {
            return;
        }
        self.sending.mic_muted = muted;
        effects.push(Effect::Microphone { muted });
        if let Some(sid) = &self.mic_sid {
            effects.push(mute_request(sid, muted));
        }
    }

    fn set_camera(&mut self, enabled: bool, effects: &mut Vec<Effect>) {
        if self.sending.camera_enabled == enabled {
            return;
        }
        self.sending.camera_enabled = enabled;
        effects.push(Effect::Camera { enabled });
        if let Some(sid) = &self.camera_sid {
            effects.push(mute_request(sid, !enabled));
        }
    }

    /// Sets the pipelines and tells the server again (a new or resumed connection).
    fn restate(&self, effects: &mut Vec<Effect>) {
        effects.push(Effect::Microphone {
            muted: self.sending.mic_muted,
        });
        effects.push(Effect::Camera {
            enabled: self.sending.camera_enabled,
        });
        for (_, sid, muted) in self.published() {
            effects.push(mute_request(&sid, muted));
        }
    }

    fn server_mute(&mut self, sid: &str, muted: bool, effects: &mut Vec<Effect>) {
        let track = if self.mic_sid.as_deref() == Some(sid) {
            Track::Microphone
        } else if self.camera_sid.as_deref() == Some(sid) {
            Track::Camera
        } else {
            tracing::debug!(%sid, "server mute for a track that is not ours");
            return;
        };
        if !muted {
            // Privacy: a remote party may mute the room, never unmute it.
            tracing::info!(?track, "the server asked to unmute; staying as we are");
            return;
        }
        let before = effects.len();
        match track {
            Track::Microphone => self.set_mic(true, effects),
            Track::Camera => self.set_camera(false, effects),
        }
        if effects.len() > before {
            tracing::info!(?track, "muted by the server");
            effects.push(Effect::Report(SessionEvent::RemoteMute(track)));
        }
    }

    fn update_participant(&mut self, p: proto::ParticipantInfo) {
        if p.sid == self.my_sid || p.identity.is_empty() {
            return;
        }
        if p.state == proto::participant_info::State::Disconnected as i32 {
            self.participants.remove(&p.sid);
            self.speakers.remove(&p.sid);
            return;
        }
        if let Some(existing) = self.participants.get(&p.sid) {
            if existing.version > p.version && p.version != 0 {
                return;
            }
        }
        self.participants.insert(p.sid.clone(), p);
    }

    fn report_participants(&mut self, effects: &mut Vec<Effect>) {
        let has = |p: &proto::ParticipantInfo, kind: proto::TrackType| {
            p.tracks.iter().any(|t| t.r#type == kind as i32 && !t.muted)
        };
        let mut list: Vec<Participant> = self
            .participants
            .values()
            .map(|p| Participant {
                identity: p.identity.clone(),
                name: if p.name.is_empty() {
                    p.identity.clone()
                } else {
                    p.name.clone()
                },
                audio: has(p, proto::TrackType::Audio),
                video: has(p, proto::TrackType::Video),
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name).then(a.identity.cmp(&b.identity)));
        if self.last_reported.as_ref() != Some(&list) {
            self.last_reported = Some(list.clone());
            effects.push(Effect::Report(SessionEvent::Participants(list)));
        }
    }

    /// Merges a `SpeakersChanged` delta; the loudest active remote speaker becomes the active
    /// speaker (the last one stays shown while nobody speaks).
    fn speakers_changed(&mut self, changed: Vec<proto::SpeakerInfo>, effects: &mut Vec<Effect>) {
        for s in changed {
            if s.sid == self.my_sid {
                continue;
            }
            if s.active {
                self.speakers.insert(s.sid, s.level);
            } else {
                self.speakers.remove(&s.sid);
            }
        }
        let loudest = self
            .speakers
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(sid, _)| sid.clone());
        if let Some(sid) = loudest {
            if self.active_speaker.as_ref() != Some(&sid) {
                self.active_speaker = Some(sid.clone());
                effects.push(Effect::ActiveSpeaker(sid));
            }
        }
    }
}

fn mute_request(sid: &str, muted: bool) -> Effect {
    Effect::Signal(Box::new(Req::Mute(proto::MuteTrackRequest {
        sid: sid.to_owned(),
        muted,
    })))
}

#[cfg(test)]
mod tests;
