//! Session status report (STUB: owned by the daemon/status work item).
