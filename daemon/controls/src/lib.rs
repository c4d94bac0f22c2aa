//! The room's physical controls and devices (work in progress: see issue #12).
