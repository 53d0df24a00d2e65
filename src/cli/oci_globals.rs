//! `oci`'s own global options (the ones allowed before the first oci word), as one table, and
//! the "did you mean" suggestion for an option that is neither woci's nor oci's.
//!
//! The table mirrors `oci --help` of the pinned oci-cli (3.95.1); `tests/dropin.rs`
//! (`oci_global_options_table_matches_oci_help`) checks it against the real CLI's output, so a
//! new oci version that adds a global option fails that test instead of being refused here.

/// One global option of `oci`: every spelling, whether it takes a value, and the words it takes
/// if `oci` lists them (`--output [json|table]`, for completions).
#[derive(Debug, Clone, Copy)]
pub struct OciGlobal {
    /// All names, with their dashes (`--cli-rc-file`, `--defaults-file`).
    pub names: &'static [&'static str],
    /// Takes a value (`--profile P`); flags do not.
    pub value: bool,
    /// The values `oci --help` lists; empty for any value.
    pub choices: &'static [&'static str],
}

const fn g(names: &'static [&'static str], value: bool) -> OciGlobal {
    OciGlobal { names, value, choices: &[] }
}

const fn one_of(names: &'static [&'static str], choices: &'static [&'static str]) -> OciGlobal {
    OciGlobal { names, value: true, choices }
}

/// `oci --help`'s "Options" section, in its order.
pub const OCI_GLOBALS: &[OciGlobal] = &[
    g(&["-v", "--version"], false),
    g(&["--release-info"], false),
    g(&["--latest-version"], false),
    g(&["--config-file"], true),
    g(&["--profile"], true),
    g(&["--cli-rc-file", "--defaults-file"], true),
    g(&["--opc-request-id", "--opc-client-request-id", "--request-id"], true),
    g(&["--region"], true),
    g(&["--endpoint"], true),
    g(&["--realm-specific-endpoint"], false),
    g(&["--connection-timeout"], true),
    g(&["--enable-dual-stack"], false),
    g(&["--federation-endpoint"], true),
    g(&["--read-timeout"], true),
    g(&["--cert-bundle"], true),
    one_of(&["--output"], &["json", "table"]),
    g(&["--query"], true),
    g(&["--raw-output"], false),
    one_of(
        &["--auth"],
        &[
            "api_key",
            "instance_principal",
            "security_token",
            "instance_obo_user",
            "resource_principal",
            "oke_workload_identity",
            "pkcs11",
        ],
    ),
    g(&["--auth-purpose"], true),
    g(&["--generate-full-command-json-input"], false),
    g(&["--generate-param-json-input"], true),
    g(&["--proxy"], true),
    g(&["--no-retry"], false),
    g(&["--max-retries"], true),
    g(&["-d", "--debug"], false),
    g(&["-i", "--cli-auto-prompt"], false),
    g(&["-?", "-h", "--help"], false),
    one_of(&["--enable-propagation"], &["True", "False"]),
];

/// The global option named `name` (with dashes), if oci has one.
pub fn find(name: &str) -> Option<&'static OciGlobal> {
    OCI_GLOBALS.iter().find(|o| o.names.contains(&name))
}

/// Whether `name` is an oci global option that takes a value.
pub fn takes_value(name: &str) -> bool {
    find(name).is_some_and(|o| o.value)
}

/// The closest known name to `unknown` among `candidates`, when close enough to be a typo
/// (Jaro-Winkler ≥ 0.8, the threshold clap and cargo use), scored without the dashes every
/// option shares: `--file` is no `--profile`.
pub fn suggest<'a>(unknown: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let bare = |s: &str| s.trim_start_matches('-').to_owned();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&bare(unknown), &bare(c)), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert!(takes_value("--profile") && takes_value("--defaults-file") && takes_value("--enable-propagation"));
        assert!(!takes_value("--no-retry") && !takes_value("-d") && !takes_value("--no-such"));
        assert!(find("-?").is_some() && find("--auth-purpose").is_some() && find("--auto-refresh").is_none());
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let names = ["--auto-refresh", "--profile", "--region"];
        assert_eq!(suggest("--auto-refesh", names), Some("--auto-refresh"));
        assert_eq!(suggest("--profle", names), Some("--profile"));
        assert_eq!(suggest("--zzz-qqq", names), None);
        // An option of an oci command put before the command: not a typo of `--profile`.
        assert_eq!(suggest("--file", names), None);
    }
}
