//! Session folder store (STUB).
