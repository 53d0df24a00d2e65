//! ~/.oci/config read and upsert (STUB: owned by the config work item).
