//! An IMAP mailbox: unseen messages are fetched (without setting \Seen), imported, and
//! only once the store has committed them marked \Seen or moved to another folder. A
//! message whose key lookup failed for now stays unseen for the next run.
//!
//! TLS (implicit, port 993) through rustls with aws-lc-rs; the system's roots, or a CA file
//! for a private server. Plain IMAP is allowed only to a loopback address (a test server,
//! or a local Dovecot): the password would otherwise cross the network in clear.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::secrets::SecretSource;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::super::ingest::{Ingest, Refused, Taken, Tally, store_batch};
use super::super::store::ReportStore;
use super::super::unwrap::{Hint, MAX_INPUT_BYTES};

/// What to do with a message once its report is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    Seen,
    Move(String),
}

impl std::str::FromStr for After {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "seen" => Ok(After::Seen),
            _ => match text.strip_prefix("move:") {
                Some(folder) if !folder.is_empty() => Ok(After::Move(folder.to_string())),
                _ => Err(format!(
                    "after = {text:?}: expected \"seen\" or \"move:FOLDER\""
                )),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImapSource {
    /// Host name (for TLS) and address.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Where the password is: never inline, never printed.
    pub password: SecretSource,
    pub mailbox: String,
    pub after: After,
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
}

impl ImapSource {
    /// `imap://user@host:port/mailbox` — for messages; no password.
    pub fn describe(&self) -> String {
        let scheme = if self.tls { "imaps" } else { "imap" };
        format!(
            "{scheme}://{}@{}:{}/{}",
            self.user, self.host, self.port, self.mailbox
        )
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);

pub async fn import(
    ingest: &Ingest,
    store: &mut dyn ReportStore,
    source: &ImapSource,
    tally: &mut Tally,
) -> Result<(), String> {
    let place = source.describe();
    let fail = |why: String| format!("{place}: {why}");
    let tcp = tokio::time::timeout(
        TIMEOUT,
        TcpStream::connect((source.host.as_str(), source.port)),
    )
    .await
    .map_err(|_| fail("connection timed out".into()))?
    .map_err(|e| fail(format!("cannot connect: {e}")))?;
    let peer = tcp.peer_addr().map_err(|e| fail(e.to_string()))?;
    if source.tls {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(
            tls_config(source.ca_file.as_deref()).map_err(&fail)?,
        ));
        let name = rustls_pki_types::ServerName::try_from(source.host.clone())
            .map_err(|_| fail("the host is not a valid TLS server name".into()))?;
        let stream = tokio::time::timeout(TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| fail("TLS handshake timed out".into()))?
            .map_err(|e| fail(format!("TLS handshake failed: {e}")))?;
        session(ingest, store, source, stream, tally)
            .await
            .map_err(fail)
    } else {
        refuse_plain_off_loopback(peer).map_err(fail)?;
        session(ingest, store, source, tcp, tally)
            .await
            .map_err(fail)
    }
}

fn refuse_plain_off_loopback(peer: SocketAddr) -> Result<(), String> {
    if peer.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "tls = false is allowed only to a loopback address, and {} is not: the password would cross the network in clear",
            peer.ip()
        ))
    }
}

fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| format!("the system's CA roots: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

use rustls_pki_types::pem::PemObject;

async fn session<S>(
    ingest: &Ingest,
    store: &mut dyn ReportStore,
    source: &ImapSource,
    stream: S,
    tally: &mut Tally,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let mut client = async_imap::Client::new(stream);
    let step = |what: &str| format!("{what} timed out");
    tokio::time::timeout(TIMEOUT, client.read_response())
        .await
        .map_err(|_| step("greeting"))?
        .map_err(|e| format!("no greeting: {e}"))?;
    let password = source
        .password
        .load("IMAP password")
        .map_err(|e| e.to_string())?;
    let mut session = tokio::time::timeout(TIMEOUT, client.login(&source.user, password.expose()))
        .await
        .map_err(|_| step("login"))?
        .map_err(|(e, _)| format!("login as {} refused: {e}", source.user))?;
    drop(password);
    session
        .select(&source.mailbox)
        .await
        .map_err(|e| format!("cannot select {}: {e}", source.mailbox))?;
    let mut uids: Vec<u32> = session
        .uid_search("UNSEEN")
        .await
        .map_err(|e| format!("SEARCH UNSEEN failed: {e}"))?
        .into_iter()
        .collect();
    uids.sort_unstable();
    for chunk in uids.chunks(super::BATCH) {
        let mut messages: Vec<(u32, Vec<u8>)> = Vec::new();
        for uid in chunk {
            // The size first: the client holds a fetched body in memory whole, so an
            // oversized message is never fetched.
            let size = fetch_one(&mut session, *uid, "(UID RFC822.SIZE)")
                .await?
                .and_then(|f| f.size);
            if size.is_none_or(|s| s as usize > MAX_INPUT_BYTES) {
                messages.push((*uid, Vec::new()));
                continue;
            }
            let body = fetch_one(&mut session, *uid, "(UID BODY.PEEK[])")
                .await?
                .and_then(|f| f.body().map(<[u8]>::to_vec))
                .unwrap_or_default();
            messages.push((*uid, body));
        }
        let mut batch: Vec<Taken> = Vec::new();
        let mut processed: Vec<u32> = Vec::new();
        for (uid, body) in messages {
            let place = format!("{} UID {uid}", source.describe());
            if body.is_empty() {
                tally.refused(
                    &place,
                    &Refused::Invalid("empty or oversized message".into()),
                );
                processed.push(uid);
                continue;
            }
            if ingest
                .take_into(&body, Hint::Mail, &place, &mut batch, tally)
                .await
            {
                processed.push(uid);
            }
        }
        store_batch(store, batch, tally).map_err(|e| e.to_string())?;
        if processed.is_empty() {
            continue;
        }
        let set = processed
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        match &source.after {
            After::Seen => {
                let updates = session
                    .uid_store(&set, "+FLAGS (\\Seen)")
                    .await
                    .map_err(|e| format!("STORE \\Seen failed: {e}"))?;
                let results: Vec<_> = updates.collect().await;
                if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
                    return Err(format!("STORE \\Seen failed: {e}"));
                }
            }
            After::Move(folder) => session
                .uid_mv(&set, folder)
                .await
                .map_err(|e| format!("MOVE to {folder} failed: {e}"))?,
        }
    }
    session
        .logout()
        .await
        .map_err(|e| format!("LOGOUT failed: {e}"))?;
    Ok(())
}

/// `UID FETCH uid query`: the response for that message, if the server sent one.
async fn fetch_one<S>(
    session: &mut async_imap::Session<S>,
    uid: u32,
    query: &str,
) -> Result<Option<async_imap::types::Fetch>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let mut fetches = session
        .uid_fetch(uid.to_string(), query)
        .await
        .map_err(|e| format!("FETCH {uid} failed: {e}"))?;
    let mut found = None;
    while let Some(fetch) = fetches.next().await {
        let fetch = fetch.map_err(|e| format!("FETCH {uid} failed: {e}"))?;
        if fetch.uid == Some(uid) {
            found = Some(fetch);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_imap_only_to_a_loopback_address() {
        for ok in ["127.0.0.1:143", "[::1]:143"] {
            assert!(refuse_plain_off_loopback(ok.parse().unwrap()).is_ok());
        }
        let err = refuse_plain_off_loopback("192.0.2.1:143".parse().unwrap()).unwrap_err();
        assert!(err.contains("in clear"), "{err}");
    }

    #[test]
    fn after_is_seen_or_a_move() {
        assert_eq!("seen".parse::<After>(), Ok(After::Seen));
        assert_eq!(
            "move:Archive/TLS".parse::<After>(),
            Ok(After::Move("Archive/TLS".into()))
        );
        assert!("move:".parse::<After>().is_err());
        assert!("delete".parse::<After>().is_err());
    }
}
