//! Room calendar sources: fetching the room's calendar text, keeping each source's sync
//! state, and caching the last good copy for offline operation.
//!
//! A room's calendar comes from a local `.ics` file, an ICS/webcal feed, or a CalDAV server
//! ([`SourceSpec`], plain data the daemon builds from its `[calendar]` configuration). A
//! [`Source`] is one of those with its state: the file's modification time, the feed's ETag
//! and `Last-Modified` (conditional GETs), or the CalDAV calendars found by discovery with
//! their resources and sync tokens (RFC 6578 `sync-collection`, or `getctag` + ETag polling
//! on servers without it). Each [`Source::fetch`] answers [`Fetched::Unchanged`] or the
//! complete current set of iCalendar texts. [`Cache`] keeps the last good set per source on
//! disk so the room can plan offline and show how stale its calendar is;
//! [`CachedSource`] runs a source with its cache entry (offline boot, staleness, failures).
//! When to poll is the daemon's choice (the room's one backoff, `visio_room_core::backoff`).
//!
//! Security: `https://` with certificate verification always on, trusting the authorities of
//! the rustls configuration the daemon passes ([`SourceOptions::tls`]; none without it), plain
//! `http://` only to loopback, redirects only to the same host, secrets read from files at each
//! request and never logged, printed in `Debug` output or put in an error message; [`SourceSpec::describe`] shows only the scheme and host
//! of a URL (the path of a private feed is often a secret token).
//!
//! This crate must not know about iCalendar semantics (parsing, recurrence, links: that is
//! `visio-room-schedule`, which receives the texts), the planner, D-Bus, the room controller
//! or the meeting session. It does no scheduling of its own: the daemon calls `fetch` when its
//! backoff says so.
//!
//! Module map: [`spec`] (what a source is, secrets), [`error`] (what went wrong and what to
//! do), `http` (client, redirects, credentials), `feed` (file and ICS feed), `caldav`
//! (discovery and sync), `dav` (WebDAV XML), [`cache`] (offline copy), [`cached`] (a source
//! with its cache).

pub mod cache;
pub mod cached;
mod caldav;
mod dav;
pub mod error;
mod feed;
mod http;
pub mod spec;

use std::sync::Arc;
use std::time::Duration;

pub use cache::{Cache, CachedCalendar};
pub use cached::{CachedSource, PollOutcome};
pub use error::{CacheError, SourceError};
pub use spec::{Auth, Secret, SourceSpec};

use caldav::{CalDav, CalDavSettings};
use feed::{FileFeed, IcsFeed};
use http::{Http, HttpSettings};

/// The result of a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Nothing changed since the previous fetch (never answered by a first fetch).
    Unchanged,
    /// The complete current set of iCalendar texts of the source: one for a file or feed, one
    /// per calendar resource (event series) for CalDAV.
    Changed(Vec<String>),
}

/// How sources fetch. The defaults suit a room.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// CalDAV: how far back events are read (default 1 day).
    pub window_before: Duration,
    /// CalDAV: how far ahead events are read (default 60 days).
    pub window_after: Duration,
    /// CalDAV: use `sync-collection` when the server offers it (default); `false` forces
    /// `getctag` + ETag polling, for servers whose sync reports are broken.
    pub sync_collection: bool,
    /// CalDAV: a full read is redone this often (default 24 h), so meetings entering the
    /// sliding window are seen even if they were created before the first read.
    pub full_resync_every: Duration,
    /// Connection timeout (default 10 s).
    pub connect_timeout: Duration,
    /// Whole-request timeout (default 30 s).
    pub request_timeout: Duration,
    /// Largest response accepted, in bytes (default 32 MB).
    pub body_limit: u64,
    /// TLS client configuration (certificate verification is always on): the daemon passes the
    /// one it builds for the whole room (`visio_room_session::tls`), so the trust store is set
    /// in one place. `None` (the default) trusts no authority: `https` sources are refused;
    /// files and plain `http` to loopback still work.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            window_before: Duration::from_secs(86_400),
            window_after: Duration::from_secs(60 * 86_400),
            sync_collection: true,
            full_resync_every: Duration::from_secs(86_400),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            body_limit: 32_000_000,
            tls: None,
        }
    }
}

enum Kind {
    File(FileFeed),
    Ics(IcsFeed, Http),
    CalDav(CalDav, Http),
}

/// One calendar source with its state (validators, sync tokens, resources read).
pub struct Source {
    spec: SourceSpec,
    describe: String,
    kind: Kind,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("source", &self.describe)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// A source with the default options.
    pub fn new(spec: SourceSpec) -> Result<Source, SourceError> {
        Source::with_options(spec, SourceOptions::default())
    }

    /// A source; fails only when the spec cannot work (scheme, credentials in the URL). No
    /// network or file access happens before the first [`Source::fetch`].
    pub fn with_options(spec: SourceSpec, options: SourceOptions) -> Result<Source, SourceError> {
        let describe = spec.describe();
        let http_settings = HttpSettings {
            connect_timeout: options.connect_timeout,
            request_timeout: options.request_timeout,
            body_limit: options.body_limit,
            tls: options.tls.clone(),
        };
        let url = spec.request_url()?;
        let kind = match (&spec, url) {
            (SourceSpec::File { path }, _) => Kind::File(FileFeed::new(path.clone())),
            (SourceSpec::Ics { auth, .. }, Some(url)) => Kind::Ics(
                IcsFeed::new(url),
                Http::new(describe.clone(), auth.clone(), &http_settings)?,
            ),
            (SourceSpec::CalDav { auth, .. }, Some(url)) => Kind::CalDav(
                CalDav::new(
                    url,
                    CalDavSettings {
                        window_before: options.window_before,
                        window_after: options.window_after,
                        sync_collection: options.sync_collection,
                        full_resync_every: options.full_resync_every,
                    },
                ),
                Http::new(describe.clone(), auth.clone(), &http_settings)?,
            ),
            (_, None) => unreachable!("URL sources always have a request URL"),
        };
        Ok(Source {
            spec,
            describe,
            kind,
        })
    }

    /// Reads the source. The first successful fetch always answers [`Fetched::Changed`]; later
    /// ones answer [`Fetched::Unchanged`] when nothing changed. On error the source keeps its
    /// state: the next fetch continues from the last good one.
    pub async fn fetch(&mut self) -> Result<Fetched, SourceError> {
        let result = match &mut self.kind {
            Kind::File(file) => file.fetch(&self.describe).await,
            Kind::Ics(feed, http) => feed.fetch(http).await,
            Kind::CalDav(dav, http) => dav.fetch(http).await,
        };
        match &result {
            Ok(Fetched::Changed(texts)) => {
                tracing::info!(calendar = %self.describe, texts = texts.len(), "calendar changed");
            }
            Ok(Fetched::Unchanged) => {
                tracing::debug!(calendar = %self.describe, "calendar unchanged");
            }
            // Returned to the caller, who decides how loudly to say it (once per outage, not
            // once per poll).
            Err(error) => tracing::debug!(%error, "calendar fetch failed"),
        }
        result
    }

    /// The source for logs and `Health`: kind, URL scheme and host (no path, no credentials)
    /// and a short key; the path of a file.
    pub fn describe(&self) -> String {
        self.describe.clone()
    }

    /// The spec this source was made from (to key the [`Cache`]).
    pub fn spec(&self) -> &SourceSpec {
        &self.spec
    }

    /// Calendar resources skipped since the start because they were not iCalendar (CalDAV; a
    /// bad file or feed is an error instead).
    pub fn skipped_resources(&self) -> u64 {
        match &self.kind {
            Kind::CalDav(dav, _) => dav.skipped,
            _ => 0,
        }
    }

    /// CalDAV calendar collections found by discovery (0 before the first fetch, and for
    /// files and feeds).
    pub fn calendars(&self) -> usize {
        match &self.kind {
            Kind::CalDav(dav, _) => dav.collections(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn a_source_and_its_fetch_can_run_on_any_tokio_worker() {
        let mut source = Source::new(SourceSpec::File {
            path: "/nowhere.ics".into(),
        })
        .unwrap();
        assert_send(&source);
        let fetch = source.fetch();
        assert_send(&fetch);
        drop(fetch);
        let mut cached = CachedSource::new(source, Cache::new("/nonexistent-dir"));
        assert_send(&cached.poll());
    }
}
