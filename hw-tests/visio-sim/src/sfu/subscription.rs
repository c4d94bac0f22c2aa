//! Subscriptions: a published track added to (or removed from) a subscriber's connection,
//! `UpdateSubscription`, and `UpdateTrackSettings` (a disabled track is not forwarded to that
//! subscriber; the size or quality asked for sets the layer it gets; the settings feed
//! dynacast).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use livekit_protocol as proto;
use proto::signal_response::Message as Resp;

use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;

use super::forward::{DownTrack, Downstream, Forwarder};
use super::keyframes::forward_keyframe_requests;
use super::participant::Participant;

impl Participant {
    /// Adds a forwarded track to this participant's subscriber connection (no offer yet).
    pub(super) async fn subscribe(self: &Arc<Self>, f: &Arc<Forwarder>) {
        let Some(publisher) = f.publisher.upgrade() else {
            return;
        };
        if publisher.sid == self.sid {
            return;
        }
        let local = DownTrack::new(
            &f.codec,
            f.track_sid.clone(),
            format!("{}|{}", publisher.sid, f.track_sid),
        );
        let added = match self.subscriber.add_track(local.track_local()).await {
            // webrtc-rs tries to reuse the transceiver of an earlier subscription to the same
            // track (same track id), whose sender lost its encodings when the track was
            // removed: give a re-subscription a transceiver of its own.
            Err(webrtc::Error::ErrRTPSenderNewTrackHasIncorrectEnvelope) => {
                match self
                    .subscriber
                    .add_transceiver_from_track(
                        local.track_local(),
                        Some(webrtc::rtp_transceiver::RTCRtpTransceiverInit {
                            direction: webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection::Sendonly,
                            send_encodings: Vec::new(),
                        }),
                    )
                    .await
                {
                    Ok(t) => Ok(t.sender().await),
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        let sender = match added {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(identity = %self.identity, track = %f.track_sid, error = %e, "cannot add forwarded track");
                return;
            }
        };
        forward_keyframe_requests(sender.clone(), Arc::downgrade(f));
        let settings = self
            .state
            .lock()
            .unwrap()
            .track_settings
            .get(&f.track_sid)
            .cloned();
        let disabled = settings.as_ref().is_some_and(|s| s.disabled);
        let target = Forwarder::target_layer(settings.as_ref(), &f.published_layers());
        f.downstream.lock().await.push(Downstream::new(
            Arc::downgrade(self),
            local,
            sender,
            disabled,
            target,
        ));
        if f.kind == RTPCodecType::Video {
            f.request_keyframe().await;
        }
        f.update_dynacast();
        // SpeakersChanged carries only changes: a new subscriber is told at once whether its
        // publisher is speaking (LiveKit's `onSubscribeStatusChanged`).
        if let Some(speaking) = publisher.speaking() {
            self.send(Resp::SpeakersChanged(proto::SpeakersChanged {
                speakers: vec![speaking],
            }));
        }
    }

    /// Removes this participant's subscription to `f` (if any); true when there was one.
    pub(super) async fn unsubscribe(&self, f: &Arc<Forwarder>) -> bool {
        let mine: Vec<Downstream> = {
            let mut ds = f.downstream.lock().await;
            let (mine, others) = std::mem::take(&mut *ds).into_iter().partition(|d| {
                d.subscriber
                    .upgrade()
                    .is_none_or(|s: Arc<Participant>| s.sid == self.sid)
            });
            *ds = others;
            mine
        };
        for d in &mine {
            let _ = self.subscriber.remove_track(&d.sender).await;
        }
        if !mine.is_empty() {
            f.update_dynacast();
        }
        !mine.is_empty()
    }

    /// Handles `UpdateTrackSettings`: records what the subscriber wants of each track (shown
    /// by the admin API), stops or resumes forwarding a disabled track to it, and updates the
    /// publisher's dynacast qualities.
    pub async fn update_track_settings(&self, settings: proto::UpdateTrackSettings) {
        let Some(room) = self.room() else { return };
        for sid in &settings.track_sids {
            let one = proto::UpdateTrackSettings {
                track_sids: vec![sid.clone()],
                ..settings.clone()
            };
            tracing::debug!(identity = %self.identity, track = %sid, disabled = settings.disabled, width = settings.width, height = settings.height, "track settings");
            self.state
                .lock()
                .unwrap()
                .track_settings
                .insert(sid.clone(), one.clone());
            let Some(f) = room.forwarder(sid) else {
                continue;
            };
            let mut resumed = false;
            // The layer this subscriber gets follows the size it shows the video at
            // (livekit `pkg/rtc/subscribedtrack.go` `UpdateVideoLayer` → the forwarder's
            // max layer); the switch itself happens in the selectors, at a keyframe.
            let target = Forwarder::target_layer(Some(&one), &f.published_layers());
            for d in f.downstream.lock().await.iter() {
                if d.subscriber.upgrade().is_some_and(|s| s.sid == self.sid) {
                    let was = d.disabled.swap(settings.disabled, Ordering::Relaxed);
                    resumed |= was && !settings.disabled;
                    let before = d.target.swap(target, Ordering::Relaxed);
                    if before != target {
                        tracing::debug!(identity = %self.identity, track = %sid, from = before, to = target, "target layer");
                    }
                }
            }
            if resumed && f.kind == RTPCodecType::Video {
                // The subscriber's decoder needs a keyframe to start again.
                f.request_keyframe().await;
            }
            f.update_dynacast();
        }
    }

    /// Handles `UpdateSubscription`: subscribes to or unsubscribes from tracks (the track is
    /// added to or removed from the subscriber connection, which is renegotiated).
    pub async fn update_subscription(self: &Arc<Self>, update: proto::UpdateSubscription) {
        let Some(room) = self.room() else { return };
        let sids = update.track_sids.iter().chain(
            update
                .participant_tracks
                .iter()
                .flat_map(|p| p.track_sids.iter()),
        );
        let mut changed = false;
        for sid in sids {
            let Some(f) = room.forwarder(sid) else {
                tracing::debug!(identity = %self.identity, track = %sid, "subscription update for an unknown track");
                continue;
            };
            let subscribed = {
                let ds = f.downstream.lock().await;
                ds.iter()
                    .any(|d| d.subscriber.upgrade().is_some_and(|s| s.sid == self.sid))
            };
            tracing::debug!(identity = %self.identity, track = %sid, subscribe = update.subscribe, "subscription update");
            if update.subscribe && !subscribed {
                self.subscribe(&f).await;
                changed = true;
            } else if !update.subscribe && subscribed {
                changed |= self.unsubscribe(&f).await;
            }
        }
        if changed {
            self.negotiate_subscriber();
        }
    }

    pub(super) async fn drop_subscriptions_to(self: &Arc<Self>, publisher: &Participant) {
        let forwarders = publisher.forwarders();
        let mut changed = false;
        for f in forwarders {
            let mut ds = f.downstream.lock().await;
            let mine: Vec<usize> = ds
                .iter()
                .enumerate()
                .filter(|(_, d)| d.subscriber.upgrade().is_some_and(|s| s.sid == self.sid))
                .map(|(i, _)| i)
                .collect();
            let dropped = !mine.is_empty();
            for i in mine.into_iter().rev() {
                let d = ds.remove(i);
                let _ = self.subscriber.remove_track(&d.sender).await;
                changed = true;
            }
            drop(ds);
            if dropped {
                f.update_dynacast();
            }
        }
        if changed {
            self.negotiate_subscriber();
        }
    }
}
