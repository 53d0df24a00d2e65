//! OCI HTTP request signatures (STUB: owned by the proxy work item).
