//! `--status --all` (every profile woci knows: a woci INI section or a session folder) and
//! `--status --prompt` (one short line for a shell prompt). Both read local files only; a
//! profile's state and exit code are those its own `--status` gives ([`super::overview`] holds
//! the entry, the formats and the prompt line).

use super::overview::{self, Daemon, Entry, State};
use super::{assess, gather};
use crate::clock::SharedClock;
use crate::context::Context;
use crate::error::Result;
use crate::settings::{Env, Flags, OciView, Settings};
use crate::terminal::print;

/// `woci --status --all [--json]`: exit 0 when every profile is usable or renewable, else the
/// highest exit code of the others.
pub(crate) fn run_all(flags: &Flags, oci: &OciView, env: &Env, json: bool, clock: SharedClock) -> Result<u8> {
    // Only for the home and the INI: the current profile (a bad `OCI_CLI_PROFILE`) plays no part.
    let any = OciView { profile: Some("DEFAULT".into()), ..oci.clone() };
    let listed = Settings::resolve(flags, &any, env, true).and_then(|base| {
        let sections = crate::settings::ini::section_names(base.ini_file.as_ref().map(|(p, _)| p.as_path()));
        let sections: Vec<&str> = sections.iter().map(String::as_str).collect();
        let names = overview::profiles_to_show(&base.home.join(".oci").join("sessions"), &sections)?;
        Ok((base, names))
    });
    let (base, names, unresolved) = match listed {
        Ok((base, names)) => (Some(base), names, None),
        Err(e) => {
            let unresolved = (e.to_string().replace('`', ""), e.exit_code());
            match sessions_alone(env) {
                // Settings that do not resolve (a syntax error in the INI): the session folders
                // are still the profiles, each shown with the error its own `--status` gives.
                Some(names) => (None, names, Some(unresolved)),
                // No profile list without readable settings and sessions; JSON readers still get
                // JSON, with the error.
                None if json => {
                    print(&overview::render_json(&[], Some(unresolved)))?;
                    return Ok(e.exit_code());
                }
                None => return Err(e),
            }
        }
    };
    let entries: Vec<Entry> = names
        .into_iter()
        .map(|name| {
            let view = OciView { profile: Some(name.clone()), ..oci.clone() };
            let entry = crate::settings::validate_profile(&name)
                .and_then(|()| Settings::resolve(flags, &view, env, true))
                .and_then(|s| Context::new(s, clock.clone(), env.clone()))
                .and_then(|ctx| {
                    let mut report = assess(&gather(&ctx, true)?, ctx.now());
                    let call = crate::daemon::DaemonSpec { flags: flags.clone(), oci: view.clone() };
                    super::with_fallback(&mut report, &ctx, &call, true);
                    Ok(Entry::from_report(&report, ctx.settings.ops.fallback_profile.clone()))
                });
            // A profile whose settings or files cannot be read is shown with the code its status
            // gives, as impossible, with its daemon as the session folder says (one keeps
            // running on the settings it has while the INI is broken).
            entry.unwrap_or_else(|e| {
                let store = Settings::home_of(env).and_then(|home| crate::store::SessionStore::new(&home, &name).ok());
                let info = store.as_ref().and_then(|store| crate::daemon::inspect(store).ok());
                let daemon =
                    info.map_or(Daemon::Stopped, |info| Daemon::of(&crate::daemon::report(&info, clock.unix())));
                // The token in the session folder still says when it ends (a daemon may keep it
                // fresh on the settings it read before the INI broke).
                let claims =
                    store.and_then(|s| crate::store::SessionStore::read_token_at(&s.token_path()).ok().flatten());
                Entry {
                    profile: name,
                    exit_code: e.exit_code(),
                    error: Some(e.to_string()),
                    daemon,
                    token_expires_at: claims.as_ref().map(|(_, c)| c.exp),
                    session_expires_at: claims.as_ref().and_then(|(_, c)| c.session_expiry()),
                    ..Entry::default()
                }
            })
        })
        .collect();
    if let Some(base) = base.filter(|_| entries.is_empty() && !json) {
        let ini = base.ini_file.as_ref().map_or_else(
            || "no `woci_manager.ini`".to_owned(),
            |(p, _)| format!("no profile sections in `{}`", p.display()),
        );
        let sessions = base.home.join(".oci").join("sessions");
        let line = format!("no profiles: {ini} and no sessions in `{}`", sessions.display());
        print(&format!("{}\n", crate::terminal::safe(&line)))?;
        return Ok(0);
    }
    print(&if json { overview::render_json(&entries, unresolved) } else { overview::render_text(&entries) })?;
    Ok(overview::exit_code(&entries))
}

/// `woci --status --prompt`: `P 42m`, `P expired`, `P login`, `P fallback` (at most 40 characters), with
/// `--status`'s exit code: the same assessment (and fallback), without the passphrase check's
/// key derivation.
pub(crate) fn run_prompt(ctx: &Context, call: &crate::daemon::DaemonSpec) -> Result<u8> {
    let inputs = match gather(ctx, false) {
        Ok(inputs) => inputs,
        Err(e) => return super::run_unresolved(&ctx.settings.profile, e, false, ctx.clock.unix()),
    };
    let now = ctx.now();
    let mut report = assess(&inputs, now);
    super::with_fallback(&mut report, ctx, call, false);
    let state = State::of(&report);
    // Calls that go to oci unchanged have no session to count down.
    let left = inputs.facts.claims().map(|c| c.exp - now).filter(|_| report.renewal != "none");
    let line = overview::prompt_line(&ctx.settings.profile, state, left);
    print(&format!("{line}\n"))?;
    Ok(report.exit_code)
}

/// The profiles of the session folders alone (none when there are none, or they cannot be listed).
fn sessions_alone(env: &Env) -> Option<Vec<String>> {
    let sessions = Settings::home_of(env)?.join(".oci").join("sessions");
    overview::profiles_to_show(&sessions, &[]).ok().filter(|names| !names.is_empty())
}
