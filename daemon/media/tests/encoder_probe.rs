//! Choosing the H.264 encoder on this machine, with real elements.

mod common;

use visio_room_media::probe::{probe_h264_encoder, ProbeOutcome};
use visio_room_media::{CameraSource, EncoderCandidate, EncoderKind, MediaError};

#[test]
fn without_hardware_encoders_the_room_uses_x264() {
    common::init();
    let choice = probe_h264_encoder(&EncoderCandidate::default_order(), &CameraSource::Test)
        .expect("x264enc must work here (gstreamer1.0-plugins-ugly)");
    let report = choice.report();
    // CI machines have no V4L2 M2M or VA device: hardware candidates are not registered
    // (or fail), and the software encoder is chosen. On a machine with working hardware
    // this test fails, which is the point of running it on the CI image only.
    assert_eq!(choice.encoder_name(), "x264enc", "{report}");
    assert!(
        report.starts_with("camera-h264: no camera; v4l2h264enc: "),
        "{report}"
    );
    assert!(report.ends_with("x264enc: chosen"), "{report}");
    assert!(
        !report.contains("openh264enc"),
        "later candidates are not tried: {report}"
    );
}

#[test]
fn a_broken_hardware_encoder_falls_back_to_the_next_candidate() {
    common::init();
    // avenc_h264_omx is registered by gstreamer1.0-libav but cannot start without an
    // OpenMAX IL library — exactly like a hardware encoder without its device.
    let candidates = vec![
        EncoderCandidate::new(EncoderKind::Other, "avenc_h264_omx"),
        EncoderCandidate::new(EncoderKind::OpenH264, "openh264enc"),
    ];
    let choice = probe_h264_encoder(&candidates, &CameraSource::Test).unwrap();
    assert_eq!(choice.encoder_name(), "openh264enc");
    assert!(
        matches!(choice.attempts[0].outcome, ProbeOutcome::Failed(_)),
        "{:?}",
        choice.attempts
    );
    assert!(
        choice.report().contains("avenc_h264_omx: failed ("),
        "{}",
        choice.report()
    );
}

#[test]
fn an_encoder_that_does_not_make_h264_is_rejected() {
    common::init();
    let candidates = vec![
        EncoderCandidate::new(EncoderKind::Other, "vp8enc"),
        EncoderCandidate::new(EncoderKind::Other, "no-such-encoder"),
        EncoderCandidate::default_order().remove(4),
    ];
    let choice = probe_h264_encoder(&candidates, &CameraSource::Test).unwrap();
    assert_eq!(choice.encoder_name(), "x264enc");
    assert!(matches!(
        choice.attempts[0].outcome,
        ProbeOutcome::Failed(_)
    ));
    assert_eq!(choice.attempts[1].outcome, ProbeOutcome::NotPresent);
}

#[test]
fn no_working_encoder_is_a_clear_error() {
    common::init();
    let candidates = vec![
        EncoderCandidate::new(EncoderKind::V4l2M2m, "no-such-encoder"),
        EncoderCandidate::new(EncoderKind::Other, "avenc_h264_omx"),
    ];
    let err = probe_h264_encoder(&candidates, &CameraSource::Test).unwrap_err();
    assert!(matches!(err, MediaError::NoEncoder { .. }));
    let text = err.to_string();
    assert!(text.contains("no-such-encoder: not present"), "{text}");
    assert!(
        text.contains("x264enc"),
        "the message says what to install: {text}"
    );
}

#[test]
fn without_hardware_decoders_the_room_decodes_in_software() {
    common::init();
    let choice = visio_room_media::probe::probe_video_decoders().unwrap();
    let report = choice.report();
    assert_eq!(
        (
            choice.h264.as_str(),
            choice.vp8.as_str(),
            choice.vp9.as_str()
        ),
        ("avdec_h264", "vp8dec", "vp9dec"),
        "{report}"
    );
    assert!(report.contains("vah264dec: not present"), "{report}");
    assert!(report.contains("avdec_h264: chosen"), "{report}");
}

#[test]
fn a_decoder_that_cannot_decode_the_codec_falls_back() {
    common::init();
    // vp8dec is present but cannot take H.264: like a registered but broken hardware decoder.
    let choice = visio_room_media::probe::probe_video_decoders_from(
        &["vp8dec", "no-such-decoder", "avdec_h264"],
        &["avdec_vp8", "vp8dec"],
        &["vp9dec"],
    )
    .unwrap();
    assert_eq!(choice.h264, "avdec_h264", "{}", choice.report());
    assert_eq!(choice.vp8, "avdec_vp8", "{}", choice.report());
    assert!(matches!(
        choice.attempts[0].outcome,
        ProbeOutcome::Failed(_)
    ));
    assert_eq!(choice.attempts[1].outcome, ProbeOutcome::NotPresent);
    let err = visio_room_media::probe::probe_video_decoders_from(&["vp9dec"], &[], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vp9dec: failed") && err.contains("avdec_h264"),
        "{err}"
    );
}

#[test]
fn probing_is_safe_as_the_very_first_call() {
    // No `common::init()` here: nextest runs each test in its own process, so this is the
    // first GStreamer call of the process, as it is at the daemon's start-up.
    let choice = probe_h264_encoder(&EncoderCandidate::default_order(), &CameraSource::Test)
        .expect("the probe initialises GStreamer itself");
    assert_eq!(choice.encoder_name(), "x264enc", "{}", choice.report());
}
