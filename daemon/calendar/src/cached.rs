//! A source and its cache together, the way the daemon runs one: the cached calendar is
//! available before the first fetch (offline boot), every good fetch updates the cache (a
//! change is stored, "unchanged" only re-dates it), failures are counted for back-off and
//! `Health`, and the calendar texts are always the last good ones.

use std::time::{Duration, SystemTime};

use crate::cache::Cache;
use crate::error::SourceError;
use crate::{Fetched, Source};

/// What a poll brought.
#[derive(Debug)]
pub enum PollOutcome {
    /// New texts (see [`CachedSource::texts`]): re-plan.
    Changed,
    /// The source confirmed the calendar has not changed.
    Unchanged,
    /// The source could not be read; the last good texts stay in use.
    Failed(SourceError),
}

/// A [`Source`] with its [`Cache`] entry and its health.
#[derive(Debug)]
pub struct CachedSource {
    source: Source,
    cache: Cache,
    texts: Vec<String>,
    fetched_at: Option<SystemTime>,
    failures: u32,
    last_error: Option<String>,
}

impl CachedSource {
    /// Wraps `source`, loading its cached calendar (if any) so it can be used at once.
    pub fn new(source: Source, cache: Cache) -> CachedSource {
        let cached = cache.load(source.spec());
        if let Some(c) = &cached {
            tracing::info!(
                calendar = %source.describe(),
                texts = c.texts.len(),
                age_s = SystemTime::now()
                    .duration_since(c.fetched_at)
                    .unwrap_or_default()
                    .as_secs(),
                "using the cached calendar until the source answers"
            );
        }
        let (texts, fetched_at) = match cached {
            Some(c) => (c.texts, Some(c.fetched_at)),
            None => (Vec::new(), None),
        };
        CachedSource {
            source,
            cache,
            texts,
            fetched_at,
            failures: 0,
            last_error: None,
        }
    }

    /// Fetches the source and updates the cache. A cache that cannot be written is logged,
    /// not fatal: the room keeps working from memory.
    pub async fn poll(&mut self) -> PollOutcome {
        match self.source.fetch().await {
            Ok(fetched) => {
                let now = SystemTime::now();
                if self.failures > 0 {
                    tracing::info!(
                        calendar = %self.source.describe(),
                        failures = self.failures,
                        "calendar source reachable again"
                    );
                }
                self.failures = 0;
                self.last_error = None;
                self.fetched_at = Some(now);
                let (outcome, stored) = match fetched {
                    Fetched::Changed(texts) => {
                        self.texts = texts;
                        let stored = self.cache.store(self.source.spec(), &self.texts, now);
                        (PollOutcome::Changed, stored)
                    }
                    Fetched::Unchanged => (
                        PollOutcome::Unchanged,
                        self.cache.touch(self.source.spec(), now),
                    ),
                };
                if let Err(error) = stored {
                    tracing::warn!(%error, "calendar cache not updated");
                }
                outcome
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                // Said once per outage (and when the reason changes), not at every poll.
                let text = error.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(
                        %error,
                        last_good_age_s = self.age().map(|a| a.as_secs()),
                        "calendar source failed; keeping the last good calendar"
                    );
                }
                self.last_error = Some(text);
                PollOutcome::Failed(error)
            }
        }
    }

    /// The last good calendar texts (from the source, or from the cache before it answered).
    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// When the texts were last confirmed by the source (`None`: never, not even in cache).
    pub fn fetched_at(&self) -> Option<SystemTime> {
        self.fetched_at
    }

    /// How old the texts are (`None` when there are none).
    pub fn age(&self) -> Option<Duration> {
        self.fetched_at
            .map(|t| SystemTime::now().duration_since(t).unwrap_or_default())
    }

    /// Polls failed in a row since the last good one.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// The last failure's message (for `Health`), cleared by a good poll.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The source.
    pub fn source(&self) -> &Source {
        &self.source
    }
}
