//! `[room]`: the room itself.

use toml::de::DeTable;

use super::reader::Reader;
use super::{keys_of, ConfigError};

/// `[room]`: the room itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    /// The name shown to other participants.
    pub name: String,
    /// Whether each meeting starts with the microphone muted.
    pub join_muted: bool,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            name: "Visio Room".into(),
            join_muted: false,
        }
    }
}

impl Reader<'_> {
    pub(super) fn room(&self, t: &DeTable<'_>, room: &mut RoomConfig) -> Result<(), ConfigError> {
        self.check_keys(t, Some("room"), keys_of("room"))?;
        if let Some((name, span)) = self.string(t, "room", "name")? {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
                return Err(self.error(
                    Some(span),
                    Some("room.name"),
                    "expected the room's name, 1 to 64 printable characters",
                ));
            }
            room.name = name;
        }
        if let Some(v) = self.boolean(t, "room", "join_muted")? {
            room.join_muted = v;
        }
        Ok(())
    }
}
