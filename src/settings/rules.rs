//! The one parsing rule per value type ([`super::table::Kind`]). Each returns the reason on
//! failure; the resolver adds the setting's name and where the value came from.

use super::table::Kind;
use crate::fsutil;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Checks `value` by `kind`'s rule where the rule needs no context (the command line splitter
/// refuses a bad flag value at once); URLs, paths and sources are checked at resolution.
pub fn check(kind: Kind, value: &str) -> Result<(), String> {
    match kind {
        Kind::Duration => duration(value).map(drop),
        Kind::Port => port(value).map(drop),
        Kind::Count => count(value).map(drop),
        Kind::Bool => boolean(value).map(drop),
        Kind::Choice(words) => choice(value, words).map(drop),
        Kind::EnvName => env_name(value).map(drop),
        _ => Ok(()),
    }
}

/// A service URL: `https://`, or `http://` to a loopback address (tests, local emulators). A token
/// or secret must never cross a network in clear text, so every URL woci sends one to — settings,
/// discovered endpoints, `ACTIONS_ID_TOKEN_REQUEST_URL` — goes through this rule.
pub fn url(s: &str) -> Result<Url, String> {
    let u = Url::parse(s.trim()).map_err(|e| format!("is not a valid URL ({e})"))?;
    match u.scheme() {
        "https" => Ok(u),
        "http" if is_loopback(&u) => Ok(u),
        "http" => Err("must use https:// (http:// is accepted only for 127.0.0.1, ::1 and localhost)".into()),
        _ => Err("must start with https://".into()),
    }
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `90` (seconds), or numbers with units `s`, `m`, `h`, `d`, combined as needed: `90s`, `10m`,
/// `24h`, `2d`, `1d12h`.
pub fn duration(s: &str) -> Result<Duration, String> {
    let bad = || "must be a duration: seconds, or numbers with `s`, `m`, `h` or `d` (`90`, `10m`, `1d12h`)".to_owned();
    let v = s.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let (mut total, mut rest) = (0u64, v);
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (n, after) = rest.split_at(digits);
        let unit = match after.chars().next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = n.parse().map_err(|_| bad())?;
        total = n.checked_mul(unit).and_then(|x| total.checked_add(x)).ok_or_else(bad)?;
        rest = &after[1..];
    }
    Ok(Duration::from_secs(total))
}

/// A path, `~` expanded (not `~user`), as `oci` and the shell do.
pub fn path(s: impl AsRef<Path>, home: &Path) -> PathBuf {
    crate::fsutil::expand_home(s, home)
}

/// An OCI region identifier (`us-ashburn-1`) or key (`iad`): letters, digits and dashes.
pub fn region(s: &str) -> Result<String, String> {
    let s = s.trim();
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        .then(|| s.to_owned())
        .ok_or_else(|| "must be a region such as `us-ashburn-1` (letters, digits and dashes only)".into())
}

/// `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0` (any case); empty is false.
pub fn boolean(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

/// A TCP port 1–65535.
pub fn port(s: &str) -> Result<u16, String> {
    s.trim().parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| "must be a port number 1-65535".into())
}

/// A whole number ≥ 1.
pub fn count(s: &str) -> Result<usize, String> {
    s.trim().parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| "must be a whole number of at least 1".into())
}

/// One of `words` (any case); returns the word as listed.
pub fn choice(s: &str, words: &'static [&'static str]) -> Result<&'static str, String> {
    let t = s.trim().to_ascii_lowercase();
    words.iter().find(|w| **w == t).copied().ok_or_else(|| {
        format!("must be one of {}", words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", "))
    })
}

/// The candidate closest to `unknown` (Jaro-Winkler) and its score, for "did you mean" hints;
/// each caller decides how close is close enough.
pub fn closest<'a>(unknown: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<(f64, &'a str)> {
    candidates.into_iter().map(|c| (strsim::jaro_winkler(unknown, c), c)).max_by(|a, b| a.0.total_cmp(&b.0))
}

/// A comma-separated list, items trimmed, empty items dropped.
pub fn list(s: &str) -> Vec<String> {
    s.split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect()
}

/// `resign_hosts`: each entry `host`, `host:port` or `[IPv6]:port` (an `https://` URL is taken
/// for its `host:port`), as the proxy matches CONNECT targets; anything else would never match.
pub fn resign_hosts(s: &str) -> Result<Vec<String>, String> {
    let entry = |e: String| -> Result<String, String> {
        if e.starts_with("https://") {
            return crate::realm::endpoint_authority(&e).ok_or_else(|| format!("has an entry `{e}` without a host"));
        }
        // An IPv6 address without a port, bracketed or not.
        let bare = e.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(&e);
        let (host, port) = match crate::realm::split_host_port(&e) {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None if bare.parse::<std::net::Ipv6Addr>().is_ok() => return Ok(e),
            None => (e.clone(), None),
        };
        let name_ok = |h: &str| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        if port == Some(0) || !(name_ok(&host) || host.parse::<std::net::Ipv6Addr>().is_ok()) {
            let hint = if e.contains(|c: char| c.is_whitespace() || c == ';') {
                "; separate entries with commas"
            } else if e.matches(':').count() > 1 && !e.starts_with('[') {
                "; bracket an IPv6 address, as in `[::1]:8443`"
            } else {
                ""
            };
            return Err(format!("has an entry `{e}` that is not `host` or `host:port`{hint}"));
        }
        Ok(e)
    };
    list(s).into_iter().map(entry).collect()
}

/// A command line split as a POSIX shell would (`shlex`); never run through a shell.
pub fn command(s: &str) -> Result<Vec<String>, String> {
    match shlex::split(s) {
        Some(argv) if !argv.is_empty() => Ok(argv),
        Some(_) => Err("names no command".into()),
        None => Err("has unbalanced quotes or a trailing backslash".into()),
    }
}

/// An environment variable's name: letters, digits and `_`, not starting with a digit.
pub fn env_name(s: &str) -> Result<String, String> {
    Some(s.trim())
        .filter(|t| {
            !t.is_empty()
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !t.as_bytes()[0].is_ascii_digit()
        })
        .map(str::to_owned)
        .ok_or_else(|| "names no valid environment variable".into())
}

/// Profile names become folder names under `~/.oci/sessions` and appear in one-line messages:
/// refuse ones that would escape the folder or break a line, saying why ([`invalid_profile`]).
pub fn profile(p: &str) -> Result<String, String> {
    let why = match p {
        "" => "it is empty",
        "." | ".." => "`.` and `..` name no folder of their own",
        _ if p.contains('/') => "it holds `/`",
        _ if p.contains('\\') => "it holds `\\`",
        _ if p.chars().any(char::is_control) => "it holds a control character",
        _ => return Ok(p.to_owned()),
    };
    Err(why.to_owned())
}

/// The message for a profile name [`profile`] refused for `why`, from `from` (`` `--profile` ``).
pub fn invalid_profile(p: &str, from: &str, why: &str) -> String {
    format!(
        "invalid profile name `{p}`{from}: {why}, and woci keeps each profile's session in a folder named after \
         it; use another name (rename its sections in the OCI config and `woci_manager.ini`)"
    )
}

/// A CA bundle woci (or the TLS library, for `SSL_CERT_FILE`) reads whole: a regular file of at
/// most [`fsutil::MAX_CA_BUNDLE`], or a folder (`REQUESTS_CA_BUNDLE` may name one), or absent
/// (skipped). A device or FIFO would be read without end, but `/dev/null` ("no extra CAs") and
/// a shell's `<(…)` (`/dev/fd/N`) end.
pub(crate) fn ca_bundle(p: &Path) -> Result<(), String> {
    if p == Path::new("/dev/null") || p.starts_with("/dev/fd") || p.starts_with("/proc/self/fd") {
        return Ok(());
    }
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() && m.len() > fsutil::MAX_CA_BUNDLE as u64 => {
            Err(format!("which is over {}", fsutil::fmt_size(fsutil::MAX_CA_BUNDLE)))
        }
        Ok(m) if !m.is_file() && !m.is_dir() => Err("which is not a regular file (a device or FIFO?)".to_owned()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resign_hosts_entries_are_what_the_proxy_can_match() {
        let ok =
            resign_hosts("os.internal, localhost:8443, [::1]:9, ::1, [::2], https://LocalHost:8443/n/x, https://h")
                .unwrap();
        assert_eq!(ok, ["os.internal", "localhost:8443", "[::1]:9", "::1", "[::2]", "localhost:8443", "h:443"]);
        for (bad, says) in [
            ("127.0.0.1:18600/", "not `host` or `host:port`"),
            ("host:notaport", "not `host` or `host:port`"),
            ("h:0", "not `host` or `host:port`"),
            ("::1:18600", "bracket an IPv6 address"),
            ("http://h:80", "not `host` or `host:port`"),
            ("b.example c.example", "separate entries with commas"),
            ("b.example;c.example:8443", "separate entries with commas"),
        ] {
            let e = resign_hosts(&format!("a.example, {bad}")).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")) && e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn urls_are_https_or_loopback_http() {
        assert!(url("https://idp.example/token").is_ok());
        for ok in ["http://127.0.0.1:8080/t", "http://[::1]/t", "http://localhost/t"] {
            assert!(url(ok).is_ok(), "{ok}");
        }
        for bad in ["http://idp.example/token", "ftp://x/", "javascript:alert(1)", "file:///etc/passwd", "nope"] {
            assert!(url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration("600").unwrap(), Duration::from_secs(600));
        assert_eq!(duration(" 90s ").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(duration("1d12h").unwrap(), Duration::from_secs(129_600));
        assert_eq!(duration("1h30m15s").unwrap(), Duration::from_secs(5415));
        assert_eq!(duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "m", "10x", "-5", "1.5h", "99999999999999999999d", "1h 30m", "h1"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bools_ports_counts_choices() {
        assert!(boolean("True").unwrap() && !boolean("off").unwrap() && boolean("maybe").is_err());
        assert_eq!(port("8181").unwrap(), 8181);
        assert!(port("0").is_err() && port("65536").is_err());
        assert!(count("0").is_err() && count("12").unwrap() == 12);
        assert_eq!(choice("Device", &["auto", "device"]).unwrap(), "device");
        assert!(choice("x", &["auto"]).unwrap_err().contains("`auto`"));
        assert_eq!(list(" a, ,b:1 "), ["a", "b:1"]);
        assert_eq!(command("tool --aud 'x y'").unwrap(), ["tool", "--aud", "x y"]);
        assert!(command("tool 'x").is_err() && command("  ").is_err());
        assert!(env_name("CI_JOB_JWT").is_ok() && env_name("1X").is_err() && env_name("A-B").is_err());
    }

    #[test]
    fn profile_names_cannot_escape_the_sessions_folder() {
        assert!(profile("DEFAULT").is_ok());
        assert!(profile("my-profile_2").is_ok());
        for bad in ["", "..", "a/b", "../x", "a\nb"] {
            assert!(profile(bad).is_err(), "{bad}");
        }
    }
}
