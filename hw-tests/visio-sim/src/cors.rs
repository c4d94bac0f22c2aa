//! CORS on the LiveKit HTTP endpoints, as a LiveKit server answers it: any origin may call
//! them (the token is what guards them), so `livekit-client` served from another origin (Meet's
//! web app) can read `/rtc/validate` after a failed upgrade. The Meet REST API does not get
//! this: Meet's own CORS settings are not "any origin".
//!
//! Upstream: livekit/livekit `pkg/service/server.go` wraps every route in `rs/cors` with an
//! origin function accepting all origins, methods `OPTIONS, HEAD, GET, POST, PATCH, DELETE`,
//! headers `*`, exposed headers `*`, preflight cached for a day, no credentials.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The methods a LiveKit server allows cross-origin.
const ALLOWED_METHODS: [&str; 6] = ["OPTIONS", "HEAD", "GET", "POST", "PATCH", "DELETE"];
/// How long a browser may cache a preflight answer (LiveKit: one day).
const PREFLIGHT_MAX_AGE_S: &str = "86400";

/// Middleware: answers preflight requests itself (`204`) and adds the CORS headers to every
/// answer to a request carrying an `Origin`.
pub async fn allow_any_origin(request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let Some(origin) = origin else {
        return next.run(request).await;
    };
    let requested_method = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .cloned();
    if request.method() == Method::OPTIONS {
        if let Some(method) = requested_method {
            return preflight(&origin, &method, request.headers());
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("*"),
    );
    response
}

/// The answer to a preflight: the origin, the requested method (if allowed) and the requested
/// headers (all are allowed) echoed back.
fn preflight(origin: &HeaderValue, method: &HeaderValue, request: &HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    let method_upper = method.to_str().unwrap_or_default().to_ascii_uppercase();
    if !ALLOWED_METHODS.contains(&method_upper.as_str()) {
        // rs/cors answers a preflight for a method it does not allow without CORS headers:
        // the browser then refuses the request.
        return response;
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if let Ok(value) = HeaderValue::from_str(&method_upper) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, value);
    }
    if let Some(requested) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
    }
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE_S),
    );
    response
}
