//! `[room]`: the room itself.

use super::keys::{checked, section, Flag};

section! {
    /// `[room]`: the room itself.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RoomConfig in "room" {
        /// The name shown to other participants.
        name: String = "Visio Room".into()
            => checked("the room's name, 1 to 64 printable characters", room_name),
        /// Whether each meeting starts with the microphone muted.
        join_muted: bool = false => Flag,
    }
}

/// The name, without the spaces around it.
fn room_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err("expected the room's name, 1 to 64 printable characters".into());
    }
    Ok(name.to_owned())
}
