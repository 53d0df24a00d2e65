//! Logging setup (STUB).
