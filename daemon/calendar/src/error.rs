//! Errors of calendar sources and of the cache. Every message names the source (its
//! [`crate::SourceSpec::describe`], never a URL path or a secret) and says what to do.

use std::path::PathBuf;

use thiserror::Error;

/// Why a source could not be fetched. The previous calendar (in memory or in the [`crate::Cache`])
/// stays valid; the daemon keeps it and retries at the next poll.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The configuration of the source cannot work (scheme, credentials in the URL…).
    #[error("{calendar}: {reason}")]
    InvalidSource {
        /// The source.
        calendar: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A secret file (password, token) could not be read.
    #[error("{calendar}: cannot read the {what} file {path}: {reason}; check that it exists and that the daemon may read it")]
    SecretFile {
        /// The source.
        calendar: String,
        /// `password` or `token`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A local calendar file could not be read.
    #[error("{calendar}: cannot read it: {reason}; check the path and its permissions")]
    File {
        /// The source.
        calendar: String,
        /// The I/O error.
        reason: String,
    },
    /// The server could not be reached (DNS, connection, TLS, timeout).
    #[error("{calendar}: server unreachable: {reason}; check the network, the host name and the server's certificate")]
    Unreachable {
        /// The source.
        calendar: String,
        /// What failed.
        reason: String,
    },
    /// The server refused the credentials (HTTP 401).
    #[error("{calendar}: the server refused the credentials (HTTP 401): {advice}")]
    Unauthorized {
        /// The source.
        calendar: String,
        /// Which setting to check.
        advice: String,
    },
    /// The account may not read this calendar (HTTP 403).
    #[error("{calendar}: access forbidden (HTTP 403): the account may not read this calendar; share it with the room's account or check the URL")]
    Forbidden {
        /// The source.
        calendar: String,
    },
    /// Nothing at this URL (HTTP 404/410).
    #[error("{calendar}: not found (HTTP {status}): check the calendar URL")]
    NotFound {
        /// The source.
        calendar: String,
        /// 404 or 410.
        status: u16,
    },
    /// Any other unexpected HTTP status.
    #[error("{calendar}: the server answered HTTP {status} to {request}{detail}")]
    Http {
        /// The source.
        calendar: String,
        /// The request (`GET`, `PROPFIND`, `REPORT calendar-query`…).
        request: String,
        /// The status code.
        status: u16,
        /// What to do, when known (starts with `: `).
        detail: String,
    },
    /// A redirect was refused (another host, a downgrade to plain HTTP, or a loop).
    #[error("{calendar}: redirect refused: {reason}; configure the final URL directly")]
    Redirect {
        /// The source.
        calendar: String,
        /// Why.
        reason: String,
    },
    /// The response is larger than the limit for one calendar.
    #[error("{calendar}: the response is larger than {limit_mb} MB; point the source at a smaller calendar")]
    TooLarge {
        /// The source.
        calendar: String,
        /// The limit.
        limit_mb: u64,
    },
    /// A feed or file holds something else than iCalendar (an HTML login page, say).
    #[error("{calendar}: the content is not iCalendar ({found}); check the URL (a sharing page is not the .ics feed) and the credentials")]
    NotICalendar {
        /// The source.
        calendar: String,
        /// What it looked like (content type and first characters).
        found: String,
    },
    /// The CalDAV URL leads to no calendar collection.
    #[error("{calendar}: no calendar found: {reason}; give the URL of the room's calendar collection or of the server's CalDAV root")]
    NotACalendar {
        /// The source.
        calendar: String,
        /// What discovery found.
        reason: String,
    },
    /// A WebDAV response that is not the expected XML.
    #[error("{calendar}: the server's answer to {request} is not valid WebDAV XML: {reason}; is this a CalDAV URL?")]
    BadXml {
        /// The source.
        calendar: String,
        /// The request.
        request: String,
        /// The parser's message.
        reason: String,
    },
}

/// Why the cache could not be written (reads never fail: a bad entry is ignored and logged).
#[derive(Debug, Error)]
#[error("cannot write the calendar cache {path}: {reason}; check that the state directory exists and is writable")]
pub struct CacheError {
    /// The file being written.
    pub path: PathBuf,
    /// The I/O error.
    pub reason: String,
}
