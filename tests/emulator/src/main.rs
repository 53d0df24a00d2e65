//! `woci-emulator`: runs the emulator until SIGINT/SIGTERM.
//!
//! `--state-file PATH` writes the URLs, credentials, namespace and a fresh refresh token as JSON
//! once listening (read by the demo script and the e2e suites).

// The emulator plays servers with real clocks and its own knobs: the woci crate's conventions
// (clock, environment, exit point; see clippy.toml) are not its own.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use woci_emulator::{Config, Emulator, LoginMode, TrustedIssuer};

#[derive(Parser, Debug)]
#[command(
    name = "woci-emulator",
    about = "Emulated OIDC IdP, OCI token exchange, session refresh and Object Storage on 127.0.0.1"
)]
struct Args {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Serve HTTPS with a CA generated at start (written next to the state file, see `ca_file`).
    #[arg(long)]
    tls: bool,
    /// UPST lifetime, e.g. `5s`, `10m`, `1h`.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    upst_ttl: Duration,
    /// Delay before answering each UploadPart.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    part_delay: Duration,
    /// Delay before answering each single-part PutObject.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    put_delay: Duration,
    /// Absolute session lifetime (`sess_exp`).
    #[arg(long, value_parser = parse_duration, default_value = "24h")]
    session_max: Duration,
    /// IdP access-token lifetime.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    access_token_ttl: Duration,
    /// Write a JSON description of the running emulator here once listening.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Accept subject JWTs from this issuer at the token exchange: `ISSUER=JWKS_URL` (repeatable).
    #[arg(long = "trust-issuer", value_name = "ISS=JWKS_URL")]
    trust_issuer: Vec<String>,
    /// PEM CA to trust when fetching a trusted issuer's JWKS over HTTPS.
    #[arg(long)]
    trust_issuer_ca: Option<PathBuf>,
    /// Run the servers' clock this many seconds ahead of this machine's (negative: behind), as a
    /// client whose clock is off sees them: tokens' `iat`/`exp` and the `date` check follow it.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    clock_offset: i64,
    /// Show a login form at /authorize instead of approving automatically.
    #[arg(long)]
    login_form: bool,
    /// Another host name the TLS certificate names (repeatable), e.g.
    /// `objectstorage.us-ashburn-1.oraclecloud.com` for programs led here by a CONNECT proxy.
    #[arg(long = "tls-name", value_name = "HOST")]
    tls_name: Vec<String>,
    /// Make the IdP client public (no client secret; PKCE only).
    #[arg(long)]
    public_client: bool,
    #[arg(long)]
    idp_client_id: Option<String>,
    #[arg(long)]
    idp_client_secret: Option<String>,
    #[arg(long)]
    exchange_client_id: Option<String>,
    #[arg(long)]
    exchange_client_secret: Option<String>,
    /// Extra exact redirect URI accepted by /authorize (repeatable); loopback `/callback` URIs on
    /// any port are always accepted.
    #[arg(long)]
    redirect_uri: Vec<String>,
    /// Keep only sizes and hashes of uploaded objects (for large benchmarks).
    #[arg(long)]
    discard_bodies: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid duration `{s}` (e.g. 500ms, 5s, 10m, 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in `{s}` (use ms, s, m or h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn fail(msg: String) -> ! {
    eprintln!("woci-emulator: error: {msg}");
    std::process::exit(1);
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    woci_emulator::set_clock_offset(args.clock_offset);

    let ca_for_jwks = args
        .trust_issuer_ca
        .as_ref()
        .map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| fail(format!("cannot read {}: {e}", p.display()))));
    let mut cfg = Config {
        tls: args.tls,
        port: args.port,
        upst_ttl: args.upst_ttl,
        part_delay: args.part_delay,
        put_delay: args.put_delay,
        session_max: args.session_max,
        access_token_ttl: args.access_token_ttl,
        login_mode: if args.login_form { LoginMode::LoginForm } else { LoginMode::AutoApprove },
        discard_bodies: args.discard_bodies,
        redirect_uris: args.redirect_uri.clone(),
        tls_names: args.tls_name.clone(),
        ..Config::default()
    };
    if let Some(v) = args.idp_client_id {
        cfg.idp_client_id = v;
    }
    if args.public_client {
        cfg.idp_client_secret = None;
    } else if let Some(v) = args.idp_client_secret {
        cfg.idp_client_secret = Some(v);
    }
    if let Some(v) = args.exchange_client_id {
        cfg.exchange_client_id = v;
    }
    if let Some(v) = args.exchange_client_secret {
        cfg.exchange_client_secret = v;
    }
    for spec in &args.trust_issuer {
        let Some((iss, jwks)) = spec.split_once('=') else {
            fail(format!("--trust-issuer expects ISSUER=JWKS_URL, got `{spec}`"));
        };
        let jwks_url =
            url::Url::parse(jwks).unwrap_or_else(|e| fail(format!("--trust-issuer: bad JWKS URL `{jwks}`: {e}")));
        cfg.trusted_issuers.push(TrustedIssuer {
            issuer: iss.to_string(),
            jwks_url: Some(jwks_url),
            jwks: None,
            ca_pem: ca_for_jwks.clone(),
            audience: None,
        });
    }

    let emu = Emulator::start(cfg.clone()).await.unwrap_or_else(|e| fail(e.to_string()));

    if let Some(path) = &args.state_file {
        let ca_file = emu.ca_pem().map(|pem| {
            let p = path.with_extension("ca.pem");
            std::fs::write(&p, pem).unwrap_or_else(|e| fail(format!("cannot write {}: {e}", p.display())));
            p
        });
        let state = serde_json::json!({
            "base_url": emu.base_url().as_str().trim_end_matches('/'),
            "authorize_url": emu.authorize_url().as_str(),
            "token_url": emu.token_url().as_str(),
            "exchange_url": emu.exchange_url().as_str(),
            "os_endpoint": emu.os_endpoint(),
            "auth_endpoint": emu.auth_endpoint(),
            "jwks_url": emu.jwks_url().as_str(),
            "device_authorization_url": emu.device_authorization_url().as_str(),
            "actions_id_token_url": emu.actions_id_token_url(),
            "actions_request_token": emu.actions_request_token(),
            "actions_issuer": emu.actions_issuer(),
            "issuer": emu.issuer(),
            "ca_file": ca_file.as_ref().map(|p| p.display().to_string()),
            "idp_client_id": cfg.idp_client_id,
            "idp_client_secret": cfg.idp_client_secret,
            "exchange_client_id": cfg.exchange_client_id,
            "exchange_client_secret": cfg.exchange_client_secret,
            "namespace": emu.namespace(),
            "user_ocid": cfg.user_ocid,
            "tenancy_ocid": cfg.tenancy_ocid,
            "refresh_token": emu.issue_refresh_token(),
            "pid": std::process::id(),
        });
        // Write then rename so readers never see a partial file.
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(&state).expect("JSON");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .unwrap_or_else(|e| fail(format!("cannot write {}: {e}", path.display())));
    }
    eprintln!("woci-emulator: listening on {}", emu.base_url());

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .unwrap_or_else(|e| fail(format!("cannot handle SIGTERM: {e}")));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    emu.shutdown();
    eprintln!("woci-emulator: stopped");
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }
}
