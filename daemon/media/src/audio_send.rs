//! The microphone → Opus → RTP sender.
//!
//! ```text
//! test:  audiotestsrc wave=sine freq=440 is-live=true ─┐
//! ALSA:  alsasrc device=… ─────────────────────────────┴▶ audioconvert ! audioresample
//!   ! audio/x-raw,S16LE,48 kHz,mono ! webrtcdsp (AEC with the receiver's webrtcechoprobe,
//!   noise suppression, gain control) ! volume (mute) ! audioconvert
//!   ! opusenc (20 ms, in-band FEC, DTX optional) ! rtpopuspay pt=… ! appsink ─▶ RTP packets
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc;

use crate::elements::{self, BusWatch};
use crate::send::{rtp_appsink, watch_sender, SendCounters};
use crate::source::MicrophoneSource;
use crate::MediaError;

const PIPELINE: &str = "audio sender";

/// How the audio sender is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioSenderConfig {
    /// Where sound comes from.
    pub microphone: MicrophoneSource,
    /// RTP payload type negotiated for Opus by the meeting session.
    pub payload_type: u8,
    /// Opus bitrate, bit/s.
    pub bitrate_bps: u32,
    /// Discontinuous transmission: near-empty packets during silence.
    pub dtx: bool,
    /// Echo cancellation, noise suppression and gain control (`webrtcdsp`).
    pub voice_processing: bool,
    /// The receiver's echo probe ([`crate::Receiver::echo_probe_name`]); echo cancellation
    /// needs it, so without one only noise suppression and gain control run.
    pub echo_probe: Option<String>,
    /// Capacity of the outgoing packet channel.
    pub channel_capacity: usize,
}

impl Default for AudioSenderConfig {
    fn default() -> Self {
        AudioSenderConfig {
            microphone: MicrophoneSource::Test,
            payload_type: 111,
            bitrate_bps: 32_000,
            dtx: false,
            voice_processing: true,
            echo_probe: None,
            channel_capacity: 256,
        }
    }
}

/// What the audio sender has done.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AudioSendStats {
    /// Always `"opus"`.
    pub codec: &'static str,
    /// Whether the microphone is muted (silence is sent).
    pub muted: bool,
    /// Whether echo cancellation runs (an echo probe was given).
    pub echo_cancellation: bool,
    /// RTP packets produced (one per 20 ms frame).
    pub packets_sent: u64,
    /// RTP bytes produced.
    pub bytes_sent: u64,
    /// Packets dropped because the consumer did not keep up.
    pub packets_dropped: u64,
    /// The last pipeline error (microphone unplugged...), if any.
    pub error: Option<String>,
}

/// A running audio sender. Dropping it stops the pipeline.
pub struct AudioSender {
    pipeline: gst::Pipeline,
    volume: gst::Element,
    muted: AtomicBool,
    echo_cancellation: bool,
    counters: Arc<SendCounters>,
    watch: BusWatch,
}

impl AudioSender {
    /// Builds and starts the sender. Returns it and the channel of its RTP packets.
    pub fn start(
        config: AudioSenderConfig,
    ) -> Result<(AudioSender, mpsc::Receiver<Bytes>), MediaError> {
        crate::init()?;
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let counters = Arc::new(SendCounters::default());
        let pipeline = gst::Pipeline::with_name("audio-sender");
        let mut chain: Vec<gst::Element> = Vec::new();
        match &config.microphone {
            MicrophoneSource::Test => {
                let src = elements::make("audiotestsrc")?;
                src.set_property("is-live", true);
                src.set_property("freq", 440.0f64);
                src.set_property("volume", 0.3f64);
                // 10 ms buffers, what webrtcdsp processes per call.
                src.set_property("samplesperbuffer", 480i32);
                chain.push(src);
            }
            MicrophoneSource::Alsa(device) => {
                let src = elements::make("alsasrc")?;
                src.set_property("device", device.as_str());
                chain.push(src);
            }
        }
        chain.push(elements::make("audioconvert")?);
        chain.push(elements::make("audioresample")?);
        chain.push(elements::capsfilter(
            &gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .field("rate", 48_000i32)
                .field("channels", 1i32)
                .field("layout", "interleaved")
                .build(),
        )?);
        let echo_cancellation = config.voice_processing && config.echo_probe.is_some();
        if config.voice_processing {
            let dsp = elements::make("webrtcdsp")?;
            dsp.set_property("echo-cancel", echo_cancellation);
            if let Some(probe) = &config.echo_probe {
                dsp.set_property("probe", probe.as_str());
            }
            dsp.set_property("noise-suppression", true);
            dsp.set_property("gain-control", true);
            chain.push(dsp);
        }
        let volume = elements::make_named("volume", "mic-mute")?;
        chain.push(volume.clone());
        chain.push(elements::make("audioconvert")?);
        let enc = elements::make("opusenc")?;
        enc.set_property("bitrate", config.bitrate_bps as i32);
        enc.set_property_from_str("frame-size", "20");
        enc.set_property_from_str("audio-type", "voice");
        enc.set_property("inband-fec", true);
        enc.set_property("packet-loss-percentage", 10i32);
        enc.set_property("dtx", config.dtx);
        chain.push(enc);
        let pay = elements::make("rtpopuspay")?;
        pay.set_property("pt", u32::from(config.payload_type));
        chain.push(pay);
        chain.push(rtp_appsink(tx, counters.clone(), false).upcast());

        let refs: Vec<&gst::Element> = chain.iter().collect();
        elements::add_chain(&pipeline, &refs, PIPELINE)?;
        elements::start_pipeline(&pipeline, PIPELINE)?;
        let watch = watch_sender(&pipeline, "media-audio-send", counters.clone());
        counters.running.store(true, Ordering::Release);
        tracing::info!(
            microphone = ?config.microphone,
            echo_cancellation,
            "audio sender started"
        );
        Ok((
            AudioSender {
                pipeline,
                volume,
                muted: AtomicBool::new(false),
                echo_cancellation,
                counters,
                watch,
            },
            rx,
        ))
    }

    /// Mutes or unmutes the microphone. Muted: samples are zeroed before the encoder, so the
    /// room is never heard, while RTP keeps flowing as silence (near-empty packets with DTX),
    /// which keeps the track alive for the SFU and the browsers.
    pub fn set_mic_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
        self.volume.set_property("mute", muted);
        tracing::info!(muted, "microphone");
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> AudioSendStats {
        let c = &self.counters;
        AudioSendStats {
            codec: "opus",
            muted: self.muted.load(Ordering::Relaxed),
            echo_cancellation: self.echo_cancellation,
            packets_sent: c.packets.load(Ordering::Relaxed),
            bytes_sent: c.bytes.load(Ordering::Relaxed),
            packets_dropped: c.dropped.load(Ordering::Relaxed),
            error: c.error(),
        }
    }

    /// Stops the pipeline (also done on drop).
    pub fn stop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        self.watch.stop();
    }
}

impl Drop for AudioSender {
    fn drop(&mut self) {
        self.stop();
    }
}
