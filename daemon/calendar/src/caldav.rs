//! A CalDAV source (RFC 4791, RFC 6578): discovery of the room's calendars, a first full read
//! of the events in a window, then incremental updates — `sync-collection` with a sync token
//! when the server offers one, `getctag` + ETag polling otherwise.
//!
//! State per calendar collection: the resources read (href → ETag and text) and the change
//! marker (sync token or ctag). A rejected sync token (403 Radicale, 412 Xandikos, 409, or a
//! `DAV:valid-sync-token` error) means a full resync. The full read is also redone every
//! [`CalDavSettings::full_resync_every`] so that meetings entering the sliding window (created
//! long in advance, before the first read) are picked up: the incremental reports only see
//! *changes*.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use reqwest::Method;
use url::Url;

use crate::dav::{self, Multistatus, Props};
use crate::error::SourceError;
use crate::feed::is_icalendar;
use crate::http::{Http, Reply};
use crate::Fetched;

/// Resources asked for in one `calendar-multiget`.
const MULTIGET_BATCH: usize = 100;
/// `sync-collection` rounds in one fetch when the server truncates its answer (507).
const MAX_SYNC_ROUNDS: usize = 20;

/// How a CalDAV source reads its calendars.
#[derive(Debug, Clone)]
pub(crate) struct CalDavSettings {
    pub window_before: Duration,
    pub window_after: Duration,
    pub sync_collection: bool,
    pub full_resync_every: Duration,
}

/// How changes of one collection are detected.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    /// RFC 6578 sync token.
    SyncToken(String),
    /// `CS:getctag` (or none: then ETags are listed at each poll).
    CTag(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Resource {
    etag: Option<String>,
    text: String,
}

/// One calendar collection and what was read of it.
#[derive(Debug)]
struct Collection {
    url: Url,
    marker: Option<Marker>,
    resources: BTreeMap<String, Resource>,
    last_full: Option<Instant>,
}

/// Why an incremental sync did not work.
enum SyncFailure {
    /// The server no longer knows the token: read everything again.
    TokenRejected(u16),
    /// Anything else.
    Source(SourceError),
}

impl From<SourceError> for SyncFailure {
    fn from(e: SourceError) -> Self {
        SyncFailure::Source(e)
    }
}

/// A CalDAV source's state.
pub(crate) struct CalDav {
    base: Url,
    settings: CalDavSettings,
    collections: Option<Vec<Collection>>,
    reported: bool,
    /// Resources skipped since the start because they were not iCalendar (or had no data).
    pub skipped: u64,
}

/// The same URL, with or without a trailing slash.
fn same_url(a: &Url, b: &Url) -> bool {
    a.as_str().trim_end_matches('/') == b.as_str().trim_end_matches('/')
}

fn resolve(base: &Url, href: &str) -> Option<Url> {
    base.join(href).ok()
}

/// The key of a resource: its URL with the path percent-decoded, so that `/a%40b.ics` and
/// `/a@b.ics` (the same resource, spelled differently by two reports) are one entry.
fn key_of(url: &Url) -> String {
    let path = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy();
    let mut key = url.origin().ascii_serialization();
    key.push_str(&path);
    key
}

/// iCalendar UTC time (`20261123T110000Z`) of `now ± delta`.
fn ical_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

async fn request_multistatus(
    http: &Http,
    method: &str,
    url: &Url,
    depth: &str,
    body: &str,
    what: &str,
) -> Result<(Url, Multistatus), SourceError> {
    let method = Method::from_bytes(method.as_bytes()).expect("WebDAV method names are tokens");
    let reply = http
        .send(method, url, &[("Depth", depth.to_owned())], Some(body))
        .await?;
    let reply = http.check(reply, what)?;
    parse(http, reply, what)
}

fn parse(http: &Http, reply: Reply, what: &str) -> Result<(Url, Multistatus), SourceError> {
    let ms = dav::parse_multistatus(&reply.body).map_err(|reason| SourceError::BadXml {
        calendar: http.calendar().to_owned(),
        request: what.to_owned(),
        reason,
    })?;
    Ok((reply.url, ms))
}

/// The properties of `url` itself in a depth-0 answer.
fn own_props(url: &Url, ms: &Multistatus) -> Props {
    ms.responses
        .iter()
        .find(|r| resolve(url, &r.href).is_some_and(|u| same_url(&u, url)))
        .or(ms.responses.first())
        .map(|r| r.props.clone())
        .unwrap_or_default()
}

/// Finds the calendar collections behind `base`: `base` itself if it is one; else through
/// `calendar-home-set`, `current-user-principal`, or `/.well-known/caldav` (RFC 6764).
async fn discover(http: &Http, base: &Url) -> Result<Vec<Url>, SourceError> {
    let body = dav::propfind_discovery();
    let first = request_multistatus(http, "PROPFIND", base, "0", &body, "PROPFIND").await;
    let (url, props) = match first {
        Ok((url, ms)) => {
            let props = own_props(&url, &ms);
            (url, props)
        }
        // A server whose CalDAV root is elsewhere may not answer at `/`: ask the well-known URL.
        Err(SourceError::NotFound { .. } | SourceError::Http { .. }) if base.path() == "/" => {
            (base.clone(), Props::default())
        }
        Err(e) => return Err(e),
    };
    if props.is_calendar {
        tracing::debug!(calendar = %http.calendar(), "the configured URL is a calendar collection");
        return Ok(vec![url]);
    }
    let mut homes: Vec<Url> = props
        .calendar_home_set
        .iter()
        .filter_map(|h| resolve(&url, h))
        .collect();
    if homes.is_empty() {
        let (principal_base, principal) = match props.current_user_principal {
            Some(p) => (url.clone(), p),
            None => {
                let well_known = url.join("/.well-known/caldav").expect("absolute path");
                let (wk_url, ms) =
                    request_multistatus(http, "PROPFIND", &well_known, "0", &body, "PROPFIND")
                        .await
                        .map_err(|e| match e {
                            SourceError::NotFound { calendar, .. } => SourceError::NotACalendar {
                                calendar,
                                reason: "the URL is not a calendar and the server has no \
                                         /.well-known/caldav"
                                    .into(),
                            },
                            e => e,
                        })?;
                let props = own_props(&wk_url, &ms);
                if props.is_calendar {
                    return Ok(vec![wk_url]);
                }
                let principal =
                    props
                        .current_user_principal
                        .ok_or_else(|| SourceError::NotACalendar {
                            calendar: http.calendar().to_owned(),
                            reason: "the server tells no current-user-principal".into(),
                        })?;
                (wk_url, principal)
            }
        };
        let principal =
            resolve(&principal_base, &principal).ok_or_else(|| SourceError::BadXml {
                calendar: http.calendar().to_owned(),
                request: "PROPFIND".into(),
                reason: "the current-user-principal is not a URL".into(),
            })?;
        let (p_url, ms) =
            request_multistatus(http, "PROPFIND", &principal, "0", &body, "PROPFIND").await?;
        let p_props = own_props(&p_url, &ms);
        homes = p_props
            .calendar_home_set
            .iter()
            .filter_map(|h| resolve(&p_url, h))
            .collect();
        if homes.is_empty() {
            // Some servers keep the calendars right under the principal.
            homes.push(p_url);
        }
    }
    let mut calendars: Vec<Url> = Vec::new();
    for home in homes {
        let (h_url, ms) =
            request_multistatus(http, "PROPFIND", &home, "1", &body, "PROPFIND").await?;
        for response in &ms.responses {
            let Some(u) = resolve(&h_url, &response.href) else {
                continue;
            };
            let events = response
                .props
                .components
                .as_ref()
                .is_none_or(|c| c.iter().any(|n| n == "VEVENT"));
            if response.props.is_calendar && events && !calendars.iter().any(|c| same_url(c, &u)) {
                calendars.push(u);
            }
        }
    }
    if calendars.is_empty() {
        return Err(SourceError::NotACalendar {
            calendar: http.calendar().to_owned(),
            reason: "the account's calendar home holds no calendar of events".into(),
        });
    }
    Ok(calendars)
}

impl Collection {
    fn new(url: Url) -> Collection {
        Collection {
            url,
            marker: None,
            resources: BTreeMap::new(),
            last_full: None,
        }
    }

    /// Brings the collection up to date; whether its calendar texts changed.
    async fn update(
        &mut self,
        http: &Http,
        settings: &CalDavSettings,
        skipped: &mut u64,
    ) -> Result<bool, SourceError> {
        let due = self
            .last_full
            .is_none_or(|t| t.elapsed() >= settings.full_resync_every);
        match self.marker.clone() {
            Some(Marker::SyncToken(token)) if !due => match self.sync(http, token, skipped).await {
                Ok(changed) => Ok(changed),
                Err(SyncFailure::TokenRejected(status)) => {
                    tracing::info!(
                        calendar = %http.calendar(),
                        status,
                        "the server refused our sync token: reading the whole calendar again"
                    );
                    self.full(http, settings, skipped).await
                }
                Err(SyncFailure::Source(e)) => Err(e),
            },
            Some(Marker::CTag(ctag)) if !due => self.poll_ctag(http, settings, ctag, skipped).await,
            _ => self.full(http, settings, skipped).await,
        }
    }

    /// The sync token and ctag of the collection (asked before reading, so that a change made
    /// while we read is seen at the next poll).
    async fn markers(&self, http: &Http) -> Result<Props, SourceError> {
        let (url, ms) = request_multistatus(
            http,
            "PROPFIND",
            &self.url,
            "0",
            &dav::propfind_markers(),
            "PROPFIND",
        )
        .await?;
        Ok(own_props(&url, &ms))
    }

    fn window(settings: &CalDavSettings) -> (String, String) {
        let now = SystemTime::now();
        (
            ical_time(now - settings.window_before),
            ical_time(now + settings.window_after),
        )
    }

    /// Reads every event in the window (`calendar-query`, whole objects).
    async fn full(
        &mut self,
        http: &Http,
        settings: &CalDavSettings,
        skipped: &mut u64,
    ) -> Result<bool, SourceError> {
        let markers = self.markers(http).await?;
        let (start, end) = Self::window(settings);
        let (url, ms) = request_multistatus(
            http,
            "REPORT",
            &self.url,
            "1",
            &dav::calendar_query(&start, &end, true),
            "REPORT calendar-query",
        )
        .await?;
        let resources = read_resources(http, &url, &self.url, ms, skipped);
        let changed = texts_differ(&self.resources, &resources);
        tracing::debug!(
            calendar = %http.calendar(),
            resources = resources.len(),
            changed,
            "full read of a calendar collection"
        );
        self.resources = resources;
        self.marker = Some(match markers.sync_token {
            Some(token) if settings.sync_collection && !token.is_empty() => {
                Marker::SyncToken(token)
            }
            _ => Marker::CTag(markers.ctag),
        });
        self.last_full = Some(Instant::now());
        Ok(changed)
    }

    /// RFC 6578 incremental sync from `token`.
    async fn sync(
        &mut self,
        http: &Http,
        mut token: String,
        skipped: &mut u64,
    ) -> Result<bool, SyncFailure> {
        let mut changed = false;
        let mut to_fetch = BTreeMap::new();
        for _ in 0..MAX_SYNC_ROUNDS {
            let reply = http
                .send(
                    Method::from_bytes(b"REPORT").expect("token"),
                    &self.url,
                    &[("Depth", "0".to_owned())],
                    Some(&dav::sync_collection(&token)),
                )
                .await?;
            let status = reply.status.as_u16();
            if matches!(status, 403 | 409 | 412)
                || ((400..500).contains(&status) && reply.body.contains("valid-sync-token"))
            {
                return Err(SyncFailure::TokenRejected(status));
            }
            let reply = http.check(reply, "REPORT sync-collection")?;
            let (url, ms) = parse(http, reply, "REPORT sync-collection")?;
            let mut truncated = false;
            for response in &ms.responses {
                let Some(u) = resolve(&url, &response.href) else {
                    continue;
                };
                if same_url(&u, &self.url) {
                    truncated |= response.status == Some(507);
                    continue;
                }
                let key = key_of(&u);
                if response.status == Some(404) {
                    to_fetch.remove(&key);
                    changed |= self.resources.remove(&key).is_some();
                    continue;
                }
                let known = self.resources.get(&key).and_then(|r| r.etag.as_ref());
                if response.props.etag.is_none() || known != response.props.etag.as_ref() {
                    to_fetch.insert(key, u.path().to_owned());
                }
            }
            token = ms.sync_token.ok_or_else(|| SourceError::BadXml {
                calendar: http.calendar().to_owned(),
                request: "REPORT sync-collection".into(),
                reason: "no DAV:sync-token in the answer".into(),
            })?;
            if !truncated {
                break;
            }
        }
        self.marker = Some(Marker::SyncToken(token));
        changed |= self.multiget(http, to_fetch, skipped).await?;
        Ok(changed)
    }

    /// `getctag` first; when it moved (or the server has none), the ETags in the window are
    /// listed and the new or changed resources fetched.
    async fn poll_ctag(
        &mut self,
        http: &Http,
        settings: &CalDavSettings,
        previous: Option<String>,
        skipped: &mut u64,
    ) -> Result<bool, SourceError> {
        let markers = self.markers(http).await?;
        if markers.ctag.is_some() && markers.ctag == previous {
            return Ok(false);
        }
        let (start, end) = Self::window(settings);
        let (url, ms) = request_multistatus(
            http,
            "REPORT",
            &self.url,
            "1",
            &dav::calendar_query(&start, &end, false),
            "REPORT calendar-query",
        )
        .await?;
        let mut listed = BTreeMap::new();
        for response in ms.responses {
            let Some(u) = resolve(&url, &response.href) else {
                continue;
            };
            if !same_url(&u, &self.url) && response.status.is_none_or(|s| s < 300) {
                listed.insert(key_of(&u), (u.path().to_owned(), response.props.etag));
            }
        }
        let before = self.resources.len();
        self.resources.retain(|key, _| listed.contains_key(key));
        let mut changed = self.resources.len() != before;
        let to_fetch: BTreeMap<String, String> = listed
            .into_iter()
            .filter(|(key, (_, etag))| {
                etag.is_none()
                    || self.resources.get(key).and_then(|r| r.etag.as_ref()) != etag.as_ref()
            })
            .map(|(key, (href, _))| (key, href))
            .collect();
        changed |= self.multiget(http, to_fetch, skipped).await?;
        self.marker = Some(Marker::CTag(markers.ctag));
        Ok(changed)
    }

    /// Fetches resources (key → href as the server spelled it) with `calendar-multiget`;
    /// whether any text changed.
    async fn multiget(
        &mut self,
        http: &Http,
        wanted: BTreeMap<String, String>,
        skipped: &mut u64,
    ) -> Result<bool, SourceError> {
        let hrefs: Vec<String> = wanted.into_values().collect();
        let mut changed = false;
        for batch in hrefs.chunks(MULTIGET_BATCH) {
            let (url, ms) = request_multistatus(
                http,
                "REPORT",
                &self.url,
                "1",
                &dav::calendar_multiget(batch.iter().map(String::as_str)),
                "REPORT calendar-multiget",
            )
            .await?;
            for response in ms.responses {
                let Some(u) = resolve(&url, &response.href) else {
                    continue;
                };
                let key = key_of(&u);
                if response.status == Some(404) {
                    changed |= self.resources.remove(&key).is_some();
                    continue;
                }
                if let Some(resource) = accept(http, &u, response.props, skipped) {
                    let old = self.resources.insert(key, resource.clone());
                    changed |= old.is_none_or(|o| o.text != resource.text);
                }
            }
        }
        Ok(changed)
    }
}

/// The calendar resources of a `calendar-query` answer; the ones that are not iCalendar are
/// skipped and counted.
fn read_resources(
    http: &Http,
    url: &Url,
    collection: &Url,
    ms: Multistatus,
    skipped: &mut u64,
) -> BTreeMap<String, Resource> {
    let mut resources = BTreeMap::new();
    for response in ms.responses {
        let Some(u) = resolve(url, &response.href) else {
            continue;
        };
        if same_url(&u, collection) || response.status.is_some_and(|s| s >= 300) {
            continue;
        }
        if let Some(resource) = accept(http, &u, response.props, skipped) {
            resources.insert(key_of(&u), resource);
        }
    }
    resources
}

/// A resource's text if it is iCalendar; otherwise it is skipped, logged and counted (one bad
/// resource must not cost the others).
fn accept(http: &Http, url: &Url, props: Props, skipped: &mut u64) -> Option<Resource> {
    match props.calendar_data {
        Some(text) if is_icalendar(&text) => Some(Resource {
            etag: props.etag,
            text,
        }),
        other => {
            *skipped += 1;
            tracing::warn!(
                calendar = %http.calendar(),
                resource = %url.path(),
                reason = if other.is_some() { "not iCalendar" } else { "no calendar data" },
                "skipping a calendar resource"
            );
            None
        }
    }
}

fn texts_differ(a: &BTreeMap<String, Resource>, b: &BTreeMap<String, Resource>) -> bool {
    a.len() != b.len()
        || a.iter()
            .zip(b.iter())
            .any(|((ka, ra), (kb, rb))| ka != kb || ra.text != rb.text)
}

impl CalDav {
    pub fn new(base: Url, settings: CalDavSettings) -> CalDav {
        CalDav {
            base,
            settings,
            collections: None,
            reported: false,
            skipped: 0,
        }
    }

    pub async fn fetch(&mut self, http: &Http) -> Result<Fetched, SourceError> {
        if self.collections.is_none() {
            let found = discover(http, &self.base).await?;
            tracing::info!(
                calendar = %http.calendar(),
                collections = found.len(),
                "CalDAV calendars discovered"
            );
            self.collections = Some(found.into_iter().map(Collection::new).collect());
            self.reported = false;
        }
        let collections = self.collections.as_mut().expect("discovered above");
        let mut changed = !self.reported;
        let mut failure = None;
        for collection in collections.iter_mut() {
            match collection
                .update(http, &self.settings, &mut self.skipped)
                .await
            {
                Ok(c) => changed |= c,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            if matches!(e, SourceError::NotFound { .. }) {
                // The calendar went away or moved: discover again next time.
                self.collections = None;
            }
            return Err(e);
        }
        let collections = self.collections.as_ref().expect("discovered above");
        self.reported = true;
        if !changed {
            return Ok(Fetched::Unchanged);
        }
        let texts = collections
            .iter()
            .flat_map(|c| c.resources.values().map(|r| r.text.clone()))
            .collect();
        Ok(Fetched::Changed(texts))
    }

    /// How many calendar collections were found (0 before the first fetch).
    pub fn collections(&self) -> usize {
        self.collections.as_ref().map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HttpSettings;

    #[test]
    fn one_resource_spelled_two_ways_is_one_key() {
        let a = Url::parse("https://cal.example.org/cal/a%40b%20c.ics").unwrap();
        let b = Url::parse("https://cal.example.org/cal/a@b%20c.ics").unwrap();
        assert_eq!(key_of(&a), key_of(&b));
        assert_eq!(key_of(&a), "https://cal.example.org/cal/a@b c.ics");
        let other_port = Url::parse("https://cal.example.org:8443/cal/a@b%20c.ics").unwrap();
        assert_ne!(key_of(&a), key_of(&other_port));
    }

    #[test]
    fn a_resource_that_is_not_icalendar_costs_only_itself() {
        let http = Http::new(
            "CalDAV https://cal.example.org [0]".into(),
            crate::Auth::None,
            &HttpSettings {
                connect_timeout: Duration::from_secs(1),
                request_timeout: Duration::from_secs(1),
                body_limit: 1000,
                tls: None,
            },
        )
        .unwrap();
        let body = r#"<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
<d:response><d:href>/cal/</d:href><d:propstat><d:prop/><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>/cal/good.ics</d:href><d:propstat><d:prop><d:getetag>"1"</d:getetag><c:calendar-data>BEGIN:VCALENDAR
END:VCALENDAR</c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>/cal/broken.ics</d:href><d:propstat><d:prop><d:getetag>"2"</d:getetag><c:calendar-data>&lt;html&gt;oops</c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>/cal/empty.ics</d:href><d:propstat><d:prop><d:getetag>"3"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
</d:multistatus>"#;
        let ms = dav::parse_multistatus(body).unwrap();
        let base = Url::parse("https://cal.example.org/cal/").unwrap();
        let mut skipped = 0;
        let resources = read_resources(&http, &base, &base, ms, &mut skipped);
        assert_eq!(skipped, 2);
        assert_eq!(
            resources.keys().collect::<Vec<_>>(),
            vec!["https://cal.example.org/cal/good.ics"]
        );
        assert_eq!(
            resources.values().next().unwrap().etag.as_deref(),
            Some("\"1\"")
        );
    }
}
