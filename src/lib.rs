//! woci: a drop-in wrapper for Oracle Cloud's `oci` CLI that keeps the profile's OCI session token
//! (UPST) valid — before `oci` starts, and with `--auto-refresh` while it runs, through a local
//! re-signing proxy that swaps the fresh token into each request's OCI signature.
//!
//! `main.rs` only calls [`app::main`]. The modules, by responsibility:
//! - command line: [`cli`] (splitting woci options from `oci` arguments), [`oci_program`] (the real
//!   `oci`, never woci itself), [`oci_cli_rc`] (oci's own settings file), [`settings`] (CLI + env +
//!   manager INI → one plain struct), [`manager_config`] (`woci_manager.ini`), [`oci_config`]
//!   (`~/.oci/config` read and upsert)
//! - tokens: [`jwt`] (claims, freshness), [`keys`] (the stable RSA key pair), [`store`] (session
//!   folder files), [`crypto`] (refresh token at rest)
//! - protocols: [`http`] (the transport trait, the one retry policy), [`token_endpoint`] (the one
//!   client for token-endpoint POSTs), [`oidc`] (refresh grant, Authorization Code + PKCE and
//!   device-code login), [`exchange`] (a JWT → UPST), [`subject_token`] and [`federation`] (CI /
//!   workload JWTs instead of a login), [`session_refresh`] (OCI auth service refresh), [`realm`]
//!   (regions, realms, OCI hosts, `NO_PROXY`), [`signer`] (OCI HTTP signatures), [`oke`] (native
//!   OKE `generate-token`)
//! - orchestration: [`renew`] (the pure plan, and the locked executor that carries it out;
//!   [`critical`] holds signals while a refresh token rotates), [`child`] (running `oci`
//!   or any program; [`redact`] filters its output under `--debug`), [`container`] (`oci` from a
//!   container image), [`autorefresh`] (renewal loop + proxy + child), [`proxy`] (the re-signing
//!   proxy), [`daemon`], [`status`]
//! - operations: [`metrics`] (renewal counts, the Prometheus textfile), [`hooks`]
//!   (`on_renewal_failure`, `on_expiring`), [`expiry`] (warning before the hard end)
//! - plumbing: [`error`], [`secret`], [`clock`], [`fsutil`], [`logging`]

pub mod app;
pub mod autorefresh;
pub mod child;
pub mod cli;
pub mod clock;
pub mod container;
pub mod context;
pub mod critical;
pub mod crypto;
pub mod daemon;
pub mod error;
pub mod exchange;
pub mod expiry;
pub mod fsutil;
pub mod hooks;
pub mod http;
pub mod jwt;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod oci_config;
pub mod oci_program;
pub mod oidc;
pub mod oke;
pub mod proxy;
pub mod realm;
pub mod redact;
pub mod renew;
pub mod secret;
pub mod session_refresh;
pub mod settings;
pub mod signer;
pub mod status;
pub mod store;
pub mod subject_token;
pub mod terminal;
pub mod token_endpoint;

pub use error::{Error, Result};
