//! DKIM verification of report mail (RFC 8460 §5.3: a report whose signature is not valid
//! is not to be trusted). mail-auth verifies (its aws-lc-rs build; no ring); the key
//! record is looked up through the configured resolver, which is the validating one: a
//! Bogus answer is a SERVFAIL there, so a forged key cannot verify a forged report.

use std::net::SocketAddr;
use std::time::Duration;

use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};

/// What became of a message's signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DkimVerdict {
    /// At least one signature verified; the signing domain (`d=`).
    Pass { domain: String },
    /// No DKIM-Signature header.
    Unsigned,
    /// Signatures there, none verified; the first one's reason.
    Fail { reason: String },
    /// The key could not be fetched now (a DNS timeout or SERVFAIL): try again later.
    TempError { reason: String },
    /// Not a mail (a file or an HTTPS POST): RFC 8460 asks DKIM of mail only.
    NotMail,
}

impl DkimVerdict {
    /// The short word stored with a report.
    pub fn label(&self) -> &'static str {
        match self {
            DkimVerdict::Pass { .. } => "pass",
            DkimVerdict::Unsigned => "none",
            DkimVerdict::Fail { .. } => "fail",
            DkimVerdict::TempError { .. } => "temperror",
            DkimVerdict::NotMail => "not-mail",
        }
    }

    pub fn passed(&self) -> bool {
        matches!(self, DkimVerdict::Pass { .. } | DkimVerdict::NotMail)
    }
}

/// A verifier bound to one resolver.
pub struct Verifier {
    authenticator: MessageAuthenticator,
}

impl Verifier {
    /// Looks keys up at `resolver` only (no system resolver, no fallback).
    pub fn new(resolver: SocketAddr) -> Result<Self, String> {
        let mut connections = vec![ConnectionConfig::udp(), ConnectionConfig::tcp()];
        for connection in &mut connections {
            connection.port = resolver.port();
        }
        let server = NameServerConfig::new(resolver.ip(), true, connections);
        let config = ResolverConfig::from_parts(None, vec![], vec![server]);
        let mut options = ResolverOpts::default();
        options.timeout = Duration::from_secs(3);
        options.attempts = 2;
        // Keys are re-read for each import run; a cache across runs buys nothing here and
        // would hide a key rotated away.
        options.cache_size = 64;
        let authenticator = MessageAuthenticator::new(config, options)
            .map_err(|e| format!("DKIM resolver {resolver}: {e}"))?;
        Ok(Verifier { authenticator })
    }

    /// Verifies `raw` (the whole message as received).
    pub async fn verify(&self, raw: &[u8]) -> DkimVerdict {
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            return DkimVerdict::Fail {
                reason: "the message cannot be parsed for DKIM".into(),
            };
        };
        if message.dkim_headers.is_empty() {
            return DkimVerdict::Unsigned;
        }
        let outputs = self.authenticator.verify_dkim(&message).await;
        let mut first_failure = None;
        let mut temporary = None;
        for output in &outputs {
            match output.result() {
                DkimResult::Pass => {
                    return DkimVerdict::Pass {
                        domain: output
                            .signature()
                            .map(|s| s.d.to_ascii_lowercase())
                            .unwrap_or_default(),
                    };
                }
                DkimResult::TempError(e) => {
                    temporary.get_or_insert_with(|| e.to_string());
                }
                DkimResult::Fail(e) | DkimResult::PermError(e) | DkimResult::Neutral(e) => {
                    first_failure.get_or_insert_with(|| e.to_string());
                }
                DkimResult::None => {}
            }
        }
        match (first_failure, temporary) {
            (Some(reason), _) => DkimVerdict::Fail { reason },
            (None, Some(reason)) => DkimVerdict::TempError { reason },
            (None, None) => DkimVerdict::Fail {
                reason: "no signature could be evaluated".into(),
            },
        }
    }
}
