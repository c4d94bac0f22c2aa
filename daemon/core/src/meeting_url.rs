//! Meeting URLs (placeholder)
