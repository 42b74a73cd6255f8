//! One connection to one address: TCP, the protocol's STARTTLS dialogue,
//! the TLS handshake, and the certificate chain the server presented.
//!
//! The TLS client accepts whatever chain the server presents — deciding
//! whether it is the right one is the DANE matcher's job, afterwards — but it
//! still verifies the handshake signatures (CertificateVerify in TLS 1.3,
//! ServerKeyExchange in TLS 1.2) with the crypto provider's algorithms, so a
//! completed handshake proves that the server holds the private key of the
//! leaf it presented.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::endpoint::{Endpoint, Protocol};
use super::starttls::{self, Stage, StageCell, StartTlsError};
use crate::tlsa::Certificate;
use crate::tlsa::key::KeyAlgorithm;

/// Default limit for one address: connect, dialogue and handshake together.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the polite goodbye (QUIT, close_notify) may take once the chain is in hand.
const GOODBYE_TIMEOUT: Duration = Duration::from_millis(500);

/// How connections are made.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Limit for everything up to the end of the handshake, per address.
    pub timeout: Duration,
    /// The name sent in EHLO/LHLO.
    pub helo: String,
    /// Offer only the signature schemes of this kind of key, so that a
    /// server holding several certificates (RSA and ECDSA) presents the one
    /// with such a key, as a client supporting only that kind would see.
    pub key_kind: Option<KeyKind>,
}

/// The kinds of server key a TLS client can ask for through its signature
/// algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyKind {
    Rsa,
    Ecdsa,
    Ed25519,
}

impl KeyKind {
    /// The kind of the key in a SubjectPublicKeyInfo, if a TLS client can ask for it.
    pub fn of_spki(spki: &[u8]) -> Option<KeyKind> {
        match crate::tlsa::key::spki_algorithm(spki)? {
            KeyAlgorithm::Rsa { .. } => Some(KeyKind::Rsa),
            KeyAlgorithm::Ecdsa { .. } => Some(KeyKind::Ecdsa),
            KeyAlgorithm::Ed25519 => Some(KeyKind::Ed25519),
            KeyAlgorithm::Other(_) => None,
        }
    }

    /// For messages: `RSA`, `ECDSA`, `Ed25519`.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA",
            KeyKind::Ecdsa => "ECDSA",
            KeyKind::Ed25519 => "Ed25519",
        }
    }

    fn allows(self, scheme: SignatureScheme) -> bool {
        use SignatureScheme as S;
        match self {
            KeyKind::Rsa => matches!(
                scheme,
                S::RSA_PSS_SHA256
                    | S::RSA_PSS_SHA384
                    | S::RSA_PSS_SHA512
                    | S::RSA_PKCS1_SHA256
                    | S::RSA_PKCS1_SHA384
                    | S::RSA_PKCS1_SHA512
                    | S::RSA_PKCS1_SHA1
            ),
            KeyKind::Ecdsa => matches!(
                scheme,
                S::ECDSA_NISTP256_SHA256
                    | S::ECDSA_NISTP384_SHA384
                    | S::ECDSA_NISTP521_SHA512
                    | S::ECDSA_SHA1_Legacy
            ),
            KeyKind::Ed25519 => scheme == S::ED25519,
        }
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: DEFAULT_TIMEOUT,
            helo: default_helo(),
            key_kind: None,
        }
    }
}

/// This machine's host name (what a sending MTA would say in EHLO), or `localhost`.
pub fn default_helo() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        })
        .unwrap_or_else(|| "localhost".into())
}

/// What a server presented in a completed handshake.
#[derive(Debug, Clone)]
pub struct Presented {
    /// Leaf first, as sent. Certificates after the leaf that do not parse
    /// are left out and described in `notes`.
    pub chain: Vec<Certificate>,
    pub notes: Vec<String>,
    /// `TLSv1.3`, `TLSv1.2`.
    pub tls_version: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The server's greeting before STARTTLS (empty for implicit TLS).
    pub greeting: String,
    /// Time from the start of the connection to the end of the handshake.
    pub elapsed: Duration,
}

/// Why no chain was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureFailure {
    /// The TCP connection failed (refused, no route, …).
    Unreachable(String),
    /// The limit expired; `stage` says what the server never answered.
    Timeout { stage: String, limit: Duration },
    /// The server does not offer TLS on this port (or refused to start it).
    StartTlsNotOffered(String),
    /// The server broke the protocol before TLS (refused session, garbage, closed).
    Protocol(String),
    /// The TLS handshake failed. `chain` holds what the server presented
    /// before the failure, if it got that far.
    Handshake {
        detail: String,
        chain: Vec<Certificate>,
    },
}

/// Connects to `addr` and returns the chain presented for `endpoint` (SNI =
/// its host name). Never takes longer than `options.timeout` (plus a bounded
/// goodbye of at most half a second).
pub async fn capture(
    addr: SocketAddr,
    endpoint: &Endpoint,
    options: &ConnectOptions,
) -> Result<Presented, CaptureFailure> {
    let stage = StageCell::default();
    let started = Instant::now();
    match tokio::time::timeout(
        options.timeout,
        attempt(addr, endpoint, options, &stage, started),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(CaptureFailure::Timeout {
            stage: stage.get().describe(endpoint.protocol),
            limit: options.timeout,
        }),
    }
}

async fn attempt(
    addr: SocketAddr,
    endpoint: &Endpoint,
    options: &ConnectOptions,
    stage: &StageCell,
    started: Instant,
) -> Result<Presented, CaptureFailure> {
    stage.set(Stage::Connect);
    let mut tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| CaptureFailure::Unreachable(connect_error(&e)))?;
    let _ = tcp.set_nodelay(true);
    let greeting = starttls::negotiate(&mut tcp, endpoint.protocol, &options.helo, stage)
        .await
        .map_err(|e| match e {
            StartTlsError::NotOffered(why) => CaptureFailure::StartTlsNotOffered(why),
            StartTlsError::Protocol(why) | StartTlsError::Io(why) => CaptureFailure::Protocol(why),
        })?;

    stage.set(Stage::Handshake);
    let verifier = Arc::new(RecordingVerifier::new(provider(), options.key_kind));
    let config = client_config(verifier.clone()).map_err(|detail| CaptureFailure::Handshake {
        detail,
        chain: Vec::new(),
    })?;
    let server_name =
        ServerName::try_from(endpoint.host.clone()).map_err(|e| CaptureFailure::Handshake {
            detail: format!("{} cannot be sent as TLS SNI: {e}", endpoint.host),
            chain: Vec::new(),
        })?;
    let handshake = TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await;
    let mut tls = match handshake {
        Ok(tls) => tls,
        Err(e) => {
            let (chain, _) = parse_chain(verifier.take());
            let mut detail = e.to_string();
            // Plain text where TLS was expected: a STARTTLS port spoken to directly.
            if endpoint.protocol == Protocol::ImplicitTls
                && chain.is_empty()
                && (detail.contains("corrupt") || detail.contains("InvalidContentType"))
            {
                detail.push_str(
                    " (the server did not answer with TLS; if it expects STARTTLS, use --starttls smtp|imap|pop3)",
                );
            }
            return Err(CaptureFailure::Handshake { detail, chain });
        }
    };
    let elapsed = started.elapsed();
    let (_, connection) = tls.get_ref();
    let raw = connection
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
        .or_else(|| verifier.take())
        .unwrap_or_default();
    let tls_version = connection
        .protocol_version()
        .map(version_name)
        .unwrap_or_else(|| "unknown".into());
    let cipher_suite = connection
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_else(|| "unknown".into());
    let (chain, notes) = parse_chain(Some(raw));
    if chain.is_empty() {
        return Err(CaptureFailure::Handshake {
            detail: notes
                .first()
                .cloned()
                .unwrap_or_else(|| "the server presented no certificate".into()),
            chain,
        });
    }
    // Say goodbye politely (the session is not used), without letting a
    // silent server hold the check up.
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
        if matches!(endpoint.protocol, Protocol::Smtp | Protocol::Lmtp) {
            tls.write_all(b"QUIT\r\n").await?;
        }
        tls.shutdown().await
    })
    .await;
    Ok(Presented {
        chain,
        notes,
        tls_version,
        cipher_suite,
        greeting,
        elapsed,
    })
}

fn connect_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            "connection refused: nothing listens on this port, or a firewall rejects it".into()
        }
        _ => format!("cannot connect: {e}"),
    }
}

fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

/// Parses the presented DER certificates. A leaf that does not parse yields
/// an empty chain (and a note); later ones are skipped with a note.
fn parse_chain(raw: Option<Vec<CertificateDer<'static>>>) -> (Vec<Certificate>, Vec<String>) {
    let mut chain = Vec::new();
    let mut notes = Vec::new();
    for (depth, der) in raw.unwrap_or_default().iter().enumerate() {
        match Certificate::from_der(der) {
            Ok(cert) => chain.push(cert),
            Err(e) if depth == 0 => {
                notes.push(format!("the server's certificate does not parse: {}", e.0));
                return (Vec::new(), notes);
            }
            Err(e) => notes.push(format!(
                "certificate at depth {depth} of the presented chain does not parse and is ignored: {}",
                e.0
            )),
        }
    }
    (chain, notes)
}

/// The crypto provider: aws-lc-rs, the only one this crate uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn client_config(verifier: Arc<RecordingVerifier>) -> Result<rustls::ClientConfig, String> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS client setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // Every check is a full handshake: the key must be presented, not resumed.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Records the presented chain instead of judging it, and verifies the
/// handshake signatures like any client would.
#[derive(Debug)]
struct RecordingVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    key_kind: Option<KeyKind>,
    seen: Mutex<Option<Vec<CertificateDer<'static>>>>,
}

impl RecordingVerifier {
    fn new(provider: Arc<CryptoProvider>, key_kind: Option<KeyKind>) -> Self {
        RecordingVerifier {
            algorithms: provider.signature_verification_algorithms,
            key_kind,
            seen: Mutex::new(None),
        }
    }

    fn take(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.seen.lock().map(|mut seen| seen.take()).unwrap_or(None)
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(chain);
        }
        // DANE decides after the handshake (see the module documentation).
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    /// What the client offers in signature_algorithms, which the server
    /// uses to choose among its certificates.
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        let mut schemes = self.algorithms.supported_schemes();
        if let Some(kind) = self.key_kind {
            schemes.retain(|&scheme| kind.allows(scheme));
        }
        schemes
    }
}
