//! HTTP-01 challenge responses (RFC 8555 §8.3): the key authorization
//! served at `http://HOST/.well-known/acme-challenge/TOKEN`, either as files
//! in a web server's document root or by a listener tlsa runs itself for
//! the length of the order (mail hosts often have no web server).
//!
//! Tokens come from the CA: one that is not a base64url word is refused
//! before it names a file. Files tlsa wrote are recognised by their content
//! (`TOKEN.THUMBPRINT` of this account), so the leftovers of a run that was
//! killed are removed by the next order and nothing else in the directory
//! is touched.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::AcmeError;
use crate::fsutil;

/// The directory, under a document root, the CA reads tokens from.
pub const WELL_KNOWN: &str = ".well-known/acme-challenge";

/// A listener answers no slower client than this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where HTTP-01 responses are served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Http01 {
    /// Files in `DIR/.well-known/acme-challenge/`, served by the host's web
    /// server as `http://HOST/`.
    Webroot(PathBuf),
    /// tlsa answers on this address itself while the order runs (port 80,
    /// or where a proxy forwards the CA's requests).
    Standalone(SocketAddr),
}

/// `token` as a file name: a base64url word (RFC 8555 §8.3), nothing else.
pub fn checked_token(token: &str) -> Result<&str, AcmeError> {
    let fine = !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match fine {
        true => Ok(token),
        false => Err(AcmeError::Challenge(
            "the CA sent an HTTP-01 token that is not a base64url word; refused (it would name a file)"
                .into(),
        )),
    }
}

/// Responses being served; dropping it stops a listener (files are removed
/// by [`Http01::clear`]).
pub struct Serving {
    listener: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(task) = self.listener.take() {
            task.abort();
        }
    }
}

impl Http01 {
    /// Serves `responses` (token → key authorization) until the returned
    /// value is dropped.
    pub async fn serve(&self, responses: &BTreeMap<String, String>) -> Result<Serving, AcmeError> {
        for token in responses.keys() {
            checked_token(token)?;
        }
        match self {
            Http01::Webroot(root) => {
                let dir = root.join(WELL_KNOWN);
                let failed = |e: std::io::Error| {
                    AcmeError::Challenge(format!(
                        "writing the HTTP-01 response into {}: {e}; check that the directory exists and this user may write it",
                        dir.display()
                    ))
                };
                // The web server reads these: world-readable, like the page it serves.
                fsutil::create_dir_all_mode(&dir, 0o755).map_err(failed)?;
                for (token, response) in responses {
                    fsutil::write_atomic(&dir.join(token), response.as_bytes(), 0o644)
                        .map_err(failed)?;
                }
                Ok(Serving { listener: None })
            }
            Http01::Standalone(addr) => {
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    AcmeError::Challenge(format!(
                        "listening on {addr} for the HTTP-01 challenge: {e}; is a web server on that port (then use webroot), or does this user lack the right to bind it?"
                    ))
                })?;
                let responses = Arc::new(responses.clone());
                Ok(Serving {
                    listener: Some(tokio::spawn(answer_on(listener, responses))),
                })
            }
        }
    }

    /// Removes every response of the account with `thumbprint` from a
    /// webroot: the ones of this order, and those a killed run left.
    pub fn clear(&self, thumbprint: &str) -> Result<(), AcmeError> {
        let Http01::Webroot(root) = self else {
            return Ok(());
        };
        clear_dir(&root.join(WELL_KNOWN), thumbprint)
    }
}

fn clear_dir(dir: &Path, thumbprint: &str) -> Result<(), AcmeError> {
    let failed = |e: std::io::Error| {
        AcmeError::Challenge(format!(
            "removing HTTP-01 responses from {}: {e}",
            dir.display()
        ))
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(failed(e)),
    };
    for entry in entries {
        let entry = entry.map_err(failed)?;
        let Some(token) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if checked_token(&token).is_err() || !entry.file_type().map_err(failed)?.is_file() {
            continue;
        }
        // A key authorization is "TOKEN.THUMBPRINT": only ours are removed.
        let ours = std::fs::read(entry.path())
            .is_ok_and(|content| content == format!("{token}.{thumbprint}").as_bytes());
        if ours {
            std::fs::remove_file(entry.path()).map_err(failed)?;
        }
    }
    Ok(())
}

async fn answer_on(listener: tokio::net::TcpListener, responses: Arc<BTreeMap<String, String>>) {
    // The CA's validators connect a few times each; a bound on the
    // connections served at once keeps a flood from costing memory.
    let slots = Arc::new(tokio::sync::Semaphore::new(64));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let responses = responses.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |request: Request<_>| {
                let response = respond(&responses, request.method(), request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

/// The answer to one request: the key authorization of a known token, 404
/// for anything else.
fn respond(
    responses: &BTreeMap<String, String>,
    method: &hyper::Method,
    path: &str,
) -> Response<Full<Bytes>> {
    let found = path
        .strip_prefix("/.well-known/acme-challenge/")
        .and_then(|token| responses.get(token))
        .filter(|_| *method == hyper::Method::GET || *method == hyper::Method::HEAD);
    let (status, body) = match found {
        Some(response) => (StatusCode::OK, response.clone()),
        None => (StatusCode::NOT_FOUND, String::new()),
    };
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/octet-stream"),
    );
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_that_could_name_another_file_are_refused() {
        assert!(checked_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0").is_ok());
        for bad in [
            "",
            "../etc/passwd",
            "a/b",
            "a.b",
            "tok en",
            "..",
            &"a".repeat(300),
        ] {
            assert!(checked_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_known_tokens_are_answered() {
        let responses = BTreeMap::from([("tok".to_string(), "tok.thumb".to_string())]);
        let get = hyper::Method::GET;
        assert_eq!(
            respond(&responses, &get, "/.well-known/acme-challenge/tok").status(),
            StatusCode::OK
        );
        for path in ["/.well-known/acme-challenge/other", "/", "/tok"] {
            assert_eq!(
                respond(&responses, &get, path).status(),
                StatusCode::NOT_FOUND
            );
        }
        assert_eq!(
            respond(
                &responses,
                &hyper::Method::POST,
                "/.well-known/acme-challenge/tok"
            )
            .status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn a_webroot_gets_the_files_and_loses_only_this_accounts_ones() {
        let root = tempfile::tempdir().unwrap();
        let http = Http01::Webroot(root.path().to_path_buf());
        let dir = root.path().join(WELL_KNOWN);
        std::fs::create_dir_all(&dir).unwrap();
        // Another client's response and an unrelated file stay.
        std::fs::write(dir.join("theirs"), "theirs.otherthumb").unwrap();
        std::fs::write(dir.join("README"), "keep me").unwrap();
        let responses = BTreeMap::from([("tok1".to_string(), "tok1.thumb".to_string())]);
        let serving = http.serve(&responses).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("tok1")).unwrap(),
            "tok1.thumb"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join("tok1")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
        drop(serving);
        // A killed run's leftover of this account goes too.
        std::fs::write(dir.join("old"), "old.thumb").unwrap();
        http.clear("thumb").unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["README", "theirs"]);
    }

    #[tokio::test]
    async fn a_bad_token_writes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let http = Http01::Webroot(root.path().to_path_buf());
        let responses = BTreeMap::from([("../x".to_string(), "x".to_string())]);
        assert!(http.serve(&responses).await.is_err());
        assert!(!root.path().join(WELL_KNOWN).exists());
    }
}
