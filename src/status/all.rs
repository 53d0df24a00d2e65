//! `--status --all` (every profile woci knows: a woci INI section or a session folder) and
//! `--status --prompt` (one short line for a shell prompt). Both read local files only; a
//! profile's state and exit code are those its own `--status` gives.

use super::{assess, gather, print, to_json, Report};
use crate::clock::SharedClock;
use crate::context::Context;
use crate::error::Result;
use crate::settings::{Env, Flags, OciView, Settings};
use serde::Serialize;

/// One profile in `--status --all`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub profile: String,
    /// `usable` | `renewable` | `login_needed` | `impossible`.
    pub state: &'static str,
    pub token_expires_at: Option<i64>,
    pub session_expires_at: Option<i64>,
    pub refresh_token_expires_at: Option<i64>,
    /// `running` | `stopped`.
    pub daemon: &'static str,
    pub fallback_profile: Option<String>,
    pub exit_code: u8,
    pub reason: String,
}

impl Entry {
    fn of(r: &Report) -> Entry {
        Entry {
            profile: r.profile.clone(),
            state: state(r),
            token_expires_at: r.token.expires_at,
            session_expires_at: r.token.session_expires_at,
            refresh_token_expires_at: r.refresh_token.expires_at,
            daemon: if r.daemon.running { "running" } else { "stopped" },
            fallback_profile: r.fallback_profile.clone(),
            exit_code: r.exit_code,
            reason: r.reason.clone(),
        }
    }
}

fn state(r: &Report) -> &'static str {
    match r.next_action {
        "none" | "finish_config" => "usable",
        "login" => "login_needed",
        "impossible" => "impossible",
        _ => "renewable",
    }
}

/// `woci --status --all [--json]`: exit 0 when every profile is usable or renewable, else the
/// highest exit code of the others.
pub fn run_all(flags: &Flags, oci: &OciView, env: &Env, json: bool, clock: SharedClock) -> Result<u8> {
    let base = Settings::resolve(flags, oci, env, true)?;
    let mut names = crate::settings::ini::section_names(base.ini_file.as_ref().map(|(p, _)| p.as_path()));
    if let Ok(dirs) = std::fs::read_dir(base.home.join(".oci").join("sessions")) {
        names.extend(dirs.flatten().filter(|d| d.path().is_dir()).filter_map(|d| d.file_name().into_string().ok()));
    }
    names.retain(|n| crate::settings::validate_profile(n).is_ok());
    names.sort();
    names.dedup();
    let mut entries = Vec::new();
    for name in names {
        let view = OciView { profile: Some(name.clone()), ..oci.clone() };
        let entry = match Settings::resolve(flags, &view, env, true)
            .and_then(|s| Context::new(s, clock.clone(), env.clone()))
            .and_then(|ctx| gather(&ctx).map(|i| Entry::of(&assess(&i, ctx.now()))))
        {
            Ok(e) => e,
            Err(e) => Entry {
                profile: name,
                state: "impossible",
                token_expires_at: None,
                session_expires_at: None,
                refresh_token_expires_at: None,
                daemon: "stopped",
                fallback_profile: None,
                exit_code: e.exit_code(),
                reason: e.to_string(),
            },
        };
        entries.push(entry);
    }
    let code = entries.iter().filter(|e| !matches!(e.state, "usable" | "renewable")).map(|e| e.exit_code).max();
    let out = if json {
        to_json(&serde_json::json!({ "profiles": entries }))?
    } else {
        let mut o = String::new();
        for e in &entries {
            let exp = e.token_expires_at.map(crate::clock::fmt_utc).unwrap_or_else(|| "-".into());
            let fb = e.fallback_profile.as_deref().map(|f| format!(" fallback {f}")).unwrap_or_default();
            o.push_str(&format!("{:<20} {:<12} token expires {exp}  daemon {}{fb}\n", e.profile, e.state, e.daemon));
        }
        if entries.is_empty() {
            o.push_str("no profiles: no woci_manager.ini section and no session folder\n");
        }
        o
    };
    print(&out)?;
    Ok(code.unwrap_or(0))
}

/// `woci --status --prompt`: `P 42m`, `P expired`, `P login` (at most 40 characters).
pub fn run_prompt(ctx: &Context) -> Result<u8> {
    let facts = crate::renew::facts::SessionFacts::read(&ctx.settings, &ctx.store)?;
    let now = ctx.now();
    let d = crate::renew::plan::plan(&facts, crate::renew::Force::No, now);
    let left = facts.claims().map(|c| c.exp - now);
    let line = prompt_line(&ctx.settings.profile, d.plan.name(), left);
    print(&format!("{line}\n"))?;
    Ok(d.exit_code())
}

/// The prompt line: the profile (shortened to fit), then the time left, or why not usable.
pub fn prompt_line(profile: &str, next_action: &str, left: Option<i64>) -> String {
    let what = match (next_action, left) {
        ("login", _) => "login".to_owned(),
        ("impossible", _) => "error".to_owned(),
        (_, Some(s)) if s > 0 => short(s),
        (_, Some(_)) => "expired".to_owned(),
        (_, None) => "none".to_owned(),
    };
    let room = 40 - what.len() - 1;
    let name: String = if profile.chars().count() > room {
        profile.chars().take(room - 1).chain(['…']).collect()
    } else {
        profile.to_owned()
    };
    format!("{name} {what}")
}

fn short(s: i64) -> String {
    match s {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_lines_are_short_and_say_the_state() {
        assert_eq!(prompt_line("P", "none", Some(42 * 60 + 5)), "P 42m");
        assert_eq!(prompt_line("P", "refresh", Some(-5)), "P expired");
        assert_eq!(prompt_line("P", "login", None), "P login");
        assert_eq!(prompt_line("P", "none", Some(3 * 3600 + 61)), "P 3h01m");
        let long = prompt_line(&"x".repeat(80), "none", Some(100));
        assert!(long.chars().count() <= 40 && long.ends_with(" 1m"), "{long}");
    }
}
