//! A small HTTP/1.1 server (hyper) on a loopback port for tests of API back-ends: every
//! request is recorded and answered by an async handler (a fake API, or a proxy in front of a
//! real one). One request per connection (`Connection: close`), which every client handles.
//!
//! Create it inside the test's tokio runtime; it stops when dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::records::{name, tlsa_id};
use tlsa::dns::Provider;
use tlsa::dns::publish::http::SecretSource;

/// Largest request accepted (head and body).
const MAX_REQUEST: usize = 4 * 1024 * 1024;

/// A request as received.
#[derive(Clone, Debug)]
pub struct MockRequest {
    pub method: String,
    /// The path, percent-decoded segments as sent (no query).
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl MockRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The path and the query (`/a/b?k=v`), to send the request on elsewhere.
    pub fn path_and_query(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}?{}", self.path, query.join("&"))
    }

    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The path split at `/`, without the empty first segment.
    pub fn segments(&self) -> Vec<&str> {
        self.path.trim_start_matches('/').split('/').collect()
    }
}

/// For a back-end whose API answered a write with success and applied nothing: the error
/// says so, and does not blame another writer.
pub fn assert_not_applied(err: &impl std::fmt::Display) {
    let text = err.to_string();
    eprintln!("not applied: {text}");
    assert!(
        text.contains("accepted the change but did not apply it") && !text.contains("someone else"),
        "{text}"
    );
}

/// The answer to send.
#[derive(Clone, Debug)]
pub struct MockResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl MockResponse {
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        MockResponse {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(body).expect("serialise JSON"),
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        MockResponse {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = MockResponse> + Send>>;
type Handler = Arc<dyn Fn(MockRequest) -> BoxFuture + Send + Sync>;

/// The running server.
pub struct HttpMock {
    addr: SocketAddr,
    scheme: &'static str,
    requests: Arc<Mutex<Vec<MockRequest>>>,
    task: JoinHandle<()>,
}

impl HttpMock {
    /// Starts serving on a free loopback port; `handler` answers every request.
    pub async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(MockRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = MockResponse> + Send + 'static,
    {
        Self::start_with(None, handler).await
    }

    /// [`Self::start`] for the fakes of an API: `answer` answers every request from `state`,
    /// which the test keeps to read and change.
    pub async fn with_state<S: Send + 'static>(
        state: &Arc<Mutex<S>>,
        answer: fn(&Mutex<S>, &MockRequest) -> MockResponse,
    ) -> Self {
        let state = Arc::clone(state);
        Self::start(move |request| {
            let response = answer(&state, &request);
            async move { response }
        })
        .await
    }

    /// [`Self::start`] over HTTPS with the PEM certificate chain and key in `cert` and `key`
    /// (for `localhost`/`127.0.0.1`): a CA's endpoint a client only reaches by TLS.
    pub async fn start_tls<F, Fut>(
        cert: &std::path::Path,
        key: &std::path::Path,
        handler: F,
    ) -> Self
    where
        F: Fn(MockRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = MockResponse> + Send + 'static,
    {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .expect("read the mock's certificate")
            .collect::<Result<_, _>>()
            .expect("the mock's certificate is PEM");
        let key = PrivateKeyDer::from_pem_file(key).expect("read the mock's key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the mock's certificate and key");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::start_with(Some(acceptor), handler).await
    }

    async fn start_with<F, Fut>(tls: Option<tokio_rustls::TlsAcceptor>, handler: F) -> Self
    where
        F: Fn(MockRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = MockResponse> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |request| Box::pin(handler(request)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the HTTP mock");
        let addr = listener.local_addr().expect("mock address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (handler, recorded) = (Arc::clone(&handler), Arc::clone(&recorded));
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => {
                            let _ = serve(stream, handler, recorded).await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = serve(stream, handler, recorded).await;
                            }
                        }
                    }
                });
            }
        });
        HttpMock {
            addr,
            scheme,
            requests,
            task,
        }
    }

    /// A server that answers every request with `307 Temporary Redirect` to the same path
    /// (and query) on `target` (a base URL such as another mock's [`Self::url`]): what an API
    /// moved, or a hostile proxy, would send.
    pub async fn redirecting_to(target: &str) -> Self {
        let target = target.trim_end_matches('/').to_string();
        Self::start(move |request| {
            let location = format!("{target}{}", request.path_and_query());
            async move { MockResponse::text(307, "moved").with_header("Location", &location) }
        })
        .await
    }

    /// For the target of [`Self::redirecting_to`]: `err` (a back-end's answer to the redirect)
    /// names the redirect and this server's origin but never `secret`, and this server
    /// received nothing (so no credential either).
    pub fn assert_refused_redirect(&self, err: &impl std::fmt::Display, secret: &str) {
        let text = err.to_string();
        eprintln!("redirect: {text}");
        assert!(
            text.contains("redirect") && text.contains(&self.url()) && !text.contains(secret),
            "{text}"
        );
        assert!(self.requests().is_empty(), "{:?}", self.requests());
    }

    /// The redirect test every HTTP back-end passes. `backend` makes the back-end from a token
    /// file holding `secret` and the base URL of an API that answers every request with a
    /// redirect to this server: its first read fails naming the redirect, after one request
    /// (a redirect is not retried), and nothing, so not the secret, reaches this server.
    pub async fn assert_backend_refuses_redirect<P: Provider>(
        &self,
        secret: &str,
        backend: impl FnOnce(SecretSource, &str) -> P,
    ) {
        let api = HttpMock::redirecting_to(&self.url()).await;
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, secret).unwrap();
        let provider = backend(SecretSource::File(token), &api.url());
        let err = provider
            .read(
                &name("example.com."),
                &tlsa_id("_25._tcp.mail.example.com."),
            )
            .await
            .expect_err("a redirect is an error");
        assert_eq!(api.requests().len(), 1, "asked once, not retried");
        self.assert_refused_redirect(&err, secret);
    }

    /// `http://127.0.0.1:PORT` (`https://` for [`Self::start_tls`])
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<MockRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests with `method` so far.
    pub fn requests_with(&self, method: &str) -> Vec<MockRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method)
            .collect()
    }
}

impl Drop for HttpMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one connection with hyper: one request, recorded, answered by `handler`, and the
/// connection closed (`Connection: close`).
async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    handler: Handler,
    recorded: Arc<Mutex<Vec<MockRequest>>>,
) -> Result<(), hyper::Error> {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let (handler, recorded) = (Arc::clone(&handler), Arc::clone(&recorded));
        async move {
            let request = mock_request(request).await?;
            recorded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(request.clone());
            hyper_response(handler(request).await)
        }
    });
    hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service)
        .await
}

/// Why a request could not be read or answered (the connection then closes unanswered).
fn failure(why: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(why.to_string())
}

/// The request as the tests look at it; the body read whole, up to [`MAX_REQUEST`] bytes.
async fn mock_request(request: Request<Incoming>) -> std::io::Result<MockRequest> {
    let (head, body) = request.into_parts();
    let body = Limited::new(body, MAX_REQUEST)
        .collect()
        .await
        .map_err(failure)?
        .to_bytes();
    let target = head.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = reqwest::Url::parse(&format!("http://mock{target}")).map_err(failure)?;
    Ok(MockRequest {
        method: head.method.as_str().to_string(),
        path: url.path().to_string(),
        query: url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        headers: head
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect(),
        body: body.to_vec(),
    })
}

fn hyper_response(response: MockResponse) -> std::io::Result<Response<Full<Bytes>>> {
    let mut builder = Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .map_err(failure)
}
