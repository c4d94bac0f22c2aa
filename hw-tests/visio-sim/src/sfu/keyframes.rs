//! Keyframe requests (livekit/livekit `pkg/sfu/downtrack.go`): a subscriber's PLI or FIR, a
//! layer switch or a new subscription asks the publisher for a keyframe (a PLI on the layer
//! forwarded or switched to), at most every 300 ms per layer. NACKs need nothing here: webrtc-rs' interceptors generate them towards publishers and
//! answer them towards subscribers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Weak;
use std::time::{Duration, Instant};

use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;

use super::forward::Forwarder;

impl Forwarder {
    /// Asks the publisher for a keyframe of each layer a subscriber gets or is switching to
    /// (any layer before one is chosen).
    pub(super) async fn request_keyframe(&self) {
        let mut ssrcs: Vec<u32> = Vec::new();
        for d in self.downstream.lock().await.iter() {
            let lane = d.lane.lock().unwrap();
            let s = &lane.simulcast;
            if let Some(ssrc) = s.pending.or(s.current) {
                ssrcs.push(ssrc);
            }
        }
        if ssrcs.is_empty() {
            // SVC (one stream), or nothing chosen yet: the best layer known.
            ssrcs.extend(self.layers.lock().unwrap().last().map(|l| l.ssrc));
        }
        ssrcs.sort_unstable();
        ssrcs.dedup();
        for ssrc in ssrcs {
            self.request_keyframe_on(ssrc).await;
        }
    }

    /// Sends a PLI for layer `ssrc` to the publisher, at most every 300 ms per layer.
    pub(super) async fn request_keyframe_on(&self, ssrc: u32) {
        {
            let mut last = self.last_keyframe_request.lock().unwrap();
            let now = Instant::now();
            if last
                .get(&ssrc)
                .is_some_and(|t| now.duration_since(*t) < Duration::from_millis(300))
            {
                return;
            }
            last.insert(ssrc, now);
        }
        let Some(publisher) = self.publisher.upgrade() else {
            return;
        };
        self.counters
            .keyframe_requests
            .fetch_add(1, Ordering::Relaxed);
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        if let Err(e) = publisher.publisher.write_rtcp(&[Box::new(pli)]).await {
            tracing::debug!(error = %e, "keyframe request not sent");
        }
    }
}

/// Reads a subscriber's RTCP for `f` and passes its keyframe requests (PLI, FIR) on to the
/// publisher, until the sender is closed.
pub(super) fn forward_keyframe_requests(sender: Arc<RTCRtpSender>, f: Weak<Forwarder>) {
    tokio::spawn(async move {
        while let Ok((packets, _)) = sender.read_rtcp().await {
            let wants_keyframe = packets.iter().any(|p| {
                let any = p.as_any();
                any.downcast_ref::<PictureLossIndication>().is_some()
                    || any.downcast_ref::<FullIntraRequest>().is_some()
            });
            if wants_keyframe {
                let Some(f) = f.upgrade() else { break };
                f.request_keyframe().await;
            }
        }
    });
}
