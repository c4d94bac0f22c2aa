//! The meeting session: Meet REST API and lobby, LiveKit signalling, WebRTC peer connections.
