//! Opus RED (RFC 2198, `audio/red`), as LiveKit handles it: livekit-client publishes its
//! microphone as RED unless `disable_red` (livekit/client-sdk-js `LocalParticipant.ts`), the
//! SFU answers RED first for such a track (livekit/livekit `pkg/rtc/participant_sdp.go`,
//! `setCodecPreferencesOpusRedForPublisher`), and each subscriber gets RED if it negotiated it,
//! else the primary Opus payload alone, with lost packets filled from the redundancy that
//! follows them (livekit `pkg/sfu/redprimaryreceiver.go`, the downtrack's `Bind` in
//! `pkg/sfu/downtrack.go` choosing between the two).

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalContext, TrackLocalWriter};

/// RED's MIME type.
pub(super) const MIME_TYPE_RED: &str = "audio/red";

/// The RED codec this SFU registers: Chromium's payload type, Opus (111) as primary and
/// redundant encoding.
pub(super) fn red_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        capability: RTCRtpCodecCapability {
            mime_type: MIME_TYPE_RED.to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "111/111".to_owned(),
            rtcp_feedback: Vec::new(),
        },
        payload_type: 63,
        ..Default::default()
    }
}

/// The Opus codec as webrtc-rs registers it (`register_default_codecs`).
pub(super) fn opus_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        capability: RTCRtpCodecCapability {
            mime_type: webrtc::api::media_engine::MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: Vec::new(),
        },
        payload_type: 111,
        ..Default::default()
    }
}

pub(super) fn is_red(mime: &str) -> bool {
    mime.eq_ignore_ascii_case(MIME_TYPE_RED)
}

/// One block of a RED payload.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RedBlock {
    /// How much earlier than the packet's timestamp this block's is (0 for the primary).
    pub(super) ts_offset: u32,
    pub(super) data: Bytes,
}

/// Splits a RED payload into its redundant blocks (oldest first) and its primary block.
pub(super) fn split_red(payload: &Bytes) -> Option<(Vec<RedBlock>, RedBlock)> {
    let mut headers = Vec::new();
    let mut i = 0;
    loop {
        let &b = payload.get(i)?;
        if b & 0x80 == 0 {
            // The last header: one byte, the primary's payload type.
            i += 1;
            break;
        }
        let h = payload.get(i..i + 4)?;
        let ts_offset = (u32::from(h[1]) << 6) | (u32::from(h[2]) >> 2);
        let len = (usize::from(h[2] & 0x03) << 8) | usize::from(h[3]);
        headers.push((ts_offset, len));
        i += 4;
    }
    let mut blocks = Vec::with_capacity(headers.len());
    for (ts_offset, len) in headers {
        let data = payload.get(i..i + len)?;
        blocks.push(RedBlock {
            ts_offset,
            data: payload.slice_ref(data),
        });
        i += len;
    }
    let primary = RedBlock {
        ts_offset: 0,
        data: payload.slice(i..),
    };
    Some((blocks, primary))
}

/// The Opus packets to send for RED packet `pkt` to a subscriber without RED: the redundant
/// blocks standing for packets lost since `last_seq` (at most as many as the packet carries,
/// each taken as the one before the next), then the primary.
pub(super) fn primary_packets(
    pkt: &webrtc::rtp::packet::Packet,
    last_seq: Option<u16>,
) -> Vec<webrtc::rtp::packet::Packet> {
    let Some((redundant, primary)) = split_red(&pkt.payload) else {
        return Vec::new();
    };
    let seq = pkt.header.sequence_number;
    let missing = last_seq.map_or(0, |l| seq.wrapping_sub(l).wrapping_sub(1));
    let mut out = Vec::new();
    if missing > 0 && missing < 0x8000 {
        let n = redundant.len().min(usize::from(missing));
        for (d, block) in redundant.iter().rev().take(n).enumerate().rev() {
            if block.data.is_empty() {
                continue;
            }
            let mut p = pkt.clone();
            p.header.sequence_number = seq.wrapping_sub(d as u16 + 1);
            p.header.timestamp = pkt.header.timestamp.wrapping_sub(block.ts_offset);
            p.header.marker = false;
            p.payload = block.data.clone();
            out.push(p);
        }
    }
    let mut p = pkt.clone();
    p.payload = primary.data;
    out.push(p);
    out
}

/// A forwarded audio track whose publisher sends RED: bound as RED to a subscriber that
/// negotiated it, else as Opus, the primary payloads being sent.
pub(super) struct RedDownTrack {
    red: TrackLocalStaticRTP,
    opus: TrackLocalStaticRTP,
    /// Bound to the Opus track: the subscriber did not negotiate RED.
    primary_only: AtomicBool,
    /// The last sequence number sent as Opus.
    last_seq: Mutex<Option<u16>>,
}

impl RedDownTrack {
    pub(super) fn new(red: RTCRtpCodecCapability, id: String, stream_id: String) -> Self {
        Self {
            red: TrackLocalStaticRTP::new(red, id.clone(), stream_id.clone()),
            opus: TrackLocalStaticRTP::new(opus_codec().capability, id, stream_id),
            primary_only: AtomicBool::new(false),
            last_seq: Mutex::new(None),
        }
    }

    /// Whether the subscriber gets the primary Opus only.
    pub(super) fn primary_only(&self) -> bool {
        self.primary_only.load(Ordering::Relaxed)
    }

    pub(super) async fn write_rtp(
        &self,
        pkt: &webrtc::rtp::packet::Packet,
    ) -> Result<usize, webrtc::Error> {
        if !self.primary_only() {
            return self.red.write_rtp(pkt).await;
        }
        let packets = {
            let mut last = self.last_seq.lock().unwrap();
            let packets = primary_packets(pkt, *last);
            let newer = last.is_none_or(|l| {
                let d = pkt.header.sequence_number.wrapping_sub(l);
                d != 0 && d < 0x8000
            });
            if newer {
                *last = Some(pkt.header.sequence_number);
            }
            packets
        };
        let mut n = 0;
        for p in &packets {
            n += self.opus.write_rtp(p).await?;
        }
        Ok(n)
    }
}

/// What `#[async_trait]` makes of the trait's `async fn`s (written out: the crate is not a
/// dependency of the sim).
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = webrtc::error::Result<T>> + Send + 'a>>;

impl TrackLocal for RedDownTrack {
    fn bind<'a, 'b, 'f>(&'a self, t: &'b TrackLocalContext) -> BoxFuture<'f, RTCRtpCodecParameters>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            // The downtrack's `Bind`: RED if the subscriber negotiated it, else Opus.
            let red = t
                .codec_parameters()
                .iter()
                .any(|c| is_red(&c.capability.mime_type));
            self.primary_only.store(!red, Ordering::Relaxed);
            tracing::debug!(track = %self.red.id(), red, "RED track bound");
            if red {
                self.red.bind(t).await
            } else {
                self.opus.bind(t).await
            }
        })
    }

    fn unbind<'a, 'b, 'f>(&'a self, t: &'b TrackLocalContext) -> BoxFuture<'f, ()>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            if self.primary_only() {
                self.opus.unbind(t).await
            } else {
                self.red.unbind(t).await
            }
        })
    }

    fn id(&self) -> &str {
        self.red.id()
    }

    fn rid(&self) -> Option<&str> {
        None
    }

    fn stream_id(&self) -> &str {
        self.red.stream_id()
    }

    fn kind(&self) -> RTPCodecType {
        RTPCodecType::Audio
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RED payload: redundant blocks (ts offset, data), then the primary.
    fn red(redundant: &[(u32, &[u8])], primary: &[u8]) -> Bytes {
        let mut v = Vec::new();
        for (off, data) in redundant {
            v.push(0x80 | 111);
            v.push((off >> 6) as u8);
            v.push((((off & 0x3f) << 2) as u8) | ((data.len() >> 8) as u8));
            v.push(data.len() as u8);
        }
        v.push(111);
        for (_, data) in redundant {
            v.extend_from_slice(data);
        }
        v.extend_from_slice(primary);
        Bytes::from(v)
    }

    fn packet(seq: u16, ts: u32, payload: Bytes) -> webrtc::rtp::packet::Packet {
        webrtc::rtp::packet::Packet {
            header: webrtc::rtp::header::Header {
                sequence_number: seq,
                timestamp: ts,
                ..Default::default()
            },
            payload,
        }
    }

    #[test]
    fn a_red_payload_splits_into_its_redundant_blocks_and_primary() {
        let p = red(&[(1920, b"aa"), (960, b"bbb")], b"cccc");
        let (blocks, primary) = split_red(&p).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            (blocks[0].ts_offset, &blocks[0].data[..]),
            (1920, &b"aa"[..])
        );
        assert_eq!(
            (blocks[1].ts_offset, &blocks[1].data[..]),
            (960, &b"bbb"[..])
        );
        assert_eq!(&primary.data[..], b"cccc");
        // Primary only (no redundancy yet, or DTX).
        let (blocks, primary) = split_red(&red(&[], b"x")).unwrap();
        assert!(blocks.is_empty());
        assert_eq!(&primary.data[..], b"x");
        // Truncated.
        assert!(split_red(&Bytes::from_static(&[0x80 | 111, 0, 4])).is_none());
        assert!(split_red(&Bytes::from_static(&[0x80 | 111, 0, 4, 9, 111])).is_none());
    }

    #[test]
    fn a_subscriber_without_red_gets_the_primary_and_lost_packets_from_the_redundancy() {
        let p = packet(10, 9600, red(&[(1920, b"s8"), (960, b"s9")], b"s10"));
        // Nothing lost: the primary alone.
        let out = primary_packets(&p, Some(9));
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].header.sequence_number, &out[0].payload[..]),
            (10, &b"s10"[..])
        );
        // Packet 9 lost: recovered from the last redundant block, before the primary.
        let out = primary_packets(&p, Some(8));
        let got: Vec<(u16, u32, &[u8])> = out
            .iter()
            .map(|p| (p.header.sequence_number, p.header.timestamp, &p.payload[..]))
            .collect();
        assert_eq!(got, vec![(9, 8640, &b"s9"[..]), (10, 9600, &b"s10"[..])]);
        // 7, 8 and 9 lost: only two can be recovered.
        let out = primary_packets(&p, Some(6));
        let seqs: Vec<u16> = out.iter().map(|p| p.header.sequence_number).collect();
        assert_eq!(seqs, vec![8, 9, 10]);
        assert_eq!(out[0].header.timestamp, 9600 - 1920);
    }
}
