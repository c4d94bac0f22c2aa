//! `[visio]`: which service the room may join, and where its media server may be.

use super::keys::{optional, section, HostList, Rule};
use super::reader::{Item, Reader};
use super::ConfigError;
use crate::meeting_url::{AllowedHosts, MeetingUrl};

section! {
    /// `[visio]`: which service the room may join.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct VisioConfig in "visio" {
        /// Hosts (with optional port) whose meetings may be joined, in canonical form
        /// (`visio.numerique.gouv.fr`, `127.0.0.1:7880`, `[::1]:7880`). Never empty once loaded.
        allowed_hosts: Vec<String> = vec!["visio.numerique.gouv.fr".into()]
            => HostList { if_empty: "no meeting could be joined" },
        /// Hosts the meetings' media server (LiveKit) may be on, in canonical form. `None` (the
        /// default): the media server that an allowed meeting host announces (over verified
        /// TLS) is used. See `docs/meeting-urls.md`.
        media_hosts: Option<Vec<String>> = None
            => optional(HostList { if_empty: "no meeting's media server would be allowed" }),
        /// What the Join button joins when no meeting is planned, validated against
        /// `allowed_hosts`.
        default_meeting: Option<MeetingUrl> = None => optional(MeetingLink),
    }
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

/// A meeting link on one of the `allowed_hosts` read before it, normalised.
struct MeetingLink;

impl Rule<VisioConfig> for MeetingLink {
    type Value = MeetingUrl;

    fn toml_type(&self) -> &'static str {
        "string"
    }

    fn expected(&self) -> String {
        "a meeting URL on one of allowed_hosts, such as \"https://visio.numerique.gouv.fr/abc-defg-hij\""
            .into()
    }

    fn read(
        &self,
        r: &Reader<'_>,
        item: &Item<'_>,
        key: &str,
        visio: &VisioConfig,
    ) -> Result<MeetingUrl, ConfigError> {
        let text = item
            .get_ref()
            .as_str()
            .ok_or_else(|| r.type_error(item, key, "a string"))?;
        MeetingUrl::parse(text, &visio.allow_list())
            .map_err(|e| r.error(Some(item.span()), Some(key), &e.to_string()))
    }

    fn to_toml(&self, value: &MeetingUrl) -> Option<toml::Value> {
        Some(toml::Value::String(value.to_string()))
    }
}
