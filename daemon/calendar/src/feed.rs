//! Local `.ics` files and ICS/webcal feeds: one iCalendar text per source.

use std::path::PathBuf;
use std::time::SystemTime;

use reqwest::Method;
use url::Url;

use crate::error::SourceError;
use crate::http::Http;
use crate::Fetched;

/// Whether a text is an iCalendar object (after a BOM and blank lines).
pub(crate) fn is_icalendar(text: &str) -> bool {
    let start = text.trim_start_matches('\u{feff}').trim_start();
    start
        .get(..15)
        .is_some_and(|head| head.eq_ignore_ascii_case("BEGIN:VCALENDAR"))
}

/// What a non-calendar text looked like, for the error (no more than its first characters).
pub(crate) fn glimpse(text: &str) -> String {
    let head: String = text.trim_start().chars().take(40).collect();
    format!("it starts with {:?}", head.replace(['\r', '\n'], " "))
}

/// A local file, re-read when its modification time or size changes.
pub(crate) struct FileFeed {
    pub path: PathBuf,
    seen: Option<(Option<SystemTime>, u64)>,
}

impl FileFeed {
    pub fn new(path: PathBuf) -> FileFeed {
        FileFeed { path, seen: None }
    }

    pub async fn fetch(&mut self, calendar: &str) -> Result<Fetched, SourceError> {
        let io = |e: std::io::Error| SourceError::File {
            calendar: calendar.to_owned(),
            reason: e.to_string(),
        };
        // A small local file: read on the blocking pool, stamp and text together.
        let path = self.path.clone();
        let seen = self.seen;
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let meta = std::fs::metadata(&path)?;
            let stamp = (meta.modified().ok(), meta.len());
            if seen == Some(stamp) {
                return Ok((stamp, None));
            }
            Ok((stamp, Some(std::fs::read(&path)?)))
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?;
        let (stamp, bytes) = read.map_err(io)?;
        let Some(bytes) = bytes else {
            return Ok(Fetched::Unchanged);
        };
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim_start_matches('\u{feff}').to_owned();
        if !is_icalendar(&text) {
            return Err(SourceError::NotICalendar {
                calendar: calendar.to_owned(),
                found: glimpse(&text),
            });
        }
        self.seen = Some(stamp);
        Ok(Fetched::Changed(vec![text]))
    }
}

/// An ICS feed read with conditional GETs (`If-None-Match`, `If-Modified-Since`).
pub(crate) struct IcsFeed {
    url: Url,
    etag: Option<String>,
    last_modified: Option<String>,
    last_text: Option<String>,
}

impl IcsFeed {
    pub fn new(url: Url) -> IcsFeed {
        IcsFeed {
            url,
            etag: None,
            last_modified: None,
            last_text: None,
        }
    }

    pub async fn fetch(&mut self, http: &Http) -> Result<Fetched, SourceError> {
        let mut headers = vec![("Accept", "text/calendar, */*;q=0.5".to_owned())];
        if self.last_text.is_some() {
            if let Some(etag) = &self.etag {
                headers.push(("If-None-Match", etag.clone()));
            }
            if let Some(date) = &self.last_modified {
                headers.push(("If-Modified-Since", date.clone()));
            }
        }
        let reply = http.send(Method::GET, &self.url, &headers, None).await?;
        if reply.status == reqwest::StatusCode::NOT_MODIFIED && self.last_text.is_some() {
            tracing::debug!(calendar = %http.calendar(), "feed not modified (304)");
            return Ok(Fetched::Unchanged);
        }
        let reply = http.check(reply, "GET")?;
        if !is_icalendar(&reply.body) {
            let kind = reply
                .header("content-type")
                .unwrap_or_else(|| "no content type".into());
            return Err(SourceError::NotICalendar {
                calendar: http.calendar().to_owned(),
                found: format!("{kind}; {}", glimpse(&reply.body)),
            });
        }
        self.etag = reply.header("etag");
        self.last_modified = reply.header("last-modified");
        // A server without validators (or one that ignores them, like Radicale) sends the same
        // text again: that is no change either.
        if self.last_text.as_deref() == Some(reply.body.as_str()) {
            tracing::debug!(calendar = %http.calendar(), "feed unchanged (same content)");
            return Ok(Fetched::Unchanged);
        }
        self.last_text = Some(reply.body.clone());
        Ok(Fetched::Changed(vec![reply.body]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_icalendar_text() {
        assert!(is_icalendar("\u{feff}\r\nbegin:vcalendar\r\n"));
        assert!(!is_icalendar("<!DOCTYPE html><html>"));
        assert!(!is_icalendar("BEGIN:VCARD"));
        assert!(!is_icalendar(""));
        assert!(!is_icalendar("ééééééééééééééééé"));
    }
}
