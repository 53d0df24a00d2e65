//! woci_manager.ini (STUB: owned by the config work item).
