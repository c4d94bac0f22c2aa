//! SDP offer/answer on the two peer connections: the client's publisher offer answered with
//! its own video codec order, and the SFU's subscriber offers (one at a time, queued while one
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

/// The video codecs of the m-section `mid` of an offer, in the offer's order (RTX, RED and
/// FEC left out), with the feedback this SFU answers for video.
fn offered_video_codecs(
    sdp: &str,
    mid: &str,
) -> Vec<webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecParameters> {
    use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTCRtpCodecParameters};
    use webrtc::rtp_transceiver::RTCPFeedback;
    let mid_line = format!("a=mid:{mid}");
    let Some(section) = sdp
        .split("\r\nm=")
        .find(|s| s.lines().any(|l| l.trim() == mid_line))
    else {
        return Vec::new();
    };
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
    order
        .into_iter()
        .filter_map(|pt| {
            let rtpmap = attr("a=rtpmap:", pt)?;
            let (name, rate) = rtpmap.split_once('/')?;
            if !["VP8", "VP9", "H264", "AV1"].contains(&name.to_ascii_uppercase().as_str()) {
                return None;
            }
            Some(RTCRtpCodecParameters {
                capability: RTCRtpCodecCapability {
                    mime_type: format!("video/{name}"),
                    clock_rate: rate.parse().unwrap_or(90000),
                    channels: 0,
                    sdp_fmtp_line: attr("a=fmtp:", pt).unwrap_or_default(),
                    rtcp_feedback: feedback.clone(),
                },
                payload_type: pt,
                ..Default::default()
            })
        })
        .collect()
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
        self.prefer_offered_video_codecs(&sdp).await;
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

    /// Answers each video section with the publisher's own codec order (webrtc-rs would
    /// otherwise answer in its registration order, VP8 first), so that a client asking for
    /// H.264 or VP9 gets it.
    async fn prefer_offered_video_codecs(&self, offer: &str) {
        for t in self.publisher.get_transceivers().await {
            if t.kind() != RTPCodecType::Video {
                continue;
            }
            let Some(mid) = t.mid() else { continue };
            let mut supported = Vec::new();
            for codec in offered_video_codecs(offer, &mid) {
                if t.set_codec_preferences(vec![codec.clone()]).await.is_ok() {
                    supported.push(codec);
                }
            }
            if let Err(e) = t.set_codec_preferences(supported).await {
                tracing::debug!(error = %e, "codec preferences not applied");
            }
        }
    }
}
