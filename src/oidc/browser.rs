//! Opening the authorization URL in a browser: the `BROWSER` command when given, else the
//! platform opener. `BROWSER` is read as Python's `webbrowser` (so `oci session authenticate`)
//! reads it: a `:`-separated list tried in order; an entry with `%s` is a command line (split as a
//! shell would, `%s` replaced by the URL), any other entry is a program given the URL as its only
//! argument. Run directly (no shell); the output is discarded (stdout belongs to `oci`).

use std::ffi::{OsStr, OsString};
use std::process::{Command, Stdio};
use url::Url;

/// The command lines to try for `command` (`BROWSER`), in order.
fn candidates(command: Option<&OsStr>, url: &Url) -> Vec<Vec<OsString>> {
    let with_url = |program: OsString| vec![program, url.as_str().into()];
    match command.filter(|c| !c.is_empty()) {
        // A value that is not UTF-8 can only be one program's path.
        Some(c) => match c.to_str() {
            None => vec![with_url(c.to_owned())],
            Some(list) => list
                .split(':')
                .filter(|e| !e.trim().is_empty())
                .filter_map(|entry| match entry.contains("%s") {
                    true => crate::settings::rules::command(entry)
                        .ok()
                        .map(|argv| argv.iter().map(|a| a.replace("%s", url.as_str()).into()).collect()),
                    false => Some(with_url(entry.into())),
                })
                .collect(),
        },
        // The platform's URL opener.
        None if cfg!(target_os = "macos") => vec![with_url("open".into())],
        None => vec![with_url("xdg-open".into())],
    }
}

/// Starts the first browser that starts, without waiting for it; a background thread reaps it.
/// `hide`: variables of woci's secrets the browser must not get (a browser lives on and passes
/// its environment to all it starts). Returns a short reason when none can even be started.
pub(super) fn launch(command: Option<&OsStr>, url: &Url, hide: &[OsString]) -> Result<(), String> {
    let mut failures = Vec::new();
    for argv in candidates(command, url) {
        let shown = argv[0].to_string_lossy().into_owned();
        let mut cmd = Command::new(&argv[0]);
        for var in hide {
            cmd.env_remove(var);
        }
        let started = cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        match started {
            Ok(mut child) => {
                std::thread::spawn(move || match child.wait() {
                    Ok(status) if !status.success() => {
                        crate::terminal::tell_warning(&format!(
                            "browser command `{shown}` exited with {status}; open the URL above by hand"
                        ));
                    }
                    _ => {}
                });
                return Ok(());
            }
            Err(e) => failures.push(format!("`{shown}`: {e}")),
        }
    }
    Err(if failures.is_empty() { "`BROWSER` names no command".to_owned() } else { failures.join("; ") })
}
