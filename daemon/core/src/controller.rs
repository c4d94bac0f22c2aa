//! Controller (placeholder)
