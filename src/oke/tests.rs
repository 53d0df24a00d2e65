use super::*;
use crate::signer::tests::{other_key, test_key};
use crate::signer::SignatureHeader;

fn args(s: &[&str]) -> Vec<OsString> {
    s.iter().map(OsString::from).collect()
}

const CLUSTER: &str = "ocid1.cluster.oc1.iad.aaaaaaaaexample";

/// 2014-01-05T21:31:40Z, the date of the OCI docs signing example.
const DOCS_DATE: u64 = 1_388_957_500;

#[test]
fn recognizes_the_create_kubeconfig_command_in_both_option_forms() {
    let env = Env::new();
    let want = TokenRequest { cluster_id: CLUSTER.into(), region: Some("us-ashburn-1".into()) };
    let kubeconfig = args(&["ce", "cluster", "generate-token", "--cluster-id", CLUSTER, "--region", "us-ashburn-1"]);
    assert_eq!(recognize(&kubeconfig, &env), Some(want.clone()));
    let with_context = args(&[
        "ce",
        "cluster",
        "generate-token",
        "--cluster-id",
        CLUSTER,
        "--region",
        "us-ashburn-1",
        "--auth",
        "security_token",
        "--profile",
        "P",
        "--config-file",
        "/x/config",
    ]);
    assert_eq!(recognize(&with_context, &env), Some(want.clone()));
    let inline = args(&[
        "--profile=P",
        "ce",
        "--config-file=/x",
        "cluster",
        "generate-token",
        "--cluster-id=x",
        "--cluster-id=".to_owned().as_str(),
        "--region=eu-frankfurt-1",
    ]);
    // The last value wins, as in click: an empty id is oci's usage error.
    assert_eq!(recognize(&inline, &env), None);
    let inline =
        args(&["ce", "cluster", "generate-token", &format!("--cluster-id={CLUSTER}"), "--auth=security_token"]);
    assert_eq!(recognize(&inline, &env), Some(TokenRequest { cluster_id: CLUSTER.into(), region: None }));
}

#[test]
fn anything_else_goes_to_oci() {
    let env = Env::new();
    let base = ["ce", "cluster", "generate-token", "--cluster-id", CLUSTER];
    let with = |extra: &[&str]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        recognize(&args(&v), &env)
    };
    assert!(with(&[]).is_some());
    assert_eq!(with(&["--auth", "api_key"]), None);
    assert_eq!(with(&["--auth", "instance_obo_user"]), None);
    assert_eq!(with(&["--auth=instance_principal"]), None);
    assert_eq!(with(&["--from-json", "file://x.json"]), None);
    assert_eq!(with(&["--debug"]), None);
    assert_eq!(with(&["--endpoint", "https://x"]), None);
    assert_eq!(with(&["--help"]), None);
    assert_eq!(with(&["extra"]), None);
    assert_eq!(with(&["--region"]), None, "a missing value is oci's error");
    assert_eq!(with(&["--region", "us ashburn"]), None);
    assert_eq!(recognize(&args(&["ce", "cluster", "generate-token"]), &env), None);
    assert_eq!(recognize(&args(&["ce", "cluster", "generate-token", "--cluster-id", "a/b"]), &env), None);
    assert_eq!(recognize(&args(&["ce", "cluster", "create-kubeconfig", "--cluster-id", CLUSTER]), &env), None);
    assert_eq!(recognize(&args(&["cluster", "generate-token", "--cluster-id", CLUSTER]), &env), None);
    for var in SIGNER_ENV {
        let env: Env = [((*var).to_owned(), "x".to_owned())].into_iter().collect();
        assert_eq!(recognize(&args(&base), &env), None, "{var} changes what oci signs with");
    }
}

#[test]
fn url_uses_the_realm_domain() {
    assert_eq!(
        cluster_request_url("us-ashburn-1", CLUSTER),
        format!("https://containerengine.us-ashburn-1.oraclecloud.com/cluster_request/{CLUSTER}")
    );
    assert_eq!(
        cluster_request_url("us-langley-1", "c"),
        "https://containerengine.us-langley-1.oraclegovcloud.com/cluster_request/c"
    );
    assert_eq!(
        cluster_request_url("uk-gov-london-1", "c"),
        "https://containerengine.uk-gov-london-1.oraclegovcloud.uk/cluster_request/c"
    );
    assert_eq!(
        cluster_request_url("xx-unknown-9", "c"),
        "https://containerengine.xx-unknown-9.oraclecloud.com/cluster_request/c"
    );
    assert_eq!(
        cluster_request_url("US-ASHBURN-1", "c"),
        "https://containerengine.us-ashburn-1.oraclecloud.com/cluster_request/c",
        "lowercased, as oci signs it"
    );
}

#[test]
fn query_encoding_is_pythons_urlencode() {
    // Python 3: urllib.parse.urlencode({"authorization": a, "date": d}).
    let a = r#"Signature algorithm="rsa-sha256",headers="date (request-target) host",keyId="ST$eyJh.b-c_d",signature="ab+/cd==",version="1""#;
    let d = "Sun, 05 Jan 2014 21:31:40 GMT";
    assert_eq!(
        format!("authorization={}&date={}", quote_plus(a), quote_plus(d)),
        "authorization=Signature+algorithm%3D%22rsa-sha256%22%2Cheaders%3D%22date+%28request-target%29+host%22%2CkeyId%3D%22ST%24eyJh.b-c_d%22%2Csignature%3D%22ab%2B%2Fcd%3D%3D%22%2Cversion%3D%221%22&date=Sun%2C+05+Jan+2014+21%3A31%3A40+GMT"
    );
}

#[test]
fn token_is_a_signed_presigned_url() {
    let now = UNIX_EPOCH + Duration::from_secs(DOCS_DATE);
    let url = cluster_request_url("us-ashburn-1", CLUSTER);
    let upst = SecretString::from("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln");
    let key = TokenKey::from_pem(crate::signer::tests::TEST_KEY_PEM).unwrap();
    assert!(matches!(key, TokenKey::Ring(_)));
    let token = token(&url, &key, &upst, now).unwrap();
    assert_eq!(token.expose().len() % 4, 0, "padded");
    let decoded = String::from_utf8(URL_SAFE.decode(token.expose()).unwrap()).unwrap();
    let parsed = url::Url::parse(&decoded).unwrap();
    assert_eq!(parsed.host_str(), Some("containerengine.us-ashburn-1.oraclecloud.com"));
    assert_eq!(parsed.path(), format!("/cluster_request/{CLUSTER}"));
    let q: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    assert_eq!(q.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["authorization", "date"]);
    assert_eq!(q[1].1, "Sun, 05 Jan 2014 21:31:40 GMT");
    let auth = SignatureHeader::parse(&q[0].1).unwrap();
    assert_eq!(
        auth.params().map(|(n, _)| n).collect::<Vec<_>>(),
        ["algorithm", "headers", "keyId", "signature", "version"]
    );
    assert_eq!(auth.headers(), ["date", "(request-target)", "host"]);
    assert_eq!(auth.session_token(), Some(upst.expose().as_str()));
    let signed = format!(
        "date: Sun, 05 Jan 2014 21:31:40 GMT\n(request-target): get /cluster_request/{CLUSTER}\nhost: containerengine.us-ashburn-1.oraclecloud.com"
    );
    assert!(signer::verify(test_key().public(), &signed, auth.signature()));
    assert!(!signer::verify(other_key().public(), &signed, auth.signature()));
}

#[test]
fn exec_credential_is_ocis_text() {
    let now = UNIX_EPOCH + Duration::from_secs(DOCS_DATE) + Duration::from_micros(250_000);
    let text = exec_credential(&SecretString::from("dG9r"), now, DOCS_DATE as i64 + 3600);
    assert_eq!(
        text.expose(),
        "\n{\n    \"apiVersion\": \"client.authentication.k8s.io/v1beta1\",\n    \"kind\": \"ExecCredential\",\n    \"status\": {\n        \"token\": \"dG9r\",\n        \"expirationTimestamp\": \"2014-01-05T21:35:40.250000Z\"\n    }\n}\n    \n"
    );
    let v: serde_json::Value = serde_json::from_str(text.expose()).unwrap();
    assert_eq!(v["status"]["token"], "dG9r");
}

#[test]
fn the_credential_never_outlives_the_session_token_inside_it() {
    let now = UNIX_EPOCH + Duration::from_secs(DOCS_DATE);
    let expiry = |upst_exp: i64| {
        let text = exec_credential(&SecretString::from("dG9r"), now, upst_exp);
        let v: serde_json::Value = serde_json::from_str(text.expose()).unwrap();
        v["status"]["expirationTimestamp"].as_str().unwrap().to_owned()
    };
    assert_eq!(expiry(DOCS_DATE as i64 + 3600), "2014-01-05T21:35:40Z", "4 minutes, as oci");
    assert_eq!(expiry(DOCS_DATE as i64 + 119), "2014-01-05T21:33:39Z", "the token's end when sooner");
}

#[test]
fn a_capped_credential_ends_before_the_servers_refuse_it() {
    // Servers 239.687 s ahead (as learned): the UPST ends 240 s earlier here, less the 3 s the
    // offset may fall short by; an offset under the noise floor (learned as 0) is covered too.
    assert_eq!(upst_end_here(10_000, 239_687), 10_000 - 240 - 3);
    assert_eq!(upst_end_here(10_000, 0), 10_000 - 3);
    assert_eq!(upst_end_here(10_000, -240_300), 10_000 + 240 - 3, "servers behind: later here");
    assert_eq!(upst_end_here(i64::MIN, i64::MAX), i64::MIN, "no overflow");
}

#[test]
fn timestamps_match_python_isoformat() {
    // Python: datetime.utcfromtimestamp(t).isoformat('T') + "Z"
    assert_eq!(python_utc_isoformat(UNIX_EPOCH + Duration::from_secs(DOCS_DATE)), "2014-01-05T21:31:40Z");
    assert_eq!(
        python_utc_isoformat(UNIX_EPOCH + Duration::from_secs(951_782_400) + Duration::from_micros(1)),
        "2000-02-29T00:00:00.000001Z"
    );
    assert_eq!(python_utc_isoformat(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    assert_eq!(python_utc_isoformat(UNIX_EPOCH + Duration::from_secs(1_798_761_599)), "2026-12-31T23:59:59Z");
}

#[test]
fn ring_and_rsa_crate_sign_the_same_bytes() {
    let text = "date: Sun, 05 Jan 2014 21:31:40 GMT\n(request-target): get /cluster_request/x\nhost: h";
    let want = signer::sign_string(test_key().private(), text);
    let pkcs8 = TokenKey::from_pem(crate::signer::tests::TEST_KEY_PEM).unwrap();
    assert!(matches!(pkcs8, TokenKey::Ring(_)));
    assert_eq!(pkcs8.sign(text).unwrap(), want);
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let pkcs1 = test_key().private().to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    // `oci session authenticate` appends a marker after the PEM block.
    let pkcs1 = TokenKey::from_pem(&format!("{}\nOCI_API_KEY\n", pkcs1.as_str())).unwrap();
    assert!(matches!(pkcs1, TokenKey::Ring(_)));
    assert_eq!(pkcs1.sign(text).unwrap(), want);
    assert_eq!(TokenKey::Rsa(test_key().clone()).sign(text).unwrap(), want);
    assert!(TokenKey::from_pem("no key here").is_err());
}
