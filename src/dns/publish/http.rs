//! The one HTTP mechanism of every provider API back-end (Cloudflare,
//! PowerDNS, deSEC): credentials that never leak, bounded timeouts, bounded
//! retries with backoff that honour `Retry-After`, and API errors turned
//! into one clear paragraph — status, the API's own words, what to do.
//!
//! Back-ends describe *what* they ask ([`ApiRequest`]: method, path
//! segments, query, JSON body, what it is for); [`ApiClient`] does the rest.
//!
//! **Retries.** 429 (rate limited) is always retried: the request was not
//! processed. 5xx answers, timeouts and broken connections are retried only
//! for idempotent requests (GET, and writes the back-end marks idempotent,
//! such as PowerDNS's `REPLACE`), because a non-idempotent write (a
//! Cloudflare batch) may have been applied before the error; its error then
//! says so, and the next run reconciles (every back-end reads before it
//! writes). A refused connection is always retried: nothing was sent.
//! Waits go through the [`Clock`], so tests never sleep; a `Retry-After`
//! longer than [`RetryPolicy::max_retry_after`] is not waited for but
//! reported.
//!
//! **Secrets.** Tokens are [`Secret`]s: no `Display`, a redacting `Debug`,
//! sent only in a header, and scrubbed from any API message quoted in an
//! error. URLs in messages never carry user-info.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::api_messages::api_messages;
use crate::clock::{Clock, SystemClock};
use crate::dns::DnsError;
pub use crate::secrets::{Secret, SecretSource};

/// How an API wants its credential.
#[derive(Debug, Clone)]
pub struct Auth {
    /// Header name, e.g. `Authorization` or `X-API-Key`.
    pub header: &'static str,
    /// Written before the secret, e.g. `Bearer ` or `Token ` (or empty).
    pub prefix: &'static str,
    pub secret: Secret,
    /// What to check when the API says 401/403, e.g. "the API token and
    /// its permissions (Zone:Read, DNS:Edit)".
    pub hint: String,
}

/// Retry bounds. Waits double from `first_backoff` up to `max_backoff`,
/// unless the API says how long (`Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` waited for; beyond it the error is returned
    /// at once (a cron run should not hang for an hour).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (1-based) when the API
    /// does not say.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Timeouts and retries of one API client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOptions {
    /// Bound on establishing a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Bound on a whole request, body included.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// Largest response body read; an API page is a few kB.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request, described by the back-end.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// Path segments after the base URL, each percent-encoded as needed
    /// (a zone name can never inject a `/`).
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
    /// What this is for, in messages: "read the TLSA records of NAME".
    pub action: String,
    /// Whether repeating the request after an unknown outcome is harmless.
    pub idempotent: bool,
    /// What to check on 404 (default: the zone name).
    pub not_found_hint: Option<String>,
}

impl ApiRequest {
    /// A request whose idempotency follows its method (POST and PATCH are
    /// not, until [`Self::idempotent`] says so).
    pub fn new(method: Method, segments: &[&str], action: impl Into<String>) -> Self {
        let idempotent = !matches!(method, Method::POST | Method::PATCH);
        ApiRequest {
            method,
            segments: segments.iter().map(|s| s.to_string()).collect(),
            query: Vec::new(),
            body: None,
            action: action.into(),
            idempotent,
            not_found_hint: None,
        }
    }

    pub fn get(segments: &[&str], action: impl Into<String>) -> Self {
        Self::new(Method::GET, segments, action)
    }

    pub fn query(mut self, key: &str, value: impl Into<String>) -> Self {
        self.query.push((key.to_string(), value.into()));
        self
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    pub fn not_found_hint(mut self, hint: impl Into<String>) -> Self {
        self.not_found_hint = Some(hint.into());
        self
    }
}

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// The request URL (without credentials), for messages.
    pub url: String,
}

/// A client of one provider API.
pub struct ApiClient {
    backend: String,
    base: Url,
    http: reqwest::Client,
    auth: Auth,
    options: HttpOptions,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("backend", &self.backend)
            .field("base", &redacted_url(&self.base))
            .field("auth_header", &self.auth.header)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for `backend` ("Cloudflare") at `base_url`.
    pub fn new(
        backend: &str,
        base_url: &str,
        auth: Auth,
        options: HttpOptions,
    ) -> Result<Self, DnsError> {
        // Not quoted: a URL that does not parse may carry `user:password@`.
        let base = Url::parse(base_url).map_err(|e| {
            DnsError::Config(format!(
                "{backend} API URL (not shown: it may hold credentials) is not a URL ({e}); write it like https://host/path"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(DnsError::Config(format!(
                "{backend} API URL {} must be an http:// or https:// URL",
                redacted_url(&base)
            )));
        }
        // The header value must be valid before any request is made.
        HeaderValue::from_str(&format!("{}{}", auth.prefix, auth.secret.expose())).map_err(
            |_| {
                DnsError::Config(format!(
                    "the {backend} credential holds characters an HTTP header cannot carry"
                ))
            },
        )?;
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .user_agent(concat!("tlsa/", env!("CARGO_PKG_VERSION")))
            // Never follow a redirect: reqwest drops `Authorization` on a
            // cross-host redirect but keeps custom headers such as PowerDNS's
            // `X-API-Key`, which would hand the credential to whatever host
            // the answer names. A 3xx is reported instead (status_error).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                DnsError::Config(format!("cannot set up the {backend} HTTP client: {e}"))
            })?;
        Ok(ApiClient {
            backend: backend.to_string(),
            base,
            http,
            auth,
            options,
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses `clock` for retry waits (tests pass a manual clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// The base URL, without credentials.
    pub fn base_url(&self) -> String {
        redacted_url(&self.base)
    }

    /// The URL of `request`.
    pub fn url(&self, request: &ApiRequest) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(&request.segments);
        }
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        url
    }

    /// Sends `request`, retrying per the policy; any non-2xx final answer
    /// becomes [`DnsError::Http`].
    pub async fn send(&self, request: &ApiRequest) -> Result<ApiResponse, DnsError> {
        let url = self.url(request);
        let shown = redacted_url(&url);
        let retry = self.options.retry;
        let attempts = retry.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= attempts;
            match self.once(request, url.clone()).await {
                Ok((status, _, body)) if status.is_success() => {
                    return Ok(ApiResponse {
                        status: status.as_u16(),
                        body,
                        url: shown,
                    });
                }
                Ok((status, headers, body)) => {
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || (status.is_server_error() && request.idempotent);
                    if retryable && !last {
                        let asked = retry_after(&headers, self.clock.now());
                        let wait = asked.unwrap_or_else(|| retry.backoff(attempt));
                        if wait <= retry.max_retry_after {
                            self.clock.sleep(wait).await;
                            continue;
                        }
                    }
                    return Err(
                        self.status_error(request, &shown, status, &headers, &body, attempt)
                    );
                }
                Err(error) => {
                    // A refused connection sent nothing; anything later may have
                    // reached the server.
                    let retryable = error.is_connect() || request.idempotent;
                    if retryable && !last {
                        self.clock.sleep(retry.backoff(attempt)).await;
                        continue;
                    }
                    return Err(self.transport_error(request, &shown, error, attempt));
                }
            }
        }
    }

    /// [`Self::send`], then decodes the JSON body as `T`.
    pub async fn json<T: DeserializeOwned>(&self, request: &ApiRequest) -> Result<T, DnsError> {
        let response = self.send(request).await?;
        self.decode(request, &response)
    }

    /// Decodes `response`'s JSON body as `T`, or says what is wrong with it.
    pub fn decode<T: DeserializeOwned>(
        &self,
        request: &ApiRequest,
        response: &ApiResponse,
    ) -> Result<T, DnsError> {
        serde_json::from_slice(&response.body)
            .map_err(|e| self.malformed(request, &response.url, e.to_string()))
    }

    /// An [`DnsError::ApiMalformed`] for `request`.
    pub fn malformed(&self, request: &ApiRequest, url: &str, why: String) -> DnsError {
        DnsError::ApiMalformed {
            backend: self.backend.clone(),
            action: request.action.clone(),
            url: url.to_string(),
            why: self.scrub(&why),
        }
    }

    /// One try: status, headers and (bounded) body.
    async fn once(
        &self,
        request: &ApiRequest,
        url: Url,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), reqwest::Error> {
        let mut builder = self
            .http
            .request(request.method.clone(), url)
            .header(
                self.auth.header,
                format!("{}{}", self.auth.prefix, self.auth.secret.expose()),
            )
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let mut response = builder.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = MAX_BODY.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room <= chunk.len() {
                break;
            }
        }
        Ok((status, headers, body))
    }

    fn status_error(
        &self,
        request: &ApiRequest,
        url: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        attempts: u32,
    ) -> DnsError {
        let messages = api_messages(body)
            .into_iter()
            .map(|m| self.scrub(&m))
            .collect();
        let code = status.as_u16();
        let tries = if attempts > 1 {
            format!(" (after {attempts} tries)")
        } else {
            String::new()
        };
        let hint = match code {
            401 | 403 => format!(
                "the API refused the credential: check {}",
                self.auth.hint
            ),
            404 => request
                .not_found_hint
                .clone()
                .unwrap_or_else(|| "check the zone name (and that the credential may see it)".into()),
            429 => match retry_after(headers, self.clock.now()) {
                Some(wait) => format!(
                    "rate limited by the API{tries}; it asks to wait {} s: run tlsa again later",
                    wait.as_secs()
                ),
                None => format!("rate limited by the API{tries}: run tlsa again later"),
            },
            500..=599 if request.idempotent => format!(
                "the provider has trouble{tries}: retry later, and check the provider's status page"
            ),
            500..=599 => "the provider has trouble, and the change may or may not have been applied: run tlsa again later (it reads before it writes)".into(),
            300..=399 => format!(
                "the API answered with a redirect to {}; tlsa does not follow redirects, so that the credential is never sent elsewhere: set the API URL to where the API really is",
                redirect_origin(url, headers)
            ),
            400 | 409 | 422 => "the API rejected the request: see its message".into(),
            _ => "see the API's message".into(),
        };
        DnsError::Http {
            backend: self.backend.clone(),
            action: request.action.clone(),
            url: url.to_string(),
            status: code,
            messages,
            hint,
        }
    }

    fn transport_error(
        &self,
        request: &ApiRequest,
        url: &str,
        error: reqwest::Error,
        attempts: u32,
    ) -> DnsError {
        let tries = if attempts > 1 {
            format!(" (after {attempts} tries)")
        } else {
            String::new()
        };
        let why = if error.is_timeout() {
            format!(
                "no answer within {} s{tries}",
                self.options.request_timeout.as_secs()
            )
        } else if error.is_connect() {
            format!("cannot connect{tries}: {}", error_chain(&error))
        } else {
            format!("{}{tries}", error_chain(&error))
        };
        let hint = if request.idempotent || error.is_connect() {
            "check the URL, that the API is up and reachable from here (firewall, proxy)".into()
        } else {
            "the change may or may not have been applied: run tlsa again (it reads before it writes), and check that the API is reachable".into()
        };
        DnsError::HttpUnreachable {
            backend: self.backend.clone(),
            action: request.action.clone(),
            url: url.to_string(),
            why: self.scrub(&why),
            hint,
        }
    }

    /// `text` with the secret blanked out, should an API ever echo it.
    fn scrub(&self, text: &str) -> String {
        let secret = self.auth.secret.expose();
        if secret.len() >= 4 {
            text.replace(secret, "<redacted>")
        } else {
            text.to_string()
        }
    }
}

/// The origin (scheme, host, port) a redirect's `Location` points at,
/// resolved against the request's `url`: where the API claims to be, without
/// the path or query, which might carry anything.
fn redirect_origin(url: &str, headers: &HeaderMap) -> String {
    let location = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok());
    let resolved = location.and_then(|l| Url::parse(url).ok()?.join(l).ok());
    match resolved {
        Some(target) => target.origin().ascii_serialization(),
        None => "an unreadable or missing Location".into(),
    }
}

/// `url` without user-info (user:password@), for messages.
pub fn redacted_url(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.to_string()
}

/// The error and its sources, without the URL (which may differ from the
/// redacted one shown).
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        source = e.source();
    }
    // reqwest prefixes "error sending request for url (…)": drop the URL.
    match text.find(" for url (") {
        Some(start) => match text[start..].find(')') {
            Some(end) => format!("{}{}", &text[..start], &text[start + end + 1..]),
            None => text,
        },
        None => text,
    }
}

/// How long the answer asks to wait (`Retry-After`: seconds or an HTTP date).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT` —
/// the RFC 2822 date syntax with the zone `GMT`, which the `time` crate parses.
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    use time::format_description::well_known::Rfc2822;
    if !text.trim_end().ends_with(" GMT") {
        return None;
    }
    let at = time::OffsetDateTime::parse(text.trim(), &Rfc2822).ok()?;
    let unix = u64::try_from(at.unix_timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(unix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let date = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            date.duration_since(SystemTime::UNIX_EPOCH).unwrap(),
            Duration::from_secs(784_111_777)
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 +0200"), None);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("soon"), None);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers, date), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            "Sun, 06 Nov 1994 08:50:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, date), Some(Duration::from_secs(60)));
    }

    #[test]
    fn secret_debug_is_redacted() {
        let secret = Secret::new("s3cr3t-token");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        let auth = Auth {
            header: "Authorization",
            prefix: "Bearer ",
            secret,
            hint: "the token".into(),
        };
        assert!(!format!("{auth:?}").contains("s3cr3t"));
        let client = ApiClient::new(
            "Test",
            "https://user:pw@api.example/v4",
            auth,
            HttpOptions::default(),
        )
        .unwrap();
        let debug = format!("{client:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("pw@"),
            "{debug}"
        );
    }

    #[test]
    fn secrets_load_from_files_and_env_without_leaking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  abc123\n").unwrap();
        let secret = SecretSource::File(path.clone()).load("token").unwrap();
        assert_eq!(secret.expose(), "abc123");

        std::fs::write(&path, "line1\nline2\n").unwrap();
        let err = SecretSource::File(path.clone())
            .load("token")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("several lines") && !err.contains("line1"),
            "{err}"
        );

        std::fs::write(&path, "\n").unwrap();
        let err = SecretSource::File(path)
            .load("token")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is empty"), "{err}");

        let missing = SecretSource::File(dir.path().join("nope"))
            .load("Cloudflare API token")
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("cannot load the Cloudflare API token from file "),
            "{missing}"
        );
        let unset = SecretSource::Env("TLSA_TEST_SURELY_UNSET_VAR".into())
            .load("key")
            .unwrap_err()
            .to_string();
        assert!(unset.contains("environment variable TLSA_TEST_SURELY_UNSET_VAR: it is not set"));
    }

    #[test]
    fn urls_are_built_from_encoded_segments() {
        let auth = Auth {
            header: "X-API-Key",
            prefix: "",
            secret: Secret::new("k"),
            hint: String::new(),
        };
        let client = ApiClient::new(
            "Test",
            "http://127.0.0.1:8081/",
            auth,
            HttpOptions::default(),
        )
        .unwrap();
        let request = ApiRequest::get(&["api", "v1", "zones", "a/b.example."], "x")
            .query("rrset_name", "_25._tcp.a.example.");
        assert_eq!(
            client.url(&request).as_str(),
            "http://127.0.0.1:8081/api/v1/zones/a%2Fb.example.?rrset_name=_25._tcp.a.example."
        );
        assert!(
            ApiClient::new(
                "Test",
                "ftp://x",
                client.auth.clone(),
                HttpOptions::default()
            )
            .is_err()
        );
        assert!(
            ApiClient::new(
                "Test",
                "not a url",
                client.auth.clone(),
                HttpOptions::default()
            )
            .is_err()
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            attempts: 10,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(3),
            max_retry_after: Duration::from_secs(60),
        };
        let waits: Vec<u64> = (1..=5)
            .map(|a| policy.backoff(a).as_millis() as u64)
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 3000, 3000]);
        assert_eq!(policy.backoff(400), Duration::from_secs(3));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut headers = HeaderMap::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        // RFC 9110's example date is 784111777 in Unix time.
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:47 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(10)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:00 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        for bad in [
            "soon",
            "-3",
            "Sun, 06 Nov 1994 08:49:47 CET",
            "Sun, 31 Feb 1994 08:49:47 GMT",
        ] {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(bad).unwrap());
            assert_eq!(retry_after(&headers, now), None, "{bad}");
        }
    }
}
