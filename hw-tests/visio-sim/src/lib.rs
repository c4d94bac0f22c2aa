//! `visio-sim`: a local Visio for tests and demos. It serves, on one port, the La Suite Meet
//! REST API a device uses (room lookup, lobby, host admission), a LiveKit-compatible SFU
//! (token validation, v0 signalling over WebSocket, publisher and subscriber WebRTC peer
//! connections, RTP/RTCP forwarding, data relay) and a meeting page running the official
//! `livekit-client`.
//!
//! It is test infrastructure, not shipped on the appliance: it must not know about the
//! appliance (the room controller, D-Bus, GStreamer); it only knows what a Visio deployment
//! exposes to its clients. Its fidelity is proven by the official LiveKit clients in its tests.

pub mod cors;
pub mod lobby;
pub mod rooms;
pub mod server;
pub mod sfu;
pub mod signal;
pub mod sim;
pub mod speakers;
pub mod token;
pub mod web;
