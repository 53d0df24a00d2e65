use super::*;
use crate::settings::Key;

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn p(args: &[&str]) -> Invocation {
    parse(os(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn oci_args(inv: &Invocation) -> Vec<String> {
    match &inv.command {
        Command::Oci(a) | Command::Passthrough(a) => a.iter().map(|s| s.to_string_lossy().into_owned()).collect(),
        other => panic!("expected Command::Oci, got {other:?}"),
    }
}

fn err(args: &[&str]) -> String {
    let e = parse(os(args)).expect_err(&format!("{args:?} should fail"));
    assert_eq!(e.exit_code(), crate::error::exit::CONFIG, "{e}");
    e.to_string()
}

#[test]
fn no_args_is_help() {
    assert_eq!(parse(vec![]).unwrap().command, Command::Help);
}

#[test]
fn plain_oci_command_passes_through() {
    let inv = p(&["os", "ns", "get"]);
    assert_eq!(oci_args(&inv), ["os", "ns", "get"]);
    assert_eq!(inv.flags, Flags::default());
    assert_eq!(inv.oci, OciView { words: vec!["os".into(), "ns".into(), "get".into()], ..OciView::default() });
}

#[test]
fn shared_name_after_first_word_goes_to_oci() {
    let inv = p(&["os", "object", "put", "--bucket-name", "b", "--file", "f", "--client-id", "x"]);
    assert_eq!(oci_args(&inv), ["os", "object", "put", "--bucket-name", "b", "--file", "f", "--client-id", "x"]);
    assert_eq!(inv.flags.get(Key::ClientId), None);
    for name in ["--client-secret", "--scope", "--log-level"] {
        let inv = p(&["iam", "x", name, "v"]);
        assert_eq!(oci_args(&inv), ["iam", "x", name, "v"]);
        assert_eq!(inv.flags, Flags::default(), "{name}");
    }
    for flag in ["--json", "--help", "-h", "--version", "-v", "--exec", "--man"] {
        let inv = p(&["os", "ns", "get", flag]);
        assert_eq!(oci_args(&inv), ["os", "ns", "get", flag]);
    }
    let inv = p(&["os", "ns", "get", "--completions", "bash"]);
    assert_eq!(oci_args(&inv), ["os", "ns", "get", "--completions", "bash"]);
}

#[test]
fn shared_name_before_first_word_is_woci() {
    let inv = p(&["--client-id", "x", "os", "ns", "get"]);
    assert_eq!(inv.flags.get(Key::ClientId), Some("x"));
    assert_eq!(oci_args(&inv), ["os", "ns", "get"]);
    let inv = p(&["--client-secret=s", "--scope", "openid offline_access", "--log-level=debug", "os", "ns", "get"]);
    assert_eq!(inv.flags.get(Key::ClientSecret), Some("s"));
    assert_eq!(inv.flags.get(Key::Scope), Some("openid offline_access"));
    assert_eq!(inv.flags.get(Key::LogLevel), Some("debug"));
    assert_eq!(oci_args(&inv), ["os", "ns", "get"]);
}

#[test]
fn oci_option_values_are_not_words() {
    // `P` and `table` are values, so `--client-id` is still before the first word.
    let inv = p(&["--profile", "P", "--output", "table", "--client-id", "x", "os", "ns", "get"]);
    assert_eq!(inv.flags.get(Key::ClientId), Some("x"));
    assert_eq!(oci_args(&inv), ["--profile", "P", "--output", "table", "os", "ns", "get"]);
    assert_eq!(inv.oci.profile.as_deref(), Some("P"));
}

#[test]
fn woci_only_options_anywhere_both_forms() {
    let inv = p(&[
        "os",
        "object",
        "put",
        "--auto-refresh",
        "--bucket-name",
        "b",
        "--token-url",
        "https://idp/token",
        "--redirect-port=8181",
        "--file",
        "f",
        "--manager-config",
        "/m.ini",
        "--refresh-safety-window",
        "900",
        "--no-resign-proxy",
        "--no-browser",
        "--login-timeout=30",
        "--refresh-token-passphrase-env",
        "PW",
        "--refresh-token-passphrase-prompt",
        "--authz-base-url=https://idp/authorize",
        "--token-exchange-url",
        "https://dom/token",
        "--auth-client-id",
        "a",
        "--auth-client-secret=sec",
    ]);
    assert_eq!(oci_args(&inv), ["os", "object", "put", "--bucket-name", "b", "--file", "f"]);
    let o = &inv.flags;
    assert_eq!(o.get(Key::AutoRefresh), Some("true"));
    assert_eq!(o.get(Key::ResignProxy), Some("false"), "--no-resign-proxy");
    assert_eq!(o.get(Key::OpenBrowser), Some("false"), "--no-browser");
    assert_eq!(o.get(Key::PassphrasePrompt), Some("true"));
    assert_eq!(o.get(Key::TokenUrl), Some("https://idp/token"));
    assert_eq!(o.get(Key::RedirectPort), Some("8181"));
    assert_eq!(o.get(Key::ManagerConfig), Some("/m.ini"));
    assert_eq!(o.get(Key::RefreshSafetyWindow), Some("900"));
    assert_eq!(o.get(Key::LoginTimeout), Some("30"));
    assert_eq!(o.get(Key::PassphraseEnv), Some("PW"));
    assert_eq!(o.get(Key::AuthzBaseUrl), Some("https://idp/authorize"));
    assert_eq!(o.get(Key::TokenExchangeUrl), Some("https://dom/token"));
    assert_eq!(o.get(Key::AuthClientId), Some("a"));
    assert_eq!(o.get(Key::AuthClientSecret), Some("sec"));
}

#[test]
fn values_may_contain_equals_and_start_with_dash() {
    let inv = p(&["--token-url=https://idp/token?a=b", "--auth-client-secret", "-secret-", "os", "ns", "get"]);
    assert_eq!(inv.flags.get(Key::TokenUrl), Some("https://idp/token?a=b"));
    assert_eq!(inv.flags.get(Key::AuthClientSecret), Some("-secret-"));
    assert_eq!(oci_args(&inv), ["os", "ns", "get"]);
}

#[test]
fn profile_and_friends_are_read_but_kept() {
    let inv = p(&[
        "--profile=P",
        "os",
        "ns",
        "get",
        "--region",
        "us-phoenix-1",
        "--config-file=/c",
        "--auth",
        "security_token",
        "--cert-bundle",
        "/ca.pem",
        "--endpoint=https://e",
    ]);
    assert_eq!(
        oci_args(&inv),
        [
            "--profile=P",
            "os",
            "ns",
            "get",
            "--region",
            "us-phoenix-1",
            "--config-file=/c",
            "--auth",
            "security_token",
            "--cert-bundle",
            "/ca.pem",
            "--endpoint=https://e",
        ]
    );
    assert_eq!(
        inv.oci,
        OciView {
            profile: Some("P".into()),
            config_file: Some("/c".into()),
            region: Some("us-phoenix-1".into()),
            auth: Some("security_token".into()),
            cert_bundle: Some("/ca.pem".into()),
            endpoint: Some("https://e".into()),
            cli_rc_file: None,
            words: inv.oci.words.clone(),
            lookalike: None,
        }
    );
}

#[test]
fn last_profile_wins_like_oci() {
    let inv = p(&["--profile", "A", "os", "ns", "get", "--profile", "B"]);
    assert_eq!(inv.oci.profile.as_deref(), Some("B"));
}

#[test]
fn dashdash_ends_woci_options() {
    let inv = p(&["--auto-refresh", "--", "os", "ns", "get", "--auto-refresh", "--client-id", "x", "--", "y"]);
    assert_eq!(inv.flags.get(Key::AutoRefresh), Some("true"));
    assert_eq!(oci_args(&inv), ["os", "ns", "get", "--auto-refresh", "--client-id", "x", "--", "y"]);
    assert_eq!(oci_args(&p(&["--", "--help"])), ["--help"]);
    assert_eq!(oci_args(&p(&["--", "--version"])), ["--version"]);
    // oci's options after `--` are still read (oci sees them).
    assert_eq!(p(&["--", "--profile", "Q", "os", "ns", "get"]).oci.profile.as_deref(), Some("Q"));
    // A `--` after the first oci word is oci's: passed on, and it still ends woci's options.
    let inv = p(&["os", "ns", "get", "--auto-refresh", "--", "--no-browser", "x"]);
    assert!(inv.flags.get(Key::AutoRefresh) == Some("true") && inv.flags.get(Key::OpenBrowser).is_none());
    assert_eq!(oci_args(&inv), ["os", "ns", "get", "--", "--no-browser", "x"]);
    // `session refresh` after `--` is oci's own.
    assert_eq!(oci_args(&p(&["--", "session", "refresh"])), ["session", "refresh"]);
}

#[test]
fn exec_takes_the_program_after_dashdash() {
    let inv = p(&["--exec", "--profile", "P", "--auto-refresh", "--", "terraform", "plan", "--client-id", "x", "--"]);
    assert_eq!(
        inv.command,
        Command::Exec { program: "terraform".into(), args: os(&["plan", "--client-id", "x", "--"]) }
    );
    assert_eq!(inv.flags.get(Key::AutoRefresh), Some("true"));
    assert_eq!(inv.oci.profile.as_deref(), Some("P"));
    let inv = p(&["--debug", "--region=r", "--exec", "--", "./script.sh"]);
    assert_eq!(inv.command, Command::Exec { program: "./script.sh".into(), args: vec![] });
    assert_eq!(inv.flags.get(Key::Debug), Some("true"));
    assert_eq!(inv.oci.region.as_deref(), Some("r"));
}

/// `woci --exec -- oci …`: oci's own `--profile`, `--endpoint`, … choose the session and the
/// re-signed hosts where woci's options before `--` say nothing; a profile given both ways and
/// differently is refused. Another program's arguments are its own.
#[test]
fn exec_of_oci_reads_ocis_own_options() {
    let inv = p(&["--exec", "--", "/venv/bin/oci", "os", "ns", "get", "--profile", "EMU", "--endpoint=https://h:1"]);
    assert_eq!(inv.oci.profile.as_deref(), Some("EMU"));
    assert_eq!(inv.oci.endpoint.as_deref(), Some("https://h:1"));
    assert_eq!(inv.oci.words, ["os", "ns", "get"]);
    let inv = p(&["--profile", "EMU", "--region", "r", "--exec", "--", "oci", "os", "ns", "get", "--region", "q"]);
    assert_eq!((inv.oci.profile.as_deref(), inv.oci.region.as_deref()), (Some("EMU"), Some("r")));
    assert!(err(&["--profile", "A", "--exec", "--", "oci", "--profile", "B"]).contains("differ"));
    // The same config file spelled two ways is the same.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("config"), dir.path().join("x/../config"));
    std::fs::create_dir(dir.path().join("x")).unwrap();
    std::fs::write(&a, "").unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    assert_eq!(
        p(&["--config-file", a, "--exec", "--", "oci", "--config-file", b]).oci.config_file.as_deref(),
        Some(std::path::Path::new(a))
    );
    let inv = p(&["--exec", "--", "terraform", "--profile", "X"]);
    assert_eq!(inv.oci.profile, None);
}

#[test]
fn exec_errors() {
    assert!(err(&["--exec"]).contains("`--exec`"));
    assert!(err(&["--exec", "terraform", "plan"]).contains("`--exec`"));
    assert!(err(&["--exec", "--"]).contains("`--exec`"));
    assert!(err(&["--exec", "--output", "json", "--", "x"]).contains("`--output`"));
    // After the first word, `--exec` is oci's.
    assert_eq!(oci_args(&p(&["os", "--exec"])), ["os", "--exec"]);
}

#[test]
fn debug_before_first_word_is_both() {
    let inv = p(&["--debug", "os", "ns", "get"]);
    assert_eq!(inv.flags.get(Key::Debug), Some("true"));
    assert_eq!(oci_args(&inv), ["--debug", "os", "ns", "get"]);
    let inv = p(&["os", "ns", "get", "--debug"]);
    assert_eq!(inv.flags.get(Key::Debug), None);
    assert_eq!(oci_args(&inv), ["os", "ns", "get", "--debug"]);
}

#[test]
fn session_commands() {
    let inv = p(&["session", "authenticate"]);
    assert_eq!(inv.command, Command::SessionAuthenticate(os(&["session", "authenticate"])));
    let inv = p(&["--profile", "P", "session", "refresh", "--region", "r"]);
    assert_eq!(inv.command, Command::SessionRefresh(os(&["--profile", "P", "session", "refresh", "--region", "r"])));
    assert_eq!(inv.oci.profile.as_deref(), Some("P"));
    assert_eq!(inv.oci.region.as_deref(), Some("r"));
    let inv = p(&["session", "--profile=P", "authenticate"]);
    assert!(matches!(inv.command, Command::SessionAuthenticate(_)));
    assert_eq!(inv.oci.profile.as_deref(), Some("P"));
    assert_eq!(oci_args(&p(&["session", "validate", "--profile", "P"])), ["session", "validate", "--profile", "P"]);
    assert_eq!(oci_args(&p(&["session"])), ["session"]);
    assert_eq!(oci_args(&p(&["os", "session", "refresh"])), ["os", "session", "refresh"]);
}

#[test]
fn informational_commands() {
    assert_eq!(p(&["--help"]).command, Command::Help);
    assert_eq!(p(&["-h"]).command, Command::Help);
    assert_eq!(p(&["--profile", "P", "--help"]).command, Command::Help);
    assert_eq!(p(&["--version"]).command, Command::Version);
    assert_eq!(p(&["-v"]).command, Command::Version);
    assert_eq!(p(&["--completions", "bash"]).command, Command::Completions(clap_complete::Shell::Bash));
    assert_eq!(p(&["--completions=zsh"]).command, Command::Completions(clap_complete::Shell::Zsh));
    assert_eq!(p(&["--completions", "fish"]).command, Command::Completions(clap_complete::Shell::Fish));
    assert_eq!(p(&["--man"]).command, Command::Man);
    assert_eq!(p(&["--help", "--version"]).command, Command::Help);
}

#[test]
fn status_and_daemon_commands() {
    let inv = p(&["--status", "--json", "--profile", "P"]);
    assert_eq!(inv.command, Command::Status { all: false, prompt: false });
    assert!(inv.json);
    assert_eq!(inv.oci.profile.as_deref(), Some("P"));
    // `--json` before `--status` too; `--profile P` is an option and its value, not a word.
    let inv = p(&["--profile", "P", "--json", "--status"]);
    assert_eq!(inv.command, Command::Status { all: false, prompt: false });
    assert!(inv.json);
    assert_eq!(p(&["--daemon", "--profile=P"]).command, Command::Daemon { login: false });
    // The Python woci's `woci --daemon session authenticate`: log in, then start the daemon.
    assert_eq!(p(&["--daemon", "session", "authenticate"]).command, Command::Daemon { login: true });
    assert!(err(&["--daemon", "session", "refresh"]).contains("takes no oci command"));
    assert!(err(&["--daemon", "session", "authenticate", "foo"]).contains("takes nothing more, got `foo`"));
    assert_eq!(p(&["--daemon-status"]).command, Command::DaemonStatus);
    assert_eq!(p(&["--stop-daemon"]).command, Command::StopDaemon);
    assert_eq!(p(&["--daemon-run", "--profile", "P"]).command, Command::DaemonRun);
}

#[test]
fn conflicting_commands() {
    assert!(err(&["--daemon", "--stop-daemon"]).contains("cannot be combined"));
    assert!(err(&["--status", "--daemon-status"]).contains("cannot be combined"));
    assert!(err(&["--exec", "--status", "--", "x"]).contains("cannot be combined"));
    assert!(err(&["--daemon", "--auto-refresh"]).contains("`--auto-refresh` and `--daemon` cannot be combined"));
    assert!(err(&["--auto-refresh", "--stop-daemon"]).contains("cannot be combined"));
    assert!(err(&["--status", "os", "ns", "get"]).contains("`os`"));
    // `--json` shapes a report; elsewhere it would be dropped without a word.
    assert!(err(&["--json"]).contains("`--json` goes with `--status` or `--daemon-status`"));
    assert!(err(&["--stop-daemon", "--json"]).contains("`--json` goes with"));
    assert!(err(&["--status", "--prompt", "--json"]).contains("`--prompt` and `--json` cannot be combined"));
    assert!(p(&["--daemon-status", "--json"]).json);
    assert_eq!(oci_args(&p(&["os", "ns", "get", "--json"])), ["os", "ns", "get", "--json"], "oci's after its words");
    // After the first oci word `--status` is oci's: some 80 services filter lists by it.
    let inv = p(&["ce", "work-request", "list", "--status", "SUCCEEDED", "--profile", "P"]);
    assert_eq!(oci_args(&inv), ["ce", "work-request", "list", "--status", "SUCCEEDED", "--profile", "P"]);
    assert!(matches!(inv.command, Command::Oci(_)), "{:?}", inv.command);
    assert!(matches!(
        p(&["monitoring", "alarm-status", "list-alarms-status", "--status=FIRING"]).command,
        Command::Oci(_)
    ));
    assert!(err(&["--daemon", "--", "x"]).contains("after `--`"));
}

#[test]
fn usage_errors_name_the_option() {
    // oci's own options too: a trailing `--profile` is not the default profile.
    assert!(err(&["os", "ns", "get", "--profile"]).contains("`--profile` needs a value"));
    assert!(err(&["--region"]).contains("`--region` needs a value"));
    assert!(err(&["--token-url"]).contains("`--token-url` needs a value"));
    assert!(err(&["os", "ns", "get", "--manager-config"]).contains("`--manager-config`"));
    assert!(err(&["--redirect-port", "abc"]).contains("`--redirect-port`"));
    assert!(err(&["--redirect-port=0"]).contains("`--redirect-port`"));
    assert!(err(&["--redirect-port=70000"]).contains("`--redirect-port`"));
    assert!(err(&["--refresh-safety-window", "10x"]).contains("`--refresh-safety-window`"));
    assert!(err(&["--login-timeout=-1"]).contains("`--login-timeout`"));
    assert!(err(&["--completions", "tcsh"]).contains("`--completions`"));
    assert!(err(&["--completions"]).contains("`--completions` needs a value"));
    assert!(err(&["--auto-refresh=yes", "os"]).contains("`--auto-refresh` takes no value"));
    for e in [err(&["--token-url"]), err(&["--redirect-port", "x"])] {
        assert!(!e.contains('\n'), "one line: {e}");
    }
}

#[test]
fn lookalikes_after_the_first_word_go_to_oci() {
    let inv = p(&["-d", "os", "--auto-refreshx", "--profile-name", "X", "--tokenurl=1", "-"]);
    assert_eq!(oci_args(&inv), ["-d", "os", "--auto-refreshx", "--profile-name", "X", "--tokenurl=1", "-"]);
    for lookalike in ["--auto-refreshx", "--profile-name", "--tokenurl=1"] {
        err(&[lookalike, "os"]);
    }
    assert_eq!(inv.flags, Flags::default());
    assert_eq!(inv.oci.profile, None);
}

#[test]
fn last_value_wins_for_woci_options() {
    let inv = p(&["--token-url", "a", "os", "--token-url=b"]);
    assert_eq!(inv.flags.get(Key::TokenUrl), Some("b"));
}

#[cfg(unix)]
#[test]
fn non_utf8_arguments_survive() {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bad = OsString::from_vec(b"caf\xe9.txt".to_vec());
    let mut eq = b"--file=".to_vec();
    eq.extend_from_slice(b"\xff\xfe");
    let bad_eq = OsString::from_vec(eq);
    let mut cfg = b"--config-file=/tmp/".to_vec();
    cfg.extend_from_slice(b"\xff");
    let cfg = OsString::from_vec(cfg);
    let args = vec![
        OsString::from("--auto-refresh"),
        OsString::from("os"),
        OsString::from("object"),
        OsString::from("put"),
        OsString::from("--file"),
        bad.clone(),
        bad_eq.clone(),
        cfg.clone(),
        OsString::from_vec(b"\xff".to_vec()),
    ];
    let inv = parse(args.clone()).unwrap();
    assert_eq!(inv.flags.get(Key::AutoRefresh), Some("true"));
    assert_eq!(inv.command, Command::Oci(args[1..].to_vec()));
    assert_eq!(inv.oci.config_file.as_deref().map(|p| p.as_os_str().as_bytes()), Some(&b"/tmp/\xff"[..]));
    // A non-UTF-8 manager config path is fine; a non-UTF-8 URL or profile is not.
    let mut mc = b"--manager-config=/x/".to_vec();
    mc.push(0xff);
    let inv = parse(vec![OsString::from_vec(mc), OsString::from("os")]).unwrap();
    assert_eq!(inv.flags.get_os(Key::ManagerConfig).unwrap().as_bytes(), b"/x/\xff");
    let e = parse(vec![OsString::from("--token-url"), OsString::from_vec(b"\xff".to_vec())]).unwrap_err();
    assert!(e.to_string().contains("`--token-url`"), "{e}");
    let e = parse(vec![OsString::from("--profile"), OsString::from_vec(b"\xff".to_vec()), "os".into()]).unwrap_err();
    assert!(e.to_string().contains("`--profile`"), "{e}");
}

#[test]
fn options_table_is_consistent() {
    let mut longs: Vec<&str> = options().map(|o| o.long).collect();
    longs.sort_unstable();
    longs.dedup();
    assert_eq!(longs.len(), options().count(), "duplicate long names");
    // Names oci uses are never woci's anywhere.
    for shared in ["client-id", "client-secret", "scope", "log-level", "json", "help", "version", "debug", "exec"] {
        let o = options().find(|o| o.long == shared).unwrap();
        assert_eq!(o.scope, Scope::Leading, "{shared}");
    }
    for o in options().filter(|o| !matches!(o.long, "help" | "version" | "debug")) {
        assert!(oci_globals::find(&format!("--{}", o.long)).is_none(), "{} is an oci global option", o.long);
    }
    command().debug_assert();
}

#[test]
fn help_describes_options_and_the_rule() {
    let h = help_text();
    let flat = h.split_whitespace().collect::<Vec<_>>().join(" ");
    for o in options().filter(|o| !o.hidden) {
        assert!(h.contains(&format!("--{}", o.long)), "help lacks --{}", o.long);
    }
    assert!(!h.contains("--daemon-run"), "hidden option shown");
    assert!(h.contains("woci -- --help") && h.contains("oci --help"));
    assert!(flat.contains("first oci word"), "{h}");
    assert!(flat.contains("woci session authenticate"), "{h}");
}

#[test]
fn completions_generate_for_each_shell() {
    for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
        let c = completions(shell);
        assert!(c.contains("woci"), "{shell:?}");
        assert!(c.contains("auto-refresh"), "{shell:?}");
        assert!(c.contains("manager-config"), "{shell:?}");
        assert!(!c.contains("daemon-run"), "{shell:?} shows the hidden option");
        assert!(c.contains("profile") && c.contains("config-file"), "{shell:?} offers oci's global options");
        assert!(c.contains("warning"), "{shell:?} offers --log-level's words");
    }
    // File names only where the value is one; oci's listed words where it lists them.
    let bash = completions(clap_complete::Shell::Bash);
    let offer = |option: &str| {
        let at = bash.find(&format!("                {option})\n")).unwrap_or_else(|| panic!("{option}"));
        bash[at..].split(";;").next().unwrap().to_owned()
    };
    for option in ["--profile", "--region", "--token-url", "--endpoint"] {
        assert!(!offer(option).contains("compgen -f"), "{option}: {}", offer(option));
    }
    assert!(offer("--manager-config").contains("compgen -f") && offer("--cert-bundle").contains("compgen -f"));
    assert!(offer("--output").contains("\"json table\""), "{}", offer("--output"));
    // Help lists no value words.
    assert!(!help_text().contains("possible values"));
}

#[test]
fn man_page_renders() {
    let m = String::from_utf8(man_page()).unwrap();
    assert!(m.contains(".TH woci"), "{}", &m[..m.len().min(200)]);
    assert!(m.contains("auto\\-refresh"));
    let flat = m.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("first oci word"), "{m}");
}

#[test]
fn no_native_is_wocis_anywhere_and_not_passed_on() {
    let args = ["ce", "cluster", "generate-token", "--cluster-id", "c", "--no-native", "--region", "r"];
    let inv = p(&args);
    assert_eq!(inv.flags.get(Key::NativeOke), Some("false"));
    assert_eq!(oci_args(&inv), ["ce", "cluster", "generate-token", "--cluster-id", "c", "--region", "r"]);
    assert_eq!(p(&args[..5]).flags.get(Key::NativeOke), None);
    assert!(err(&["--no-native=yes", "os", "ns", "get"]).contains("--no-native"));
}

fn passthrough(args: &[&str]) -> bool {
    matches!(p(args).command, Command::Passthrough(_))
}

#[test]
fn session_free_commands_skip_the_session() {
    for args in [
        &["--", "--help"][..],
        &["os", "ns", "get", "--help"],
        &["os", "ns", "get", "-h"],
        &["--profile", "P", "os", "-?"],
        &["setup", "config"],
        &["session", "validate", "--profile", "P"],
        &["session", "export", "--profile", "P", "--output-file", "x"],
        &["session"],
        &["--", "session", "authenticate", "--profile", "p", "--region", "r"],
        &["--", "--version"],
        &["os"],
        &["--profile", "P", "ce", "--region=r", "--debug"],
        // A group below the top, or oci itself: oci's usage too.
        &["os", "object"],
        &["--profile", "P", "--region", "r"],
        &["--profile", "P", "iam", "user", "--region", "r"],
        &["osub-subscription", "commitment", "commitment"],
    ] {
        assert!(passthrough(args), "{args:?}");
    }
    for args in [
        &["os", "ns", "get"][..],
        &["os", "object", "get", "--name", "version"],
        &["session", "refresh"],
        &["raw-request", "--target-uri", "https://x", "--http-method", "GET"],
        &["os", "--namespace", "n"],
        &["os", "object", "--bucket-name", "b"],
        &["iam", "region", "list"],
        // oci loads the session to write a JSON skeleton (round 101 F3).
        &["os", "object", "put", "--generate-full-command-json-input"],
        &["--generate-param-json-input", "x", "os", "object", "put"],
        // Interactive mode runs commands (round 90 F1).
        &["-i"],
        &["--profile", "P", "--cli-auto-prompt", "os"],
    ] {
        assert!(!passthrough(args), "{args:?}");
    }
    assert_eq!(oci_args(&p(&["--", "--help"])), ["--help"]);
}

#[test]
fn invoked_as_oci_help_and_version_are_ocis() {
    assert!(invoked_as_oci(OsStr::new("/home/u/bin/oci")) && invoked_as_oci(OsStr::new("oci")));
    assert!(!invoked_as_oci(OsStr::new("/usr/bin/woci")));
    for flag in ["--help", "-h", "--version", "-v"] {
        let inv = parse_as(os(&[flag]), true).unwrap();
        assert_eq!(inv.command, Command::Passthrough(os(&[flag])), "{flag}");
        assert_eq!(
            parse(os(&[flag])).unwrap().command,
            if flag.contains('h') { Command::Help } else { Command::Version }
        );
    }
    assert_eq!(parse_as(vec![], true).unwrap().command, Command::Passthrough(vec![]));
    // woci's own options still work under the name `oci`.
    assert_eq!(
        parse_as(os(&["--auto-refresh", "os", "ns", "get"]), true).unwrap().flags.get(Key::AutoRefresh),
        Some("true")
    );
}

#[test]
fn unknown_option_before_the_first_word_is_an_error_with_a_suggestion() {
    let e = err(&["--auto-refesh", "os", "object", "put"]);
    assert!(e.contains("`--auto-refesh`") && e.contains("did you mean `--auto-refresh`?"), "{e}");
    // A setting's INI name spelled as a flag: how that setting is given, not a look-alike flag.
    let e = err(&["--login-flow", "device", "session", "authenticate"]);
    assert!(e.contains("`login_flow` is set with `--device-code` (for `device`), `login_flow = …` in"), "{e}");
    assert!(!e.contains("--login-timeout"), "{e}");
    let e = err(&["--metrics-file", "m", "os", "ns", "get"]);
    assert!(e.contains("`metrics_file` is set with `metrics_file = …` in `woci_manager.ini`"), "{e}");
    let e = err(&["--profle", "P", "os", "ns", "get"]);
    assert!(e.contains("did you mean `--profile`?"), "{e}");
    let e = err(&["--zzzz", "os"]);
    assert!(!e.contains("did you mean"), "{e}");
    // oci's global options, every form, and anything after the first word or `--` pass.
    for args in [
        &["--no-retry", "--realm-specific-endpoint", "-d", "-i", "os", "ns", "get"][..],
        &["--cli-rc-file", "x", "--defaults-file=y", "--enable-propagation", "True", "os"],
        &["os", "object", "put", "--auto-refesh"],
        &["--", "--anything", "os"],
    ] {
        p(args);
    }
}

/// oci's one-letter flags grouped, as Click takes them (round 90 F3): each is read on its own.
#[test]
fn grouped_one_letter_flags_are_read_one_by_one() {
    let inv = parse_as(os(&["-dv"]), true).unwrap();
    assert_eq!(inv.command, Command::Passthrough(os(&["-d", "-v"])));
    let inv = p(&["-di", "os", "ns", "get"]);
    assert_eq!(oci_args(&inv), ["-d", "-i", "os", "ns", "get"]);
    assert!(matches!(inv.command, Command::Oci(_)));
    assert_eq!(parse_as(os(&["-dh"]), true).unwrap().command, Command::Passthrough(os(&["-d", "-h"])));
    // Not a group: an oci value flag among them, a word's own option, woci's long options.
    assert!(err(&["-dp", "os"]).contains("unknown option `-dp`"));
    assert_eq!(oci_args(&p(&["os", "object", "get", "-bn"])), ["os", "object", "get", "-bn"]);
}

#[test]
fn view_reads_the_rc_file_and_command_words() {
    let inv = p(&["--cli-rc-file", "/r", "os", "object", "put", "--name", "n"]);
    assert_eq!(inv.oci.cli_rc_file.as_deref(), Some(std::path::Path::new("/r")));
    assert_eq!(inv.oci.words, ["os", "object", "put", "n"]);
    assert_eq!(p(&["--defaults-file=/d", "os"]).oci.cli_rc_file.as_deref(), Some(std::path::Path::new("/d")));
}

#[test]
fn a_lookalike_of_a_profile_option_is_noticed_for_the_error_hint() {
    let inv = p(&["os", "ns", "get", "--profle", "EMU"]);
    assert_eq!(inv.oci.profile, None);
    assert_eq!(typo_hint(&inv.oci).unwrap(), "the command line has `--profle`: did you mean `--profile`?");
    assert_eq!(typo_hint(&p(&["os", "ns", "get", "--profile", "EMU"]).oci), None);
    assert_eq!(typo_hint(&p(&["os", "object", "put", "--bucket-name", "b"]).oci), None);
    // Options of oci's commands that only resemble one are no typo.
    for real in ["--file", "--name", "--path", "--all", "--auth-type"] {
        assert_eq!(typo_hint(&p(&["os", "object", "put", real, "x"]).oci), None, "{real}");
    }
    for (typo, meant) in
        [("--regoin", "--region"), ("--confg-file", "--config-file"), ("--ceert-bundel", "--cert-bundle")]
    {
        assert_eq!(
            typo_hint(&p(&["os", "ns", "get", typo, "x"]).oci).unwrap(),
            format!("the command line has `{typo}`: did you mean `{meant}`?")
        );
    }
}

#[test]
fn with_profile_replaces_every_profile_value_and_nothing_else() {
    let strs = |v: Vec<OsString>| v.into_iter().map(|a| a.into_string().unwrap()).collect::<Vec<_>>();
    assert_eq!(
        strs(with_profile(&os(&["--profile", "P", "os", "ns", "get", "--profile=P"]), "B")),
        ["--profile", "B", "os", "ns", "get", "--profile=B"]
    );
    // A value that looks like `--profile` belongs to the option before it.
    assert_eq!(
        strs(with_profile(&os(&["--region", "--profile", "os", "ns", "get"]), "B")),
        ["--region", "--profile", "os", "ns", "get"]
    );
    assert_eq!(strs(with_profile(&os(&["os", "ns", "get"]), "B")), ["os", "ns", "get"]);
    // What woci reads from the result is the new profile.
    let inv = p(&["os", "ns", "get", "--profile", "P"]);
    let Command::Oci(args) = inv.command else { panic!() };
    assert_eq!(read_oci_view(&with_profile(&args, "B")).unwrap().profile.as_deref(), Some("B"));
}

/// The help's list of shared names is written by hand: it names every option that is woci's
/// only before the first oci word.
#[test]
fn the_help_names_every_leading_option() {
    let rules: String = RULES.split_whitespace().collect::<Vec<_>>().join(" ");
    for o in options().filter(|o| o.scope == Scope::Leading) {
        assert!(rules.contains(&format!("--{}", o.long)), "`--{}` is missing from RULES", o.long);
    }
}

#[test]
fn the_profile_name_of_oci_session_authenticate() {
    assert_eq!(profile_name_arg(&os(&["session", "authenticate", "--profile-name", "X"])).as_deref(), Some("X"));
    assert_eq!(profile_name_arg(&os(&["--profile", "--profile-name", "session", "authenticate"])), None);
    assert_eq!(profile_name_arg(&os(&["session", "authenticate", "--profile-name=Y"])).as_deref(), Some("Y"));
}

#[test]
fn session_help_is_oci_help_and_session_options_are_checked() {
    for help in ["--help", "-h", "-?"] {
        let inv = p(&["--profile", "P", "session", "authenticate", help]);
        assert_eq!(inv.command, Command::Passthrough(os(&["--profile", "P", "session", "authenticate", help])));
    }
    let ok = |a: &[&str]| check_session_args(&os(a));
    assert!(ok(&["--profile", "P", "session", "authenticate", "--region", "r", "--debug"]).is_ok());
    // woci's own `--no-browser` is taken by the parser, never left for the session command.
    let inv = p(&["session", "authenticate", "--no-browser"]);
    assert!(matches!(&inv.command, Command::SessionAuthenticate(a) if check_session_args(a).is_ok()));
    assert!(ok(&["session", "refresh", "--config-file", "c", "--auth=security_token"]).is_ok());
    for (args, expect) in [
        (
            &["session", "authenticate", "--profile-name", "X"][..],
            "`session authenticate` (woci's own) does not take `--profile-name`: the profile is given with \
             `--profile`: `--profile NAME session authenticate`",
        ),
        (&["session", "refresh", "--profile-name", "X"], "`--profile NAME session refresh`"),
        (&["session", "authenticate", "--use-passphrase"], "oci's own session options do not apply"),
        (&["session", "refresh", "--profle", "X"], "`session refresh` (woci's own) does not take `--profle`"),
        (&["session", "authenticate", "X"], "`session authenticate` (woci's own) takes no `X`"),
    ] {
        let e = ok(args).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
        assert!(e.to_string().contains(expect), "{args:?}: {e}");
    }
}
