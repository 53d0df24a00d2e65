//! In-process costs on woci's hot paths (issue 6): what a valid-token call does before it execs
//! `oci` (split argv, resolve the manager INI, decode the UPST) and what a renewal writes
//! (`~/.oci/config` upsert), each at the sizes the scaling figure asks for. Ratios against the
//! smallest size are what matter; `scripts/bench` measures whole processes and the proxy.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use std::ffi::OsString;
use std::fmt::Write as _;

fn upst_of_size(pad: usize) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let claims = format!(
        r#"{{"sub":"ocid1.user.oc1..u","tenant":"ocid1.tenancy.oc1..t","iat":1,"exp":4102444800,"jti":"j","sess_exp":"Mon, 01 Jan 2100 00:00:00 UTC","pad":"{}"}}"#,
        "x".repeat(pad)
    );
    format!("eyJhbGciOiJSUzI1NiJ9.{}.{}", URL_SAFE_NO_PAD.encode(claims), "s".repeat(342))
}

fn oci_config_with(profiles: usize) -> String {
    let mut s = String::new();
    for i in 0..profiles {
        let _ = write!(
            s,
            "# profile {i}\n[P{i}]\nuser=ocid1.user.oc1..u{i}\nfingerprint=aa:bb:{i}\nkey_file=~/.oci/k{i}.pem\ntenancy=ocid1.tenancy.oc1..t{i}\nregion=us-ashburn-1\n\n"
        );
    }
    s
}

fn jwt_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("upst_decode");
    for kib in [1usize, 8, 64] {
        let token = upst_of_size(kib * 1024);
        g.bench_with_input(BenchmarkId::from_parameter(format!("{kib}KiB")), &token, |b, t| {
            b.iter(|| woci::jwt::decode_upst(black_box(t)).unwrap())
        });
    }
    g.finish();
}

fn cli_parse(c: &mut Criterion) {
    let argv: Vec<OsString> = "--profile prod os object put --bucket-name b --file f --part-size 128 --client-id x"
        .split(' ')
        .map(OsString::from)
        .collect();
    c.bench_function("cli_parse", |b| b.iter(|| woci::cli::parse(black_box(argv.clone())).unwrap()));
}

fn config_upsert(c: &mut Criterion) {
    let mut g = c.benchmark_group("oci_config_upsert");
    let dir = tempfile::tempdir().unwrap();
    for n in [1usize, 100, 1000] {
        let path = dir.path().join(format!("config{n}"));
        let text = oci_config_with(n);
        let target = format!("P{}", n / 2);
        let mut flip = false;
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            std::fs::write(&path, &text).unwrap();
            b.iter(|| {
                // Alternate the value so every iteration really writes.
                flip = !flip;
                let fp = if flip { "11:22" } else { "33:44" };
                woci::oci_config::upsert_profile(&path, &target, &[("fingerprint", fp)], None).unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("read", n), |b| {
            b.iter(|| woci::oci_config::read_profile(black_box(&path), &target).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, jwt_decode, cli_parse, config_upsert);
criterion_main!(benches);
