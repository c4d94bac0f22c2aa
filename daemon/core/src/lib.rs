//! Hardware-free logic of the visio-room appliance.
//!
//! This crate holds what decides, not what does: the room controller (a sans-IO state machine),
//! the configuration file model, and meeting-URL validation. It must not know about D-Bus,
//! GStreamer, WebRTC, sockets or clocks — time is passed in — so that everything here builds and
//! tests in seconds on any machine.

pub mod backoff;
pub mod config;
pub mod controller;
pub mod meeting_url;
