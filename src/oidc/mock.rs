//! A tiny HTTP server on 127.0.0.1 for unit tests: records every request and answers with a
//! handler's [`Reply`].

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use url::Url;

/// One recorded request.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }

    pub(crate) fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes()).into_owned().collect()
    }

    pub(crate) fn form_value(&self, key: &str) -> Option<String> {
        self.form().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(crate) fn query_value(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// The answer to give.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub(crate) fn json(status: u16, value: serde_json::Value) -> Reply {
        Reply { status, headers: vec![("content-type".into(), "application/json".into())], body: value.to_string() }
    }

    pub(crate) fn text(status: u16, body: &str) -> Reply {
        Reply { status, headers: vec![("content-type".into(), "text/plain".into())], body: body.into() }
    }

    pub(crate) fn redirect(location: &str) -> Reply {
        Reply { status: 302, headers: vec![("location".into(), location.into())], body: String::new() }
    }
}

type Handler = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

/// The server; stops when dropped.
pub(crate) struct MockServer {
    base: Url,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl MockServer {
    /// Starts on a free port. The handler gets the request and its 0-based index.
    pub(crate) async fn start<F>(handler: F) -> MockServer
    where
        F: Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let reqs = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let reqs = reqs.clone();
                let handler = handler.clone();
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let reqs = reqs.clone();
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let rec = Recorded {
                            method: parts.method.to_string(),
                            path: parts.uri.path().to_owned(),
                            query: parts.uri.query().map(str::to_owned),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                                .collect(),
                            body: String::from_utf8_lossy(&body).into_owned(),
                        };
                        let n = {
                            let mut all = reqs.lock().unwrap();
                            all.push(rec.clone());
                            all.len() - 1
                        };
                        let reply = handler(&rec, n);
                        let mut resp = Response::builder().status(reply.status);
                        for (k, v) in &reply.headers {
                            resp = resp.header(k, v);
                        }
                        Ok::<_, Infallible>(resp.body(Full::new(Bytes::from(reply.body))).unwrap())
                    }
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        MockServer { base: Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(), requests, task }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub(crate) fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap()
    }

    /// Everything received so far.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
