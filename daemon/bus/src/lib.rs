//! D-Bus API
