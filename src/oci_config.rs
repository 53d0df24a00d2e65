//! ~/.oci/config (STUB: signatures fixed, implementation owned by the config work item).
use crate::error::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// A profile's keys as `oci` sees them (the `[DEFAULT]` section's keys under the profile's own).
pub fn read_profile(_path: &Path, _profile: &str) -> Result<Option<BTreeMap<String, String>>> {
    unimplemented!("oci_config::read_profile")
}

/// Sets `entries` in `[profile]` (creating the file/section if needed), keeping every other line,
/// comment, key and profile as it was; atomic write, mode 0600.
pub fn upsert_profile(_path: &Path, _profile: &str, _entries: &[(&str, &str)]) -> Result<()> {
    unimplemented!("oci_config::upsert_profile")
}
