//! Media engine: GStreamer capture, encoding with hardware probing, decoding, composition and playback
