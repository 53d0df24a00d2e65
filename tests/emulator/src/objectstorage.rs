//! The Object Storage subset `oci os ns get`, `oci os object put` (single PUT and multipart),
//! `get`, `head` and `delete` use. Buckets exist implicitly. Every request must carry a valid
//! OCI signature made with a live UPST.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use md5::{Digest as _, Md5};
use serde_json::{json, Value};

use crate::events::{Endpoint, EventInfo};
use crate::req::{path_decode, Req};
use crate::respond::{annotate, not_authenticated, oci_error, oci_json, request_id};
use crate::signature::{self, SignedRequest};
use crate::state::State;

const EP: Endpoint = Endpoint::ObjectStorage;

pub struct Object {
    /// Empty when stored with `discard_bodies`.
    pub data: Bytes,
    pub size: u64,
    pub discarded: bool,
    /// base64 MD5 of the content (single-part objects).
    pub content_md5: Option<String>,
    /// `<base64 md5 of the part md5s>-<parts>` (multipart objects).
    pub multipart_md5: Option<String>,
    pub etag: String,
    pub content_type: String,
    pub last_modified: SystemTime,
}

struct Part {
    data: Bytes,
    size: u64,
    md5_raw: [u8; 16],
    etag: String,
}

struct Upload {
    bucket: String,
    object: String,
    created: SystemTime,
    content_type: String,
    parts: BTreeMap<u32, Part>,
}

#[derive(Default)]
pub struct ObjectStore {
    objects: HashMap<(String, String), Object>,
    uploads: HashMap<String, Upload>,
}

impl ObjectStore {
    pub fn get(&self, bucket: &str, name: &str) -> Option<&Object> {
        self.objects.get(&(bucket.to_string(), name.to_string()))
    }
}

fn md5_raw(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// What the path names.
enum Op {
    GetNamespace,
    Object { bucket: String, name: String },
    Uploads { bucket: String },
    Upload { bucket: String, name: String },
}

fn parse_path(path: &str, namespace: &str) -> Result<Op, Response> {
    if path == "/n" || path == "/n/" {
        return Ok(Op::GetNamespace);
    }
    let rest = path.strip_prefix("/n/").unwrap_or_default();
    let mut it = rest.splitn(5, '/');
    let (ns, b, bucket, kind, name) = (it.next(), it.next(), it.next(), it.next(), it.next());
    let not_found = |code: &str, msg: &str| oci_error(StatusCode::NOT_FOUND, code, msg, EventInfo::new(EP));
    let Some(ns) = ns.map(path_decode) else {
        return Err(not_found("NotFound", "no such route"));
    };
    if b != Some("b") || bucket.is_none_or(str::is_empty) {
        return Err(not_found("NotFound", "no such route"));
    }
    if ns != namespace {
        return Err(not_found(
            "NamespaceNotFound",
            &format!("Either the namespace '{ns}' does not exist or you are not authorized to view it"),
        ));
    }
    let bucket = path_decode(bucket.unwrap_or_default());
    match (kind, name) {
        (Some("o"), Some(n)) if !n.is_empty() => Ok(Op::Object { bucket, name: path_decode(n) }),
        (Some("u"), None) | (Some("u"), Some("")) => Ok(Op::Uploads { bucket }),
        (Some("u"), Some(n)) => Ok(Op::Upload { bucket, name: path_decode(n) }),
        _ => Err(not_found("NotFound", "no such route")),
    }
}

pub async fn handle(state: &State, req: &Req) -> Response {
    let op = match parse_path(req.path(), &state.cfg.namespace) {
        Ok(op) => op,
        // Routing errors still require authentication first, like the real service.
        Err(not_found) => {
            return match authenticate(state, req, true) {
                Ok(jti) => with_jti(not_found, jti),
                Err(r) => r,
            }
        }
    };
    // PutObject and UploadPart are signed without the body headers (SDK `enforce_content_headers=False`).
    let body_unsigned = req.method == Method::PUT && matches!(op, Op::Object { .. } | Op::Upload { .. });
    let jti = match authenticate(state, req, !body_unsigned) {
        Ok(jti) => jti,
        Err(r) => return r,
    };
    let q = req.query();
    let resp = match (&req.method, op) {
        (&Method::GET, Op::GetNamespace) => oci_json(StatusCode::OK, &json!(state.cfg.namespace), EventInfo::new(EP)),
        (&Method::PUT, Op::Object { bucket, name }) => put_object(state, req, bucket, name).await,
        (&Method::GET, Op::Object { bucket, name }) => get_object(state, req, &bucket, &name, true),
        (&Method::HEAD, Op::Object { bucket, name }) => get_object(state, req, &bucket, &name, false),
        (&Method::DELETE, Op::Object { bucket, name }) => delete_object(state, &bucket, &name),
        (&Method::POST, Op::Uploads { bucket }) => create_upload(state, req, bucket),
        (&Method::GET, Op::Uploads { bucket }) => list_uploads(state, &bucket),
        (&Method::PUT, Op::Upload { bucket, name }) => upload_part(state, req, &q, &bucket, &name).await,
        (&Method::GET, Op::Upload { bucket, name }) => list_parts(state, &q, &bucket, &name),
        (&Method::POST, Op::Upload { bucket, name }) => commit(state, req, &q, &bucket, &name),
        (&Method::DELETE, Op::Upload { bucket, name }) => abort(state, &q, &bucket, &name),
        _ => {
            oci_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "method not allowed here", EventInfo::new(EP))
        }
    };
    let mut resp = with_jti(resp, jti);
    if let Some(id) = req.headers.get("opc-client-request-id") {
        resp.headers_mut().insert("opc-client-request-id", id.clone());
    }
    resp
}

fn with_jti(mut resp: Response, jti: String) -> Response {
    match resp.extensions_mut().get_mut::<EventInfo>() {
        Some(info) => info.jti = Some(jti),
        None => {
            let mut info = EventInfo::new(EP);
            info.jti = Some(jti);
            resp.extensions_mut().insert(info);
        }
    }
    resp
}

fn authenticate(state: &State, req: &Req, require_body_headers: bool) -> Result<String, Response> {
    let signed = SignedRequest { method: &req.method, target: req.target(), headers: &req.headers, body: &req.body };
    match signature::verify(&signed, &state.oci_key, state.cfg.max_clock_skew, require_body_headers) {
        Ok(upst) => {
            state.recorder.os_jti(&upst.jti);
            Ok(upst.jti)
        }
        Err(rej) => Err(not_authenticated(EP, rej.reason, rej.jti)),
    }
}

fn bad_request(code: &str, message: &str) -> Response {
    oci_error(StatusCode::BAD_REQUEST, code, message, EventInfo::new(EP))
}

/// Checks an optional `Content-MD5` request header against the body.
fn check_content_md5(req: &Req, md5_b64: &str) -> Result<(), Response> {
    match req.header("content-md5") {
        Some(sent) if sent.trim() != md5_b64 => Err(bad_request(
            "InvalidContentMD5",
            &format!("The computed MD5 of the request body ({md5_b64}) does not match the Content-MD5 header ({sent})"),
        )),
        _ => Ok(()),
    }
}

fn base_headers(resp: &mut Response, etag: &str, last_modified: SystemTime) {
    let h = resp.headers_mut();
    h.insert("opc-request-id", HeaderValue::from_str(&request_id()).expect("ascii"));
    h.insert(header::ETAG, HeaderValue::from_str(etag).expect("ascii"));
    h.insert(header::LAST_MODIFIED, HeaderValue::from_str(&httpdate::fmt_http_date(last_modified)).expect("ascii"));
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

async fn put_object(state: &State, req: &Req, bucket: String, name: String) -> Response {
    let delay = state.put_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let md5_b64 = STANDARD.encode(md5_raw(&req.body));
    if let Err(r) = check_content_md5(req, &md5_b64) {
        return r;
    }
    let key = (bucket, name);
    let mut store = state.objects.lock().unwrap();
    let existing = store.objects.get(&key);
    if req.header("if-none-match") == Some("*") && existing.is_some() {
        return oci_error(StatusCode::CONFLICT, "IfNoneMatchFailed", "The object already exists", EventInfo::new(EP));
    }
    if let Some(want) = req.header("if-match") {
        if existing.map(|o| o.etag.as_str()) != Some(want) {
            return oci_error(
                StatusCode::PRECONDITION_FAILED,
                "IfMatchFailed",
                "The If-Match header does not match",
                EventInfo::new(EP),
            );
        }
    }
    let etag = uuid::Uuid::new_v4().to_string();
    let now = crate::state::now();
    let discard = state.cfg.discard_bodies;
    store.objects.insert(
        key,
        Object {
            size: req.body.len() as u64,
            data: if discard { Bytes::new() } else { req.body.clone() },
            discarded: discard,
            content_md5: Some(md5_b64.clone()),
            multipart_md5: None,
            etag: etag.clone(),
            content_type: req.header("content-type").unwrap_or("application/octet-stream").to_string(),
            last_modified: now,
        },
    );
    drop(store);
    state.recorder.count(|s| s.objects_put += 1);
    let mut resp = StatusCode::OK.into_response();
    base_headers(&mut resp, &etag, now);
    resp.headers_mut().insert("opc-content-md5", hv(&md5_b64));
    annotate(resp, EventInfo::new(EP))
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` → inclusive range; `Err` = unsatisfiable.
fn parse_range(value: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multiple ranges: serve the whole object
    }
    let (a, b) = spec.split_once('-')?;
    let r = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            if n == 0 || size == 0 {
                return Some(Err(()));
            }
            (size.saturating_sub(n), size - 1)
        }
        (s, "") => (s.parse().ok()?, size.saturating_sub(1)),
        (s, e) => (s.parse().ok()?, e.parse::<u64>().ok()?.min(size.saturating_sub(1))),
    };
    if r.0 >= size || r.0 > r.1 {
        return Some(Err(()));
    }
    Some(Ok(r))
}

fn get_object(state: &State, req: &Req, bucket: &str, name: &str, with_body: bool) -> Response {
    let store = state.objects.lock().unwrap();
    let Some(obj) = store.get(bucket, name) else {
        drop(store);
        if !with_body {
            let mut resp = StatusCode::NOT_FOUND.into_response();
            resp.headers_mut().insert("opc-request-id", hv(&request_id()));
            let mut info = EventInfo::new(EP);
            info.reason = Some("ObjectNotFound".into());
            return annotate(resp, info);
        }
        return oci_error(
            StatusCode::NOT_FOUND,
            "ObjectNotFound",
            &format!("The object '{name}' was not found in the bucket '{bucket}'"),
            EventInfo::new(EP),
        );
    };
    if with_body && obj.discarded {
        return oci_error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "object content was discarded (discard_bodies)",
            EventInfo::new(EP),
        );
    }
    if let Some(inm) = req.header("if-none-match") {
        if inm == obj.etag || inm == "*" {
            let mut resp = StatusCode::NOT_MODIFIED.into_response();
            base_headers(&mut resp, &obj.etag, obj.last_modified);
            return annotate(resp, EventInfo::new(EP));
        }
    }
    let range = req.header("range").and_then(|r| parse_range(r, obj.size));
    let (status, start, end) = match range {
        Some(Ok((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e + 1),
        Some(Err(())) => {
            let mut resp = oci_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The requested range is not satisfiable",
                EventInfo::new(EP),
            );
            resp.headers_mut().insert(header::CONTENT_RANGE, hv(&format!("bytes */{}", obj.size)));
            return resp;
        }
        None => (StatusCode::OK, 0, obj.size),
    };
    let len = end - start;
    let body = if with_body { Body::from(obj.data.slice(start as usize..end as usize)) } else { Body::empty() };
    let mut resp = (status, body).into_response();
    base_headers(&mut resp, &obj.etag, obj.last_modified);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, hv(&len.to_string()));
    h.insert(header::CONTENT_TYPE, hv(&obj.content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert("storage-tier", HeaderValue::from_static("Standard"));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(header::CONTENT_RANGE, hv(&format!("bytes {start}-{}/{}", end - 1, obj.size)));
    }
    if let Some(md5) = &obj.content_md5 {
        h.insert("content-md5", hv(md5));
    }
    if let Some(md5) = &obj.multipart_md5 {
        h.insert("opc-multipart-md5", hv(md5));
    }
    annotate(resp, EventInfo::new(EP))
}

fn delete_object(state: &State, bucket: &str, name: &str) -> Response {
    let removed = state.objects.lock().unwrap().objects.remove(&(bucket.to_string(), name.to_string()));
    if removed.is_none() {
        return oci_error(
            StatusCode::NOT_FOUND,
            "ObjectNotFound",
            &format!("The object '{name}' was not found in the bucket '{bucket}'"),
            EventInfo::new(EP),
        );
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert("opc-request-id", hv(&request_id()));
    annotate(resp, EventInfo::new(EP))
}

fn rfc3339(t: SystemTime) -> String {
    // httpdate has no RFC 3339; build it from the civil date.
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn upload_json(state: &State, id: &str, u: &Upload) -> Value {
    json!({
        "namespace": state.cfg.namespace,
        "bucket": u.bucket,
        "object": u.object,
        "uploadId": id,
        "timeCreated": rfc3339(u.created),
        "storageTier": "Standard",
    })
}

fn create_upload(state: &State, req: &Req, bucket: String) -> Response {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => return bad_request("InvalidParameter", "The request body is not valid JSON"),
    };
    let Some(object) = body.get("object").and_then(Value::as_str).filter(|o| !o.is_empty()) else {
        return bad_request("InvalidParameter", "object is required");
    };
    let id = uuid::Uuid::new_v4().to_string();
    let upload = Upload {
        bucket,
        object: object.to_string(),
        created: crate::state::now(),
        content_type: body.get("contentType").and_then(Value::as_str).unwrap_or("application/octet-stream").to_string(),
        parts: BTreeMap::new(),
    };
    let doc = upload_json(state, &id, &upload);
    state.objects.lock().unwrap().uploads.insert(id, upload);
    oci_json(StatusCode::OK, &doc, EventInfo::new(EP))
}

fn list_uploads(state: &State, bucket: &str) -> Response {
    let store = state.objects.lock().unwrap();
    let mut list: Vec<(&String, &Upload)> = store.uploads.iter().filter(|(_, u)| u.bucket == bucket).collect();
    list.sort_by_key(|(_, u)| u.created);
    let docs: Vec<Value> = list.into_iter().map(|(id, u)| upload_json(state, id, u)).collect();
    drop(store);
    oci_json(StatusCode::OK, &Value::Array(docs), EventInfo::new(EP))
}

fn no_such_upload(id: &str) -> Response {
    oci_error(StatusCode::NOT_FOUND, "NoSuchUpload", &format!("The upload '{id}' does not exist"), EventInfo::new(EP))
}

fn find_upload<'a>(
    store: &'a mut ObjectStore,
    q: &HashMap<String, String>,
    bucket: &str,
    name: &str,
) -> Result<(&'a mut Upload, String), Response> {
    let id = q.get("uploadId").cloned().unwrap_or_default();
    match store.uploads.get_mut(&id) {
        Some(u) if u.bucket == bucket && u.object == name => Ok((u, id)),
        _ => Err(no_such_upload(&id)),
    }
}

async fn upload_part(state: &State, req: &Req, q: &HashMap<String, String>, bucket: &str, name: &str) -> Response {
    let Some(num) = q.get("uploadPartNum").and_then(|n| n.parse::<u32>().ok()).filter(|n| (1..=10_000).contains(n))
    else {
        return bad_request("InvalidParameter", "uploadPartNum must be between 1 and 10000");
    };
    {
        let mut store = state.objects.lock().unwrap();
        if let Err(r) = find_upload(&mut store, q, bucket, name) {
            return r;
        }
    }
    let raw = md5_raw(&req.body);
    let md5_b64 = STANDARD.encode(raw);
    if let Err(r) = check_content_md5(req, &md5_b64) {
        return r;
    }
    let delay = state.part_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let etag = uuid::Uuid::new_v4().to_string();
    {
        let mut store = state.objects.lock().unwrap();
        let discard = state.cfg.discard_bodies;
        let (upload, _) = match find_upload(&mut store, q, bucket, name) {
            Ok(u) => u,
            Err(r) => return r, // aborted meanwhile
        };
        upload.parts.insert(
            num,
            Part {
                data: if discard { Bytes::new() } else { req.body.clone() },
                size: req.body.len() as u64,
                md5_raw: raw,
                etag: etag.clone(),
            },
        );
    }
    state.recorder.count(|s| s.parts_uploaded += 1);
    let mut resp = StatusCode::OK.into_response();
    base_headers(&mut resp, &etag, crate::state::now());
    resp.headers_mut().remove(header::LAST_MODIFIED);
    resp.headers_mut().insert("opc-content-md5", hv(&md5_b64));
    annotate(resp, EventInfo::new(EP))
}

fn list_parts(state: &State, q: &HashMap<String, String>, bucket: &str, name: &str) -> Response {
    let mut store = state.objects.lock().unwrap();
    let (upload, _) = match find_upload(&mut store, q, bucket, name) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let parts: Vec<Value> = upload
        .parts
        .iter()
        .map(|(n, p)| json!({"partNumber": n, "etag": p.etag, "md5": STANDARD.encode(p.md5_raw), "size": p.size}))
        .collect();
    drop(store);
    oci_json(StatusCode::OK, &Value::Array(parts), EventInfo::new(EP))
}

/// `base64(md5(md5(part1) || md5(part2) || ...))-<n>`, as Object Storage reports multipart objects.
pub fn multipart_md5<'a>(part_md5s: impl IntoIterator<Item = &'a [u8; 16]>) -> String {
    let mut h = Md5::new();
    let mut n = 0;
    for m in part_md5s {
        h.update(m);
        n += 1;
    }
    format!("{}-{n}", STANDARD.encode(h.finalize()))
}

fn commit(state: &State, req: &Req, q: &HashMap<String, String>, bucket: &str, name: &str) -> Response {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => return bad_request("InvalidParameter", "The request body is not valid JSON"),
    };
    let Some(to_commit) = body.get("partsToCommit").and_then(Value::as_array) else {
        return bad_request("InvalidParameter", "partsToCommit is required");
    };
    let mut wanted: Vec<(u32, String)> = Vec::new();
    for p in to_commit {
        let num = p.get("partNum").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
        let etag = p.get("etag").and_then(Value::as_str);
        match (num, etag) {
            (Some(n), Some(e)) => wanted.push((n, e.to_string())),
            _ => return bad_request("InvalidParameter", "each part needs partNum and etag"),
        }
    }
    if wanted.is_empty() {
        return bad_request("InvalidParameter", "partsToCommit must not be empty");
    }
    wanted.sort_by_key(|(n, _)| *n);
    if wanted.windows(2).any(|w| w[0].0 == w[1].0) {
        return bad_request("InvalidParameter", "duplicate partNum in partsToCommit");
    }
    let mut store = state.objects.lock().unwrap();
    let (upload, id) = match find_upload(&mut store, q, bucket, name) {
        Ok(u) => u,
        Err(r) => return r,
    };
    for (n, etag) in &wanted {
        match upload.parts.get(n) {
            Some(p) if &p.etag == etag => {}
            Some(_) => return bad_request("InvalidUploadPart", &format!("part {n}: the etag does not match")),
            None => return bad_request("InvalidUploadPart", &format!("part {n} was not uploaded")),
        }
    }
    let parts: Vec<&Part> = wanted.iter().map(|(n, _)| &upload.parts[n]).collect();
    let size: u64 = parts.iter().map(|p| p.size).sum();
    let mut data = Vec::with_capacity(if state.cfg.discard_bodies { 0 } else { size as usize });
    if !state.cfg.discard_bodies {
        for p in &parts {
            data.extend_from_slice(&p.data);
        }
    }
    let mp_md5 = multipart_md5(parts.iter().map(|p| &p.md5_raw));
    let content_type = upload.content_type.clone();
    store.uploads.remove(&id);
    let etag = uuid::Uuid::new_v4().to_string();
    let now = crate::state::now();
    store.objects.insert(
        (bucket.to_string(), name.to_string()),
        Object {
            data: Bytes::from(data),
            size,
            discarded: state.cfg.discard_bodies,
            content_md5: None,
            multipart_md5: Some(mp_md5.clone()),
            etag: etag.clone(),
            content_type,
            last_modified: now,
        },
    );
    drop(store);
    state.recorder.count(|s| s.objects_committed += 1);
    let mut resp = StatusCode::OK.into_response();
    base_headers(&mut resp, &etag, now);
    resp.headers_mut().insert("opc-multipart-md5", hv(&mp_md5));
    annotate(resp, EventInfo::new(EP))
}

fn abort(state: &State, q: &HashMap<String, String>, bucket: &str, name: &str) -> Response {
    let mut store = state.objects.lock().unwrap();
    let id = match find_upload(&mut store, q, bucket, name) {
        Ok((_, id)) => id,
        Err(r) => return r,
    };
    store.uploads.remove(&id);
    drop(store);
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert("opc-request-id", hv(&request_id()));
    annotate(resp, EventInfo::new(EP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_762_604_395);
        assert_eq!(rfc3339(t), "2025-11-08T12:19:55.000Z");
    }

    #[test]
    fn multipart_md5_matches_the_cli_formula() {
        // oci_cli.cli_util.checksum_hashlib: md5 over the concatenated raw part digests, base64, `-<n>`.
        let a = md5_raw(b"hello ");
        let b = md5_raw(b"world");
        let mut cat = a.to_vec();
        cat.extend_from_slice(&b);
        assert_eq!(multipart_md5([&a, &b]), format!("{}-2", STANDARD.encode(md5_raw(&cat))));
    }
}
