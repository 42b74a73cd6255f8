//! Fetching `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` as the
//! strictest sender does (RFC 8461 §3.3), from every address of the policy
//! host separately: connect to that address, SNI and certificate name
//! `mta-sts.DOMAIN`, a WebPKI-valid chain to the configured roots, no
//! redirect followed, only `200`, media type `text/plain` (parameters such as
//! `charset` allowed), at most 64 KiB read, everything within one time limit
//! (4 s by default: the shortest a known sender allows).
//!
//! Every rule broken comes back as its own [`FetchFailure`], in words that
//! say what the server did.

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use tokio::task::JoinSet;

use super::policy::MAX_POLICY_BYTES;
use crate::live::capture;
use crate::live::webpki::{self, Roots};

/// The shortest limit a known sender allows for the whole fetch.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4);

/// The port of `https://`.
pub const HTTPS_PORT: u16 = 443;

/// The policy host of a domain: `mta-sts.DOMAIN`.
pub fn policy_host(domain: &str) -> String {
    format!("mta-sts.{}", domain.trim_end_matches('.'))
}

/// The policy URL of a domain.
pub fn policy_url(domain: &str) -> String {
    format!("https://{}/.well-known/mta-sts.txt", policy_host(domain))
}

/// How fetches are made.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub roots: Roots,
    /// For everything: connect, TLS, request, the whole body.
    pub timeout: Duration,
}

/// Why an address did not serve a policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "failure", rename_all = "kebab-case")]
pub enum FetchFailure {
    /// No TCP connection (refused, unreachable).
    ConnectFailed { detail: String },
    /// The certificate is not WebPKI-valid for the policy host.
    Certificate { result: String, detail: String },
    /// TLS failed for another reason (protocol, alert).
    TlsFailed { detail: String },
    /// A 3xx answer: senders do not follow redirects.
    Redirect {
        status: u16,
        location: Option<String>,
    },
    /// An HTTP status other than 200.
    HttpStatus { status: u16 },
    /// The media type is not `text/plain`.
    ContentType { content_type: Option<String> },
    /// More than 64 KiB.
    TooLarge { limit: usize },
    /// The body is not UTF-8 text.
    NotText,
    /// No complete answer within the time limit.
    Timeout { limit_seconds: f64 },
    /// The HTTP exchange failed otherwise (garbage, closed connection).
    HttpError { detail: String },
}

impl FetchFailure {
    /// The short name used in tables and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            FetchFailure::ConnectFailed { .. } => "connect-failed",
            FetchFailure::Certificate { .. } => "certificate",
            FetchFailure::TlsFailed { .. } => "tls-failed",
            FetchFailure::Redirect { .. } => "redirect",
            FetchFailure::HttpStatus { .. } => "http-status",
            FetchFailure::ContentType { .. } => "content-type",
            FetchFailure::TooLarge { .. } => "too-large",
            FetchFailure::NotText => "not-text",
            FetchFailure::Timeout { .. } => "timeout",
            FetchFailure::HttpError { .. } => "http-error",
        }
    }
}

impl std::fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchFailure::ConnectFailed { detail } => write!(f, "cannot connect: {detail}"),
            FetchFailure::Certificate { result, detail } => {
                write!(f, "certificate rejected ({result}): {detail}")
            }
            FetchFailure::TlsFailed { detail } => write!(f, "TLS failed: {detail}"),
            FetchFailure::Redirect { status, location } => write!(
                f,
                "redirect ({status}{}): senders do not follow redirects (RFC 8461 §3.3)",
                location
                    .as_ref()
                    .map(|l| format!(" to {l}"))
                    .unwrap_or_default()
            ),
            FetchFailure::HttpStatus { status } => {
                write!(f, "HTTP status {status}: senders accept only 200")
            }
            FetchFailure::ContentType { content_type } => write!(
                f,
                "content type {}: senders require text/plain",
                content_type
                    .as_ref()
                    .map_or("missing".to_string(), |c| format!("{c:?}"))
            ),
            FetchFailure::TooLarge { limit } => write!(
                f,
                "the policy is larger than {} KiB: senders stop reading there",
                limit / 1024
            ),
            FetchFailure::NotText => f.write_str("the body is not UTF-8 text"),
            FetchFailure::Timeout { limit_seconds } => write!(
                f,
                "no complete answer within {limit_seconds} s (senders give up after 4 s or sooner)"
            ),
            FetchFailure::HttpError { detail } => write!(f, "HTTP failed: {detail}"),
        }
    }
}

/// What one address served.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub address: SocketAddr,
    pub outcome: Result<String, FetchFailure>,
    pub elapsed: Duration,
}

/// Fetches the policy of `domain` from every address, concurrently, each
/// bounded by the time limit; results in the order of `addresses`.
pub async fn fetch_all(
    domain: &str,
    addresses: &[SocketAddr],
    options: &FetchOptions,
) -> Vec<Fetched> {
    let mut set = JoinSet::new();
    for (index, address) in addresses.iter().copied().enumerate() {
        let domain = domain.to_string();
        let options = options.clone();
        set.spawn(async move { (index, fetch(&domain, address, &options).await) });
    }
    crate::live::check::collect(set).await
}

/// Fetches the policy of `domain` from one address.
pub async fn fetch(domain: &str, address: SocketAddr, options: &FetchOptions) -> Fetched {
    let started = Instant::now();
    let outcome =
        match tokio::time::timeout(options.timeout, attempt(domain, address, options)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(FetchFailure::Timeout {
                limit_seconds: options.timeout.as_secs_f64(),
            }),
        };
    Fetched {
        address,
        outcome,
        elapsed: started.elapsed(),
    }
}

async fn attempt(
    domain: &str,
    address: SocketAddr,
    options: &FetchOptions,
) -> Result<String, FetchFailure> {
    let host = policy_host(domain);
    let verifier =
        webpki::verifier(&options.roots).map_err(|detail| FetchFailure::TlsFailed { detail })?;
    let recorder = Arc::new(Recorder {
        inner: verifier,
        error: Mutex::new(None),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(capture::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| FetchFailure::TlsFailed {
            detail: format!("TLS client setup: {e}"),
        })?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    // One client per address: `resolve` pins the connection to it, while the
    // URL, SNI and certificate name stay the policy host's.
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .resolve(&host, address)
        .connect_timeout(options.timeout)
        .user_agent(concat!(
            "tlsa/",
            env!("CARGO_PKG_VERSION"),
            " (MTA-STS check)"
        ))
        .build()
        .map_err(|e| FetchFailure::HttpError {
            detail: format!("HTTP client setup: {e}"),
        })?;
    let mut response = match client.get(policy_url(domain)).send().await {
        Ok(response) => response,
        Err(e) => {
            let recorded = recorder.error.lock().ok().and_then(|mut e| e.take());
            return Err(match recorded {
                Some(error) => {
                    let (result, detail) = webpki::describe(&error, &host);
                    FetchFailure::Certificate {
                        result: result.into(),
                        detail,
                    }
                }
                None if e.is_connect() && !causes(&e).contains("tls") => {
                    FetchFailure::ConnectFailed { detail: causes(&e) }
                }
                None if causes(&e).to_ascii_lowercase().contains("tls")
                    || causes(&e).contains("handshake") =>
                {
                    FetchFailure::TlsFailed { detail: causes(&e) }
                }
                None => FetchFailure::HttpError { detail: causes(&e) },
            });
        }
    };
    let status = response.status();
    if status.is_redirection() {
        let location = response.headers().get(reqwest::header::LOCATION).map(|l| {
            String::from_utf8_lossy(l.as_bytes())
                .chars()
                .take(200)
                .collect()
        });
        return Err(FetchFailure::Redirect {
            status: status.as_u16(),
            location,
        });
    }
    if status != reqwest::StatusCode::OK {
        return Err(FetchFailure::HttpStatus {
            status: status.as_u16(),
        });
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(200)
                .collect::<String>()
        });
    let plain = content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/plain"))
    });
    if !plain {
        return Err(FetchFailure::ContentType { content_type });
    }
    let mut body: Vec<u8> = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_POLICY_BYTES {
                    return Err(FetchFailure::TooLarge {
                        limit: MAX_POLICY_BYTES,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(FetchFailure::HttpError { detail: causes(&e) }),
        }
    }
    String::from_utf8(body).map_err(|_| FetchFailure::NotText)
}

/// An error and its causes, as one line (`a: b: c`), each said once.
fn causes(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = vec![error.without_url_text()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

trait WithoutUrl {
    fn without_url_text(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    /// reqwest's own text without the URL (every fetch has the same one).
    fn without_url_text(&self) -> String {
        let text = self.to_string();
        match text.split_once(" for url (") {
            Some((head, _)) => head.to_string(),
            None => text,
        }
    }
}

/// The WebPKI verifier, keeping the error it returned: reqwest's error
/// wraps it in text, and the report names the rule that failed.
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    error: Mutex<Option<rustls::Error>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if let (Err(error), Ok(mut seen)) = (&result, self.error.lock()) {
            *seen = Some(error.clone());
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
