//! The re-signing proxy (STUB: owned by the proxy work item).
