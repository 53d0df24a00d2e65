//! Command line splitting (STUB: owned by the config work item).
