//! woci_manager.ini (STUB: types fixed, implementation owned by the config work item).
use crate::error::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the manager INI path came from; decides whether an unreadable file is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--manager-config`: unreadable → config error.
    Flag,
    /// `WOCI_MANAGER_CONFIG`: unreadable → config error.
    Env,
    /// `woci_manager.ini` beside the OCI config file: unreadable → ignored.
    BesideOciConfig,
    /// `~/.oci/woci_manager.ini`: unreadable → ignored.
    Home,
}

/// The selected profile's keys: `[COMMON]` with the profile's section merged over it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagerConfig {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// Whether the profile had its own section.
    pub has_profile_section: bool,
    /// Merged keys (lowercase).
    pub values: BTreeMap<String, String>,
}

impl ManagerConfig {
    /// A key's value, if set and non-empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|v| !v.trim().is_empty())
    }
}

/// Finds the manager INI by precedence: flag > env > beside the OCI config > `~/.oci/`.
pub fn locate(_flag: Option<&Path>, _env: Option<&Path>, _oci_config_file: &Path, _home: &Path) -> Option<(PathBuf, Source)> {
    unimplemented!("manager_config::locate")
}

/// Loads the merged section for `profile`.
pub fn load(_path: &Path, _source: Source, _profile: &str) -> Result<ManagerConfig> {
    unimplemented!("manager_config::load")
}
