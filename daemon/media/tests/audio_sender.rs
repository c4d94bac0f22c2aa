//! The room's microphone as the meeting hears it: Opus RTP decoded back by a real GStreamer
//! pipeline, its level measured.

mod common;

use std::time::Duration;

use visio_room_media::rtp::RtpHeader;
use visio_room_media::{
    AudioSender, AudioSenderConfig, AudioSinkSetting, MicrophoneSource, Receiver, ReceiverConfig,
    VideoSinkSetting,
};

const OPUS_RTP_CAPS: &str =
    "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=111";

fn decode_level(packets: &[bytes::Bytes]) -> common::Decoded {
    common::decode(
        packets,
        OPUS_RTP_CAPS,
        "rtpopusdepay ! opusdec ! audioconvert ! level interval=100000000 post-messages=true",
    )
}

#[test]
fn test_tone_is_sent_as_opus_in_20_ms_packets() {
    common::init();
    let (sender, mut rx) = AudioSender::start(AudioSenderConfig {
        microphone: MicrophoneSource::Test,
        voice_processing: false,
        ..AudioSenderConfig::default()
    })
    .unwrap();
    let packets = common::collect(&mut rx, Duration::from_secs(2));
    assert_eq!(sender.stats().error, None);
    // 50 packets a second.
    assert!(
        (85..=105).contains(&packets.len()),
        "{} packets in 2 s",
        packets.len()
    );
    let headers: Vec<RtpHeader> = packets
        .iter()
        .map(|p| RtpHeader::parse(p).unwrap())
        .collect();
    assert!(headers.iter().all(|h| h.payload_type == 111));
    // After the first packet (shortened by the encoder's look-ahead), 20 ms at 48 kHz each.
    for pair in headers[1..].windows(2) {
        assert_eq!(pair[1].timestamp.wrapping_sub(pair[0].timestamp), 960);
    }
    let decoded = decode_level(&packets);
    let loudest = decoded
        .levels
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(loudest > -20.0, "the tone decodes at {loudest} dBFS");
}

#[test]
fn muted_microphone_sends_silence() {
    common::init();
    let (sender, mut rx) = AudioSender::start(AudioSenderConfig {
        microphone: MicrophoneSource::Test,
        voice_processing: false,
        ..AudioSenderConfig::default()
    })
    .unwrap();
    common::collect(&mut rx, Duration::from_millis(300));
    sender.set_mic_muted(true);
    std::thread::sleep(Duration::from_millis(100));
    common::drain(&mut rx);
    let muted = common::collect(&mut rx, Duration::from_secs(1));
    assert!(sender.stats().muted);
    assert!(!muted.is_empty(), "a muted track keeps sending (silence)");
    let decoded = decode_level(&muted);
    // Skip the decoder's first level message, which may straddle the mute.
    let loudest = decoded
        .levels
        .iter()
        .skip(1)
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(
        loudest < -80.0,
        "muted, the room is heard at {loudest} dBFS"
    );

    sender.set_mic_muted(false);
    std::thread::sleep(Duration::from_millis(100));
    common::drain(&mut rx);
    let unmuted = common::collect(&mut rx, Duration::from_secs(1));
    let loudest = decode_level(&unmuted)
        .levels
        .iter()
        .skip(1)
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(loudest > -20.0, "unmuted at {loudest} dBFS");
}

#[test]
fn voice_processing_with_echo_cancellation_runs_against_the_receivers_echo_probe() {
    common::init();
    let (receiver, _events) = Receiver::start(ReceiverConfig {
        video_sink: VideoSinkSetting::None,
        audio_sink: AudioSinkSetting::None,
        width: 320,
        height: 240,
        ..ReceiverConfig::default()
    })
    .unwrap();
    let (sender, mut rx) = AudioSender::start(AudioSenderConfig {
        microphone: MicrophoneSource::Test,
        voice_processing: true,
        echo_probe: Some(receiver.echo_probe_name().to_owned()),
        ..AudioSenderConfig::default()
    })
    .unwrap();
    let packets = common::collect(&mut rx, Duration::from_secs(2));
    let stats = sender.stats();
    assert_eq!(stats.error, None);
    assert!(stats.echo_cancellation);
    assert!(packets.len() > 80, "{} packets in 2 s", packets.len());
    let decoded = decode_level(&packets);
    assert!(decoded.frames > 0);
}

#[test]
fn a_missing_alsa_microphone_is_a_clear_error() {
    common::init();
    let err = AudioSender::start(AudioSenderConfig {
        microphone: MicrophoneSource::Alsa("hw:CARD=NoSuchCard".into()),
        voice_processing: false,
        ..AudioSenderConfig::default()
    })
    .err()
    .expect("no such ALSA device here");
    let text = err.to_string();
    assert!(
        text.contains("audio sender") && text.contains("did not start"),
        "{text}"
    );
}
