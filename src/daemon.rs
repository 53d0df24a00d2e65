//! Daemon mode (STUB: owned by the daemon/status work item).
