//! `--debug` through the real binary with a stand-in `oci` that prints secrets the way a slow
//! child does: in three pieces with pauses between them, to stdout and to stderr. woci relays
//! both streams redacted: the session token, the proxy's secret, their base64 forms and the
//! `Proxy-Authorization` value never come out whole or in part, the text around them does, and
//! the child's exit code is woci's.

mod common;
use common::*;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use std::path::Path;
use std::process::{Output, Stdio};

/// A stand-in `oci`: `say FD TEXT` writes TEXT to FD in three pieces, 0.3 s apart (far longer
/// than any flush delay). It prints the session token, its base64 form, a keyId, and under
/// `--auto-refresh` the proxy URL and its Basic credential (bare and as a header), then exits 3.
const STAND_IN: &str = r#"#!/bin/sh
say() {
    n=${#2}; a=$((n / 3)); b=$((2 * n / 3))
    printf '%s' "$(printf '%s' "$2" | cut -c1-$a)" >&$1; sleep 0.3
    printf '%s' "$(printf '%s' "$2" | cut -c$((a + 1))-$b)" >&$1; sleep 0.3
    printf '%s' "$(printf '%s' "$2" | cut -c$((b + 1))-)" >&$1
}
tok=$(cat "$HOME/.oci/sessions/P/token")
printf 'token='; say 1 "$tok"; echo ' end'
printf 'b64=' >&2; say 2 "$(printf '%s' "$tok" | base64 -w0)"; echo ' end' >&2
say 1 'keyId="ST$eyJzdGFuZC1pbi1rZXlpZCJ9"'; echo
if [ -n "$HTTPS_PROXY" ]; then
    printf '%s' "$HTTPS_PROXY" > "$OUT/proxy"
    secret=${HTTPS_PROXY#http://woci:}; secret=${secret%%@*}
    basic=$(printf 'woci:%s' "$secret" | base64 -w0)
    printf 'proxy='; say 1 "$HTTPS_PROXY"; echo ' end'
    say 2 "send: b'CONNECT h:443 HTTP/1.0\r\nProxy-Authorization: Basic $basic\r\n\r\n'"; echo >&2
    printf 'cred=' >&2; say 2 "$basic"; echo ' end' >&2
fi
exit 3
"#;

fn stand_in(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("oci-stand-in");
    write_exec(&p, STAND_IN);
    p
}

async fn woci_debug(w: &World, out_dir: &Path, args: &[&str]) -> Output {
    let mut cmd = w.woci_std();
    cmd.env("WOCI_OCI_COMMAND", stand_in(out_dir))
        .env("OUT", out_dir)
        .env("TMPDIR", out_dir)
        .stdin(Stdio::null())
        .args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

/// Asserts that no 8 consecutive characters of a secret are in `text`.
fn assert_clean(text: &str, secrets: &[String]) {
    for s in secrets {
        for w in s.as_bytes().windows(8) {
            let w = std::str::from_utf8(w).unwrap();
            assert!(!text.contains(w), "{w:?} of a secret is in the output:\n{text}");
        }
    }
}

/// The token and its base64 forms (the characters that carry only the token's bits).
fn token_forms(token: &str) -> Vec<String> {
    let mut v = vec![token.to_owned()];
    for engine in [&STANDARD, &URL_SAFE_NO_PAD] {
        let enc = engine.encode(token);
        v.push(enc[..8 * token.len() / 6].to_owned());
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_written_in_pieces_with_pauses_are_redacted() {
    let w = World::new().await;
    let token = w.seed_token(3600);
    let dir = tempfile::tempdir().unwrap();
    let out = woci_debug(&w, dir.path(), &["--debug", "os", "ns", "get"]).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "the child's exit code: {stderr}");
    for text in [&stdout, &stderr] {
        assert_clean(text, &token_forms(&token));
    }
    assert!(stdout.contains("token=<redacted> end\n"), "{stdout}");
    assert!(stdout.contains("keyId=\"ST$<redacted>\"\n"), "{stdout}");
    assert!(stderr.contains("b64=<redacted>"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_secret_in_pieces_is_redacted_under_auto_refresh() {
    let w = World::new().await;
    let token = w.seed_token(3600);
    let dir = tempfile::tempdir().unwrap();
    let out = woci_debug(&w, dir.path(), &["--debug", "--auto-refresh", "os", "ns", "get"]).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "the child's exit code: {stderr}");
    let proxy = std::fs::read_to_string(dir.path().join("proxy")).unwrap();
    let secret = proxy.trim_start_matches("http://woci:").split('@').next().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "{proxy}");
    let basic = STANDARD.encode(format!("woci:{secret}"));
    // What of the Basic credential encodes the secret: from the 7th character (`woci:` is 5 bytes).
    let mut secrets = token_forms(&token);
    secrets.extend([secret.clone(), basic[7..8 * (5 + secret.len()) / 6].to_owned()]);
    for text in [&stdout, &stderr] {
        assert_clean(text, &secrets);
    }
    assert!(stdout.contains("token=<redacted> end\n"), "{stdout}");
    assert!(stdout.contains("proxy=http://woci:<redacted>@127.0.0.1:"), "{stdout}");
    assert!(stderr.contains("Proxy-Authorization: <redacted>\\r\\n\\r\\n'"), "{stderr}");
    // The proxy adds its whole Basic credential to the secrets: nothing of it stays.
    assert!(stderr.contains("cred=<redacted> end\n"), "{stderr}");
}
