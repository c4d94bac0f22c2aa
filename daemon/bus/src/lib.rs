//! The `org.visioroom.Room1` D-Bus API, shared by the daemon and its clients.
//!
//! This crate is the single place where the bus names, the error names, the wire types of the
//! properties and the client proxy are defined, so that `visio-roomd` (the service) and
//! `visio-roomctl` (a client) cannot drift apart. `docs/dbus-api.md` documents every member and a
//! test checks the daemon's introspection against it.
//!
//! It must not know about the room controller's internals, GStreamer or the network: it only
//! describes what travels on the bus.

#![warn(missing_docs)]

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use zbus::zvariant::{OwnedValue, Type, Value};

/// Well-known bus name of the service.
pub const BUS_NAME: &str = "org.visioroom.Room1";
/// Object path of the room.
pub const OBJECT_PATH: &str = "/org/visioroom/Room1";
/// Interface name of the room.
pub const INTERFACE: &str = "org.visioroom.Room1";
/// Prefix of every error name the service returns.
pub const ERROR_PREFIX: &str = "org.visioroom.Error";

/// A dictionary property (`a{sv}`), as used by `Meeting`, `Health` and `Media`.
pub type Dict = HashMap<String, OwnedValue>;

/// A remote participant as published in the `Participants` property (`a(ssbb)`).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    zbus::zvariant::Value,
    zbus::zvariant::OwnedValue,
)]
pub struct ParticipantInfo {
    /// LiveKit identity, stable for the connection.
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Whether the participant sends unmuted audio.
    pub audio: bool,
    /// Whether the participant sends unmuted video.
    pub video: bool,
}

/// An upcoming meeting as published in the `NextMeetings` property (`a(sxxsb)`).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    zbus::zvariant::Value,
    zbus::zvariant::OwnedValue,
)]
pub struct NextMeeting {
    /// Title (empty for private events).
    pub summary: String,
    /// Start, seconds since the Unix epoch.
    pub start: i64,
    /// End, seconds since the Unix epoch.
    pub end: i64,
    /// Meeting URL, empty when the event has no usable link.
    pub url: String,
    /// Whether the room will join it by itself.
    pub auto_join: bool,
}

/// Builds an `a{sv}` dictionary from string keys and values convertible to D-Bus values.
///
/// Values that cannot be owned (file descriptors) are skipped; none of our properties use them.
pub fn dict<'a, I, V>(entries: I) -> Dict
where
    I: IntoIterator<Item = (&'a str, V)>,
    V: Into<Value<'a>>,
{
    entries
        .into_iter()
        .filter_map(|(k, v)| {
            let value: Value<'a> = v.into();
            OwnedValue::try_from(value).ok().map(|v| (k.to_owned(), v))
        })
        .collect()
}

/// Converts a D-Bus value to JSON (for `visio-roomctl status --json` and `watch`).
pub fn value_to_json(value: &Value<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::U8(v) => J::from(*v),
        Value::Bool(v) => J::from(*v),
        Value::I16(v) => J::from(*v),
        Value::U16(v) => J::from(*v),
        Value::I32(v) => J::from(*v),
        Value::U32(v) => J::from(*v),
        Value::I64(v) => J::from(*v),
        Value::U64(v) => J::from(*v),
        Value::F64(v) => J::from(*v),
        Value::Str(v) => J::from(v.as_str()),
        Value::Signature(v) => J::from(v.to_string()),
        Value::ObjectPath(v) => J::from(v.as_str()),
        Value::Value(v) => value_to_json(v),
        Value::Array(a) => J::Array(a.iter().map(value_to_json).collect()),
        Value::Dict(d) => {
            let mut map = serde_json::Map::new();
            for (k, v) in d.iter() {
                let key = match value_to_json(k) {
                    J::String(s) => s,
                    other => other.to_string(),
                };
                map.insert(key, value_to_json(v));
            }
            J::Object(map)
        }
        Value::Structure(s) => J::Array(s.fields().iter().map(value_to_json).collect()),
        #[allow(unreachable_patterns)]
        _ => J::Null,
    }
}

/// Converts an `a{sv}` dictionary to a JSON object.
pub fn dict_to_json(dict: &Dict) -> serde_json::Value {
    let mut keys: Vec<_> = dict.keys().collect();
    keys.sort();
    let map = keys
        .into_iter()
        .map(|k| (k.clone(), value_to_json(&dict[k])))
        .collect();
    serde_json::Value::Object(map)
}

pub use proxy::*;

/// The client proxy, in a module of its own: the types and methods zbus generates for it carry
/// no docs, so `missing_docs` is allowed here only.
#[allow(missing_docs)]
mod proxy {
    use super::{Dict, NextMeeting, ParticipantInfo};

    /// Client proxy of the room (used by `visio-roomctl` and by tests).
    #[zbus::proxy(
        interface = "org.visioroom.Room1",
        default_service = "org.visioroom.Room1",
        default_path = "/org/visioroom/Room1"
    )]
    pub trait Room {
        /// Join the meeting at `url`.
        fn join(&self, url: &str) -> zbus::Result<()>;
        /// Leave the current meeting.
        fn leave(&self) -> zbus::Result<()>;
        /// Mute or unmute the microphone.
        fn set_mic_muted(&self, muted: bool) -> zbus::Result<()>;
        /// Turn the camera on or off.
        fn set_camera_enabled(&self, enabled: bool) -> zbus::Result<()>;
        /// Set the speaker volume in percent.
        fn set_volume(&self, percent: u32) -> zbus::Result<()>;

        /// The room's state.
        #[zbus(property)]
        fn state(&self) -> zbus::Result<String>;
        /// The current meeting (`url`, `source`), empty when idle.
        #[zbus(property)]
        fn meeting(&self) -> zbus::Result<Dict>;
        /// Whether the microphone is muted.
        #[zbus(property)]
        fn mic_muted(&self) -> zbus::Result<bool>;
        /// Whether the camera is on.
        #[zbus(property)]
        fn camera_enabled(&self) -> zbus::Result<bool>;
        /// Speaker volume in percent.
        #[zbus(property)]
        fn volume(&self) -> zbus::Result<u32>;
        /// Remote participants of the current meeting.
        #[zbus(property)]
        fn participants(&self) -> zbus::Result<Vec<ParticipantInfo>>;
        /// Upcoming meetings from the room's calendar.
        #[zbus(property)]
        fn next_meetings(&self) -> zbus::Result<Vec<NextMeeting>>;
        /// Health of the appliance.
        #[zbus(property)]
        fn health(&self) -> zbus::Result<Dict>;
        /// What media the room sends and receives.
        #[zbus(property)]
        fn media(&self) -> zbus::Result<Dict>;
        /// Version of the daemon.
        #[zbus(property)]
        fn version(&self) -> zbus::Result<String>;

        /// A failure the room reported (`kind`, `message`).
        #[zbus(signal)]
        fn error(&self, kind: &str, message: &str) -> zbus::Result<()>;
        /// A physical button was pressed.
        #[zbus(signal)]
        fn button_pressed(&self, button: &str) -> zbus::Result<()>;
        /// A booked meeting started while the room is in a call started by hand.
        #[zbus(signal)]
        fn meeting_offered(&self, url: &str, summary: &str, start: i64) -> zbus::Result<()>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionaries_convert_to_json_objects() {
        let d = dict([
            ("url", Value::from("https://h/abc")),
            ("n", Value::from(3u32)),
        ]);
        let json = dict_to_json(&d);
        assert_eq!(json["url"], "https://h/abc");
        assert_eq!(json["n"], 3);
    }

    #[test]
    fn participant_has_the_documented_signature() {
        assert_eq!(ParticipantInfo::SIGNATURE.to_string(), "(ssbb)");
        assert_eq!(NextMeeting::SIGNATURE.to_string(), "(sxxsb)");
    }
}
