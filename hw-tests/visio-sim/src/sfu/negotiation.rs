//! SDP offer/answer on the two peer connections: the client's publisher offer answered with
//! the codec its `AddTrack` announced first (and RED for audio), as LiveKit answers, and the SFU's subscriber offers (one at a time, queued while one
//! is in flight, with an ICE restart after a resume).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use livekit_protocol as proto;
use proto::signal_response::Message as Resp;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;

use super::ice::{PUBLISHER, SUBSCRIBER};
use super::participant::Participant;
use super::SfuError;

/// The m-section `mid` of an SDP.
fn section<'a>(sdp: &'a str, mid: &str) -> Option<&'a str> {
    let mid_line = format!("a=mid:{mid}");
    sdp.split("\r\nm=")
        .find(|s| s.lines().any(|l| l.trim() == mid_line))
}

/// The track id of a section's `a=msid:<stream> <track>` (livekit-client's `cid`).
fn section_track_id(section: &str) -> Option<&str> {
    section
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=msid:"))
        .and_then(|v| v.split_whitespace().nth(1))
}

/// The codecs of an offer's m-section this SFU can take (video: VP8, VP9, H.264, AV1 with the
/// feedback it answers; audio: Opus and RED), in the offer's order.
fn offered_codecs(
    section: &str,
    kind: RTPCodecType,
) -> Vec<webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecParameters> {
    use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTCRtpCodecParameters};
    use webrtc::rtp_transceiver::RTCPFeedback;
    let order: Vec<u8> = section
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(3)
        .filter_map(|pt| pt.parse().ok())
        .collect();
    let attr = |prefix: &str, pt: u8| {
        section.lines().find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{prefix}{pt} "))
                .map(str::to_owned)
        })
    };
    let feedback: Vec<RTCPFeedback> = [
        ("nack", ""),
        ("nack", "pli"),
        ("ccm", "fir"),
        ("goog-remb", ""),
        ("transport-cc", ""),
    ]
    .iter()
    .map(|(typ, parameter)| RTCPFeedback {
        typ: (*typ).into(),
        parameter: (*parameter).into(),
    })
    .collect();
    let (prefix, names, feedback): (&str, &[&str], Vec<RTCPFeedback>) =
        if kind == RTPCodecType::Audio {
            ("audio", &["OPUS", "RED"], Vec::new())
        } else {
            ("video", &["VP8", "VP9", "H264", "AV1"], feedback)
        };
    order
        .into_iter()
        .filter_map(|pt| {
            let rtpmap = attr("a=rtpmap:", pt)?;
            let mut parts = rtpmap.split('/');
            let name = parts.next()?;
            let rate = parts.next()?;
            let channels = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            if !names.contains(&name.to_ascii_uppercase().as_str()) {
                return None;
            }
            Some(RTCRtpCodecParameters {
                capability: RTCRtpCodecCapability {
                    mime_type: format!("{prefix}/{name}"),
                    clock_rate: rate.parse().unwrap_or(90000),
                    channels,
                    sdp_fmtp_line: attr("a=fmtp:", pt).unwrap_or_default(),
                    rtcp_feedback: feedback.clone(),
                },
                payload_type: pt,
                ..Default::default()
            })
        })
        .collect()
}

/// The codec the publisher's answer puts first for a section, as LiveKit chooses it
/// (livekit/livekit `pkg/rtc/participant_sdp.go`, `setCodecPreferencesForPublisherMedia` and
/// `setCodecPreferencesOpusRedForPublisher`): for video, the codec the `AddTrack` named for
/// that transceiver (its `simulcast_codecs` entry with the section's track id as `cid`, else
/// the first); for audio, RED when the offer has RED over its Opus and the track did not say
/// `disable_red`, else Opus. `None`: no `AddTrack` for that section, the offer's order stands.
fn preferred_codec(
    kind: RTPCodecType,
    track: &proto::TrackInfo,
    track_id: &str,
    offered: &[webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecParameters],
) -> Option<String> {
    if kind == RTPCodecType::Audio {
        let opus = offered
            .iter()
            .find(|c| c.capability.mime_type.eq_ignore_ascii_case("audio/opus"))?;
        let red_over_opus = offered.iter().any(|c| {
            c.capability.mime_type.eq_ignore_ascii_case("audio/red")
                && c.capability
                    .sdp_fmtp_line
                    .contains(&opus.payload_type.to_string())
        });
        return Some(if red_over_opus && !track.disable_red {
            "audio/red".into()
        } else {
            "audio/opus".into()
        });
    }
    track
        .codecs
        .iter()
        .find(|c| c.cid == track_id || (!c.sdp_cid.is_empty() && c.sdp_cid == track_id))
        .or(track.codecs.first())
        .map(|c| c.mime_type.clone())
}

impl Participant {
    /// Starts (or queues) an SFU offer on the subscriber connection.
    pub fn negotiate_subscriber(self: &Arc<Self>) {
        {
            let mut st = self.state.lock().unwrap();
            if st.subscriber_offer_in_flight {
                st.subscriber_offer_again = true;
                return;
            }
            st.subscriber_offer_in_flight = true;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let result = async {
                let ice_restart = me.restart_subscriber_ice.swap(false, Ordering::Relaxed);
                let options = ice_restart.then(|| RTCOfferOptions {
                    ice_restart,
                    ..Default::default()
                });
                let offer = me.subscriber.create_offer(options).await?;
                me.subscriber.set_local_description(offer.clone()).await?;
                Ok::<_, webrtc::Error>(offer)
            }
            .await;
            match result {
                Ok(offer) => {
                    let id = me.offer_id.fetch_add(1, Ordering::Relaxed) + 1;
                    me.send(Resp::Offer(proto::SessionDescription {
                        r#type: "offer".into(),
                        sdp: offer.sdp,
                        id,
                        ..Default::default()
                    }));
                }
                Err(e) => {
                    tracing::warn!(identity = %me.identity, error = %e, "subscriber offer failed");
                    me.state.lock().unwrap().subscriber_offer_in_flight = false;
                }
            }
        });
    }

    /// Handles the client's answer to our subscriber offer.
    pub async fn subscriber_answer(self: &Arc<Self>, sdp: String) -> Result<(), SfuError> {
        let result = self
            .subscriber
            .set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await;
        let again = {
            let mut st = self.state.lock().unwrap();
            st.subscriber_offer_in_flight = false;
            std::mem::take(&mut st.subscriber_offer_again)
        };
        result?;
        self.flush_candidates(SUBSCRIBER).await;
        if again {
            self.negotiate_subscriber();
        }
        Ok(())
    }

    /// Handles the client's publisher offer and answers it.
    pub async fn publisher_offer(
        self: &Arc<Self>,
        desc: proto::SessionDescription,
    ) -> Result<(), SfuError> {
        if !desc.mid_to_track_id.is_empty() {
            self.state.lock().unwrap().mid_to_track = desc.mid_to_track_id.clone();
        }
        let sdp = desc.sdp.clone();
        self.publisher
            .set_remote_description(RTCSessionDescription::offer(desc.sdp)?)
            .await?;
        self.prefer_publisher_codecs(&sdp).await;
        self.flush_candidates(PUBLISHER).await;
        let answer = self.publisher.create_answer(None).await?;
        self.publisher.set_local_description(answer.clone()).await?;
        self.send(Resp::Answer(proto::SessionDescription {
            r#type: "answer".into(),
            sdp: answer.sdp,
            id: desc.id,
            ..Default::default()
        }));
        Ok(())
    }

    /// Orders each section's codecs for the answer as LiveKit does (`preferred_codec`): the
    /// codec the publisher announced first, the others in the offer's order. webrtc-rs would
    /// otherwise answer in its registration order (VP8 first, Opus before RED).
    async fn prefer_publisher_codecs(&self, offer: &str) {
        for t in self.publisher.get_transceivers().await {
            let kind = t.kind();
            let Some(mid) = t.mid() else { continue };
            let Some(section) = section(offer, &mid) else {
                continue;
            };
            let mut offered = offered_codecs(section, kind);
            let track_id = section_track_id(section).unwrap_or_default();
            let track = {
                let st = self.state.lock().unwrap();
                st.tracks
                    .iter()
                    .find(|(cid, _)| !track_id.is_empty() && cid == track_id)
                    .map(|(_, t)| t.clone())
            };
            if let Some(first) = track
                .as_ref()
                .and_then(|track| preferred_codec(kind, track, track_id, &offered))
            {
                // Stable: the preferred codec's entries first, the rest in offer order.
                offered.sort_by_key(|c| !c.capability.mime_type.eq_ignore_ascii_case(&first));
                tracing::debug!(identity = %self.identity, mid = %mid, codec = %first, "publisher codec preferred");
            }
            let mut supported = Vec::new();
            for codec in offered {
                if t.set_codec_preferences(vec![codec.clone()]).await.is_ok() {
                    supported.push(codec);
                }
            }
            if supported.is_empty() {
                continue;
            }
            if let Err(e) = t.set_codec_preferences(supported).await {
                tracing::debug!(error = %e, "codec preferences not applied");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Chromium offer's audio and video sections (livekit-client leaves the browser's order:
    /// VP8 before VP9, Opus before RED).
    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9\r\na=mid:0\r\n\
        a=msid:- mic-cid\r\na=rtpmap:111 opus/48000/2\r\n\
        a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\n\
        a=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99\r\na=mid:1\r\n\
        a=msid:- cam-cid\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n\
        a=fmtp:97 apt=96\r\na=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\n\
        a=rtpmap:99 H264/90000\r\n";

    fn names(c: &[webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecParameters]) -> Vec<&str> {
        c.iter().map(|c| c.capability.mime_type.as_str()).collect()
    }

    #[test]
    fn offered_codecs_are_read_per_section_with_their_track_id() {
        let audio = section(OFFER, "0").unwrap();
        assert_eq!(section_track_id(audio), Some("mic-cid"));
        let a = offered_codecs(audio, RTPCodecType::Audio);
        assert_eq!(names(&a), ["audio/opus", "audio/red"]);
        assert_eq!(a[1].capability.sdp_fmtp_line, "111/111");
        assert_eq!(a[1].capability.channels, 2);
        let video = section(OFFER, "1").unwrap();
        assert_eq!(section_track_id(video), Some("cam-cid"));
        let v = offered_codecs(video, RTPCodecType::Video);
        assert_eq!(names(&v), ["video/VP8", "video/VP9", "video/H264"]);
        assert_eq!(v[1].capability.sdp_fmtp_line, "profile-id=0");
    }

    #[test]
    fn the_answer_prefers_the_codec_the_add_track_named_and_red_unless_disabled() {
        let video = offered_codecs(section(OFFER, "1").unwrap(), RTPCodecType::Video);
        // livekit-client's AddTrack for Meet's camera: VP9 on this transceiver, VP8 backup.
        let camera = proto::TrackInfo {
            codecs: vec![
                proto::SimulcastCodecInfo {
                    mime_type: "video/vp9".into(),
                    cid: "cam-cid".into(),
                    ..Default::default()
                },
                proto::SimulcastCodecInfo {
                    mime_type: "video/vp8".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            preferred_codec(RTPCodecType::Video, &camera, "cam-cid", &video).as_deref(),
            Some("video/vp9")
        );
        // The backup codec's own transceiver (its cid).
        let backup = proto::TrackInfo {
            codecs: vec![proto::SimulcastCodecInfo {
                mime_type: "video/vp8".into(),
                cid: "backup-cid".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            preferred_codec(RTPCodecType::Video, &backup, "backup-cid", &video).as_deref(),
            Some("video/vp8")
        );
        // No codecs announced (an older SDK): the offer's order stands.
        let plain = proto::TrackInfo::default();
        assert_eq!(
            preferred_codec(RTPCodecType::Video, &plain, "x", &video),
            None
        );

        let audio = offered_codecs(section(OFFER, "0").unwrap(), RTPCodecType::Audio);
        let mic = proto::TrackInfo::default();
        assert_eq!(
            preferred_codec(RTPCodecType::Audio, &mic, "mic-cid", &audio).as_deref(),
            Some("audio/red")
        );
        let no_red = proto::TrackInfo {
            disable_red: true,
            ..Default::default()
        };
        assert_eq!(
            preferred_codec(RTPCodecType::Audio, &no_red, "mic-cid", &audio).as_deref(),
            Some("audio/opus")
        );
        // RED over another primary than the offer's Opus is not taken.
        let mut other = audio.clone();
        other[1].capability.sdp_fmtp_line = "100/100".into();
        assert_eq!(
            preferred_codec(RTPCodecType::Audio, &mic, "mic-cid", &other).as_deref(),
            Some("audio/opus")
        );
    }
}
