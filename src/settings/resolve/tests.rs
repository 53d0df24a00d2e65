use super::*;
use std::time::Duration;

/// Resolves for profile `P` with `ini` as `~/.oci/woci_manager.ini` and `flags`.
fn resolve_with(ini: &str, flags: &[(Key, &str)], env: &[(&str, &str)], never_renews: bool) -> Result<Settings> {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".oci")).unwrap();
    std::fs::write(home.path().join(".oci/woci_manager.ini"), format!("[P]\n{ini}")).unwrap();
    let mut f = Flags::default();
    for (k, v) in flags {
        f.set(*k, *v);
    }
    let mut e: Env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    e.insert("HOME".into(), home.path().display().to_string());
    let oci = OciView { profile: Some("P".into()), ..OciView::default() };
    Settings::resolve(&f, &oci, &e, never_renews)
}

const LOGIN: &str = "authz_base_url = https://idp/authorize\ntoken_url = https://idp/token\nauth_client_id = a\n\
client_id = c\nclient_secret = s\nscope = openid offline_access\nredirect_port = 8181\n";

#[test]
fn login_mode_needs_all_required_keys() {
    let err = resolve_with("token_url = https://idp/token\n", &[], &[], false).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`authz_base_url`") && msg.contains("`client_secret`"), "{msg}");
    assert!(!msg.contains("`token_url`"), "{msg}");
    assert_eq!(err.exit_code(), crate::error::exit::CONFIG);
    // Commands that never renew get an unusable mode instead.
    let s = resolve_with("token_url = https://idp/token\n", &[], &[], true).unwrap();
    assert!(matches!(s.mode, RenewMode::Unusable(ref why) if why.contains("`authz_base_url`")));
}

#[test]
fn the_exchange_app_alone_is_no_login_profile_and_other_auth_is_left_alone() {
    // QUICKSTART's layout shares the exchange app in `[COMMON]`: other profiles stay oci's.
    let exchange = "token_exchange_url = https://x/token\nclient_id = c\nclient_secret = s\nscope = openid\n\
                    redirect_port = 8181\n";
    let s = resolve_with(exchange, &[], &[], false).unwrap();
    assert!(matches!(s.mode, RenewMode::SessionRefresh(_)), "{:?}", s.mode);
    // Half an IdP setup fails a session call, not one with another `--auth`.
    let half = "token_url = https://idp/token\n";
    let s = resolve_with(half, &[], &[("OCI_CLI_AUTH", "api_key")], false).unwrap();
    assert!(matches!(s.mode, RenewMode::Unusable(_)) && !s.manages_session());
    assert!(resolve_with(half, &[], &[("OCI_CLI_AUTH", "security_token")], false).is_err());
}

#[test]
fn a_misspelled_key_is_named_in_the_missing_keys_error() {
    let ini = LOGIN.replace("client_secret", "client_secert");
    let msg = resolve_with(&ini, &[], &[], false).unwrap_err().to_string();
    assert!(msg.contains("`client_secert`") && msg.contains("did you mean `client_secret`"), "{msg}");
    let s = resolve_with(&format!("{LOGIN}token_uri = x\n"), &[], &[], false).unwrap();
    assert!(s.warnings.iter().any(|w| w.contains("`token_uri`") && w.contains("`token_url`")), "{:?}", s.warnings);
}

#[test]
fn client_secrets_come_from_their_variables_and_stay_woci_s() {
    let ini = LOGIN.replace("client_secret = s\n", "");
    let env = [("WOCI_CLIENT_SECRET", "from-env"), ("WOCI_AUTH_CLIENT_SECRET", "auth-from-env")];
    let s = resolve_with(&ini, &[], &env, false).unwrap();
    let RenewMode::Login(c) = &s.mode else { panic!("expected a login profile") };
    assert_eq!(c.exchange.client_secret.expose(), "from-env");
    assert_eq!(c.idp.client_secret.as_ref().unwrap().expose(), "auth-from-env");
    assert!(s.secret_env.iter().any(|v| v == "WOCI_CLIENT_SECRET"), "{:?}", s.secret_env);
    assert!(s.secret_env.iter().any(|v| v == "WOCI_AUTH_CLIENT_SECRET"), "{:?}", s.secret_env);
}

#[test]
fn keys_in_a_default_section_are_named_as_not_shared() {
    // `[P]` holds the IdP, `[DEFAULT]` (written after it) the exchange app, as in ~/.oci/config.
    let (idp, app) = LOGIN.split_at(LOGIN.find("\nclient_id").unwrap() + 1);
    let msg = resolve_with(&format!("{idp}\n[DEFAULT]\n{app}"), &[], &[], false).unwrap_err().to_string();
    assert!(msg.contains("`[DEFAULT]` there sets `client_id`, `client_secret`, `scope`"), "{msg}");
    assert!(msg.contains("move what profiles share to `[COMMON]`"), "{msg}");
    let s = resolve_with(&format!("{idp}\n[COMMON]\n{app}"), &[], &[], false).unwrap();
    assert!(matches!(s.mode, RenewMode::Login(_)), "{:?}", s.mode);
    // The IdP whole in `[DEFAULT]`, the exchange app in the profile's own section (round 84 F1):
    // not an `oci session authenticate` profile, but one whose IdP keys are in the wrong section.
    let msg = resolve_with(&format!("{app}\n[DEFAULT]\n{idp}"), &[], &[], false).unwrap_err().to_string();
    assert!(msg.contains("`[DEFAULT]` there sets `authz_base_url`, `token_url`, `auth_client_id`"), "{msg}");
    // Everything in `[DEFAULT]`, the profile's section holding only other keys (round 86 F2).
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".oci")).unwrap();
    std::fs::write(home.path().join(".oci/woci_manager.ini"), format!("[DEFAULT]\n{LOGIN}\n[P]\nregion = r\n"))
        .unwrap();
    let e: Env = [("HOME".to_owned(), home.path().display().to_string())].into_iter().collect();
    let oci = OciView { profile: Some("P".into()), ..OciView::default() };
    let msg = Settings::resolve(&Flags::default(), &oci, &e, false).unwrap_err().to_string();
    assert!(msg.contains("`[DEFAULT]` there sets `authz_base_url`"), "{msg}");
    // A `[DEFAULT]` IdP profile beside profiles that only share the exchange app stays as it is.
    let s = resolve_with(&format!("\n[COMMON]\n{app}\n[DEFAULT]\n{idp}"), &[], &[], false).unwrap();
    assert!(matches!(s.mode, RenewMode::SessionRefresh(_)), "{:?}", s.mode);
}

#[test]
fn no_idp_keys_means_session_refresh() {
    let s = resolve_with("", &[], &[("WOCI_AUTH_ENDPOINT", "http://127.0.0.1:1")], false).unwrap();
    let RenewMode::SessionRefresh(c) = s.mode else { panic!("expected session refresh") };
    assert!(c.auth_endpoint.is_some());
    assert_eq!(s.origins["auth_endpoint"].0, Origin::Env("WOCI_AUTH_ENDPOINT"));
}

#[test]
fn exchange_url_defaults_to_token_url_and_ports_are_checked() {
    let s = resolve_with(LOGIN, &[], &[], false).unwrap();
    let RenewMode::Login(c) = &s.mode else { panic!("expected login mode") };
    assert_eq!(c.exchange.url, c.idp.token_url);
    assert_eq!(c.idp.scopes, ["openid", "offline_access"]);
    let err = resolve_with(&LOGIN.replace("8181", "0"), &[], &[], false).unwrap_err().to_string();
    assert!(err.contains("`redirect_port`") && err.contains("1-65535") && err.contains("woci_manager.ini"), "{err}");
}

/// A `# comment` after a value is part of it (as in configparser): a region with one is refused
/// (it would be written into the OCI config), and every refused value with one says why.
#[test]
fn a_comment_after_a_value_is_named() {
    let e =
        resolve_with(&format!("{LOGIN}region = us-ashburn-1   # Ashburn\n"), &[], &[], false).unwrap_err().to_string();
    assert!(e.contains("`region`") && e.contains("must be a region") && e.contains("on a line of its own"), "{e}");
    let e = resolve_with(&format!("{LOGIN}login_timeout = 5m # five\n"), &[], &[], false).unwrap_err().to_string();
    assert!(e.contains("`login_timeout`") && e.contains("on a line of its own"), "{e}");
    let s = resolve_with(&format!("{LOGIN}region = eu-frankfurt-1\n"), &[], &[], false).unwrap();
    assert_eq!(s.region.as_deref(), Some("eu-frankfurt-1"));
    assert!(!s.warnings.iter().any(|w| w.contains("comment")), "{:?}", s.warnings);
    // Values no rule refuses (a secret, a text) get a warning; a secret's text is never shown.
    let ini = LOGIN
        .replace("client_secret = s\n", "client_secret = s   # exchange secret\n")
        .replace("scope = openid offline_access\n", "scope = openid offline_access ; both\n");
    let s = resolve_with(&ini, &[], &[], false).unwrap();
    let w = s.warnings.join("\n");
    assert!(w.contains("`client_secret` from") && !w.contains("exchange secret"), "{w}");
    assert!(w.contains("`scope` from") && w.contains("(`; both`)"), "{w}");
}

#[test]
fn every_url_setting_is_held_to_https_or_loopback() {
    for key in ["token_url", "authz_base_url", "token_exchange_url", "device_authorization_url"] {
        let others: String = LOGIN.lines().filter(|l| !l.starts_with(key)).map(|l| format!("{l}\n")).collect();
        let ini = format!("{others}{key} = http://idp.example/x\n");
        let err = resolve_with(&ini, &[], &[], false).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")) && err.contains("https://"), "{key}: {err}");
    }
    let err = resolve_with(LOGIN, &[(Key::TokenUrl, "http://idp.example/t")], &[], false).unwrap_err().to_string();
    assert!(err.contains("the `--token-url` flag"), "{err}");
}

#[test]
fn flags_beat_the_environment_which_beats_the_ini() {
    let ini = format!("{LOGIN}refresh_safety_window = 120\noci_command = /ini/oci\n");
    let s = resolve_with(&ini, &[], &[("WOCI_OCI_COMMAND", "/env/oci")], false).unwrap();
    assert_eq!(s.window, Duration::from_secs(120));
    assert_eq!(s.oci_command, "/env/oci");
    let s = resolve_with(&ini, &[(Key::RefreshSafetyWindow, "10m")], &[], false).unwrap();
    assert_eq!(s.window, Duration::from_secs(600));
    assert_eq!(s.origins["refresh_safety_window"].0, Origin::Flag("refresh-safety-window"));
    assert!(matches!(s.origins["oci_command"].0, Origin::Ini(_)));
    let s = resolve_with(LOGIN, &[(Key::AutoRefresh, "true")], &[], false).unwrap();
    assert_eq!(s.window, DEFAULT_AUTO_WINDOW);
}

/// Origins name what is in effect: `RUST_LOG` over `--log-level` (it wins in `logging::init`),
/// `--manager-config` like its variable; `open_browser` is an INI key like any other.
#[test]
fn origins_name_the_source_in_effect() {
    let ini = format!("{LOGIN}open_browser = false\n");
    let s = resolve_with(&ini, &[(Key::LogLevel, "info")], &[("RUST_LOG", "debug")], false).unwrap();
    assert_eq!(s.origins["log_level"].0, Origin::Env("RUST_LOG"));
    assert!(matches!(s.origins["open_browser"].0, Origin::Ini(_)));
    let RenewMode::Login(cfg) = &s.mode else { panic!("{:?}", s.mode) };
    assert!(!cfg.open_browser);
    let other = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other.path(), format!("[P]\n{LOGIN}")).unwrap();
    let given = other.path().to_str().unwrap();
    let s = resolve_with("", &[(Key::LogLevel, "info"), (Key::ManagerConfig, given)], &[], false).unwrap();
    assert_eq!(s.origins["log_level"].0, Origin::Flag("log-level"));
    assert_eq!(s.origins["manager_config"].0, Origin::Flag("manager-config"));
}

/// The two ways to get the passphrase: the one given nearer the call wins (the prompt's own
/// error advises `--refresh-token-passphrase-env`), the prompt when both are in the INI.
#[test]
fn the_passphrase_way_given_nearer_the_call_wins() {
    let way = |ini: &str, flags: &[(Key, &str)]| match resolve_with(&format!("{LOGIN}{ini}"), flags, &[], false)
        .unwrap()
        .mode
    {
        RenewMode::Login(c) => match c.passphrase {
            PassphraseSource::Prompt => "prompt",
            PassphraseSource::Env { .. } => "env",
            PassphraseSource::None => "none",
        },
        _ => unreachable!(),
    };
    let prompt_ini = "refresh_token_passphrase_prompt = true\n";
    assert_eq!(way(prompt_ini, &[(Key::PassphraseEnv, "X")]), "env");
    assert_eq!(way(&format!("{prompt_ini}refresh_token_passphrase_env = X\n"), &[]), "prompt");
    assert_eq!(way("refresh_token_passphrase_env = X\n", &[(Key::PassphrasePrompt, "true")]), "prompt");
    assert_eq!(way("refresh_token_passphrase_env = X\n", &[]), "env");
    assert_eq!(way("", &[]), "none");
    // Messages name the winning way as it was given.
    let named = |ini: &str, flags: &[(Key, &str)]| match resolve_with(&format!("{LOGIN}{ini}"), flags, &[], false)
        .unwrap()
        .mode
    {
        RenewMode::Login(c) => c.passphrase_setting,
        _ => unreachable!(),
    };
    assert_eq!(named(prompt_ini, &[(Key::PassphraseEnv, "X")]), "the `--refresh-token-passphrase-env` flag");
    let ini = named("refresh_token_passphrase_env = X\n", &[]);
    assert!(ini.starts_with("`refresh_token_passphrase_env` in `") && ini.ends_with("woci_manager.ini`"), "{ini}");
    assert_eq!(named("", &[]), "");
}

#[test]
fn federation_needs_only_the_exchange_app() {
    let ini = "subject_token_source = env:CI_JOB_JWT_V2\ntoken_exchange_url = https://idcs.example/oauth2/v1/token\n\
client_id = c\nclient_secret = s\n";
    let s = resolve_with(ini, &[], &[("CI_JOB_JWT_V2", "jwt")], false).unwrap();
    let RenewMode::Federated(c) = &s.mode else { panic!("expected federation") };
    assert_eq!(c.source, SubjectTokenSource::Env("CI_JOB_JWT_V2".into()));
    assert_eq!(c.audience, "https://cloud.oracle.com");
    assert_eq!(c.exchange.client_id, "c");
    assert!(s.secret_env.contains(&"CI_JOB_JWT_V2".to_owned()));
    // A relative `file:` of the INI is relative to the INI's folder; of a flag, to the caller's.
    let ini = "subject_token_source = file:ci/token.jwt\ntoken_exchange_url = https://idcs.example/t\nclient_id = c\nclient_secret = s\n";
    let s = resolve_with(ini, &[], &[], false).unwrap();
    let RenewMode::Federated(c) = &s.mode else { panic!("expected federation") };
    assert!(matches!(&c.source, SubjectTokenSource::File(p) if p.is_absolute() && p.ends_with(".oci/ci/token.jwt")));
    let s = resolve_with(ini, &[(Key::SubjectTokenSource, "file:t.jwt")], &[], false).unwrap();
    let RenewMode::Federated(c) = &s.mode else { panic!("expected federation") };
    assert_eq!(c.source, SubjectTokenSource::File("t.jwt".into()));
    let ini = "subject_token_source = env:A\nclient_id = c\nsubject_token_audience = aud\n";
    let e = resolve_with(ini, &[(Key::SubjectTokenSource, "github-actions")], &[], false).unwrap_err().to_string();
    assert!(e.contains("`token_exchange_url`") && e.contains("`client_secret`") && !e.contains("`client_id`"), "{e}");
    let e = resolve_with("subject_token_source = comand:tool --secret hunter2\n", &[], &[], false).unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
    assert!(!e.to_string().contains("hunter2") && e.to_string().contains("`comand:` …"), "{e}");
}

#[test]
fn device_login_settings() {
    let s = resolve_with(&format!("{LOGIN}login_flow = device\n"), &[], &[], false).unwrap();
    let RenewMode::Login(c) = &s.mode else { panic!() };
    assert!(c.device_login);
    let s = resolve_with(&format!("{LOGIN}login_flow = browser\n"), &[(Key::LoginFlow, "device")], &[], false).unwrap();
    let RenewMode::Login(c) = &s.mode else { panic!() };
    assert!(c.device_login, "--device-code wins over the INI");
    let e = resolve_with(&format!("{LOGIN}login_flow = carrier-pigeon\n"), &[], &[], false).unwrap_err();
    assert!(e.to_string().contains("`login_flow`") && e.to_string().contains("`device`"), "{e}");
}

#[test]
fn browser_possible_follows_the_environment() {
    let env = |pairs: &[(&str, &str)]| -> Env { pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect() };
    assert!(!browser_possible(&env(&[]), true), "Linux without a display");
    assert!(browser_possible(&env(&[("DISPLAY", ":0")]), true));
    assert!(browser_possible(&env(&[("WAYLAND_DISPLAY", "wayland-0")]), true));
    assert!(
        !browser_possible(&env(&[("DISPLAY", ":0"), ("SSH_CONNECTION", "1 2 3 4")]), true),
        "X forwarding over SSH"
    );
    assert!(!browser_possible(&env(&[("SSH_TTY", "/dev/pts/1")]), false), "SSH to a Mac");
    assert!(browser_possible(&env(&[("SSH_TTY", "/dev/pts/1"), ("BROWSER", "w3m")]), true));
    assert!(browser_possible(&env(&[]), false), "macOS desktop");
}

#[test]
fn operations_settings() {
    let ini = format!(
        "{LOGIN}metrics_file = ~/m/woci.prom\non_renewal_failure = notify-send 'woci failed'\nexpiring_warning = 90m\nfallback_profile = BACKUP\n"
    );
    let s = resolve_with(&ini, &[], &[], false).unwrap();
    assert!(s.ops.metrics_file.unwrap().ends_with("m/woci.prom"));
    assert_eq!(s.ops.on_renewal_failure.unwrap(), ["notify-send", "woci failed"]);
    assert_eq!(s.ops.expiring_warning, Some(Duration::from_secs(5400)));
    assert_eq!(s.ops.fallback_profile.as_deref(), Some("BACKUP"));
    // Relative to the INI's folder, not to wherever woci (or the daemon) runs.
    let m =
        resolve_with(&format!("{LOGIN}metrics_file = m/w.prom\n"), &[], &[], false).unwrap().ops.metrics_file.unwrap();
    assert!(m.is_absolute() && m.ends_with(".oci/m/w.prom"), "{}", m.display());
    let s = resolve_with(LOGIN, &[], &[], false).unwrap();
    assert_eq!(s.ops.expiring_warning, None);
    let e = resolve_with(&format!("{LOGIN}expiring_warning = soon\n"), &[], &[], false).unwrap_err().to_string();
    assert!(e.contains("`expiring_warning`") && e.contains("`soon`"), "{e}");
}

#[test]
fn secrets_are_never_echoed_in_errors() {
    let e = resolve_with(LOGIN, &[(Key::AuthzBaseUrl, "http://idp.example/a?x=1")], &[], false).unwrap_err();
    assert!(e.to_string().contains("http://idp.example"), "non-secrets are shown: {e}");
    assert!(!format!("{:?}", resolve_with(LOGIN, &[], &[], false).unwrap()).contains("client_secret = s"));
}

#[test]
fn container_settings_come_from_env_and_ini_and_bad_ones_are_named() {
    let ini = "oci_container_image = ini/image\noci_container_runtime = /opt/bin/podman\n\
oci_container_args = -v \"/my data:/backup\" --cpus 2\n";
    assert!(resolve_with("", &[], &[], false).unwrap().container.is_none());
    let s = resolve_with(ini, &[], &[("WOCI_OCI_CONTAINER_IMAGE", "env/image:1")], false).unwrap();
    let c = s.container.unwrap();
    assert_eq!((c.image.as_str(), c.kind), ("env/image:1", RuntimeKind::Podman));
    assert_eq!(c.extra_args, ["-v", "/my data:/backup", "--cpus", "2"]);
    let e = resolve_with(&ini.replace("--cpus 2", "-v '/unterminated"), &[], &[], false).unwrap_err();
    assert!(e.to_string().contains("`oci_container_args`"), "{e}");
    for bad in ["nerdctl", "docker --debug"] {
        let e = resolve_with(&ini.replace("/opt/bin/podman", bad), &[], &[], false).unwrap_err();
        assert!(e.to_string().contains("`oci_container_runtime`") && e.exit_code() == 2, "{bad}: {e}");
    }
}

#[test]
fn default_runtime_is_the_first_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().as_os_str().to_owned();
    assert_eq!(default_runtime(Some(path.clone())), "docker");
    let podman = dir.path().join("podman");
    std::fs::write(&podman, "").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&podman, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(default_runtime(Some(path)), "podman");
    }
}

#[test]
fn changes_name_each_changed_setting_and_never_a_secret_or_a_command() {
    let old = resolve_with(&format!("{LOGIN}on_renewal_failure = notify --token s3cret-a\n"), &[], &[], false).unwrap();
    let new = resolve_with(
        &format!(
            "{}expiring_warning = 2h\nmetrics_file = /m/w.prom\non_renewal_failure = notify --token s3cret-b\nlog_level = debug\n",
            LOGIN
                .replace("client_secret = s", "client_secret = s3cret-new")
                .replace("scope = openid offline_access\n", "")
        ),
        &[],
        &[],
        true,
    )
    .unwrap();
    assert_eq!(
        crate::settings::changes(&old, &new),
        [
            "`client_secret` changed",
            "`scope` `openid offline_access` → default",
            "`metrics_file` default → `/m/w.prom`",
            "`on_renewal_failure` changed",
            "`expiring_warning` default → `2h`",
            "`log_level` default → `debug` (at the next start)",
        ]
    );
    assert!(crate::settings::changes(&old, &old).is_empty());
}

#[test]
fn a_bad_fallback_profile_is_named_once() {
    let msg = resolve_with("fallback_profile = a/b\n", &[], &[], false).unwrap_err().to_string();
    assert!(msg.contains("is not a valid profile name") && msg.matches("a/b").count() == 1, "{msg}");
}

#[test]
fn only_a_browser_login_needs_a_redirect_port() {
    let ini = LOGIN.replace("redirect_port = 8181\n", "");
    let s = resolve_with(&ini, &[], &[], false).unwrap();
    assert!(matches!(s.mode, RenewMode::Login(ref c) if c.idp.redirect_port.is_none()));
    let s = resolve_with(&format!("{ini}login_flow = device\n"), &[], &[], false).unwrap();
    assert!(matches!(s.mode, RenewMode::Login(ref c) if c.device_login));
}

#[test]
fn oci_command_expands_the_home_folder_like_other_paths() {
    let s = resolve_with("oci_command = ~/bin/oci\n", &[], &[], false).unwrap();
    let home = s.oci_config_file.parent().unwrap().parent().unwrap().to_owned();
    assert_eq!(s.oci_command, home.join("bin/oci").into_os_string());
    let s = resolve_with("oci_command = oci-3.95\n", &[], &[], false).unwrap();
    assert_eq!(s.oci_command, "oci-3.95", "a bare name stays a PATH lookup");
}

#[test]
fn the_proxy_variable_that_is_wrong_is_named() {
    let err = resolve_with(LOGIN, &[], &[("ALL_PROXY", "socks5://127.0.0.1:1080")], false).unwrap_err();
    assert!(err.to_string().contains("`ALL_PROXY`") && err.to_string().contains("`socks5`"), "{err}");
    let err = resolve_with(LOGIN, &[], &[("https_proxy", "http://[::1")], false).unwrap_err();
    assert!(err.to_string().starts_with("`https_proxy`"), "{err}");
    let s = resolve_with(LOGIN, &[], &[("ALL_PROXY", "proxy.corp:3128")], false).unwrap();
    assert_eq!(s.upstream_proxy.unwrap().as_str(), "http://proxy.corp:3128/");
}

/// As `oci` (Python's urllib) and curl: the lower-case variable wins over the upper-case one, and
/// one set but empty turns that proxy off.
#[test]
fn lower_case_proxy_variables_win() {
    let both = [("https_proxy", "http://good:1"), ("HTTPS_PROXY", "http://dead:2")];
    let s = resolve_with(LOGIN, &[], &both, false).unwrap();
    assert_eq!((s.upstream_proxy.unwrap().as_str(), s.upstream_proxy_var), ("http://good:1/", "https_proxy"));
    let off = [("https_proxy", ""), ("HTTPS_PROXY", "http://dead:2"), ("ALL_PROXY", "http://all:3")];
    assert_eq!(resolve_with(LOGIN, &[], &off, false).unwrap().upstream_proxy.unwrap().as_str(), "http://all:3/");
    let lists = [("HTTPS_PROXY", "http://p:1"), ("no_proxy", "127.0.0.1"), ("NO_PROXY", "example.org")];
    let s = resolve_with(LOGIN, &[], &lists, false).unwrap();
    assert!(s.no_proxy.bypass("127.0.0.1", 443) && !s.no_proxy.bypass("example.org", 443));
}

#[test]
fn a_ca_bundle_variable_naming_a_device_or_fifo_is_refused() {
    let err = resolve_with(LOGIN, &[], &[("SSL_CERT_FILE", "/dev/zero")], false).unwrap_err();
    assert!(err.to_string().starts_with("`SSL_CERT_FILE` names `/dev/zero`, which is not a regular file"), "{err}");
    assert_eq!(err.exit_code(), crate::error::exit::CONFIG);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ca.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let err = resolve_with(LOGIN, &[], &[("NODE_EXTRA_CA_CERTS", fifo.to_str().unwrap())], false).unwrap_err();
    assert!(err.to_string().contains("`NODE_EXTRA_CA_CERTS`"), "{err}");
    // A folder (requests takes one), or a file that is not there, is no error.
    let dir_path = dir.path().to_str().unwrap();
    resolve_with(LOGIN, &[], &[("REQUESTS_CA_BUNDLE", dir_path), ("SSL_CERT_FILE", "/nonexistent.pem")], false)
        .unwrap();
    // "No extra CAs", and a shell's `<(cat bundle.pem)`.
    resolve_with(LOGIN, &[], &[("SSL_CERT_FILE", "/dev/null"), ("NODE_EXTRA_CA_CERTS", "/dev/fd/63")], false).unwrap();
}

/// Keys indented as deep as each other are keys; a line indented deeper goes on with the value
/// above, which a one-line setting refuses before anything is sent (a secret in a client id).
#[test]
fn indented_keys_and_values_that_go_on() {
    let indented: String = LOGIN.lines().map(|l| format!("    {l}\n")).collect();
    let s = resolve_with(&indented, &[], &[], false).unwrap();
    assert!(matches!(s.mode, RenewMode::Login(_)), "{:?}", s.mode);
    let ini = LOGIN.replace("client_secret = s\n", "  client_secret = s\n");
    let e = resolve_with(&ini, &[], &[], false).unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
    let m = e.to_string();
    assert!(
        m.contains("`client_id` in `") && m.contains("indent the next key as deep as") && !m.contains("= s"),
        "{m}"
    );
    let scope = LOGIN.replace("scope = openid offline_access\n", "scope = openid\n  offline_access\n");
    assert!(resolve_with(&scope, &[], &[], false).is_ok(), "scopes may go on");
}

/// The OCI config as oci finds it: `~/.oci/config` when it is a file, else `OCI_CONFIG_FILE`,
/// else `~/.oraclebmc/config`; `~/.oci/config` written as it is counts as not given.
#[test]
fn the_oci_config_is_found_as_oci_finds_it() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir_all(h.join(".oci")).unwrap();
    let resolve = |env: &[(&str, &str)], config_flag: Option<&str>| {
        let mut e: Env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        e.insert("HOME".into(), h.display().to_string());
        let oci =
            OciView { profile: Some("P".into()), config_file: config_flag.map(PathBuf::from), ..OciView::default() };
        let s = Settings::resolve(&Flags::default(), &oci, &e, true).unwrap();
        // Where it came from, for `--status`: oci's flag or variable (else the INI, or none).
        let origin = s.origins.get("config_file").map(|(o, _)| o.plain());
        match (config_flag.filter(|f| *f != "~/.oci/config"), e.contains_key("OCI_CLI_CONFIG_FILE")) {
            (Some(_), _) => assert_eq!(origin.as_deref(), Some("flag --config-file")),
            (None, true) => assert_eq!(origin.as_deref(), Some("env OCI_CLI_CONFIG_FILE")),
            (None, false) => assert_eq!(origin, None),
        }
        s.oci_config_file
    };
    assert_eq!(resolve(&[], None), h.join(".oci/config"), "none: the default, created on first use");
    std::fs::create_dir_all(h.join(".oraclebmc")).unwrap();
    std::fs::write(h.join(".oraclebmc/config"), "[P]\n").unwrap();
    assert_eq!(resolve(&[], None), h.join(".oraclebmc/config"));
    assert_eq!(resolve(&[("OCI_CONFIG_FILE", "~/mine")], None), h.join("mine"));
    std::fs::write(h.join(".oci/config"), "[P]\n").unwrap();
    assert_eq!(resolve(&[("OCI_CONFIG_FILE", "~/mine")], None), h.join(".oci/config"));
    let cli = [("OCI_CLI_CONFIG_FILE", "~/alt")];
    assert_eq!(resolve(&cli, Some("~/.oci/config")), h.join("alt"), "as written, the flag is oci's default");
    assert_eq!(resolve(&cli, Some("~/other")), h.join("other"));
}

/// A home whose `~/.oci/oci_cli_rc` says `rc`, and an environment naming it as `HOME`.
fn home_with_cli_rc(rc: &str) -> (tempfile::TempDir, Env) {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".oci")).unwrap();
    std::fs::write(home.path().join(".oci/oci_cli_rc"), rc).unwrap();
    let env = Env::from([("HOME".to_owned(), home.path().display().to_string())]);
    (home, env)
}

/// oci expands `$VAR`s in what it takes from oci_cli_rc (`os.path.expandvars`); so does woci, so a
/// `region = $MYREGION` never goes into the OCI config as it is, nor a CA path unexpanded (a
/// review of round 105).
#[test]
fn variables_in_oci_cli_rc_values_are_expanded_as_oci_does() {
    let (home, mut env) = home_with_cli_rc("[P]\nregion = $MYREGION\ncert-bundle = ${HOME}/ca.pem\n");
    let h = home.path().display().to_string();
    env.insert("MYREGION".to_owned(), "us-ashburn-1".to_owned());
    let oci = OciView { profile: Some("P".into()), ..OciView::default() };
    let s = Settings::resolve(&Flags::default(), &oci, &env, true).unwrap();
    assert_eq!(s.region.as_deref(), Some("us-ashburn-1"));
    assert_eq!(s.extra_ca_files, [PathBuf::from(format!("{h}/ca.pem"))]);
}

/// A profile name that cannot be one says where it came from.
#[test]
fn a_bad_profile_name_names_its_source() {
    let (home, env) = home_with_cli_rc("[OCI_CLI_SETTINGS]\ndefault_profile = EMU\n    EMU2\n");
    let e = Settings::resolve(&Flags::default(), &OciView::default(), &env, true).unwrap_err().to_string();
    assert!(e.starts_with("invalid profile name `EMU\nEMU2`, from `default_profile` in `"), "{e}");
    assert!(e.contains(": it holds a control character, and woci keeps each profile's session"), "{e}");
    let oci = OciView { profile: Some("a/b".into()), ..OciView::default() };
    let e = Settings::resolve(&Flags::default(), &oci, &env, true).unwrap_err().to_string();
    assert!(e.starts_with("invalid profile name `a/b`, from `--profile`: it holds `/`"), "{e}");
    assert!(e.ends_with("use another name (rename its sections in the OCI config and `woci_manager.ini`)"), "{e}");
    let oci = OciView { profile: Some("q\"uo\\te".into()), ..OciView::default() };
    let e = Settings::resolve(&Flags::default(), &oci, &env, true).unwrap_err().to_string();
    assert!(e.starts_with("invalid profile name `q\"uo\\te`, from `--profile`: it holds `\\`"), "as typed: {e}");
    // Set but empty, as oci takes it: no profile `` (not DEFAULT).
    let mut env = env.clone();
    env.insert("OCI_CLI_PROFILE".into(), String::new());
    let e = Settings::resolve(&Flags::default(), &OciView::default(), &env, true).unwrap_err().to_string();
    assert!(e.starts_with("invalid profile name ``, from `OCI_CLI_PROFILE`: it is empty"), "{e}");
    // The same from oci_cli_rc's `default_profile =` (oci: "Profile '' not found").
    std::fs::write(home.path().join(".oci/oci_cli_rc"), "[OCI_CLI_SETTINGS]\ndefault_profile =\n").unwrap();
    env.remove("OCI_CLI_PROFILE");
    let e = Settings::resolve(&Flags::default(), &OciView::default(), &env, true).unwrap_err().to_string();
    assert!(e.starts_with("invalid profile name ``, from `default_profile` in `"), "{e}");
}

/// `--profile COMMON` where woci_manager.ini has the shared `[COMMON]`: refused, since whatever
/// it holds is every profile's, not a profile's (a phantom session folder and metrics line
/// otherwise; round 77 F2, round 78 F4). Without that section the name is an ordinary profile.
#[test]
fn the_shared_section_is_no_profile() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".oci")).unwrap();
    let env: Env = [("HOME".to_owned(), home.path().display().to_string())].into_iter().collect();
    let oci = OciView { profile: Some("COMMON".into()), ..OciView::default() };
    for (ini, refused) in [(format!("[COMMON]\n{LOGIN}"), true), (format!("[P]\n{LOGIN}"), false)] {
        std::fs::write(home.path().join(".oci/woci_manager.ini"), ini).unwrap();
        match Settings::resolve(&Flags::default(), &oci, &env, true) {
            Err(e) => {
                assert!(refused && e.to_string().contains("is the section every profile shares"), "{e}");
                assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
            }
            Ok(s) => assert!(!refused, "{:?}", s.mode),
        }
    }
}
