//! Resolution: precedence (flag > environment > INI > default), the one rule per value type, and
//! the typed per-mode configuration. Every value read from a flag, a variable or the INI records
//! its [`Origin`]; every error names the setting, where its value came from, and what is wrong.

use super::config::*;
use super::ini::{self, IniFile};
use super::table::{def, Key, Kind};
use super::{rules, Env, Flags, OciView, Origin, Settings, DEFAULT_AUTO_WINDOW, DEFAULT_WINDOW};
use crate::error::{Error, Result};
use crate::realm::NoProxy;
use crate::secret::SecretString;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use url::Url;

/// Looks settings up by precedence and parses them by their type's rule, noting origins.
struct Lookup<'a> {
    flags: &'a Flags,
    env: &'a Env,
    ini: &'a IniFile,
    home: &'a Path,
    /// Each setting found: where from, and its text (secrets included, held as secrets).
    found: RefCell<BTreeMap<&'static str, (Origin, SecretString)>>,
}

impl Lookup<'_> {
    /// The raw text of `key` (trimmed, non-empty) and where it came from.
    fn raw(&self, key: Key) -> Option<(String, Origin)> {
        let d = def(key);
        let nonempty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let found = d
            .flag
            .and_then(|f| Some((nonempty(self.flags.get(key)?)?, Origin::Flag(f.long))))
            .or_else(|| d.env.and_then(|var| Some((nonempty(self.env.get(var)?)?, Origin::Env(var)))))
            .or_else(|| {
                let path = self.ini.path.clone()?;
                d.ini.then(|| self.ini.get(d.name)).flatten().and_then(nonempty).map(|v| (v, Origin::Ini(path)))
            });
        if let Some((value, origin)) = &found {
            self.found.borrow_mut().insert(d.name, (origin.clone(), SecretString::from(value.as_str())));
        }
        found
    }

    fn present(&self, key: Key) -> bool {
        self.raw(key).is_some()
    }

    /// `key` parsed by `rule`; the error names the setting, its origin and (unless secret) the value.
    fn get<T>(&self, key: Key, rule: impl Fn(&str) -> std::result::Result<T, String>) -> Result<Option<T>> {
        let Some((value, origin)) = self.raw(key) else { return Ok(None) };
        rule(&value).map(Some).map_err(|why| {
            let d = def(key);
            // A list's rule names the entry at fault itself.
            let got = match d.hides_value() || d.kind == Kind::List {
                false => format!(", got `{}`", value.escape_debug()),
                true => String::new(),
            };
            // configparser (and so woci and the Python woci) keeps a `# …` after a value as part of it.
            let comment = matches!(origin, Origin::Ini(_)) && trailing_comment(&value).is_some();
            let hint = if comment {
                "; woci_manager.ini has no comments after a value: put `# …` on a line of its own"
            } else {
                ""
            };
            Error::Config(format!("`{}` from {} {why}{got}{hint}", d.name, origin.describe()))
        })
    }

    /// `key` parsed by `rule`, else its table default parsed the same way.
    fn or_default<T>(&self, key: Key, rule: impl Fn(&str) -> std::result::Result<T, String>) -> Result<T> {
        match self.get(key, &rule)? {
            Some(v) => Ok(v),
            None => {
                rule(def(key).default).map_err(|why| Error::Config(format!("default of `{}` {why}", def(key).name)))
            }
        }
    }

    fn text(&self, key: Key) -> Option<String> {
        self.raw(key).map(|(v, _)| v)
    }

    fn secret(&self, key: Key) -> Option<SecretString> {
        self.text(key).map(SecretString::from)
    }

    fn boolean(&self, key: Key) -> Result<bool> {
        self.or_default(key, rules::boolean)
    }

    /// A path setting, `~` expanded; a relative one from the INI is relative to the INI's folder
    /// (the same file whichever folder woci runs in, the daemon's included).
    fn path(&self, key: Key) -> Option<PathBuf> {
        let (value, origin) = self.raw(key)?;
        let path = rules::path(value, self.home);
        match origin {
            Origin::Ini(ini) if path.is_relative() => Some(ini.parent().unwrap_or(Path::new("")).join(path)),
            _ => Some(path),
        }
    }

    fn choice(&self, key: Key) -> Result<&'static str> {
        let Kind::Choice(words) = def(key).kind else {
            return Err(Error::Config(format!("`{}` is not a choice", def(key).name)));
        };
        self.or_default(key, |v| rules::choice(v, words))
    }
}

/// The profile a call means: `--profile`, `OCI_CLI_PROFILE`, `oci_cli_rc`'s `default_profile`,
/// `DEFAULT`.
fn pick_profile(oci: &OciView, env: &Env, rc: Option<&super::oci_cli_rc::CliRc>) -> String {
    oci.profile
        .clone()
        // Set but empty is `''` to oci (which then finds no such profile), not "unset".
        .or_else(|| env.get("OCI_CLI_PROFILE").cloned())
        .or_else(|| rc.and_then(|rc| rc.default_profile()))
        .unwrap_or_else(|| "DEFAULT".to_owned())
}

impl Settings {
    /// The home folder: `HOME`, else the system's record of the user (as `oci` finds it).
    pub fn home_of(env: &Env) -> Option<PathBuf> {
        env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).or_else(dirs::home_dir)
    }

    /// The profile a call means, as [`Settings::resolve`] picks it, for a report when the
    /// settings themselves cannot be resolved (best effort: an unreadable `oci_cli_rc` is skipped).
    pub fn meant_profile(oci: &OciView, env: &Env) -> String {
        // The report of an `OCI_CLI_PROFILE` that is not text names it as well as it can.
        if let Some(v) = oci.profile.is_none().then(|| super::not_text_value("OCI_CLI_PROFILE")).flatten() {
            return v.to_string_lossy().into_owned();
        }
        let rc =
            Self::home_of(env).and_then(|home| super::oci_cli_rc::load(oci.cli_rc_file.as_deref(), env, &home).ok());
        pick_profile(oci, env, rc.as_ref())
    }

    /// Resolves the settings of one invocation: woci's `flags`, what the `oci` arguments say
    /// (`oci`), and the environment. With `never_renews` (status and daemon controls) incomplete
    /// woci settings become [`RenewMode::Unusable`] instead of an error.
    pub fn resolve(flags: &Flags, oci: &OciView, env: &Env, never_renews: bool) -> Result<Settings> {
        // A variable woci reads that is not text would be taken as unset: another profile, no proxy.
        // One a flag overrides is not read (as oci reads its own).
        let oci_vars = [
            ("OCI_CLI_PROFILE", oci.profile.is_some()),
            ("OCI_CLI_CONFIG_FILE", oci.config_file.is_some()),
            ("OCI_CLI_RC_FILE", oci.cli_rc_file.is_some()),
            ("OCI_CLI_REGION", oci.region.is_some()),
            ("OCI_CLI_AUTH", oci.auth.is_some()),
            ("OCI_CLI_ENDPOINT", oci.endpoint.is_some()),
        ];
        let read = oci_vars.into_iter().filter(|(_, flag)| !flag).map(|(var, _)| var);
        let table_vars = super::table::SETTINGS.iter().filter(|d| flags.get(d.key).is_none()).filter_map(|d| d.env);
        let vars = ["HOME", "OCI_CONFIG_FILE"].into_iter().chain(read).chain(super::CA_VARS).chain(super::PROXY_VARS);
        super::unreadable(vars.chain(table_vars))?;
        let home = Self::home_of(env).ok_or_else(|| Error::Config("cannot find the home folder; set `HOME`".into()))?;
        // woci writes paths under it into the OCI config, which every later call reads from
        // wherever it runs, one line per key.
        if !home.is_absolute() || home.to_string_lossy().contains(['\n', '\r']) {
            return Err(Error::Config(format!(
                "the home folder `{}` (`HOME`) {}; set `HOME` to the home folder's absolute path",
                home.display(),
                if home.is_absolute() { "holds a line break" } else { "is not an absolute path" }
            )));
        }
        let nonempty = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();

        // oci's own choices: the profile, the config file, and `oci_cli_rc`'s defaults.
        let rc = super::oci_cli_rc::load(oci.cli_rc_file.as_deref(), env, &home)?;
        let profile_on_cli = oci.profile.is_some();
        let picked = pick_profile(oci, env, Some(&rc));
        let profile = rules::profile(&picked).map_err(|why| {
            let from = match (&oci.profile, env.get("OCI_CLI_PROFILE"), &rc.path) {
                (Some(_), _, _) => "`--profile`".to_owned(),
                (None, Some(_), _) => "`OCI_CLI_PROFILE`".to_owned(),
                (None, None, Some(p)) => format!("`default_profile` in `{}`", p.display()),
                (None, None, None) => "the default".to_owned(),
            };
            Error::Config(rules::invalid_profile(&picked, &format!(", from {from}"), &why))
        })?;
        let rc_value = |key: &str| rc.value(&profile, &oci.words, key).map(|v| super::oci_cli_rc::expand_vars(&v, env));
        // As oci: `~/.oci/config` written as it is counts as not given (click then takes the
        // variable; the SDK then looks further).
        let given = |p: PathBuf| Some(p).filter(|p| p != Path::new(OCI_DEFAULT_CONFIG));
        let explicit_config = (oci.config_file.clone().and_then(given))
            .or_else(|| nonempty("OCI_CLI_CONFIG_FILE").map(PathBuf::from).and_then(given))
            .map(|p| rules::path(p, &home));
        let default_config = oci_default_config(&home, env);

        // The manager INI is found from the flag, the variable, or beside the OCI config.
        let no_ini = IniFile::default();
        let mut l = Lookup { flags, env, ini: &no_ini, home: &home, found: RefCell::default() };
        // oci's own `--config-file` or variable chose the OCI config: `--status` says so.
        if let Some(path) = &explicit_config {
            let origin = match oci.config_file.clone().and_then(given) {
                Some(_) => Origin::Flag("config-file"),
                None => Origin::Env("OCI_CLI_CONFIG_FILE"),
            };
            if path.as_os_str().is_empty() {
                return Err(Error::Config(format!("the OCI config path (from {}) is empty", origin.describe())));
            }
            // A typo must not become a new folder with a config in it (oci finds no file there).
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
                return Err(Error::Config(format!(
                    "the OCI config `{}` (from {}) is in a folder that does not exist, `{}`; check the path (woci \
                     creates a missing config file, not its folders)",
                    path.display(),
                    origin.describe(),
                    dir.display()
                )));
            }
            l.found.borrow_mut().insert("config_file", (origin, SecretString::from(path.display().to_string())));
        }
        // A path may be any bytes the OS allows: read the flag as given.
        let given = match flags.get_os(Key::ManagerConfig).filter(|p| !p.is_empty()) {
            Some(p) => {
                let text = SecretString::from(p.to_string_lossy().into_owned());
                l.found.borrow_mut().insert("manager_config", (Origin::Flag("manager-config"), text));
                Some((rules::path(p, &home), ini::Source::Flag))
            }
            None => l.raw(Key::ManagerConfig).map(|(p, _)| (rules::path(p, &home), ini::Source::Env)),
        };
        let ini = match ini::locate(given, explicit_config.as_deref().unwrap_or(&default_config), &home) {
            Some((path, source)) => ini::load(&path, source, &profile)?,
            None => IniFile::default(),
        };
        if let (true, ini::COMMON_SECTION, Some(path)) = (ini.has_common, profile.as_str(), &ini.path) {
            return Err(Error::Config(format!(
                "`[{profile}]` in `{}` is the section every profile shares, not a profile: name another (with \
                 `--profile`, `OCI_CLI_PROFILE` or `fallback_profile`)",
                path.display()
            )));
        }
        l.ini = &ini;
        one_line_values(&ini)?;
        let mut warnings = ini.warnings();
        warnings.extend(rc.ignored.clone());

        let (oci_config_file, oci_config_file_implicit) = match explicit_config {
            Some(p) => (p, true),
            None => l.path(Key::ConfigFile).map_or((default_config, true), |p| (p, false)),
        };
        // As oci reads its own options: the command line, its variable, then `oci_cli_rc`.
        let oci_option = |given: &Option<String>, var: &str, key: &str| {
            given.clone().or_else(|| nonempty(var)).or_else(|| rc_value(key))
        };
        // Written into the OCI config as it is: it must be a region, nothing more.
        let config_region = l.get(Key::Region, rules::region)?;
        let region = oci_option(&oci.region, "OCI_CLI_REGION", "region").or_else(|| config_region.clone());
        let auth = oci_option(&oci.auth, "OCI_CLI_AUTH", "auth");
        let endpoint = oci_option(&oci.endpoint, "OCI_CLI_ENDPOINT", "endpoint");

        let auto_refresh = l.boolean(Key::AutoRefresh)?;
        let default_window = if auto_refresh { DEFAULT_AUTO_WINDOW } else { DEFAULT_WINDOW };
        let window = l.get(Key::RefreshSafetyWindow, rules::duration)?.unwrap_or(default_window);

        let mode = match resolve_mode(&l, env, &profile) {
            Ok(mode) => mode,
            // Commands that never renew still work (and `--status` says what is wrong), and so
            // does oci with an `--auth` other than session tokens: woci leaves its session alone.
            Err(Error::Config(why)) if never_renews || auth.as_deref().is_some_and(|a| a != "security_token") => {
                RenewMode::Unusable(why)
            }
            Err(e) => return Err(e),
        };

        let (oci_command, oci_command_source) = match l.raw(Key::OciCommand) {
            // `~/` as in every other path setting; a bare name is still looked up on PATH.
            Some((c, origin)) => {
                (crate::fsutil::expand_home(&c, &home).into_os_string(), origin.setting("oci_command"))
            }
            None => ("oci".into(), super::OCI_COMMAND_UNSET.to_owned()),
        };

        let mut extra_ca_files = Vec::new();
        let var = |k: &str| (format!("`{k}`"), nonempty(k).map(PathBuf::from));
        let named = [
            ("`--cert-bundle`".to_owned(), oci.cert_bundle.clone()),
            var("OCI_CLI_CERT_BUNDLE"),
            ("`cert-bundle` in the oci_cli_rc file".to_owned(), rc_value("cert-bundle").map(PathBuf::from)),
            var("REQUESTS_CA_BUNDLE"),
            var("SSL_CERT_FILE"),
            var("CURL_CA_BUNDLE"),
            var("NODE_EXTRA_CA_CERTS"),
        ];
        for (source, p) in named.into_iter().filter_map(|(s, p)| Some((s, rules::path(p?, &home)))) {
            rules::ca_bundle(&p).map_err(|why| {
                Error::Config(format!("{source} names `{}`, {why}; point it at a PEM bundle, or drop it", p.display()))
            })?;
            if !extra_ca_files.contains(&p) {
                extra_ca_files.push(p);
            }
        }

        // As `oci` (Python's urllib) reads them: the lower-case name first, and one set but empty
        // turns that proxy off (curl would take the upper-case one then).
        let var_of = |pair: [&'static str; 2]| pair.into_iter().find_map(|k| Some(k).zip(env.get(k)));
        let chosen = [["https_proxy", "HTTPS_PROXY"], ["all_proxy", "ALL_PROXY"]]
            .into_iter()
            .find_map(|pair| var_of(pair).filter(|(_, v)| !v.trim().is_empty()));
        let upstream_proxy_var = chosen.map_or("", |(var, _)| var);
        let upstream_proxy = chosen
            .map(|(var, v)| {
                let v = v.trim();
                let v = if v.contains("://") { v.to_owned() } else { format!("http://{v}") };
                // The URL may carry credentials: the error names neither it nor the parse detail.
                let url = Url::parse(&v)
                    .map_err(|_| Error::Config(format!("`{var}` in the environment is not a valid URL")))?;
                match url.scheme() {
                    "http" | "https" => Ok(url),
                    other => Err(Error::Config(format!(
                        "`{var}` in the environment names a `{other}` proxy; woci (like `oci`) needs an HTTP proxy \
                         there (`http://host:port`)"
                    ))),
                }
            })
            .transpose()?;
        let no_proxy = NoProxy::parse(
            ["no_proxy", "NO_PROXY"].iter().find_map(|k| env.get(*k).filter(|v| !v.is_empty())).map_or("", |v| v),
        );

        let ops = OpsConfig {
            metrics_file: l.path(Key::MetricsFile),
            on_renewal_failure: l.get(Key::OnRenewalFailure, rules::command)?,
            on_expiring: l.get(Key::OnExpiring, rules::command)?,
            expiring_warning: l.get(Key::ExpiringWarning, rules::duration)?,
            fallback_profile: l
                .get(Key::FallbackProfile, |v| rules::profile(v).map_err(|_| "is not a valid profile name".to_owned()))?
                .filter(|f| *f != profile),
        };
        let log_level = l.present(Key::LogLevel).then(|| l.choice(Key::LogLevel)).transpose()?.map(str::to_owned);
        // `RUST_LOG` wins over the level (`logging::init`): the origin names what is in effect.
        if let Some(filter) = env.get("RUST_LOG").filter(|f| !f.is_empty()) {
            l.found.borrow_mut().insert("log_level", (Origin::Env("RUST_LOG"), SecretString::from(filter.as_str())));
        }
        let mut secret_env: Vec<String> = env.keys().filter(|k| super::is_woci_passphrase_var(k)).cloned().collect();
        // A client secret given by its variable (`WOCI_CLIENT_SECRET`): woci's, not the child's.
        secret_env.extend(super::table::SETTINGS.iter().filter(|d| d.secret).filter_map(|d| d.env).map(str::to_owned));
        match &mode {
            RenewMode::Login(c) => {
                if let PassphraseSource::Env { var, .. } = &c.passphrase {
                    secret_env.push(var.clone());
                }
            }
            RenewMode::Federated(c) => secret_env.extend(c.source.secret_env_names().into_iter().map(str::to_owned)),
            RenewMode::SessionRefresh(_) | RenewMode::Unusable(_) => {}
        }
        secret_env.sort();
        secret_env.dedup();

        let container = resolve_container(&l, env)?;
        let (native_oke, resign_proxy) = (l.boolean(Key::NativeOke)?, l.boolean(Key::ResignProxy)?);
        let resign_hosts = l.get(Key::ResignHosts, rules::resign_hosts)?.unwrap_or_default();
        let proxy_max_connections = l.get(Key::ProxyMaxConnections, rules::count)?;
        let debug = l.boolean(Key::Debug)?;
        let origins = l.found.take();
        warnings.extend(trailing_comments(&origins));
        let given_config = oci.config_file.as_ref().map(|_| &oci_config_file);
        let oci_selection = format!("--profile {}", super::quote(&profile))
            + &given_config
                .map(|c| format!(" --config-file {}", super::quote(&c.display().to_string())))
                .unwrap_or_default();
        let manager_config_flag =
            flags.get_os(Key::ManagerConfig).filter(|p| !p.is_empty()).map(|p| rules::path(p, &home));
        Ok(Settings {
            oci_selection,
            manager_config_flag,
            container,
            native_oke,
            resign_proxy,
            resign_hosts,
            proxy_max_connections,
            debug,
            ini_file: ini.path.clone().map(|p| (p, ini.has_profile_section)),
            ini_near_section: ini.near_section.clone(),
            ini_shared: ini.shared.clone(),
            origins,
            profile,
            profile_on_cli,
            oci_config_file,
            oci_config_file_implicit,
            region,
            config_region,
            auth,
            endpoint,
            runtime_dir: nonempty("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|p| p.is_absolute()),
            home,
            mode,
            window,
            renews_ahead: auto_refresh,
            auto_refresh,
            oci_command,
            oci_command_source,
            ops,
            log_level,
            extra_ca_files,
            upstream_proxy,
            upstream_proxy_var,
            no_proxy,
            oci: oci.clone(),
            secret_env,
            warnings,
        })
    }
}

/// Where a value's trailing comment-like text starts (whitespace, then `#` or `;`), if it has one.
fn trailing_comment(v: &str) -> Option<usize> {
    v.char_indices()
        .filter(|(_, c)| c.is_whitespace())
        .map(|(i, _)| i)
        .find(|i| v[*i..].trim_start().starts_with(['#', ';']))
}

/// How oci writes its default config path; as a value, it means "not given".
const OCI_DEFAULT_CONFIG: &str = "~/.oci/config";

/// The OCI config when none is named, as the SDK finds it (`_get_config_path_with_fallback`):
/// `~/.oci/config` when it is a file, else `OCI_CONFIG_FILE`, else `~/.oraclebmc/config` when it
/// is a file, else `~/.oci/config` (created on first use).
fn oci_default_config(home: &Path, env: &Env) -> PathBuf {
    let default = home.join(".oci").join("config");
    let legacy = home.join(".oraclebmc").join("config");
    if default.is_file() {
        return default;
    }
    match env.get("OCI_CONFIG_FILE").filter(|v| !v.is_empty()) {
        Some(v) => rules::path(v, home),
        None if legacy.is_file() => legacy,
        None => default,
    }
}

/// configparser joins a line indented deeper than a key's to that key's value: in a setting of one
/// line that is usually the next key, indented by mistake, whose text (a secret, say) would go
/// out as part of the value. Only scopes, lists and command lines may take more lines.
fn one_line_values(ini: &IniFile) -> Result<()> {
    let one_line =
        |d: &&super::table::Def| d.ini && d.key != Key::Scope && !matches!(d.kind, Kind::List | Kind::Command);
    match super::table::SETTINGS.iter().filter(one_line).find(|d| ini.get(d.name).is_some_and(|v| v.contains('\n'))) {
        Some(d) => Err(Error::Config(format!(
            "`{}` in `{}` goes on over the next line, which is indented deeper than its key (configparser reads that \
             as part of the value); put the value on one line, and indent the next key as deep as `{}`",
            d.name,
            ini.path.as_deref().unwrap_or(Path::new("woci_manager.ini")).display(),
            d.name
        ))),
        None => Ok(()),
    }
}

/// One warning per INI value that ends in what looks like a comment (`client_secret = s3cret   #
/// exchange`): configparser keeps it as part of the value, which a server then refuses with a
/// message about the secret, not the comment. Command lines and sources are left alone (a `#`
/// may be theirs); a secret's value is never shown.
fn trailing_comments(found: &BTreeMap<&'static str, (Origin, SecretString)>) -> Vec<String> {
    found
        .iter()
        .filter(|(_, (origin, _))| matches!(origin, Origin::Ini(_)))
        .filter_map(|(name, (origin, value))| {
            let d = super::table::SETTINGS.iter().find(|d| d.name == *name)?;
            let v = value.expose();
            let at = trailing_comment(v)?;
            (!matches!(d.kind, Kind::Command | Kind::Source)).then(|| {
                let shown =
                    if d.hides_value() { String::new() } else { format!(" (`{}`)", v[at..].trim().escape_debug()) };
                format!(
                    "`{name}` from {} ends in what looks like a comment{shown}; woci_manager.ini has no comments \
                     after a value, so it is part of it: put `# …` on a line of its own",
                    origin.describe()
                )
            })
        })
        .collect()
}

/// The keys a login profile needs.
const LOGIN_KEYS: [Key; 7] = [
    Key::AuthzBaseUrl,
    Key::TokenUrl,
    Key::AuthClientId,
    Key::ClientId,
    Key::ClientSecret,
    Key::Scope,
    Key::RedirectPort,
];

fn resolve_mode(l: &Lookup<'_>, env: &Env, profile: &str) -> Result<RenewMode> {
    let missing_error = |what: String, missing: &[Key]| {
        let where_ =
            l.ini.path.as_ref().map_or_else(|| "woci_manager.ini".to_owned(), |p| format!("`{}`", p.display()));
        let names: Vec<String> = missing.iter().map(|k| format!("`{}`", def(*k).name)).collect();
        let mut hints: Vec<String> = l
            .ini
            .near_misses()
            .into_iter()
            .filter(|(_, known)| missing.iter().any(|k| def(*k).name == *known))
            .map(|(typo, known)| format!("`{typo}` there is not a woci key: did you mean `{known}`?"))
            .collect();
        let in_default: Vec<&str> =
            missing.iter().map(|k| def(*k).name).filter(|n| l.ini.default_keys.contains(*n)).collect();
        if !in_default.is_empty() {
            hints.push(format!(
                "`[DEFAULT]` there sets `{}`, but in woci_manager.ini it is the profile `DEFAULT`'s own section, not \
                 shared as in ~/.oci/config: move what profiles share to `[COMMON]`",
                in_default.join("`, `")
            ));
        }
        let hint = if hints.is_empty() { String::new() } else { format!("; {}", hints.join("; ")) };
        Error::Config(format!("{what} {} (set them in {where_} or as flags){hint}", names.join(", ")))
    };

    if let Some(mut source) = l.get(Key::SubjectTokenSource, |v| SubjectTokenSource::parse(v, l.home))? {
        // `file:` relative to the INI's folder, as every path of the INI is.
        if let (SubjectTokenSource::File(p), Some((_, Origin::Ini(ini)))) =
            (&mut source, l.raw(Key::SubjectTokenSource))
        {
            if p.is_relative() {
                *p = ini.parent().unwrap_or(Path::new("")).join(&*p);
            }
        }
        let url_key = if l.present(Key::TokenExchangeUrl) { Key::TokenExchangeUrl } else { Key::TokenUrl };
        // A missing URL is named as the exchange's.
        let missing: Vec<Key> = [url_key, Key::ClientId, Key::ClientSecret]
            .into_iter()
            .filter(|k| !l.present(*k))
            .map(|k| if k == Key::TokenUrl { Key::TokenExchangeUrl } else { k })
            .collect();
        if !missing.is_empty() {
            return Err(missing_error(format!("profile `{profile}` has `subject_token_source` but lacks"), &missing));
        }
        return Ok(RenewMode::Federated(Box::new(FederatedConfig {
            env: SourceEnv::capture(&source, env),
            source,
            audience: l.or_default(Key::SubjectTokenAudience, |v| Ok(v.trim().to_owned()))?,
            exchange: exchange(
                l,
                l.get(url_key, rules::url)?
                    .ok_or_else(|| missing_error(format!("profile `{profile}` lacks"), &[url_key]))?,
            ),
        })));
    }

    let present: Vec<Key> = LOGIN_KEYS.into_iter().filter(|k| l.present(*k)).collect();
    // A login profile names its IdP (`authz_base_url`, `token_url`, `auth_client_id`); the keys
    // `[COMMON]` shares between profiles (the exchange app, `scope`, `redirect_port`) alone do not
    // make one, so API-key and `oci session authenticate` profiles beside it stay oci's.
    if present.iter().all(|k| matches!(k, Key::ClientId | Key::ClientSecret | Key::Scope | Key::RedirectPort)) {
        // The profile's own keys (not `[COMMON]`'s) or a section of its own beside IdP keys in
        // `[DEFAULT]`: the IdP was meant to be shared as `~/.oci/config` shares `[DEFAULT]`, which
        // woci_manager.ini does not.
        let own_section_keys = l.ini.values.len() > l.ini.shared.len();
        let own = own_section_keys || present.iter().any(|k| !l.ini.shared.contains(def(*k).name));
        let idp_in_default: Vec<Key> = [Key::AuthzBaseUrl, Key::TokenUrl, Key::AuthClientId]
            .into_iter()
            .filter(|k| l.ini.default_keys.contains(def(*k).name))
            .collect();
        if own && !idp_in_default.is_empty() {
            return Err(missing_error(format!("profile `{profile}` has woci settings but lacks"), &idp_in_default));
        }
        return Ok(RenewMode::SessionRefresh(SessionRefreshConfig {
            auth_endpoint: l.get(Key::AuthEndpoint, rules::url)?,
        }));
    }
    let flow = l.choice(Key::LoginFlow)?;
    // Only the browser login listens on `redirect_port`, so only it asks for one (refreshes, the
    // daemon and a headless device-code login need none).
    let missing: Vec<Key> =
        LOGIN_KEYS.into_iter().filter(|k| !present.contains(k) && *k != Key::RedirectPort).collect();
    if !missing.is_empty() {
        return Err(missing_error(format!("missing required options for profile `{profile}`:"), &missing));
    }
    let need_url = |k: Key| {
        l.get(k, rules::url)?
            .ok_or_else(|| missing_error(format!("missing required options for profile `{profile}`:"), &[k]))
    };
    let token_url = need_url(Key::TokenUrl)?;
    let exchange_url = l.get(Key::TokenExchangeUrl, rules::url)?.unwrap_or_else(|| token_url.clone());
    let terminal = crate::terminal::person_present() && !kubectl_forbids_terminal(env);
    // Not text, it would read as unset: "no terminal and no `BROWSER`" (round 97 F2).
    super::unreadable(["BROWSER"])?;
    let browser_command = env.get("BROWSER").filter(|b| !b.is_empty()).map(OsString::from);
    // A device code when asked for, or with a terminal where no browser can be opened.
    let device_login = match flow {
        "browser" => false,
        "device" | "device_code" => true,
        _ => terminal && !browser_possible(env, cfg!(target_os = "linux")),
    };
    let device = DeviceConfig { authorization_url: l.get(Key::DeviceAuthorizationUrl, rules::url)? };
    // Both ways set: the one given nearer this call wins (`--refresh-token-passphrase-env` over
    // the INI's prompt, as the prompt's own error advises), the prompt when they are alike.
    let rank = |key| match l.raw(key).map(|(_, o)| o) {
        Some(Origin::Flag(_)) => 0,
        Some(Origin::Env(_)) => 1,
        _ => 2,
    };
    let prompt = l.boolean(Key::PassphrasePrompt)?;
    let passphrase = match l.get(Key::PassphraseEnv, rules::env_name)? {
        // Set but empty means "store unencrypted" (a renewal warns); unset is an error when
        // the refresh token is encrypted.
        Some(var) if !prompt || rank(Key::PassphraseEnv) < rank(Key::PassphrasePrompt) => {
            PassphraseSource::Env { value: env.get(&var).map(|v| SecretString::from(v.as_str())), var }
        }
        _ if prompt => PassphraseSource::Prompt,
        _ => PassphraseSource::None,
    };
    let chosen_by = match passphrase {
        PassphraseSource::Env { .. } => Some(Key::PassphraseEnv),
        PassphraseSource::Prompt => Some(Key::PassphrasePrompt),
        PassphraseSource::None => None,
    };
    let passphrase_setting = chosen_by.and_then(|key| Some(l.raw(key)?.1.setting(def(key).name))).unwrap_or_default();
    Ok(RenewMode::Login(Box::new(LoginConfig {
        idp: IdpConfig {
            authorize_url: need_url(Key::AuthzBaseUrl)?,
            client_id: l.text(Key::AuthClientId).unwrap_or_default(),
            client_secret: l.secret(Key::AuthClientSecret),
            scopes: l.text(Key::Scope).unwrap_or_default().split_whitespace().map(str::to_owned).collect(),
            redirect_port: l.get(Key::RedirectPort, rules::port)?,
            reuse_grace: l.or_default(Key::RefreshTokenReuseGrace, rules::duration)?,
            token_url,
        },
        exchange: exchange(l, exchange_url),
        device_login,
        device,
        open_browser: l.boolean(Key::OpenBrowser)?,
        interactive: terminal || browser_command.is_some(),
        browser_command,
        login_timeout: l.or_default(Key::LoginTimeout, rules::duration)?,
        passphrase,
        passphrase_setting,
    })))
}

/// The exchange client (its keys were checked to be present).
fn exchange(l: &Lookup<'_>, url: Url) -> ExchangeConfig {
    ExchangeConfig {
        url,
        client_id: l.text(Key::ClientId).unwrap_or_default(),
        client_secret: l.secret(Key::ClientSecret).unwrap_or_else(|| SecretString::from("")),
    }
}

/// Whether kubectl runs woci as an exec plugin that must not use the terminal
/// (`interactiveMode: Never`, or no terminal for `IfAvailable`): its `KUBERNETES_EXEC_INFO` says
/// `"interactive": false`. A login through `BROWSER` needs no terminal and stays possible.
fn kubectl_forbids_terminal(env: &Env) -> bool {
    let info = env.get("KUBERNETES_EXEC_INFO").and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok());
    info.is_some_and(|v| v["spec"]["interactive"] == serde_json::Value::Bool(false))
}

/// Whether a browser can be opened here: `BROWSER` set, or not an SSH session and (on Linux) a
/// display.
fn browser_possible(env: &Env, linux: bool) -> bool {
    let set = |k: &str| env.get(k).is_some_and(|v| !v.is_empty());
    set("BROWSER")
        || (!set("SSH_CONNECTION") && !set("SSH_TTY") && (!linux || set("DISPLAY") || set("WAYLAND_DISPLAY")))
}

fn resolve_container(l: &Lookup<'_>, env: &Env) -> Result<Option<ContainerConfig>> {
    let one_image = |v: &str| !v.starts_with('-') && !v.contains(char::is_whitespace);
    let image = l.get(Key::OciContainerImage, |v| {
        Some(v.to_owned()).filter(|v| one_image(v)).ok_or_else(|| "must be one image name".to_owned())
    })?;
    let Some(image) = image else { return Ok(None) };
    let configured = l.get(Key::OciContainerRuntime, |v| {
        let argv = rules::command(v)?;
        if argv.len() > 1 {
            // Only the program is run: words after it would be dropped without a word.
            return Err("must be one program, `docker` or `podman` (or a path to one, in quotes if it has spaces); `run` options go in \
                 `oci_container_args`".into());
        }
        let kind = RuntimeKind::of_program(argv[0].as_ref())
            .ok_or_else(|| "must be `docker` or `podman` (or a path to one)".to_owned())?;
        Ok((OsString::from(&argv[0]), kind))
    })?;
    let (runtime, kind) = configured.unwrap_or_else(|| {
        let runtime = default_runtime(super::path_var(env));
        let kind = RuntimeKind::of_program(&runtime).unwrap_or(RuntimeKind::Docker);
        (runtime, kind)
    });
    let extra_args = l.get(Key::OciContainerArgs, rules::command)?.unwrap_or_default();
    Ok(Some(ContainerConfig { image, runtime, kind, extra_args }))
}

/// The first of `docker`, `podman` found on `path`; `docker` when neither is (running it then
/// fails with "not found" naming `oci_container_runtime`).
fn default_runtime(path: Option<OsString>) -> OsString {
    let path = path.unwrap_or_default();
    let on_path = |name: &&str| {
        !path.is_empty()
            && crate::fsutil::path_candidates(&path, Path::new(name)).any(|c| crate::fsutil::is_executable(&c))
    };
    ["docker", "podman"].into_iter().find(on_path).unwrap_or("docker").into()
}

#[cfg(test)]
mod tests;
