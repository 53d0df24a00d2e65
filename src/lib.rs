//! woci: a drop-in wrapper for Oracle Cloud's `oci` CLI that keeps the profile's OCI session token
//! (UPST) valid — before `oci` starts, and with `--auto-refresh` while it runs, through a local
//! re-signing proxy that swaps the fresh token into each request's OCI signature.
//!
//! `main.rs` only calls [`app::main`]. The modules, by layer, lowest first; `tests/layers.rs`
//! keeps every import pointing down (docs/ARCHITECTURE.md has the table):
//! - base: [`error`], [`secret`], [`clock`], [`terminal`] (text from outside made safe to print),
//!   [`fsutil`], [`logging`], [`critical`] (signals held while a refresh token rotates), [`jwt`],
//!   [`keys`] (the stable RSA key pair), [`crypto`] (refresh token at rest), [`realm`] (regions,
//!   realms, OCI hosts, `NO_PROXY`), [`signer`] (OCI HTTP signatures), [`expiry`], [`configparser`]
//!   (the INI syntax of oci's files and the manager INI)
//! - settings: [`settings`] (the one table of settings, their rules, the INI files, the resolved
//!   per-mode configs)
//! - services: [`http`] (the transport trait, the one retry policy), [`token_endpoint`],
//!   [`oci_config`] (`~/.oci/config`), [`store`] (session folder files), [`context`] (settings,
//!   store, clock and environment of one call), [`oci_program`] (the real `oci`, never woci
//!   itself), [`redact`] (`--debug` output filter), [`oidc`] (refresh grant, PKCE and device-code
//!   login), [`exchange`] (a JWT → UPST), [`subject_token`] (CI / workload JWTs),
//!   [`session_refresh`], [`proxy`] (the re-signing proxy), [`metrics`], [`hooks`]
//! - renewal: [`renew`] (the facts, the pure plan, and the locked executor that carries it out)
//! - modes: [`child`] (the one builder of child processes), [`container`], [`autorefresh`],
//!   [`daemon`], [`status`], [`oke`] (native `generate-token`)
//! - command line: [`cli`]
//! - top: [`app`] (runs the mode a command line asks for; maps every error to its message and exit
//!   code once)

// Items are `pub` only where the crate exports them (tests, benches and main.rs use the `pub`
// modules); everything else says `pub(crate)`.
#![deny(unreachable_pub)]

pub(crate) mod access;
pub mod app;
pub(crate) mod autorefresh;
pub(crate) mod child;
pub mod cli;
pub mod clock;
pub(crate) mod configparser;
pub(crate) mod container;
pub mod context;
pub(crate) mod critical;
pub mod crypto;
pub(crate) mod daemon;
pub mod error;
pub(crate) mod exchange;
pub(crate) mod expiry;
pub(crate) mod fsutil;
pub(crate) mod hooks;
pub mod http;
pub mod jwt;
pub mod keys;
pub(crate) mod logging;
pub(crate) mod metrics;
pub mod oci_config;
pub(crate) mod oci_program;
pub mod oidc;
pub(crate) mod oke;
pub mod proxy;
pub(crate) mod realm;
pub(crate) mod redact;
pub mod renew;
pub mod secret;
pub(crate) mod session_refresh;
pub mod settings;
pub mod signer;
pub(crate) mod status;
pub(crate) mod store;
pub(crate) mod subject_token;
pub(crate) mod terminal;
pub(crate) mod token_endpoint;

pub use error::{Error, Result};
