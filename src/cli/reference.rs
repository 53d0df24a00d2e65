//! The reference tables shown twice: exit codes, environment variables and files. The man page's
//! SETTINGS, EXIT STATUS, ENVIRONMENT and FILES sections are rendered from them and from the
//! settings table ([`man_sections`]), and a test checks that the README holds the same tables
//! ([`markdown`]), so the two cannot drift. The variables of woci's settings come from the
//! settings table ([`crate::settings::table`]); only the others are listed here.
//!
//! Text is Markdown-flavoured: `backticks` become bold in the man page.

use crate::settings::table::SETTINGS;
use std::borrow::Cow;

/// One row: the key (exit code, variable, path) and what it means.
#[derive(Debug, Clone)]
pub struct Row {
    /// Code, variable name(s) or path, as shown (variables and paths in backticks).
    pub key: Cow<'static, str>,
    /// One line.
    pub meaning: Cow<'static, str>,
}

const fn r(key: &'static str, meaning: &'static str) -> Row {
    Row { key: Cow::Borrowed(key), meaning: Cow::Borrowed(meaning) }
}

/// Every environment variable woci reads: its settings' (from the settings table), then the rest.
pub fn environment() -> Vec<Row> {
    SETTINGS
        .iter()
        .filter_map(|d| {
            let var = d.env?;
            let ini = if d.ini { format!(" (INI `{}`)", d.name) } else { String::new() };
            Some(Row { key: format!("`{var}`").into(), meaning: format!("{}{ini}", d.help).into() })
        })
        .chain(ENVIRONMENT.iter().cloned())
        .collect()
}

/// The settings of `woci_manager.ini`, one row each (flag, variable, default), from the table.
pub fn settings() -> Vec<Row> {
    SETTINGS
        .iter()
        .filter(|d| d.ini)
        .map(|d| {
            let default = Some(d.shown_default()).filter(|s| !s.is_empty()).map(|s| format!("default {s}"));
            let also: Vec<String> =
                [d.flag.map(|f| format!("`--{}`", f.long)), d.env.map(|e| format!("`{e}`")), default]
                    .into_iter()
                    .flatten()
                    .collect();
            let also = if also.is_empty() { String::new() } else { format!(" ({})", also.join(", ")) };
            Row { key: format!("`{}`", d.name).into(), meaning: format!("{}{also}", d.help).into() }
        })
        .collect()
}

/// Exit codes of woci's own failures (when `oci` runs, its exit code is woci's).
pub const EXIT_CODES: &[Row] = &[
    r("1", "other failure (I/O; a session folder that cannot be written into, `--status` says ahead; `woci session refresh` or `authenticate` whose new refresh token could be stored nowhere: the session works until its token expires, then needs a login)"),
    r(
        "2",
        "bad command line or configuration (missing keys, bad URL, unknown option or option value such as \
         `--log-level LOUD`, a `key_file` the config names but that does not exist (other than the key woci \
         made in the session folder, which it makes again) or is a folder, a session folder, lock file, pid \
         or daemon state file that is a symlink or not a regular file, a `~/.oci` or \
         manager INI others can write (every user, or a group with other members), an OCI config of a session woci renews that is another user's or others can write, a `refresh_token_passphrase_env` variable that is not set, a variable woci reads whose value is not UTF-8 text, no new passphrase typed at its \
         prompt, a session from a woci login whose profile has no IdP settings any more: its section removed, \
         or met while an editor saves the file)",
    ),
    r(
        "3",
        "login needed but impossible (no terminal / timed out / the IdP returned `error=` / a device login was \
         denied or its code expired)",
    ),
    r(
        "4",
        "the IdP rejected the client, the scope, the request or the grant, a login's code too (a refresh token's `invalid_grant` falls back \
         to a login instead: exit 3 where none can be made)",
    ),
    r("5", "the token exchange was rejected (also a subject token the identity domain refused)"),
    r(
        "6",
        "network or protocol failure (after retries; also a rate limit, HTTP 429, or `temporarily_unavailable` or \
         `server_error` at any status; a server certificate woci does not trust, or a TLS setup it cannot use (no \
         version in common, a client certificate asked for), at once, naming the fix; your HTTPS proxy refusing its \
         credentials (407) at once, naming the proxy variable; a device-code answer whose verification URI is \
         neither https nor a loopback http one)",
    ),
    r(
        "7",
        "a corrupt or unusable file: token, key (also: not RSA, or under 2048 bits — checked before any request), \
         refresh token or `~/.oci/config` (also: a `[profile]` section twice, over 1 MiB, a folder where the \
         file belongs, one this user cannot read) (left untouched)",
    ),
    r("8", "the refresh token is encrypted and no passphrase source is configured, or the passphrase is wrong (or none was typed at its prompt)"),
    r("9", "the session cannot be renewed any more: `sess_exp` reached, or (a profile without an IdP) its token expired, which OCI does not refresh; log in again"),
    r("10", "busy: a daemon already runs for the profile (or a Python woci daemon still does); or another woci kept renewing it past the wait (`login_timeout` + 60 s, 6 minutes by default; its pid is named; a call waiting for a renewal that ends gets that renewal's result); or (Linux) that woci is stopped with Ctrl-Z, which a call sees within about 15 s and `--status` at once; or `redirect_port` stays held by another profile's login past `login_timeout` + 30 s, or (Linux) by a stopped process"),
    r(
        "11",
        "`subject_token_source` gave no usable JWT: variable unset or empty; file missing, empty, over 1 MiB, a \
         folder or not a regular file; command failed, timed out or printed over 1 MiB; what it holds is not one \
         JWT alone (a banner line, a byte-order mark, JSON, quotes), nothing sent; ID-token service refused or not \
         https; JWT expired (the message names which)",
    ),
    r("126 / 127", "the `oci` program is not executable / not found (or only woci itself was found as `oci`)"),
];

/// Environment variables woci reads or sets besides its settings' (those are in the settings table).
pub const ENVIRONMENT: &[Row] = &[
    r(
        "`WOCI_ACTIVE`",
        "set by woci (to its pid and the program) for each `oci` it runs; a woci started with it set refuses to run `oci` again, \
         so an `oci_command` that leads back to woci fails at once instead of looping",
    ),
    r("`BROWSER`", "command that opens the login URL (with a device code: the verification URL); as `oci` reads it: a `:`-separated list tried in order, `%s` in a command line for the URL"),
    r(
        "`SSH_CONNECTION`, `SSH_TTY`, `DISPLAY`, `WAYLAND_DISPLAY`",
        "read to decide whether a browser can be opened here (else a device-code login)",
    ),
    r(
        "`ACTIONS_ID_TOKEN_REQUEST_URL`, `ACTIONS_ID_TOKEN_REQUEST_TOKEN`",
        "read by `subject_token_source = github-actions` (set by GitHub for jobs with `id-token: write`)",
    ),
    r("`RUST_LOG`", "log filter (overrides `--log-level`)"),
    r(
        "`OCI_CLI_PROFILE`, `OCI_CLI_CONFIG_FILE`, `OCI_CLI_REGION`, `OCI_CLI_AUTH`, `OCI_CLI_ENDPOINT`, \
         `OCI_CLI_CERT_BUNDLE`, `OCI_CLI_RC_FILE`",
        "read as `oci` reads them; what woci runs gets them unchanged, except: an `--exec` program gets \
         `OCI_CLI_PROFILE`, `OCI_CLI_AUTH=security_token` and `OCI_CLI_CONFIG_FILE` where they are not set (a \
         `--profile` or `--config-file` given to woci wins; a fallback profile replaces `OCI_CLI_PROFILE`), and a \
         program behind the proxy gets `OCI_CLI_CERT_BUNDLE` naming a bundle of the proxy's CA and yours",
    ),
    r(
        "`OCI_CONFIG_FILE`",
        "the OCI config when `~/.oci/config` is not a file and neither `--config-file` nor `OCI_CLI_CONFIG_FILE` \
         names one (then `~/.oraclebmc/config`), as the OCI SDK finds it",
    ),
];

/// Files woci reads or writes.
pub const FILES: &[Row] = &[
    r(
        "`~/.oci/config`",
        "OCI config (or `--config-file`); woci sets only the profile's `key_file`, `security_token_file`, \
         `fingerprint`, `tenancy` and `region`, keeping every other line, and writes the file (through a \
         symbolic link, to its target) with mode 0600, as `oci setup config` does, under \
         `~/.oci/sessions/.config.lock` (two profiles renewing at once); a file named by \
         `--config-file`, `OCI_CLI_CONFIG_FILE` or `config_file` that does not exist is made by a login only \
         (a call refuses it, exit 2, as oci does)",
    ),
    r(
        "`~/.oci/woci_manager.ini`",
        "woci's settings per profile (or `--manager-config`, `WOCI_MANAGER_CONFIG`, or beside the OCI config file)",
    ),
    r(
        "`~/.oci/oci_cli_rc`",
        "oci's own settings, read only: `default_profile`, and a profile's `endpoint`, `region`, `auth`, \
         `cert-bundle` (or `--cli-rc-file`, `OCI_CLI_RC_FILE`, `~/.oci/cli-defaults`, as `oci` looks)",
    ),
    r(
        "`~/.oci/sessions/<profile>/`",
        "the session (folder 0700, files 0600): `token`, the key pair (`oci_api_key.pem` ends with the `OCI_API_KEY` line, as `oci session authenticate` writes it, so `oci` does not warn), `refresh_token` (with `refresh_token.expires`, its expiry as the IdP said, and `refresh_token.rejected`, the digest of one the IdP refused, with that IdP's `token_url` and `auth_client_id`, so that calls do not send it there again), `.lock`, `.login.lock` (held by the woci whose login is under way, which other calls wait for), `.last_failure` (the last renewal's failure, which `--status` and waiting calls read), `.clock_skew` (how far this machine's clock was from the servers' at the last renewal, which every call corrects token times by), `.session_end_said` (the session end an `--auto-refresh`/`--exec` run of a session-refresh profile announced, once a session), `.grant_sent` (while a refresh grant is at the IdP; left by a killed woci, it tells that the refresh token was probably spent), daemon pid (`woci_refresh.pid`), log (`woci-daemon.log`; past 1 MiB it becomes `woci-daemon.log.1`, replacing the one before) and state (`woci-daemon.json`), renewal counts (`woci-metrics.json`), hook rate limits (`woci-hooks.json`, under `.hooks.lock`); `.<name>.<pid>.<random>.tmp` files only while a write is under way (a killed woci's are swept by the next renewal)",
    ),
    r(
        "`$XDG_RUNTIME_DIR/woci-proxy/`, else `$TMPDIR/woci-proxy-<uid>/`",
        "a run's re-signing proxy files (0700, kept): each `--auto-refresh`/`--exec` run's folder \
         `woci-proxy-<pid>-*` (the per-run CA bundle, Node's preload, Java's options), removed when the run \
         ends; `woci-proxy-<uid>.<random>` instead when another user made the first name",
    ),
    r(
        "`$XDG_RUNTIME_DIR/woci-rescue/`, else `$TMPDIR/woci-rescue-<uid>/`",
        "a refresh token that could not be stored in a full session folder, \
         `<profile>.<digest of the session folder>.refresh_token`, until the next call moves it back \
         (`woci-rescue-<uid>.<random>` when another user made the first name)",
    ),
];

/// The table as the README writes it: a header row, then one row per entry.
pub fn markdown(header: (&str, &str), rows: &[Row]) -> String {
    let mut s = format!("| {} | {} |\n|---|---|\n", header.0, header.1);
    for row in rows {
        s.push_str(&format!("| {} | {} |\n", row.key, row.meaning));
    }
    s
}

/// The man page sections EXIT STATUS, ENVIRONMENT and FILES.
pub fn man_sections() -> roff::Roff {
    let mut roff = roff::Roff::new();
    for (title, intro, rows) in [
        (
            "SETTINGS",
            "Keys of woci_manager.ini, per profile section or [COMMON] (a flag wins over its variable, which wins over the INI):",
            settings(),
        ),
        (
            "EXIT STATUS",
            "0 on success. When oci (or the --exec program) runs, its exit code is woci's; killed by a signal, it \
             ends woci by the same signal (a shell sees 128+n). woci's own failures:",
            EXIT_CODES.to_vec(),
        ),
        ("ENVIRONMENT", "", environment()),
        ("FILES", "", FILES.to_vec()),
    ] {
        roff.control("SH", [title]);
        if !intro.is_empty() {
            roff.text([roff::roman(intro)]);
        }
        for row in &rows {
            roff.control("TP", []);
            roff.text(inlines(&row.key));
            roff.text(inlines(&row.meaning));
        }
    }
    roff
}

/// The SYNOPSIS section: one line a form of the command line (`--help`'s Usage).
pub fn man_synopsis(forms: &[&str]) -> roff::Roff {
    let mut roff = roff::Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    for (i, form) in forms.iter().enumerate() {
        if i > 0 {
            roff.control("br", []);
        }
        let (name, rest) = form.split_once(' ').unwrap_or((form, ""));
        roff.text([roff::bold(name), roff::roman(format!(" {rest}"))]);
    }
    roff
}

/// The DESCRIPTION section: what woci does, and how its options are laid out below.
pub fn man_description() -> roff::Roff {
    let mut roff = roff::Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    for paragraph in [
        "`woci` is a drop-in wrapper for Oracle Cloud's `oci` CLI: use it where you would type `oci`. It makes \
         sure the profile's OCI session token (UPST) is valid, renewing it through the identity provider and the \
         OCI identity domain's token exchange, a CI job's own ID token, or OCI's session refresh, then runs the \
         real `oci` with `--auth security_token` and every argument it was given.",
        "With `--auto-refresh` (or `--exec` for any program, an OCI SDK's included) it keeps renewing while the \
         command runs, and a local re-signing proxy puts each new token into the running command's signed \
         requests, so a long upload outlives its tokens. `--daemon` keeps a profile's session fresh in the \
         background; `--status` says what the next call meets, reading local files only.",
        "woci's own options are below, in sections by what they set (SESSION, IDENTITY PROVIDER, …); they go \
         before oci's arguments or anywhere as the ARGUMENTS section says, and each has its woci_manager.ini key \
         and environment variable (SETTINGS, ENVIRONMENT). Every other argument is oci's (`woci -- --help`).",
    ] {
        roff.control("PP", []);
        roff.text(inlines(paragraph));
    }
    roff
}

/// The ARGUMENTS section from `--help`'s rules text (a heading line, `  - ` bullets whose
/// indented lines continue them, paragraphs), each bullet its own indented paragraph so that
/// `man` fills it.
pub fn man_rules(text: &str) -> roff::Roff {
    let mut roff = roff::Roff::new();
    roff.control("SH", ["ARGUMENTS"]);
    let mut paragraphs: Vec<(bool, String)> = Vec::new();
    for line in text.lines() {
        match (line.strip_prefix("  - "), paragraphs.last_mut()) {
            (Some(bullet), _) => paragraphs.push((true, bullet.to_owned())),
            (None, Some((_, p))) if line.starts_with("    ") => p.push_str(&format!(" {}", line.trim())),
            _ if line.trim().is_empty() => {}
            _ => paragraphs.push((false, line.to_owned())),
        }
    }
    for (bullet, p) in paragraphs {
        match bullet {
            true => roff.control("IP", ["\\(bu", "2"]),
            false => roff.control("PP", []),
        };
        roff.text(inlines(&p));
    }
    roff
}

/// The SEE ALSO section, the page's last.
pub fn man_see_also() -> roff::Roff {
    let mut roff = roff::Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    roff.text(inlines(
        "README.md and QUICKSTART.md (in /usr/share/doc/woci from the Debian package, or the source repository); \
         the `oci` CLI's own help: `woci -- --help`",
    ));
    roff
}

/// `text with `code`` → roman and bold pieces.
fn inlines(text: &str) -> Vec<roff::Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| if i % 2 == 1 { roff::bold(part) } else { roff::roman(part) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_tables_match() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let missing: Vec<String> = [
            (("setting", "meaning"), settings()),
            (("code", "meaning"), EXIT_CODES.to_vec()),
            (("variable", "meaning"), environment()),
            (("file", "meaning"), FILES.to_vec()),
        ]
        .into_iter()
        .map(|(header, rows)| markdown(header, &rows))
        .filter(|table| !readme.contains(table))
        .collect();
        assert!(
            missing.is_empty(),
            "README.md must hold these tables (from src/cli/reference.rs):\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn man_sections_render_every_row() {
        let text = man_sections().to_roff();
        for title in ["SETTINGS", "EXIT STATUS", "ENVIRONMENT", "FILES"] {
            assert!(text.contains(&format!(".SH \"{title}\"")) || text.contains(&format!(".SH {title}")), "{title}");
        }
        assert!(text.contains("WOCI_ACTIVE") && text.contains("oci_cli_rc") && text.contains("126 / 127"));
        assert_eq!(inlines("a `b` c").len(), 3);
    }
}
