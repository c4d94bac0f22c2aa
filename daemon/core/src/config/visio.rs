//! `[visio]`: which service the room may join, and where its media server may be.

use toml::de::DeTable;

use super::reader::Reader;
use super::{keys_of, ConfigError};
use crate::meeting_url::{AllowedHosts, MeetingUrl};

/// `[visio]`: which service the room may join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisioConfig {
    /// Hosts (with optional port) whose meetings may be joined, in canonical form
    /// (`visio.numerique.gouv.fr`, `127.0.0.1:7880`, `[::1]:7880`). Never empty once loaded.
    pub allowed_hosts: Vec<String>,
    /// What the Join button joins when no meeting is planned, validated against
    /// `allowed_hosts`.
    pub default_meeting: Option<MeetingUrl>,
    /// Hosts the meetings' media server (LiveKit) may be on, in canonical form. `None` (the
    /// default): the media server that an allowed meeting host announces (over verified TLS)
    /// is used. See `docs/meeting-urls.md`.
    pub media_hosts: Option<Vec<String>>,
}

impl VisioConfig {
    /// The allow-list that meeting URLs are checked against ([`MeetingUrl::parse`]).
    pub fn allow_list(&self) -> AllowedHosts {
        // Loading validated every entry; a hand-built value falls back to allowing nothing.
        AllowedHosts::parse(&self.allowed_hosts).unwrap_or_default()
    }

    /// The media-server restriction, if the configuration sets one.
    pub fn media_host_list(&self) -> Option<AllowedHosts> {
        self.media_hosts
            .as_ref()
            .map(|h| AllowedHosts::parse(h).unwrap_or_default())
    }
}

impl Default for VisioConfig {
    fn default() -> Self {
        VisioConfig {
            allowed_hosts: vec!["visio.numerique.gouv.fr".into()],
            default_meeting: None,
            media_hosts: None,
        }
    }
}

impl Reader<'_> {
    pub(super) fn visio(
        &self,
        t: &DeTable<'_>,
        visio: &mut VisioConfig,
    ) -> Result<(), ConfigError> {
        self.check_keys(t, Some("visio"), keys_of("visio"))?;
        if let Some(hosts) = self.host_list(t, "allowed_hosts", "no meeting could be joined")? {
            visio.allowed_hosts = hosts;
        }
        if let Some(hosts) = self.host_list(
            t,
            "media_hosts",
            "no meeting's media server would be allowed",
        )? {
            visio.media_hosts = Some(hosts);
        }
        if let Some((url, span)) = self.string(t, "visio", "default_meeting")? {
            let url = MeetingUrl::parse(&url, &visio.allow_list()).map_err(|e| {
                self.error(Some(span), Some("visio.default_meeting"), &e.to_string())
            })?;
            visio.default_meeting = Some(url);
        }
        Ok(())
    }

    /// `visio.<key>`: a non-empty list of hosts, each checked on its own (so that the error
    /// points at the wrong one), in canonical form.
    fn host_list(
        &self,
        t: &DeTable<'_>,
        key: &str,
        if_empty: &str,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        let name = format!("visio.{key}");
        let Some((hosts, span)) = self.strings(t, "visio", key)? else {
            return Ok(None);
        };
        if hosts.is_empty() {
            return Err(self.error(
                Some(span),
                Some(name.as_str()),
                &format!("the list is empty, so {if_empty}; expected hosts such as [\"visio.numerique.gouv.fr\"]"),
            ));
        }
        let mut canonical = Vec::with_capacity(hosts.len());
        for (host, span) in &hosts {
            let parsed = AllowedHosts::parse(&[host])
                .map_err(|e| self.error(Some(span.clone()), Some(name.as_str()), &e.to_string()))?;
            canonical.extend(parsed.entries());
        }
        Ok(Some(canonical))
    }
}
