//! `woci-emulator`: an emulated OIDC identity provider, OCI identity-domain token exchange, OCI
//! auth service session refresh and an Object Storage subset, on 127.0.0.1, for woci's tests
//! and demo. Usable in-process ([`Emulator::start`]) and as the `woci-emulator` binary.
//!
//! Routes (all under [`Emulator::base_url`]):
//! - IdP: `/.well-known/openid-configuration`, `/oauth2/v1/keys`, `/oauth2/v1/authorize`
//!   (+ `/oauth2/v1/authorize/login`), `/oauth2/v1/token` (`authorization_code`, `refresh_token`);
//!   (+ `urn:ietf:params:oauth:grant-type:device_code`), `/oauth2/v1/device_authorization`,
//!   `/oauth2/v1/device` (device verification page);
//! - identity domain token exchange: `/domain/oauth2/v1/token` (subjects from the IdP, trusted
//!   issuers and the GitHub Actions stand-in);
//! - GitHub Actions ID-token service stand-in: `/_actions/idtoken`, `/_actions/.well-known/jwks`;
//! - auth service: `/v1/authentication/refresh`;
//! - Object Storage: `/n/...`;
//! - OKE token review (what a cluster's API server does with a `generate-token` token):
//!   `/oke/v1/tokenreviews`;
//! - admin: `/_emulator/stats`, `/_emulator/events`, `/_emulator/faults`, `/_emulator/settings`.

// The emulator plays servers with real clocks and its own knobs: the woci crate's conventions
// (clock, environment, exit point; see clippy.toml) are not its own.
#![allow(clippy::disallowed_methods)]
// Handlers return early with a ready `Response` as the error; boxing them buys nothing here.
#![allow(clippy::result_large_err)]

mod actions;
mod admin;
mod authsvc;
pub mod config;
mod device;
pub mod events;
mod exchange;
mod faultio;
pub mod faults;
mod idp;
mod jwt;
mod keys;
mod objectstorage;
mod oke;
mod req;
mod respond;
mod signature;
mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_nobrowser;
mod tls;
mod upst;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use url::Url;

pub use config::{ActionsConfig, Config, DeviceConfig, LoginMode, TrustedIssuer};
pub use device::Decision as DeviceDecision;
pub use events::{Endpoint, Event, Stats};
pub use faults::{Fault, FaultAction};
pub use state::set_clock_offset;

use events::EventInfo;
use keys::SigningKeyPair;
use req::Req;
use respond::DropConnection;
use state::State;

/// Path of the identity-domain token exchange.
pub const EXCHANGE_PATH: &str = "/domain/oauth2/v1/token";

/// A running emulator. Dropping it (or [`Emulator::shutdown`]) stops the server.
pub struct Emulator {
    state: Arc<State>,
    addr: SocketAddr,
    base_url: Url,
    ca_pem: Option<String>,
    stop: watch::Sender<bool>,
}

#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "emulator failed to start: {}", self.0)
    }
}

impl std::error::Error for StartError {}

impl Emulator {
    /// Binds `127.0.0.1:<cfg.port>` (0 = any free port) and serves until dropped.
    pub async fn start(cfg: Config) -> Result<Emulator, StartError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", cfg.port))
            .await
            .map_err(|e| StartError(format!("cannot bind 127.0.0.1:{}: {e}", cfg.port)))?;
        let addr = listener.local_addr().map_err(|e| StartError(e.to_string()))?;
        let tls = if cfg.tls { Some(tls::generate(&cfg.tls_names).map_err(StartError)?) } else { None };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = Url::parse(&format!("{scheme}://127.0.0.1:{}/", addr.port())).expect("valid URL");

        let fresh = cfg.fresh_keys;
        let (idp_priv, oci_priv) =
            tokio::task::spawn_blocking(
                move || {
                    if fresh {
                        (keys::generate(), keys::generate())
                    } else {
                        keys::cached_pair()
                    }
                },
            )
            .await
            .map_err(|e| StartError(format!("key generation: {e}")))?;
        let state = Arc::new(State::new(
            cfg,
            &base_url,
            SigningKeyPair::new(idp_priv, "idp"),
            SigningKeyPair::new(oci_priv, "oci"),
        ));

        let (stop, stop_rx) = watch::channel(false);
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        tokio::spawn(serve(listener, tls.map(|t| t.acceptor), state.clone(), stop_rx));
        tracing::info!(base_url = %base_url, "emulator listening");
        Ok(Emulator { state, addr, base_url, ca_pem, stop })
    }

    fn url(&self, path: &str) -> Url {
        self.base_url.join(path.trim_start_matches('/')).expect("valid URL")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http(s)://127.0.0.1:<port>/`.
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    /// The IdP issuer (`iss` of its tokens): the base URL without the trailing slash.
    pub fn issuer(&self) -> String {
        self.state.issuer.clone()
    }

    pub fn discovery_url(&self) -> Url {
        self.url("/.well-known/openid-configuration")
    }

    pub fn authorize_url(&self) -> Url {
        self.url("/oauth2/v1/authorize")
    }

    /// The IdP token endpoint (authorization code and refresh token grants).
    pub fn token_url(&self) -> Url {
        self.url("/oauth2/v1/token")
    }

    /// The identity-domain token exchange endpoint.
    pub fn exchange_url(&self) -> Url {
        self.url(EXCHANGE_PATH)
    }

    pub fn jwks_url(&self) -> Url {
        self.url("/oauth2/v1/keys")
    }

    /// Object Storage endpoint for `oci --endpoint` (no trailing slash).
    pub fn os_endpoint(&self) -> String {
        self.state.base.clone()
    }

    /// The OKE token review endpoint (`POST`, a Kubernetes `TokenReview`; `?cluster=OCID`
    /// optional).
    pub fn oke_token_review_url(&self) -> Url {
        self.url(oke::TOKEN_REVIEW_PATH)
    }

    /// Checks an OKE token in-process, as the token review endpoint does: the UPST's `sub`, or
    /// the rejection reason (`stale_date`, `upst_expired`, `bad_signature`, `foreign_cluster`, …).
    pub fn check_oke_token(&self, token: &str, cluster: Option<&str>) -> Result<String, String> {
        oke::check_token(&self.state.oci_key, token, cluster, self.state.cfg.max_clock_skew)
            .map(|u| u.sub)
            .map_err(|r| r.reason.to_owned())
    }

    /// Auth service base for `/v1/authentication/refresh` (no trailing slash).
    pub fn auth_endpoint(&self) -> String {
        self.state.base.clone()
    }

    pub fn namespace(&self) -> String {
        self.state.cfg.namespace.clone()
    }

    pub fn config(&self) -> &Config {
        &self.state.cfg
    }

    /// PEM of the generated CA when serving TLS.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    pub fn stats(&self) -> Stats {
        self.state.recorder.stats()
    }

    pub fn events(&self) -> Vec<Event> {
        self.state.recorder.events()
    }

    pub fn set_fault(&self, endpoint: Endpoint, fault: Fault) {
        self.state.faults.set(endpoint, fault);
    }

    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// TTL of UPSTs minted from now on (exchange and session refresh).
    pub fn set_upst_ttl(&self, ttl: Duration) {
        self.state.set_upst_ttl(ttl);
    }

    /// Delay before answering each UploadPart.
    pub fn set_part_delay(&self, delay: Duration) {
        self.state.set_part_delay(delay);
    }

    /// Delay before answering each single-part PutObject.
    pub fn set_put_delay(&self, delay: Duration) {
        self.state.set_put_delay(delay);
    }

    /// A fresh refresh token (new family) for the configured user and IdP client.
    pub fn issue_refresh_token(&self) -> String {
        self.state.idp.lock().unwrap().issue_refresh_token(&self.state.cfg)
    }

    /// An IdP access token (RS256 JWT) for the configured user, as the token endpoint issues.
    pub fn issue_access_token(&self) -> String {
        idp::access_token(&self.state, &self.state.cfg.username, &self.state.cfg.idp_client_id, "openid offline_access")
    }

    /// Revokes every refresh token issued so far (they then fail with `invalid_grant`).
    pub fn revoke_refresh_tokens(&self) {
        self.state.idp.lock().unwrap().revoke_all();
    }

    /// A UPST for the configured user bound to `public_key` (PEM SubjectPublicKeyInfo, or the
    /// base64 DER SPKI woci sends in the exchange), valid for `ttl`.
    ///
    /// # Panics
    /// If `public_key` is not an RSA public key of at least 2048 bits.
    pub fn issue_upst(&self, public_key: &str, ttl: Duration) -> String {
        let key = keys::from_pem_or_spki_b64(public_key).expect("an RSA public key (PEM SPKI or base64 DER SPKI)");
        let exp = state::now_secs() + ttl.as_secs().max(1) as i64;
        let sess_exp = upst::format_sess_exp(state::now_secs() + self.state.cfg.session_max.as_secs() as i64);
        upst::mint(
            &self.state.oci_key,
            &self.state.cfg.user_ocid,
            &self.state.cfg.tenancy_ocid,
            &upst::jwk_claim(&key),
            exp,
            &sess_exp,
        )
    }

    /// The GitHub Actions ID-token URL a job sees in `ACTIONS_ID_TOKEN_REQUEST_URL` (it has a
    /// query already, as GitHub's does, so the audience is appended with `&`).
    pub fn actions_id_token_url(&self) -> String {
        format!("{}{}?api-version=2.0", self.state.base, actions::ID_TOKEN_PATH)
    }

    /// The bearer token a job sees in `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    pub fn actions_request_token(&self) -> String {
        self.state.cfg.actions.request_token.clone()
    }

    /// `iss` of the GitHub Actions stand-in's JWTs.
    pub fn actions_issuer(&self) -> String {
        actions::issuer(&self.state)
    }

    /// A JWT as the GitHub Actions stand-in mints it, for `audience`, valid for `ttl_secs`
    /// (negative: already expired). Not counted in the stats.
    pub fn issue_actions_token(&self, audience: &str, ttl_secs: i64) -> String {
        actions::mint(&self.state, audience, ttl_secs)
    }

    /// The device authorization endpoint.
    pub fn device_authorization_url(&self) -> Url {
        self.url(device::AUTHORIZATION_PATH)
    }

    /// Approves, denies or expires the pending device grant with `user_code` (all pending ones
    /// when `None`); returns how many matched.
    pub fn device_decide(&self, user_code: Option<&str>, decision: DeviceDecision) -> usize {
        self.state.devices.lock().unwrap().decide(user_code, decision)
    }

    /// User codes of pending device grants.
    pub fn device_pending(&self) -> Vec<String> {
        self.state.devices.lock().unwrap().pending()
    }

    /// Stops accepting and closes open connections. Idempotent.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Resolves once [`Emulator::shutdown`] was called or the emulator was dropped elsewhere.
    pub async fn stopped(&self) {
        stopped(&mut self.stop.subscribe()).await;
    }

    /// Stored object bytes (`None` when absent or stored with `discard_bodies`).
    pub fn object(&self, bucket: &str, name: &str) -> Option<Vec<u8>> {
        self.state.objects.lock().unwrap().get(bucket, name).map(|o| o.data.to_vec())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Resolves when the stop flag is set or the sender is gone.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        let state = state.clone();
        let tls = tls.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let (stream, ctl) = faultio::FaultIo::new(stream);
            let conn = async {
                match tls {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => serve_conn(TokioIo::new(s), state, ctl).await,
                        Err(e) => {
                            state.recorder.count(|s| s.tls_handshakes_failed += 1);
                            tracing::debug!("TLS handshake failed: {e}");
                        }
                    },
                    None => serve_conn(TokioIo::new(stream), state, ctl).await,
                }
            };
            tokio::select! {
                _ = conn => {}
                _ = stopped(&mut stop) => {}
            }
        });
    }
}

async fn serve_conn<I>(io: I, state: Arc<State>, ctl: Arc<faultio::ConnCtl>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let ctl = ctl.clone();
        async move { handle(state, req, &ctl).await }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(io, svc).await {
        tracing::debug!("connection ended: {e}");
    }
}

/// Reads the body, routes, applies faults, records the event. An `Err` makes hyper close the
/// connection without answering (the drop and reset faults).
async fn handle(
    state: Arc<State>,
    req: hyper::Request<hyper::body::Incoming>,
    ctl: &faultio::ConnCtl,
) -> Result<Response, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Err(std::io::Error::other(e)),
    };
    let req = Req { method: parts.method, uri: parts.uri, headers: parts.headers, body };
    let endpoint = route(&req);
    if endpoint == Endpoint::Admin {
        return Ok(admin::handle(&state, &req).await);
    }
    if endpoint == Endpoint::IdpToken && req.form().get("grant_type").map(String::as_str) == Some("refresh_token") {
        state.recorder.count(|s| s.refresh_grant_requests += 1);
    }

    let resp = match state.faults.take(endpoint) {
        Some(fault) => {
            if fault.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
            }
            let resp = match fault.action.clone() {
                FaultAction::None => dispatch(&state, endpoint, &req).await,
                FaultAction::AccessDenied if endpoint == Endpoint::Authorize => idp::access_denied(&state, &req),
                FaultAction::DropReply | FaultAction::ResetReply | FaultAction::SlowReply { .. } => {
                    let resp = dispatch(&state, endpoint, &req).await;
                    respond::after_processing(resp, endpoint, &fault.action)
                }
                FaultAction::OpaqueAccessToken => {
                    let resp = dispatch(&state, endpoint, &req).await;
                    respond::with_opaque_access_token(resp, endpoint, &fault.action).await
                }
                action => respond::fault_response(endpoint, &action),
            };
            match fault.action {
                FaultAction::Reset | FaultAction::ResetReply => ctl.reset_on_close(),
                FaultAction::SlowReply { byte_interval_ms } => ctl.dribble(Duration::from_millis(byte_interval_ms)),
                _ => {}
            }
            if fault.reply_delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(fault.reply_delay_ms)).await;
            }
            resp
        }
        None => dispatch(&state, endpoint, &req).await,
    };

    let info = resp.extensions().get::<EventInfo>().cloned().unwrap_or_else(|| EventInfo::new(endpoint));
    let dropped = resp.extensions().get::<DropConnection>().is_some();
    state.recorder.record(Event {
        seq: 0,
        time_ms: 0,
        endpoint: info.endpoint,
        method: req.method.to_string(),
        path: req.path().to_string(),
        query: req.uri.query().map(String::from),
        status: if dropped { 0 } else { resp.status().as_u16() },
        jti: info.jti,
        reason: info.reason,
        fault: info.fault,
    });
    if dropped {
        return Err(std::io::Error::other("connection dropped by an injected fault"));
    }
    Ok(resp)
}

fn route(req: &Req) -> Endpoint {
    let path = req.path();
    match path {
        "/.well-known/openid-configuration" | "/oauth2/v1/.well-known/openid-configuration" => Endpoint::Discovery,
        "/oauth2/v1/keys" => Endpoint::Jwks,
        "/oauth2/v1/authorize" | "/oauth2/v1/authorize/login" => Endpoint::Authorize,
        "/oauth2/v1/token" => Endpoint::IdpToken,
        device::AUTHORIZATION_PATH => Endpoint::DeviceAuthorization,
        device::VERIFY_PATH => Endpoint::DeviceVerify,
        actions::ID_TOKEN_PATH | actions::JWKS_PATH => Endpoint::ActionsIdToken,
        EXCHANGE_PATH => Endpoint::Exchange,
        "/v1/authentication/refresh" => Endpoint::SessionRefresh,
        oke::TOKEN_REVIEW_PATH => Endpoint::OkeTokenReview,
        _ if path == "/n" || path.starts_with("/n/") => Endpoint::ObjectStorage,
        _ if path.starts_with("/_emulator/") => Endpoint::Admin,
        _ => Endpoint::Other,
    }
}

async fn dispatch(state: &Arc<State>, endpoint: Endpoint, req: &Req) -> Response {
    match endpoint {
        Endpoint::Discovery => idp::discovery(state),
        Endpoint::Jwks => idp::jwks(state),
        Endpoint::Authorize => idp::authorize(state, req),
        Endpoint::IdpToken => idp::token(state, req),
        Endpoint::Exchange => exchange::handle(state, req).await,
        Endpoint::DeviceAuthorization => device::authorize(state, req),
        Endpoint::DeviceVerify => device::verify(state, req),
        Endpoint::ActionsIdToken if req.path() == actions::JWKS_PATH => actions::jwks(state),
        Endpoint::ActionsIdToken => actions::id_token(state, req),
        Endpoint::SessionRefresh => authsvc::refresh(state, req),
        Endpoint::ObjectStorage => objectstorage::handle(state, req).await,
        Endpoint::OkeTokenReview => oke::review(state, req),
        Endpoint::Admin | Endpoint::Other => {
            if req.method == Method::HEAD {
                return StatusCode::NOT_FOUND.into_response();
            }
            respond::oci_error(StatusCode::NOT_FOUND, "NotFound", "no such route", EventInfo::new(Endpoint::Other))
        }
    }
}
