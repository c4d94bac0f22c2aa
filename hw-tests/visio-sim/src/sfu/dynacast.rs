//! Dynacast: for each video track, the best quality its enabled subscribers want, told to the
//! publisher with `SubscribedQualityUpdate` when it changes (upgrades at once, downgrades
//! debounced), so that video nobody watches is not sent.

use std::sync::Arc;
use std::time::Duration;

use livekit_protocol as proto;
use proto::signal_response::Message as Resp;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;

use super::forward::Forwarder;
use super::participant::Participant;
use super::simulcast::spatial_for_quality;

/// A downgrade of the qualities a publisher is asked to send (fewer subscribers, smaller
/// windows) waits this long, so that a subscriber coming right back does not make it stop and
/// restart its encoders; an upgrade is sent at once. LiveKit debounces downgrades the same way.
const DYNACAST_DOWNGRADE_DELAY: Duration = Duration::from_secs(3);

/// The simulcast qualities, lowest first.
const QUALITIES: [proto::VideoQuality; 3] = [
    proto::VideoQuality::Low,
    proto::VideoQuality::Medium,
    proto::VideoQuality::High,
];

/// The quality a subscriber's `UpdateTrackSettings` asks for, given the published layers:
/// with dimensions, the smallest layer covering them (else the largest); without, the
/// requested quality. `None` when the subscriber disabled the track.
pub(super) fn wanted_quality(
    settings: Option<&proto::UpdateTrackSettings>,
    layers: &[proto::VideoLayer],
) -> Option<proto::VideoQuality> {
    let Some(s) = settings else {
        // No settings yet: LiveKit subscribes at the highest quality.
        return Some(proto::VideoQuality::High);
    };
    if s.disabled {
        return None;
    }
    if s.width == 0 && s.height == 0 {
        return Some(match proto::VideoQuality::try_from(s.quality) {
            Ok(proto::VideoQuality::Off) => return None,
            Ok(q) => q,
            Err(_) => proto::VideoQuality::High,
        });
    }
    let mut sorted: Vec<&proto::VideoLayer> = layers.iter().collect();
    sorted.sort_by_key(|l| l.quality);
    let covering = sorted
        .iter()
        .find(|l| l.width >= s.width && l.height >= s.height)
        .or(sorted.last());
    Some(
        covering
            .and_then(|l| proto::VideoQuality::try_from(l.quality).ok())
            .unwrap_or(proto::VideoQuality::High),
    )
}

/// The `SubscribedQuality` list telling a publisher to send the qualities up to `max` (none
/// when `max` is `None`).
fn subscribed_qualities(max: Option<proto::VideoQuality>) -> Vec<proto::SubscribedQuality> {
    QUALITIES
        .iter()
        .map(|q| proto::SubscribedQuality {
            quality: *q as i32,
            enabled: max.is_some_and(|m| (*q as i32) <= (m as i32)),
        })
        .collect()
}

impl Forwarder {
    /// The layers the publisher announced for this track (`AddTrackRequest.layers`).
    pub(super) fn published_layers(&self) -> Vec<proto::VideoLayer> {
        self.publisher
            .upgrade()
            .and_then(|p| {
                let st = p.state.lock().unwrap();
                st.tracks
                    .iter()
                    .find(|(_, t)| t.sid == self.track_sid)
                    .map(|(_, t)| t.layers.clone())
            })
            .unwrap_or_default()
    }

    /// The spatial layer a subscriber with `settings` should get (the top one when it said
    /// nothing, as LiveKit subscribes at the highest quality).
    pub(super) fn target_layer(
        settings: Option<&proto::UpdateTrackSettings>,
        layers: &[proto::VideoLayer],
    ) -> u8 {
        let quality = wanted_quality(settings, layers).unwrap_or(proto::VideoQuality::High);
        spatial_for_quality(quality, layers)
    }

    /// The highest quality any enabled subscriber wants now (`None`: nobody wants video).
    async fn wanted_by_subscribers(&self) -> Option<proto::VideoQuality> {
        let layers = self.published_layers();
        let subscribers: Vec<Arc<Participant>> = self
            .downstream
            .lock()
            .await
            .iter()
            .filter_map(|d| d.subscriber.upgrade())
            .collect();
        subscribers
            .iter()
            .filter_map(|sub| {
                let st = sub.state.lock().unwrap();
                wanted_quality(st.track_settings.get(&self.track_sid), &layers)
            })
            .max_by_key(|q| *q as i32)
    }

    /// Dynacast: tells the publisher which simulcast qualities its subscribers want
    /// (`SubscribedQualityUpdate`), when that changed; downgrades are debounced.
    pub(super) fn update_dynacast(self: &Arc<Self>) {
        if self.kind != RTPCodecType::Video {
            return;
        }
        let f = self.clone();
        tokio::spawn(async move {
            let wanted = f.wanted_by_subscribers().await;
            let sent = *f.dynacast_sent.lock().unwrap();
            let rank = |q: Option<proto::VideoQuality>| q.map_or(-1, |q| q as i32);
            if wanted == sent {
                return;
            }
            if rank(wanted) < rank(sent) {
                tokio::time::sleep(DYNACAST_DOWNGRADE_DELAY).await;
                let again = f.wanted_by_subscribers().await;
                if again != wanted {
                    // Changed meanwhile: that change scheduled its own update.
                    return;
                }
            }
            let Some(publisher) = f.publisher.upgrade() else {
                return;
            };
            {
                let mut sent = f.dynacast_sent.lock().unwrap();
                if *sent == wanted {
                    return;
                }
                *sent = wanted;
            }
            tracing::debug!(track = %f.track_sid, up_to = ?wanted, "dynacast: subscribed qualities sent to the publisher");
            // livekit-client reads the per-codec list (codec named like its `videoCodec`
            // option, e.g. "vp8"); other SDKs read the plain list.
            let codec = f
                .codec
                .mime_type
                .split_once('/')
                .map_or(f.codec.mime_type.as_str(), |(_, c)| c)
                .to_ascii_lowercase();
            publisher.send(Resp::SubscribedQualityUpdate(
                proto::SubscribedQualityUpdate {
                    track_sid: f.track_sid.clone(),
                    subscribed_qualities: subscribed_qualities(wanted),
                    subscribed_codecs: vec![proto::SubscribedCodec {
                        codec,
                        qualities: subscribed_qualities(wanted),
                    }],
                },
            ));
            if wanted.is_some() {
                f.request_keyframe().await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> Vec<proto::VideoLayer> {
        [(0, 320, 180), (1, 640, 360), (2, 1280, 720)]
            .iter()
            .map(|&(quality, width, height)| proto::VideoLayer {
                quality,
                width,
                height,
                ..Default::default()
            })
            .collect()
    }

    fn settings(
        disabled: bool,
        width: u32,
        height: u32,
        quality: i32,
    ) -> proto::UpdateTrackSettings {
        proto::UpdateTrackSettings {
            disabled,
            width,
            height,
            quality,
            ..Default::default()
        }
    }

    #[test]
    fn a_subscriber_gets_the_smallest_layer_covering_its_window() {
        use proto::VideoQuality::*;
        let l = layers();
        assert_eq!(wanted_quality(None, &l), Some(High));
        assert_eq!(
            wanted_quality(Some(&settings(false, 378, 213, 0)), &l),
            Some(Medium)
        );
        assert_eq!(
            wanted_quality(Some(&settings(false, 320, 180, 0)), &l),
            Some(Low)
        );
        assert_eq!(
            wanted_quality(Some(&settings(false, 1920, 1080, 0)), &l),
            Some(High)
        );
        assert_eq!(
            wanted_quality(Some(&settings(false, 0, 0, 1)), &l),
            Some(Medium)
        );
        assert_eq!(wanted_quality(Some(&settings(false, 0, 0, 3)), &l), None);
        assert_eq!(
            wanted_quality(Some(&settings(true, 1280, 720, 2)), &l),
            None
        );
    }

    #[test]
    fn the_publisher_is_asked_for_every_quality_up_to_the_best_wanted() {
        let enabled = |max| -> Vec<bool> {
            subscribed_qualities(max)
                .iter()
                .map(|q| q.enabled)
                .collect()
        };
        assert_eq!(
            enabled(Some(proto::VideoQuality::Medium)),
            [true, true, false]
        );
        assert_eq!(enabled(Some(proto::VideoQuality::High)), [true, true, true]);
        assert_eq!(enabled(None), [false, false, false]);
    }
}
