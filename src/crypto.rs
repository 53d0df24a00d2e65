//! Refresh token encryption at rest (STUB: owned by the daemon/status work item).
