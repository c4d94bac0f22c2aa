//! Resuming a connection as the same participant (livekit-client's way) and the media path.

use std::sync::atomic::Ordering;
use std::time::Duration;

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use tokio::sync::mpsc;
use visio_room_core::controller::Track;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;

use crate::netwatch::{self, NetWatch};
use crate::participant::Input;
use crate::rtc::{PUBLISHER, SUBSCRIBER};
use crate::signal::{self, Mode, Opened};
use crate::Command;

use super::Connection;
use crate::session::local_media::Media;
use crate::session::{on_command, Outcome, CAMERA_CID, MICROPHONE_CID, RECONNECT_BACKOFF};
use visio_room_core::backoff::{seed_from, Backoff};

/// The longest an ICE restart waits for the previous gathering to end.
const GATHERING_WAIT: Duration = Duration::from_secs(5);

impl<'a> Connection<'a> {
    /// Resumes this participant on a new signalling connection (`reconnect=1&sid=`, with the
    /// newest token), retrying with backoff; the peer connections stay up and restart ICE once
    /// the server answers. Like livekit-client, it keeps trying while a peer connection is
    /// still connected (media flows, and LiveKit keeps a participant whose ICE is connected),
    /// up to `reconnect_budget`; once none is, `resume_budget` after the loss. `Err` when
    /// resuming is not possible: `Lost` (rejoin from scratch) or `Stopped`.
    ///
    /// A network change during the attempts (`net`: an address came, the network came back)
    /// cuts the backoff short: the next attempt starts at once, as livekit-client's
    /// `handleBrowserOnLine` does.
    pub(super) async fn resume(
        &mut self,
        reason: String,
        media: &Media,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        net: &mut Option<NetWatch>,
    ) -> Result<signal::InboundRx, Outcome> {
        tracing::warn!(%reason, "resuming the same participant on a new signalling connection");
        self.signal = None;
        if let Some(n) = net {
            // What happened before this point is what this resume answers.
            n.drain();
        }
        let started = tokio::time::Instant::now();
        let mut attempt: u32 = 0;
        // Seeded by our participant sid: rooms cut off together do not resume in lockstep.
        let mut retries = Backoff::new(RECONNECT_BACKOFF, seed_from(self.me.sid()));
        let mut last = reason.clone();
        loop {
            let budget = if self.ice_connected() {
                self.link.reconnect_budget
            } else {
                self.link.resume_budget
            };
            let remaining = budget.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(Outcome::Lost(format!(
                    "{reason}; resuming failed for {:?} (last: {last})",
                    started.elapsed()
                )));
            }
            let delay = if attempt == 0 {
                Duration::ZERO
            } else {
                retries.next_delay().min(remaining)
            };
            attempt += 1;
            let url = self.link.creds.ws_url.clone();
            let token = self.link.creds.token.clone();
            let tls = self.link.tls.clone();
            let mode = Mode::Resume {
                sid: self.me.sid().to_owned(),
            };
            let step = async move {
                tokio::time::sleep(delay).await;
                let limit = remaining
                    .saturating_sub(delay)
                    .max(Duration::from_millis(500));
                tokio::time::timeout(limit, signal::connect(&url, &token, mode, tls)).await
            };
            tokio::pin!(step);
            let result = loop {
                tokio::select! {
                    result = &mut step => break Some(result),
                    change = netwatch::changed(net) => {
                        tracing::info!(change = %change.description, "the network changed while resuming: trying again now");
                        break None;
                    }
                    // No signalling now: the pipelines follow at once, the server is told by
                    // the resume's restatement.
                    command = commands.recv() => match on_command(command, self.me) {
                        Some(effects) => self.carry_out(effects, media),
                        None => return Err(Outcome::Stopped),
                    },
                }
            };
            let Some(result) = result else {
                // The network changed: a fresh attempt without waiting.
                attempt = 0;
                continue;
            };
            match result {
                Err(_) => last = "the server did not answer in time".into(),
                Ok(Ok((signal, inbound, Opened::Reconnect(reconnect)))) => {
                    tracing::info!(attempt, elapsed = ?started.elapsed(), "resumed the meeting connection");
                    self.signal = Some(signal);
                    self.shared.resumes.fetch_add(1, Ordering::Relaxed);
                    self.after_resume(*reconnect, media).await?;
                    return Ok(inbound);
                }
                Ok(Ok((signal, _, Opened::Join(_)))) => {
                    // The server made a new participant of us: leave it, rejoin properly.
                    signal.leave(Duration::from_millis(500)).await;
                    return Err(Outcome::Lost(format!(
                        "{reason}; the server answered the resume with a new join"
                    )));
                }
                Ok(Err(
                    e @ (signal::SignalError::Refused { .. } | signal::SignalError::Protocol(_)),
                )) => {
                    // The server does not know us any more (or refuses the token): rejoin.
                    return Err(Outcome::Lost(format!("{reason}; resume refused: {e}")));
                }
                Ok(Err(e)) => {
                    tracing::debug!(attempt, error = %e, "resume attempt failed");
                    last = e.to_string();
                }
            }
        }
    }

    /// Finds out how the media of peer connection `target` travels (`udp`, `tcp`, `turn/udp`,
    /// `turn/tcp`, `turn/tls`: the selected candidate pair) and records it for `Health`.
    pub(super) async fn note_media_path(&self, target: i32) {
        let Some(t) = &self.transport else { return };
        let pc = if target == SUBSCRIBER {
            &t.subscriber
        } else {
            &t.publisher
        };
        let Some(pair) = pc
            .dtls_transport()
            .ice_transport()
            .get_selected_candidate_pair()
            .await
        else {
            return;
        };
        use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
        use webrtc::ice_transport::ice_protocol::RTCIceProtocol;
        let ice_tcp = self.bridges.iter().find(|b| {
            b.local_addr().port() == pair.remote.port
                && b.local_addr().ip().to_string() == pair.remote.address
        });
        let path = match pair.local.typ {
            // The relay's base is the TURN client's socket: a bridge knows it by its port.
            RTCIceCandidateType::Relay => self
                .bridges
                .iter()
                .find(|b| b.serves_port(pair.local.related_port))
                .map_or("turn/udp", |b| b.target().path),
            // The remote is an ICE-over-TCP bridge.
            _ if ice_tcp.is_some() => ice_tcp.map_or("tcp", |b| b.target().path),
            _ if pair.local.protocol == RTCIceProtocol::Tcp => "tcp",
            _ => "udp",
        };
        tracing::info!(path, pair = %pair, "media path");
        self.shared.set_media_path(path);
    }

    /// Whether a peer connection is still connected (the media path works).
    pub(super) fn ice_connected(&self) -> bool {
        self.transport.as_ref().is_some_and(|t| {
            [&t.publisher, &t.subscriber]
                .iter()
                .any(|pc| pc.connection_state() == RTCPeerConnectionState::Connected)
        })
    }

    /// After a `ReconnectResponse`: tell the server what we publish and receive
    /// (`SyncState`), then restart ICE on the publisher (the server restarts it on the
    /// subscriber with its next offer), and restate our mute state.
    pub(super) async fn after_resume(
        &mut self,
        _reconnect: proto::ReconnectResponse,
        media: &Media,
    ) -> Result<(), Outcome> {
        // Candidates of the old ICE session are useless; new ones wait for the new
        // descriptions.
        self.remote_description = [false, false];
        self.pending_candidates = [Vec::new(), Vec::new()];
        let Some(t) = &self.transport else {
            return Ok(());
        };
        let subscriber_offer = t.subscriber.remote_description().await;
        let subscriber_answer = t.subscriber.local_description().await;
        if subscriber_offer.is_some() {
            // Until the server's ICE-restart offer arrives, the current one is in force.
            self.remote_description[SUBSCRIBER as usize] = true;
        }
        let description = |d: RTCSessionDescription, kind: &str| proto::SessionDescription {
            r#type: kind.to_owned(),
            sdp: d.sdp,
            ..Default::default()
        };
        let publish_tracks = self
            .me
            .published()
            .into_iter()
            .map(|(track, sid, muted)| {
                let (cid, kind) = match track {
                    Track::Camera => (CAMERA_CID, proto::TrackType::Video),
                    Track::Microphone => (MICROPHONE_CID, proto::TrackType::Audio),
                };
                proto::TrackPublishedResponse {
                    cid: cid.to_owned(),
                    track: Some(proto::TrackInfo {
                        sid,
                        r#type: kind as i32,
                        muted,
                        ..Default::default()
                    }),
                }
            })
            .collect();
        let data_channels = [&t.reliable, &t.lossy]
            .iter()
            .map(|dc| proto::DataChannelInfo {
                label: dc.label().to_owned(),
                id: u32::from(dc.id()),
                target: PUBLISHER,
            })
            .collect();
        let sync = proto::SyncState {
            answer: subscriber_answer.map(|d| description(d, "answer")),
            offer: subscriber_offer.map(|d| description(d, "offer")),
            // Like livekit-client with auto-subscribe: the tracks we do *not* want, with
            // `subscribe: false` (the room wants every track: none).
            subscription: Some(proto::UpdateSubscription {
                track_sids: Vec::new(),
                subscribe: false,
                ..Default::default()
            }),
            publish_tracks,
            data_channels,
            ..Default::default()
        };
        // SyncState before the ICE restart, as livekit-client does: the server checks our
        // tracks first (an unknown one means a full reconnect).
        self.send(Req::SyncState(sync));
        if self.publisher_negotiated {
            let options = webrtc::peer_connection::offer_answer_options::RTCOfferOptions {
                ice_restart: true,
                ..Default::default()
            };
            let t = self.transport.as_ref().expect("checked above");
            let restart = async {
                // webrtc-rs refuses to restart ICE while it still gathers (a TURN allocation
                // of the previous restart, after two network changes in a row): wait for it.
                let mut waited = Duration::ZERO;
                let offer = loop {
                    match t.publisher.create_offer(Some(options)).await {
                        Err(e)
                            if e == webrtc::ice::Error::ErrRestartWhenGathering
                                && waited < GATHERING_WAIT =>
                        {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            waited += Duration::from_millis(100);
                        }
                        other => break other?,
                    }
                };
                t.publisher.set_local_description(offer.clone()).await?;
                Ok::<_, webrtc::Error>(offer)
            }
            .await;
            match restart {
                Ok(offer) => self.send(Req::Offer(proto::SessionDescription {
                    r#type: "offer".into(),
                    sdp: offer.sdp,
                    ..Default::default()
                })),
                Err(e) => {
                    return Err(Outcome::Lost(format!(
                        "cannot restart ICE on the publisher after a resume: {e}"
                    )))
                }
            }
        }
        self.feed(Input::Resumed, media);
        // Say every track's setting again on the new connection.
        self.track_settings.clear();
        self.send_track_settings().await;
        Ok(())
    }
}
