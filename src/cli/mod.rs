//! Command line splitting: woci's own options out, everything else to `oci`, untouched and in order.
//!
//! `woci [WOCI OPTIONS] <oci args…>` must stay a drop-in `oci`, so the splitting follows one rule
//! (also printed by `woci --help`):
//!
//! 1. **woci-only options** — names no `oci` command uses: the flags of the settings table
//!    ([`crate::settings::table`]) whose scope is `Anywhere`, and `--daemon`, `--daemon-status`,
//!    `--stop-daemon`, hidden `--daemon-run` — are recognized anywhere before `--`, as
//!    `--opt value` or `--opt=value`.
//! 2. **Shared names** — options an `oci` command may also have (scope `Leading`: `--client-id`,
//!    `--client-secret`, `--scope`, `--log-level`, `--debug`, `--status` (80 oci services filter
//!    by it), `--json`, `--all`, `--prompt`, `--exec`, `-h`/`--help`, `-v`/`--version`,
//!    `--completions`, `--man`) — are woci's only
//!    *before the first oci word*: the first argument
//!    that does not start with `-` and is not the value of an option. (woci knows which of
//!    `oci`'s global options take a value, e.g. `--profile P`, `--output table`.) After that word
//!    they belong to `oci`: `woci os object put --bucket-name b --client-id x` passes
//!    `--client-id x` on, `woci --client-id x os ns get` takes it. `--debug` before the first word
//!    turns on woci's debug logs *and* stays in the `oci` arguments.
//! 3. **`--`** ends woci's options. Everything after it goes to `oci` verbatim (`woci -- --help`
//!    shows `oci`'s help). A `--` before the first oci word is woci's and is not passed on; a
//!    later one is `oci`'s and is passed on (it still ends woci's options). With `--exec` the
//!    program and its arguments follow `--`: `woci --exec -- terraform plan`.
//! 4. **Everything else** reaches `oci` unchanged and in order (as `OsString`, so non-UTF-8
//!    arguments survive). woci reads, but never removes, `--profile`, `--config-file`,
//!    `--region`, `--auth`, `--cert-bundle` and `--endpoint` (both forms, anywhere) into
//!    [`OciView`].
//! 5. `session authenticate` / `session refresh` as the oci words (options such as `--profile`
//!    may surround them) become [`Command::SessionAuthenticate`] / [`Command::SessionRefresh`]:
//!    woci's own for profiles with woci IdP settings, `oci`'s otherwise (decided in `app`).
//!    No arguments at all show woci's help.
//! 6. **Session-free commands** go to `oci` as they are, with no session check
//!    ([`Command::Passthrough`]): `-h`/`--help`/`-?` anywhere, `setup …`, every other
//!    `session …`, a command group alone (`os`, global options at most), and `--version`
//!    before the first word after `--`.
//!    Started under the name `oci` ([`invoked_as_oci`]), `-h`/`--help`/`-v`/`--version` are oci's.
//! 7. Before the first oci word, an option that is neither woci's nor one of oci's global options
//!    ([`oci_globals::OCI_GLOBALS`]) is an error with a "did you mean" suggestion: a typo such as
//!    `--auto-refesh` must not silently turn a woci feature off.
//!
//! A missing value, a bad number, an unknown `--completions` shell, a flag given a value, or
//! commands that cannot be combined are [`Error::Config`] (exit 2), one line naming the option.
//!
//! The splitting is hand-written: clap cannot pass unknown options through in order while
//! recognizing some names only before the first positional word. clap still describes woci's
//! options — [`command`] builds one `clap::Command` from the same [`options`] the splitter
//! uses, and `--help`, completions and the man page are generated from it.

pub mod oci_globals;
pub mod reference;

use crate::error::{Error, Result};
use crate::settings::table::{self, FlagArg, Scope, H_DAEMON, H_INFO, H_LONG};
use crate::settings::{Flags, Key, OciView};
use clap::{Arg, ArgAction};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Ensure the session, then run `oci` with these arguments (untouched, in order).
    Oci(Vec<OsString>),
    /// `--exec -- program args…`.
    Exec {
        /// The program.
        program: OsString,
        /// Its arguments.
        args: Vec<OsString>,
    },
    /// Run `oci` with these arguments as they are, with no session check and nothing added:
    /// commands that need no session (help, `setup`, `session` commands woci does not own, a
    /// command group alone).
    Passthrough(Vec<OsString>),
    /// `session authenticate`: force a fresh interactive login for a profile with woci IdP
    /// settings; without them the arguments go to `oci` ([`Command::Passthrough`]).
    SessionAuthenticate(Vec<OsString>),
    /// `session refresh`: force a renewal now (IdP profiles); otherwise as above.
    SessionRefresh(Vec<OsString>),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
    /// `--completions SHELL`.
    Completions(clap_complete::Shell),
    /// `--man`.
    Man,
    /// `--status` (`--all`: every profile; `--prompt`: one short line).
    Status {
        /// `--all`.
        all: bool,
        /// `--prompt`.
        prompt: bool,
    },
    /// `--daemon`; `login`: `--daemon session authenticate`, the Python woci's way to log in and
    /// then start the daemon.
    Daemon {
        /// Log in first (a new session), as `woci session authenticate` does.
        login: bool,
    },
    /// The detached daemon process itself (hidden `--daemon-run`).
    DaemonRun,
    /// `--daemon-status`.
    DaemonStatus,
    /// `--stop-daemon`.
    StopDaemon,
}

impl Command {
    /// Commands that only look (or stop a daemon): incomplete woci settings do not stop them.
    pub fn never_renews(&self) -> bool {
        matches!(self, Command::Status { .. } | Command::DaemonStatus | Command::StopDaemon)
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// woci's setting flags (parsed by the settings' rules at resolution).
    pub flags: Flags,
    /// What the `oci` arguments say.
    pub oci: OciView,
    /// What to do.
    pub command: Command,
    /// `--json`: machine-readable output of `--status` / `--daemon-status`.
    pub json: bool,
}

/// One woci option as the splitter and clap see it: a setting's flag, or a command (named by its
/// long name).
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// The setting it sets and, for a switch, the value it stands for; `None` for a command.
    pub setting: Option<(Key, Option<&'static str>)>,
    /// Long name without `--`.
    pub long: &'static str,
    /// Short name, if any.
    pub short: Option<char>,
    /// `Some(VALUE_NAME)` when the option takes a value.
    pub value: Option<&'static str>,
    /// Where it is woci's.
    pub scope: Scope,
    /// Help heading.
    pub heading: &'static str,
    /// One-line help.
    pub help: &'static str,
    /// Not shown in help, completions or the man page.
    pub hidden: bool,
}

const fn cmd(long: &'static str, scope: Scope, heading: &'static str, help: &'static str) -> Opt {
    Opt { setting: None, long, short: None, value: None, scope, heading, help, hidden: false }
}

use Scope::{Anywhere, Leading};

/// woci's command options (the settings' flags come from the settings table).
const COMMANDS: &[Opt] = &[
    cmd(
        "exec",
        Leading,
        H_LONG,
        "Run the program after `--` instead of oci, with the same session handling: woci --exec -- terraform plan",
    ),
    cmd("status", Leading, H_DAEMON, "Show the profile's session state; the exit code says whether it is usable"),
    cmd("all", Leading, H_DAEMON, "With --status: every profile woci knows"),
    cmd("prompt", Leading, H_DAEMON, "With --status: one short line for a shell prompt"),
    cmd("json", Leading, H_DAEMON, "With --status / --daemon-status: print JSON"),
    cmd("daemon", Anywhere, H_DAEMON, "Start a background process that keeps the profile's session valid"),
    cmd("daemon-status", Anywhere, H_DAEMON, "Show whether the profile's daemon runs (exit 0) or not (exit 1)"),
    cmd("stop-daemon", Anywhere, H_DAEMON, "Stop the profile's daemon (exit 0 stopped, 1 none running)"),
    Opt { hidden: true, ..cmd("daemon-run", Anywhere, H_DAEMON, "The daemon process itself (internal)") },
    Opt {
        value: Some("SHELL"),
        ..cmd("completions", Leading, H_INFO, "Print shell completions: bash, zsh, fish, elvish, powershell")
    },
    cmd("man", Leading, H_INFO, "Print the man page (roff)"),
    Opt { short: Some('h'), ..cmd("help", Leading, H_INFO, "Print this help (oci's help: woci -- --help)") },
    Opt { short: Some('v'), ..cmd("version", Leading, H_INFO, "Print woci's version") },
];

/// Every woci option, in help order: the settings' flags, then the commands.
pub fn options() -> impl Iterator<Item = Opt> {
    let flags = table::SETTINGS.iter().filter_map(|d| {
        let f = d.flag?;
        let (value, sets, help) = match f.arg {
            FlagArg::Value(v) => (Some(v), None, d.help),
            FlagArg::Sets(v, help) => (None, Some(v), help),
        };
        Some(Opt { setting: Some((d.key, sets)), value, ..cmd(f.long, f.scope, f.heading, help) })
    });
    flags.chain(COMMANDS.iter().copied())
}

const ABOUT: &str = "Drop-in wrapper for Oracle Cloud's `oci` CLI that keeps the profile's OCI session token (UPST) valid, then runs `oci`";

const RULES: &str = "\
How arguments are split:
  - woci's own options above are recognized anywhere before `--`, as `--opt value` or `--opt=value`.
  - Names that oci commands also use (--client-id, --client-secret, --scope, --log-level, --status,
    --json, --all, --prompt, --debug, --exec, -h/--help, -v/--version, --completions, --man) are
    woci's only before the first oci word (the first argument that is neither an option nor an
    option's value); after it they go to oci. `--debug` there is also passed on to oci.
  - `--` ends woci's options: everything after it goes to oci unchanged (with --exec: the program
    and its arguments). A `--` after the first oci word is itself passed on to oci.
  - Everything else goes to oci unchanged and in order. woci reads, but never removes, --profile,
    --config-file, --region, --auth, --cert-bundle, --endpoint and --cli-rc-file.
  - Before the first oci word, an option that is neither woci's nor a global oci option is an
    error (exit 2) with a suggestion: `--auto-refesh` is a typo, not an oci option.
  - `woci session authenticate` forces a new login (oci's own for profiles without woci IdP
    settings); `woci session refresh` renews now (for those profiles through the OCI auth
    service). Commands that need no session go to oci at once: help (-h/--help anywhere),
    `setup`, other `session` commands, a command group alone (`oci os`). Started under the
    name `oci`, --help and --version are oci's.

oci's own help: `woci -- --help` or `oci --help`.";

/// The one clap description of woci's command line, built from [`options`].
pub fn command() -> clap::Command {
    build_command(true)
}

/// The forms of a woci command line (`--help`'s Usage and the man page's SYNOPSIS).
const USAGE: [&str; 3] = [
    "woci [WOCI OPTIONS] [OCI ARGS]...",
    "woci [WOCI OPTIONS] --exec -- <PROGRAM> [ARGS]...",
    "woci [WOCI OPTIONS] session authenticate|refresh",
];

fn build_command(with_hidden: bool) -> clap::Command {
    let mut cmd = clap::Command::new("woci")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .override_usage(USAGE.join("\n       "))
        .disable_help_flag(true)
        .disable_version_flag(true)
        .after_help(RULES)
        .after_long_help(RULES)
        .max_term_width(100);
    for o in options().filter(|o| with_hidden || !o.hidden) {
        let default = match o.setting {
            Some((key, None)) => table::def(key).shown_default().replace('`', ""),
            _ => String::new(),
        };
        let help = if default.is_empty() { o.help.to_owned() } else { format!("{} [default: {default}]", o.help) };
        let arg = Arg::new(o.long).long(o.long).short(o.short).help(help).help_heading(o.heading).hide(o.hidden);
        let arg = match (o.long, o.value) {
            ("help", _) => arg.action(ArgAction::Help),
            ("version", _) => arg.action(ArgAction::Version),
            ("completions", Some(v)) => arg
                .value_name(v)
                .action(ArgAction::Set)
                .value_parser(clap::value_parser!(clap_complete::Shell))
                .hide_possible_values(true),
            (_, Some(v)) => value_hint(arg.value_name(v).action(ArgAction::Set), o.setting.map(|(k, _)| k)),
            (_, None) => arg.action(ArgAction::SetTrue),
        };
        cmd = cmd.arg(arg);
    }
    cmd.arg(
        Arg::new("oci_args")
            .value_name("OCI ARGS")
            .num_args(0..)
            .trailing_var_arg(true)
            .allow_hyphen_values(true)
            .value_parser(clap::value_parser!(OsString))
            .help("Arguments for oci, passed on unchanged and in order"),
    )
}

/// What completions offer for a setting's value: its words, or the kind of thing it is (parsing
/// stays woci's own; help does not list the words).
fn value_hint(arg: Arg, key: Option<Key>) -> Arg {
    use clap::ValueHint;
    use table::Kind;
    match key.map(|k| table::def(k).kind) {
        Some(Kind::Choice(words)) => {
            arg.value_parser(clap::builder::PossibleValuesParser::new(words)).hide_possible_values(true)
        }
        Some(Kind::Path) => arg.value_hint(ValueHint::AnyPath),
        Some(Kind::Url) => arg.value_hint(ValueHint::Url),
        Some(Kind::Command) => arg.value_hint(ValueHint::CommandString),
        Some(_) => arg.value_hint(ValueHint::Other),
        None => arg,
    }
}

/// Help text.
pub fn help_text() -> String {
    command().render_help().to_string()
}

/// Completions for `shell`.
pub fn completions(shell: clap_complete::Shell) -> String {
    let mut buf = Vec::new();
    // Hidden options stay out (clap_complete's bash generator would list them). oci's global
    // options are offered too (`--profile` above all), though help lists only woci's.
    let mut cmd = build_command(false);
    for g in oci_globals::OCI_GLOBALS {
        for name in g.names.iter().filter_map(|n| n.strip_prefix("--")) {
            if cmd.get_arguments().all(|a| a.get_long() != Some(name)) {
                let action = if g.value { ArgAction::Set } else { ArgAction::SetTrue };
                let arg = Arg::new(name).long(name).action(action);
                cmd = cmd.arg(if g.choices.is_empty() { arg } else { arg.value_parser(g.choices.to_vec()) });
            }
        }
    }
    // A value is a file name only where it is one: the shells offer file names for a value with
    // no hint, which for `--profile`, `--region` or a URL is noise.
    let mut cmd = cmd.mut_args(|a| {
        let name = a.get_long().unwrap_or_default();
        let file = name.ends_with("-file") || matches!(name, "manager-config" | "cert-bundle");
        if a.get_action().takes_values() && a.get_possible_values().is_empty() && !file {
            a.value_hint(clap::ValueHint::Other)
        } else {
            a
        }
    });
    clap_complete::generate(shell, &mut cmd, "woci", &mut buf);
    let script = String::from_utf8_lossy(&buf).into_owned();
    if shell != clap_complete::Shell::Bash {
        return script;
    }
    // Bash: file names as bash's own completion gives them (a folder gets its `/`, a name with a
    // space stays one word), and `--profile` offers the profiles of the OCI config file the call
    // would use (the line's `--config-file`, `OCI_CLI_CONFIG_FILE`, else where oci looks) and of
    // its woci_manager.ini (the line's `--manager-config`, `WOCI_MANAGER_CONFIG`, beside the
    // config, `~/.oci`; not `[COMMON]`), each once; a section's name up to its line's last `]`, as
    // configparser reads it (`[team[prod]]`), matched as plain text (`compgen -W` would expand
    // `$`, `*` and quotes in a name); a name with a control, bidi or invisible format character
    // is not offered (`printf %q` passes them to the terminal raw; round 102 N1, 103 N2).
    let files = "local IFS=$'\\n'; compopt -o filenames 2>/dev/null\n                    COMPREPLY=($(compgen -f -- \"${cur}\"))";
    let mut script = script.replace("COMPREPLY=($(compgen -f \"${cur}\"))", files);
    let profiles = r#"local IFS=$'\n' cfg="${OCI_CLI_CONFIG_FILE:-}" mgr="${WOCI_MANAGER_CONFIG:-}" i
                    for ((i = 1; i < COMP_CWORD; i++)); do
                        case ${COMP_WORDS[i]} in
                            --config-file) cfg="${COMP_WORDS[i+1]}"; [[ $cfg == = ]] && cfg="${COMP_WORDS[i+2]}" ;;
                            --manager-config) mgr="${COMP_WORDS[i+1]}"; [[ $mgr == = ]] && mgr="${COMP_WORDS[i+2]}" ;;
                        esac
                    done
                    if [[ -z $cfg ]]; then
                        cfg="$HOME/.oci/config"
                        [[ -f $cfg ]] || cfg="${OCI_CONFIG_FILE:-$cfg}"
                    fi
                    [[ $cfg == "~/"* ]] && cfg="$HOME/${cfg#"~/"}"
                    if [[ -z $mgr ]]; then
                        mgr="$(dirname -- "$cfg")/woci_manager.ini"
                        [[ -f $mgr ]] || mgr="$HOME/.oci/woci_manager.ini"
                    fi
                    [[ $mgr == "~/"* ]] && mgr="$HOME/${mgr#"~/"}"
                    local sections='s/^[[:space:]]*\[\(.*\)\].*$/\1/p'
                    COMPREPLY=()
                    while IFS= read -r i; do
                        [[ $i == "$cur"* ]] && COMPREPLY+=("$i")
                    done < <({ sed -n "$sections" "$cfg"; sed -n "$sections" "$mgr" | grep -vx COMMON; } 2>/dev/null |
                             LC_ALL=C awk 'length && !seen[$0]++ && !/[\001-\037\177]|\302[\200-\237]|\342\200[\213-\217\250-\256]|\342\201[\240-\244\246-\251]|\357\273\277|\363\240[\200\201]|\330\234/')
                    [[ ${#COMPREPLY[@]} -gt 0 ]] && COMPREPLY=($(printf '%q\n' "${COMPREPLY[@]}"))
                    return 0
"#;
    if let Some(at) = script.find("--profile)\n").map(|at| at + "--profile)\n".len()) {
        let body = &script[at..];
        let indent = body.len() - body.trim_start().len();
        if let Some(end) = body.find("return 0\n") {
            script.replace_range(at + indent..at + end + "return 0\n".len(), profiles);
        }
    }
    script
}

/// The man page (roff): clap's sections, ARGUMENTS (the `--help` rules), then SETTINGS, EXIT
/// STATUS, ENVIRONMENT and FILES from [`reference`] (the README's tables), VERSION and SEE ALSO.
pub fn man_page() -> Vec<u8> {
    let man = clap_mangen::Man::new(command());
    let mut buf = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = man.render_title(&mut buf);
    let _ = man.render_name_section(&mut buf);
    let _ = reference::man_synopsis(&USAGE).to_writer(&mut buf);
    let _ = reference::man_description().to_writer(&mut buf);
    let _ = man.render_options_section(&mut buf);
    let _ = reference::man_rules(RULES).to_writer(&mut buf);
    let _ = reference::man_sections().to_writer(&mut buf);
    let _ = man.render_version_section(&mut buf);
    let _ = reference::man_see_also().to_writer(&mut buf);
    buf
}

/// Splits argv (without argv[0]) of `woci`.
pub fn parse(args: Vec<OsString>) -> Result<Invocation> {
    parse_as(args, false)
}

/// Whether argv[0] says woci was started as `oci` (a symlink, copy or alias target named `oci`):
/// then `-h`/`--help` and `-v`/`--version` are oci's.
pub fn invoked_as_oci(argv0: &OsStr) -> bool {
    std::path::Path::new(argv0).file_stem().is_some_and(|s| s == "oci")
}

/// Splits argv (without argv[0]); `as_oci` from [`invoked_as_oci`].
pub fn parse_as(args: Vec<OsString>, as_oci: bool) -> Result<Invocation> {
    if args.is_empty() {
        // Bare `oci` prints oci's overview; bare `woci`, woci's help.
        let command = if as_oci { Command::Passthrough(Vec::new()) } else { Command::Help };
        return Ok(Invocation { flags: Flags::default(), oci: OciView::default(), command, json: false });
    }
    let mut st = State::default();
    let mut forwarded: Vec<OsString> = Vec::new();
    let mut after_dashdash: Option<Vec<OsString>> = None;
    let mut seen_word = false;
    let mut it = std::collections::VecDeque::from(args);
    while let Some(arg) = it.pop_front() {
        if arg == "--" {
            if seen_word {
                // oci's own `--`: passed on, and nothing after it is woci's.
                forwarded.push(arg);
            }
            after_dashdash = Some(it.drain(..).collect());
            break;
        }
        // oci's one-letter flags grouped, as Click takes them (`-dv`): each on its own.
        if let Some(flags) = arg.to_str().and_then(|a| a.strip_prefix('-')).filter(|f| !seen_word && is_short_group(f))
        {
            flags.chars().rev().for_each(|c| it.push_front(format!("-{c}").into()));
            continue;
        }
        if let Some((name, inline)) = split_option(&arg) {
            let mine = find(&name)
                .filter(|o| o.scope == Anywhere || !seen_word)
                .filter(|o| !(as_oci && matches!(o.long, "help" | "version")));
            if let Some(o) = mine {
                let value = match (o.value, inline) {
                    (None, Some(_)) => return Err(usage(format!("`--{}` takes no value", o.long))),
                    (Some(_), None) => {
                        Some(it.pop_front().ok_or_else(|| usage(format!("`--{}` needs a value", o.long)))?)
                    }
                    (_, inline) => inline,
                };
                st.apply(&o, value)?;
                if o.setting == Some((Key::Debug, Some("true"))) {
                    forwarded.push(arg);
                }
                continue;
            }
            if !seen_word && oci_globals::find(&name).is_none() {
                return Err(unknown_option(&name));
            }
            forwarded.push(arg);
            if !seen_word && inline.is_none() && oci_globals::takes_value(&name) {
                forwarded.extend(it.pop_front());
            }
            continue;
        }
        seen_word = true;
        forwarded.push(arg);
    }
    st.finish(forwarded, after_dashdash)
}

/// `dv` of `-dv`: two or more of oci's one-letter flags (none takes a value).
fn is_short_group(flags: &str) -> bool {
    flags.len() >= 2 && flags.chars().all(|c| oci_globals::find(&format!("-{c}")).is_some_and(|g| !g.value))
}

/// Parse state: the setting flags, the command options given (by long name) and the shell of
/// `--completions`.
#[derive(Default)]
struct State {
    flags: Flags,
    given: Vec<&'static str>,
    completions: Option<clap_complete::Shell>,
}

impl State {
    fn apply(&mut self, o: &Opt, value: Option<OsString>) -> Result<()> {
        let value = value.unwrap_or_default();
        let text = || {
            value.clone().into_string().map_err(|_| usage(format!("the value of `--{}` is not valid UTF-8", o.long)))
        };
        match o.setting {
            Some((key, Some(sets))) => self.flags.set(key, sets),
            // A path may be any bytes; everything else is text checked by its type's rule.
            Some((key, None)) if table::def(key).kind == table::Kind::Path => self.flags.set(key, value),
            Some((key, None)) => {
                let v = text()?;
                crate::settings::rules::check(table::def(key).kind, &v)
                    .map_err(|why| usage(format!("`--{}` {why}, got `{}`", o.long, v.escape_debug())))?;
                self.flags.set(key, v);
            }
            None if o.long == "completions" => {
                let v = text()?;
                let shell = <clap_complete::Shell as clap::ValueEnum>::from_str(v.trim(), true).map_err(|_| {
                    usage(format!(
                        "`--completions` does not know the shell `{v}` (use bash, zsh, fish, elvish or powershell)"
                    ))
                })?;
                self.completions = Some(shell);
            }
            None => self.given.push(o.long),
        }
        Ok(())
    }

    fn on(&self, long: &str) -> bool {
        self.given.contains(&long)
    }

    fn finish(self, forwarded: Vec<OsString>, after: Option<Vec<OsString>>) -> Result<Invocation> {
        let (oci, command) = self.command(forwarded, after)?;
        Ok(Invocation { json: self.on("json"), flags: self.flags, oci, command })
    }

    /// What the command line asks for, and what its `oci` arguments say.
    fn command(&self, forwarded: Vec<OsString>, after: Option<Vec<OsString>>) -> Result<(OciView, Command)> {
        let informational = (self.on("help").then_some(Command::Help))
            .or(self.on("version").then_some(Command::Version))
            .or(self.completions.map(Command::Completions))
            .or(self.on("man").then_some(Command::Man));
        if let Some(command) = informational {
            return Ok((OciView::default(), command));
        }
        let (all, prompt) = (self.on("all"), self.on("prompt"));
        if (all || prompt) && !self.on("status") {
            return Err(usage(format!("`--{}` goes with `--status`", if all { "all" } else { "prompt" })));
        }
        if all && prompt {
            return Err(usage("`--all` and `--prompt` cannot be combined"));
        }
        // One line of text is what a prompt takes; elsewhere `--json` would be dropped unsaid.
        if self.on("json") && (prompt || !(self.on("status") || self.on("daemon-status"))) {
            return Err(usage(match prompt {
                true => "`--prompt` and `--json` cannot be combined",
                false => "`--json` goes with `--status` or `--daemon-status`",
            }));
        }
        let actions: Vec<&str> = ["exec", "status", "daemon", "daemon-run", "daemon-status", "stop-daemon"]
            .into_iter()
            .filter(|a| self.on(a))
            .collect();
        if let [a, b, ..] = actions[..] {
            return Err(usage(format!("`--{a}` and `--{b}` cannot be combined")));
        }
        // The daemon runs no program to keep alive: the option would be dropped unsaid.
        let auto_refresh = self.flags.get(Key::AutoRefresh) == Some("true");
        if let (true, Some(a)) = (auto_refresh, actions.iter().find(|a| a.contains("daemon"))) {
            return Err(usage(format!("`--auto-refresh` and `--{a}` cannot be combined")));
        }
        let words = oci_words(&forwarded);

        if self.on("exec") {
            let Some(mut rest) = after.filter(|r| !r.is_empty()) else {
                return Err(usage("`--exec` needs the program after `--`: woci --exec -- PROGRAM [ARGS]..."));
            };
            check_exec_leftovers(&forwarded)?;
            let program = rest.remove(0);
            let mut oci = read_oci_view(&forwarded)?;
            if std::path::Path::new(&program).file_name().is_some_and(|n| n == "oci") {
                oci = with_the_programs_oci_view(oci, &rest)?;
            }
            return Ok((oci, Command::Exec { program, args: rest }));
        }

        if let Some(action) = actions.first() {
            // The Python woci's `--daemon session authenticate`: a login, then the daemon.
            let session_authenticate =
                *action == "daemon" && matches!(&words[..], [s, a, ..] if *s == "session" && *a == "authenticate");
            if let Some(more) = words.get(2).filter(|_| session_authenticate) {
                return Err(usage(format!(
                    "`--daemon session authenticate` takes nothing more, got `{}`",
                    more.to_string_lossy()
                )));
            }
            if let Some(w) = words.first().filter(|_| !session_authenticate) {
                return Err(usage(format!("`--{action}` takes no oci command, got `{}`", w.to_string_lossy())));
            }
            if after.as_ref().is_some_and(|a| !a.is_empty()) {
                return Err(usage(format!("`--{action}` takes no arguments after `--`")));
            }
            let command = match *action {
                "status" => Command::Status { all, prompt },
                "daemon" => Command::Daemon { login: session_authenticate },
                "daemon-run" => Command::DaemonRun,
                "daemon-status" => Command::DaemonStatus,
                _ => Command::StopDaemon,
            };
            return Ok((read_oci_view(&forwarded)?, command));
        }

        let owned = match (words.first().and_then(|w| w.to_str()), words.get(1).and_then(|w| w.to_str())) {
            (Some("session"), Some("authenticate")) => Some(Command::SessionAuthenticate as fn(_) -> _),
            (Some("session"), Some("refresh")) => Some(Command::SessionRefresh as fn(_) -> _),
            _ => None,
        };
        let mut all = forwarded;
        all.extend(after.unwrap_or_default());
        let oci = read_oci_view(&all)?;
        let command = match owned {
            // `woci session authenticate --help` is oci's help, never a login.
            Some(session) if !asks_help(&all) => session(all),
            _ if session_free(&all) => Command::Passthrough(all),
            _ => Command::Oci(all),
        };
        Ok((oci, command))
    }
}

/// Every command group of the pinned `oci` (one path per line; `scripts/oci-groups` makes it).
const OCI_GROUPS: &str = include_str!("oci_groups.txt");

/// Whether `oci` needs no session for these arguments: help anywhere, `setup …`, `session …`
/// commands woci does not own, a command group alone, or version/release info before the first
/// word. (`--generate-*-json-input` does: oci loads the profile's session for it; round 101 F3.)
fn session_free(args: &[OsString]) -> bool {
    let words = oci_words(args);
    let first = words.first().and_then(|w| w.to_str());
    if matches!(first, Some("setup" | "session")) {
        return true;
    }
    // A command group alone (`oci os`, `oci os object`: [`OCI_GROUPS`]), global options at most:
    // oci prints its usage. (The one top-level command, `raw-request`, needs options of its own to
    // call anything, so any one word is.)
    let global = |opt: &Option<NamedOption>| opt.as_ref().is_none_or(|(name, _)| oci_globals::find(name).is_some());
    let group = || {
        let path: Vec<&str> = words.iter().map(|w| w.to_str().unwrap_or_default()).collect();
        // No word at all (`oci --profile P`): oci's own top-level usage.
        words.len() <= 1 || OCI_GROUPS.lines().any(|g| g == path.join(" "))
    };
    // Interactive mode (`-i`) runs commands: it needs the session.
    let prompts =
        |opt: &Option<NamedOption>| opt.as_ref().is_some_and(|(n, _)| matches!(n.as_str(), "-i" | "--cli-auto-prompt"));
    let items = scan(args, oci_globals::takes_value);
    if group() && items.iter().all(|(opt, _)| global(opt)) && !items.iter().any(|(opt, _)| prompts(opt)) {
        return true;
    }
    let mut before_word = true;
    args.iter().any(|a| {
        let Some((name, _)) = split_option(a) else {
            before_word &= words.first().is_none_or(|w| *w != a);
            return false;
        };
        is_help(&name)
            || (before_word && matches!(name.as_str(), "-v" | "--version" | "--release-info" | "--latest-version"))
    })
}

fn is_help(name: &str) -> bool {
    matches!(name, "-h" | "--help" | "-?")
}

fn asks_help(args: &[OsString]) -> bool {
    args.iter().filter_map(|a| split_option(a)).any(|(name, _)| is_help(&name))
}

/// Refuses what a `session authenticate`/`session refresh` woci carries out itself cannot honour:
/// another word, or an option that is neither woci's nor a global oci option (`--profile-name`
/// and the other options of oci's own browser login, or a typo such as `--profle`), which would
/// otherwise be dropped silently while woci renews another profile than the one meant.
pub fn check_session_args(args: &[OsString]) -> Result<()> {
    let what = oci_words(args).into_iter().take(2).map(|w| w.to_string_lossy()).collect::<Vec<_>>().join(" ");
    let mut words = 0;
    for (opt, span) in scan(args, oci_globals::takes_value) {
        let name = match opt {
            Some((name, _)) if oci_globals::find(&name).is_some() => continue,
            Some((name, _)) => name,
            None if words < 2 => {
                words += 1;
                continue;
            }
            None => return Err(usage(format!("`{what}` (woci's own) takes no `{}`", span[0].to_string_lossy()))),
        };
        // A typo of a global option gets its "did you mean" from the caller (`typo_hint`). Named
        // without the program: the user may have typed `oci` (round 101 N1).
        let hint = match name.as_str() {
            "--profile-name" => format!("the profile is given with `--profile`: `--profile NAME {what}`"),
            _ => "woci renews this profile with its own settings (woci_manager.ini), so oci's own session options do \
                  not apply"
                .to_owned(),
        };
        return Err(usage(format!("`{what}` (woci's own) does not take `{name}`: {hint}")));
    }
    Ok(())
}

/// The value of oci's `session authenticate --profile-name NAME` (the profile its login creates).
pub fn profile_name_arg(args: &[OsString]) -> Option<String> {
    let takes = |n: &str| n == "--profile-name" || oci_globals::takes_value(n);
    scan(args, takes).into_iter().find_map(|(opt, _)| match opt? {
        (name, Some(v)) if name == "--profile-name" => v.into_string().ok(),
        _ => None,
    })
}

/// An option before the first oci word that is neither woci's nor oci's.
fn unknown_option(name: &str) -> Error {
    let known: Vec<String> = options()
        .filter(|o| !o.hidden)
        .map(|o| format!("--{}", o.long))
        .chain(oci_globals::OCI_GLOBALS.iter().flat_map(|g| g.names.iter().map(|n| (*n).to_owned())))
        .collect();
    let hint = setting_spelled_as_flag(name)
        .or_else(|| {
            oci_globals::suggest(name, known.iter().map(String::as_str)).map(|s| format!("did you mean `{s}`?"))
        })
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    usage(format!(
        "unknown option `{name}`{hint}: it is neither a woci option (woci --help) nor a global oci option; \
         options of an oci command go after the command"
    ))
}

/// `--login-flow` for the setting `login_flow`, whose flag is named otherwise (`--device-code`)
/// or which has none: how that setting is given.
fn setting_spelled_as_flag(name: &str) -> Option<String> {
    let key = name.strip_prefix("--")?.replace('-', "_");
    let def = table::SETTINGS.iter().find(|d| d.name == key)?;
    let flag = def.flag.map(|f| match f.arg {
        FlagArg::Sets(value, _) => format!("`--{}` (for `{value}`)", f.long),
        FlagArg::Value(_) => format!("`--{}`", f.long),
    });
    let env = def.env.map(|v| format!("`{v}`"));
    let ini = def.ini.then(|| format!("`{key} = …` in `woci_manager.ini`"));
    let ways: Vec<String> = [flag, env, ini].into_iter().flatten().collect();
    Some(format!("`{key}` is set with {}", ways.join(", ")))
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

fn find(name: &str) -> Option<Opt> {
    options().find(|o| name.strip_prefix("--") == Some(o.long) || o.short.is_some_and(|c| name == format!("-{c}")))
}

/// An option's name (with its dashes) and value.
type NamedOption = (String, Option<OsString>);

/// `--name[=value]` → (`--name`, value); `-x…` → (`-x…`, None); anything else (words, `-`) → None.
/// The name must be UTF-8 (woci's and oci's names are); the value keeps its bytes.
fn split_option(arg: &OsStr) -> Option<NamedOption> {
    let bytes = arg.as_encoded_bytes();
    if bytes.len() < 2 || bytes[0] != b'-' {
        return None;
    }
    // Only a long option has an inline value.
    let Some(i) = bytes.iter().position(|&b| b == b'=').filter(|_| bytes[1] == b'-') else {
        return Some((arg.to_string_lossy().into_owned(), None));
    };
    let name = std::str::from_utf8(&bytes[..i]).ok()?.to_owned();
    // SAFETY: the bytes after an ASCII `=` of an `OsStr`'s encoded bytes are themselves valid
    // encoded bytes (std's documented rule for splitting at ASCII).
    Some((name, Some(unsafe { OsStr::from_encoded_bytes_unchecked(&bytes[i + 1..]) }.to_owned())))
}

/// `args` in order, one item per word or option: the option's name and value (inline, or the next
/// argument when `takes_value(name)`; `None` for a word), and the arguments the item spans.
fn scan(args: &[OsString], takes_value: impl Fn(&str) -> bool) -> Vec<(Option<NamedOption>, &[OsString])> {
    let mut items = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let opt = split_option(&args[i]);
        let n = match &opt {
            Some((name, None)) if takes_value(name) => 2.min(args.len() - i),
            _ => 1,
        };
        let opt = opt.map(|(name, inline)| (name, inline.or_else(|| (n == 2).then(|| args[i + 1].clone()))));
        items.push((opt, &args[i..i + n]));
        i += n;
    }
    items
}

fn is_view_option(name: &str) -> bool {
    VIEW_OPTIONS.contains(&name)
}

/// The positional words of the `oci` arguments (values of oci's value-taking global options and
/// `--debug` skipped).
fn oci_words(args: &[OsString]) -> Vec<&OsString> {
    scan(args, oci_globals::takes_value).into_iter().filter(|(opt, _)| opt.is_none()).map(|(_, a)| &a[0]).collect()
}

/// With `--exec`, only the profile-selecting oci options (and `--debug`) may come before `--`.
fn check_exec_leftovers(forwarded: &[OsString]) -> Result<()> {
    for (opt, span) in scan(forwarded, is_view_option) {
        match opt {
            Some((name, _)) if is_view_option(&name) => {}
            Some((name, None)) if name == "--debug" => {}
            _ => {
                return Err(usage(format!(
                    "`{}` cannot come before `--` with `--exec`; put the program and its arguments after `--`",
                    span[0].to_string_lossy()
                )))
            }
        }
    }
    Ok(())
}

const VIEW_OPTIONS: &[&str] = &[
    "--profile",
    "--config-file",
    "--region",
    "--auth",
    "--cert-bundle",
    "--endpoint",
    "--cli-rc-file",
    "--defaults-file",
];

/// `woci --exec -- oci … --profile P --endpoint X`: the options `oci` itself will use choose the
/// session woci keeps fresh and the hosts it re-signs, where woci's own (before `--`) say
/// nothing; a profile or config file given both ways and differently is refused, since `oci`
/// would use a session woci does not renew.
fn with_the_programs_oci_view(woci: OciView, args: &[OsString]) -> Result<OciView> {
    let own = read_oci_view(args).unwrap_or_default();
    let differ = |name: &str, a: Option<String>, b: Option<String>, same: &dyn Fn(&str, &str) -> bool| match (a, b) {
        (Some(a), Some(b)) if !same(&a, &b) => Err(usage(format!(
            "`{name} {a}` before `--exec` and the program's `{name} {b}` differ: oci would use a session woci does \
             not keep fresh; give it once"
        ))),
        _ => Ok(()),
    };
    differ("--profile", woci.profile.clone(), own.profile.clone(), &|a, b| a == b)?;
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    // The same file however it is spelled (`~/`, `..`, a link).
    let real = |p: &str| {
        let p = match p.strip_prefix("~/") {
            Some(rest) => dirs::home_dir().map_or_else(|| PathBuf::from(p), |h| h.join(rest)),
            None => PathBuf::from(p),
        };
        std::fs::canonicalize(&p).unwrap_or(p)
    };
    differ("--config-file", path(&woci.config_file), path(&own.config_file), &|a, b| real(a) == real(b))?;
    Ok(OciView {
        profile: woci.profile.or(own.profile),
        config_file: woci.config_file.or(own.config_file),
        region: woci.region.or(own.region),
        auth: woci.auth.or(own.auth),
        cert_bundle: woci.cert_bundle.or(own.cert_bundle),
        endpoint: woci.endpoint.or(own.endpoint),
        cli_rc_file: woci.cli_rc_file.or(own.cli_rc_file),
        words: own.words,
        lookalike: woci.lookalike,
    })
}

/// Reads `--profile`, `--config-file`, `--region`, `--auth`, `--cert-bundle`, `--endpoint`
/// (both forms; the last one wins, as in `oci`). The arguments are not changed.
fn read_oci_view(args: &[OsString]) -> Result<OciView> {
    let mut view = OciView::default();
    for (opt, _) in scan(args, is_view_option) {
        let Some((name, value)) = opt.filter(|(name, _)| is_view_option(name)) else { continue };
        // As oci says it, before a profile woci would otherwise pick is looked for.
        let Some(value) = value else { return Err(usage(format!("`{name}` needs a value"))) };
        let text =
            || value.clone().into_string().map_err(|_| usage(format!("the value of `{name}` is not valid UTF-8")));
        match name.as_str() {
            "--profile" => view.profile = Some(text()?),
            "--config-file" => view.config_file = Some(PathBuf::from(value)),
            "--region" => view.region = Some(text()?),
            "--auth" => view.auth = Some(text()?),
            "--cert-bundle" => view.cert_bundle = Some(PathBuf::from(value)),
            "--cli-rc-file" | "--defaults-file" => view.cli_rc_file = Some(PathBuf::from(value)),
            _ => view.endpoint = Some(text()?),
        }
    }
    view.words = oci_words(args).iter().map(|w| w.to_string_lossy().into_owned()).collect();
    view.lookalike = args.iter().find_map(|a| {
        let (name, _) = split_option(a)?;
        if is_view_option(&name) || oci_globals::find(&name).is_some() {
            return None;
        }
        // A letter off (two in a long name): `--file` of `oci os object put` is no `--profile`.
        let near = |v: &&str| strsim::damerau_levenshtein(&name, v) <= if v.len() >= 10 { 2 } else { 1 };
        VIEW_OPTIONS.iter().copied().find(near).map(|v| (name.clone(), v.to_owned()))
    });
    Ok(view)
}

/// `args` (oci arguments) with the value of every `--profile P` / `--profile=P` replaced by
/// `profile`, read as [`Invocation::oci`] reads them; everything else untouched and in order.
pub fn with_profile(args: &[OsString], profile: &str) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    for (opt, span) in scan(args, is_view_option) {
        match opt {
            // `--profile=P`.
            Some((name, Some(_))) if name == "--profile" && span.len() == 1 => {
                out.push(OsString::from(format!("--profile={profile}")))
            }
            Some((name, _)) if name == "--profile" => {
                out.push(span[0].clone());
                if span.len() == 2 {
                    out.push(profile.into());
                }
            }
            // Another option's value is never read as an option.
            _ => out.extend(span.iter().cloned()),
        }
    }
    out
}

/// A hint for errors when the command line has an option that looks like a mistyped
/// profile-selecting option (`woci os ns get --profle EMU` fails on profile `DEFAULT`).
pub fn typo_hint(oci: &OciView) -> Option<String> {
    let (typed, meant) = oci.lookalike.as_ref()?;
    Some(format!("the command line has `{typed}`: did you mean `{meant}`?"))
}

#[cfg(test)]
mod tests;
