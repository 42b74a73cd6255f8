//! The HTTPS POST receiver (RFC 8460 §5.4): `application/tlsrpt+gzip` and
//! `application/tlsrpt+json` bodies, each stored — committed to disk — before the 200
//! answer, so a reporter never gets an acknowledgement for a report that a crash could
//! lose. Oversized bodies are refused with 413 (without reading them past the limit),
//! other media types with 415, bodies that are no report with 400.
//!
//! TLS through tokio-rustls (aws-lc-rs). Plain HTTP only on a loopback address, for a
//! TLS-terminating proxy in front or for tests.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::super::ingest::{Ingest, Refused, Tally, store_batch};
use super::super::store::ReportStore;
use super::super::unwrap::{Hint, MAX_INPUT_BYTES};

/// Connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its headers, and its body.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

pub type SharedStore = Arc<Mutex<Box<dyn ReportStore + Send>>>;

/// A server TLS configuration from PEM files (chain leaf first; PKCS#8, PKCS#1 or SEC1 key).
pub fn tls_acceptor(chain: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(chain)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("certificate chain {}: {e}", chain.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certificate chain {}: no certificate in it",
            chain.display()
        ));
    }
    // The key's own parse error could quote key material: not shown.
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|_| format!("private key {}: no usable PEM private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves until the process ends. `tls: None` only where the caller checked the listener is
/// on loopback.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ingest: Arc<Ingest>,
    store: SharedStore,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(std::io::Error::other)?;
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // EMFILE and friends: wait a moment rather than spin or stop.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let tls = tls.clone();
        let ingest = ingest.clone();
        let store = store.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |request| {
                handle(request, peer, ingest.clone(), store.clone())
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                None => {
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                }
            }
        });
    }
}

fn answer(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text + "\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn handle(
    request: Request<Incoming>,
    peer: SocketAddr,
    ingest: Arc<Ingest>,
    store: SharedStore,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    Ok(respond(request, peer, &ingest, store).await)
}

async fn respond(
    request: Request<Incoming>,
    peer: SocketAddr,
    ingest: &Ingest,
    store: SharedStore,
) -> Response<Full<Bytes>> {
    if request.method() != hyper::Method::POST {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST a TLS report (application/tlsrpt+gzip or application/tlsrpt+json)".into(),
        );
    }
    let media = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let hint = match media.as_deref() {
        Some("application/tlsrpt+gzip") => Hint::Gzip,
        Some("application/tlsrpt+json") => Hint::Json,
        _ => {
            return answer(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected Content-Type application/tlsrpt+gzip or application/tlsrpt+json".into(),
            );
        }
    };
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a report body is at most {MAX_INPUT_BYTES} bytes"),
        )
    };
    if declared.is_some_and(|n| n > MAX_INPUT_BYTES as u64) {
        return too_large();
    }
    let body = Limited::new(request.into_body(), MAX_INPUT_BYTES);
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Err(_) => return answer(StatusCode::REQUEST_TIMEOUT, "the body took too long".into()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(_)) => return answer(StatusCode::BAD_REQUEST, "the body could not be read".into()),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let source = format!("https-post from {}", peer.ip());
    let taken = match ingest.take(&bytes, hint, &source).await {
        Ok(taken) => taken,
        Err(Refused::Invalid(why) | Refused::Retry(why)) => {
            return answer(StatusCode::BAD_REQUEST, why);
        }
    };
    // Commit (fsync) before answering: the 200 is the promise that the report is kept.
    let stored = tokio::task::spawn_blocking(move || {
        let mut tally = Tally::default();
        let mut store = store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        store_batch(store.as_mut(), vec![taken], &mut tally).map(|()| tally)
    })
    .await;
    match stored {
        Ok(Ok(tally)) if tally.duplicate > 0 => {
            answer(StatusCode::OK, "duplicate: already stored".into())
        }
        Ok(Ok(_)) => answer(StatusCode::OK, "stored".into()),
        Ok(Err(e)) => {
            eprintln!("tlsa tlsrpt serve: {e}");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the report could not be stored; try again later".into(),
            )
        }
        Err(_) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the report could not be stored".into(),
        ),
    }
}
