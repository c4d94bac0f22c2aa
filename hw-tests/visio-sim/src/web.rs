//! The meeting page at `/<slug>`: joins the room with the official `livekit-client` (served
//! from the npm modules the deps script installs), shows every participant's video, plays
//! audio, and has camera and microphone toggles. It exposes `window.visioSim` so that tests
//! can read what the browser really decoded.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("meeting.html");

/// Serves the page; the slug is read by the page itself from its URL.
pub async fn meeting_page(Path(slug): Path<String>) -> Response {
    let _ = slug;
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}
