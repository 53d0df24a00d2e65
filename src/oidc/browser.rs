//! Opening the authorization URL in a browser: the `BROWSER` command when given, else the
//! platform opener. The command is run directly (no shell) with the URL as its only argument;
//! its output is discarded (stdout belongs to `oci`).

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use url::Url;

/// Starts the browser without waiting for it; a background thread reaps it. Returns a short
/// reason when it cannot even be started.
pub(super) fn launch(command: Option<&OsStr>, url: &Url) -> Result<(), String> {
    let program = match command {
        Some(c) if !c.is_empty() => c.to_owned(),
        // The platform's URL opener.
        _ if cfg!(target_os = "macos") => "open".into(),
        _ => "xdg-open".into(),
    };
    let shown = program.to_string_lossy().into_owned();
    let mut child = Command::new(&program)
        .arg(url.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("`{shown}`: {e}"))?;
    std::thread::spawn(move || match child.wait() {
        Ok(status) if !status.success() => {
            tracing::warn!("browser command `{shown}` exited with {status}; open the URL above by hand");
        }
        _ => {}
    });
    Ok(())
}
