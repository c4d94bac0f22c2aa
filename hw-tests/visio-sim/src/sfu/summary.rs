//! What the admin API (`/sim/v1/rooms/<room>/participants`) shows of a participant: its tracks,
//! media counters and each subscription's settings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use livekit_protocol as proto;

use super::forward::MediaCounters;
use super::participant::Participant;

/// A summary of one participant for the admin API.
#[derive(Debug, serde::Serialize)]
pub struct ParticipantSummary {
    /// Sid.
    pub sid: String,
    /// Identity.
    pub identity: String,
    /// Name.
    pub name: String,
    /// Published tracks.
    pub tracks: Vec<TrackSummary>,
}

/// A summary of one published track for the admin API.
#[derive(Debug, serde::Serialize)]
pub struct TrackSummary {
    /// Sid.
    pub sid: String,
    /// `audio` or `video`.
    pub kind: &'static str,
    /// Source name.
    pub source: String,
    /// Codec mime type.
    pub mime_type: String,
    /// Muted.
    pub muted: bool,
    /// Packets received from the publisher.
    pub packets_in: u64,
    /// Bytes received from the publisher.
    pub bytes_in: u64,
    /// Packets forwarded (all subscribers).
    pub packets_out: u64,
    /// Keyframe requests sent to the publisher.
    pub keyframe_requests: u64,
    /// Number of subscribers.
    pub subscribers: usize,
    /// Each subscription, with what its subscriber asked for (`UpdateTrackSettings`).
    pub subscriptions: Vec<SubscriptionSummary>,
}

/// One subscriber of a track, for the admin API.
#[derive(Debug, serde::Serialize)]
pub struct SubscriptionSummary {
    /// The subscriber's identity.
    pub identity: String,
    /// The subscriber disabled the track: it is not forwarded to it.
    pub disabled: bool,
    /// Width the subscriber asked for (0: not said).
    pub width: u32,
    /// Height the subscriber asked for (0: not said).
    pub height: u32,
    /// Frame rate the subscriber asked for (0: not said).
    pub fps: u32,
    /// Quality asked for without dimensions (`low`, `medium`, `high`, `off`).
    pub quality: String,
    /// The layer forwarded to it now: a simulcast rid (`q`, `h`, `f`, or empty for one
    /// layer), `S0`.. for a VP9 spatial layer, null before the first packet.
    pub layer: Option<String>,
    /// The codec it is sent (`audio/opus` when a RED track reaches it as its primary only).
    pub codec: String,
    /// RTP packets forwarded to it.
    pub packets_out: u64,
    /// Their bytes (header and payload).
    pub bytes_out: u64,
}

impl Participant {
    /// A summary with media counters.
    pub async fn summary(&self) -> ParticipantSummary {
        let (info, forwarders) = {
            let st = self.state.lock().unwrap();
            (st.info.clone(), st.forwarders.clone())
        };
        let tracks_info: Vec<proto::TrackInfo> = self.info().tracks;
        let mut tracks = Vec::new();
        for t in tracks_info {
            let f = forwarders.get(&t.sid);
            let mut subscriptions = Vec::new();
            if let Some(f) = f {
                #[allow(clippy::type_complexity)]
                let subscribers: Vec<(
                    Arc<Participant>,
                    Option<String>,
                    String,
                    u64,
                    u64,
                )> = f
                    .downstream
                    .lock()
                    .await
                    .iter()
                    .filter_map(|d| {
                        Some((
                            d.subscriber.upgrade()?,
                            d.layer(f),
                            d.local.sent_codec(&f.codec.mime_type),
                            d.packets_out.load(Ordering::Relaxed),
                            d.bytes_out.load(Ordering::Relaxed),
                        ))
                    })
                    .collect();
                for (sub, layer, codec, packets_out, bytes_out) in subscribers {
                    let settings = sub
                        .state
                        .lock()
                        .unwrap()
                        .track_settings
                        .get(&t.sid)
                        .cloned();
                    let s = settings.unwrap_or(proto::UpdateTrackSettings {
                        quality: proto::VideoQuality::High as i32,
                        ..Default::default()
                    });
                    subscriptions.push(SubscriptionSummary {
                        identity: sub.identity.clone(),
                        disabled: s.disabled,
                        width: s.width,
                        height: s.height,
                        fps: s.fps,
                        quality: proto::VideoQuality::try_from(s.quality)
                            .map(|q| q.as_str_name().to_lowercase())
                            .unwrap_or_default(),
                        layer,
                        codec,
                        packets_out,
                        bytes_out,
                    });
                }
            }
            let subscribers = subscriptions.len();
            let c = |get: fn(&MediaCounters) -> &AtomicU64| {
                f.map(|f| get(&f.counters).load(Ordering::Relaxed))
                    .unwrap_or(0)
            };
            tracks.push(TrackSummary {
                kind: if t.r#type == proto::TrackType::Audio as i32 {
                    "audio"
                } else {
                    "video"
                },
                source: proto::TrackSource::try_from(t.source)
                    .map(|s| s.as_str_name().to_lowercase())
                    .unwrap_or_default(),
                mime_type: t.mime_type.clone(),
                muted: t.muted,
                packets_in: c(|c| &c.packets_in),
                bytes_in: c(|c| &c.bytes_in),
                packets_out: c(|c| &c.packets_out),
                keyframe_requests: c(|c| &c.keyframe_requests),
                subscribers,
                subscriptions,
                sid: t.sid,
            });
        }
        ParticipantSummary {
            sid: self.sid.clone(),
            identity: self.identity.clone(),
            name: info.name,
            tracks,
        }
    }
}
