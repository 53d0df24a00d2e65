# Use woci wherever you would type `oci`. Source this from ~/.bashrc or ~/.zshrc.
#
# woci runs the real `oci` found on PATH (or the one named by WOCI_OCI_COMMAND / `oci_command` in
# the manager INI), so the alias cannot call itself.

# A function rather than `alias oci=woci`: `exec -a` starts woci under the name `oci`, so
# `oci --version`, `oci --help` and a bare `oci` are oci's own, as with a link named `oci`.
oci() { (exec -a oci woci "$@"); }

# Pick the profile once per shell instead of `--profile` on every command. woci reads
# OCI_CLI_PROFILE like `oci` does and adds `--profile` / `--auth security_token` for you.
export OCI_CLI_PROFILE=myprofile

# Long uploads and downloads: keep the running command's token fresh.
alias ocil='woci --auto-refresh'

# A quick look at the session (exit 0 = usable).
alias ocis='woci --status'

# Shell completions for woci's own options (bash shown; zsh and fish work the same way):
#   eval "$(woci --completions bash)"
#   woci --completions zsh  > "${fpath[1]}/_woci"
#   woci --completions fish > ~/.config/fish/completions/woci.fish

# fish users, in ~/.config/fish/config.fish (fish has no `exec -a`: link woci as `oci` on PATH
# instead, e.g. `ln -s (command -v woci) ~/.local/bin/oci`, for oci's own --version and --help):
#   alias oci woci
#   set -gx OCI_CLI_PROFILE myprofile
