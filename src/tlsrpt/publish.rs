//! The reporting record published for each policy domain, through the
//! zone's back-end the roll uses ([`Engine::publication_for`]): refused
//! unless the zone validates Secure, one compare-and-swap change, confirmed
//! on every authoritative server and validated again. The RRset is edited
//! whole: every record beginning `v=TLSRPTv1` is replaced by exactly one
//! (RFC 8460 §3: with more than one, senders use none), unrelated TXT
//! records at the name are kept. A served RRset that already matches (same
//! records and TTL) gets no UPDATE.

use std::time::Duration;

use crate::config::tlsrpt::Tlsrpt;
use crate::dns::publication::{edit_from, replace_tagged_txt};
use crate::dns::rrset::{RrType, RrsetId, Txt};
use crate::roll::executor::{Engine, EngineError};

use super::record;

/// What happened to one domain's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The served RRset already holds exactly the record (no UPDATE sent).
    Unchanged,
    /// `--dry-run`: a change would be sent.
    WouldPublish,
    /// Changed, and confirmed on every authoritative server, Secure.
    Published,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Unchanged => "unchanged",
            Action::WouldPublish => "would publish",
            Action::Published => "published",
        }
    }
}

/// Why one domain's record could not be published.
#[derive(Debug, Clone)]
pub struct Failed {
    pub message: String,
    /// The config's fault (no zone holds the name, a bad name): exit 2.
    pub config: bool,
}

/// One policy domain's outcome.
#[derive(Debug, Clone)]
pub struct DomainRecord {
    pub domain: String,
    /// The record's text.
    pub text: String,
    pub result: Result<Action, Failed>,
}

/// Publishes (or with `dry_run` only compares) the record of every policy
/// domain of the engine's config, one after the other; nothing when `rua`
/// is not configured.
pub async fn publish_all(engine: &Engine, dry_run: bool, timeout: Duration) -> Vec<DomainRecord> {
    let config = engine.config();
    let Some(settings) = config.tlsrpt.as_ref().filter(|t| !t.rua.is_empty()) else {
        return Vec::new();
    };
    let text = record::text(&settings.rua);
    let mut done = Vec::new();
    for domain in config.tlsrpt_domains() {
        let result = publish_one(engine, settings, &domain, &text, dry_run, timeout).await;
        done.push(DomainRecord {
            domain,
            text: text.clone(),
            result,
        });
    }
    done
}

async fn publish_one(
    engine: &Engine,
    settings: &Tlsrpt,
    domain: &str,
    text: &str,
    dry_run: bool,
    timeout: Duration,
) -> Result<Action, Failed> {
    let owner = record::owner(domain).map_err(|message| Failed {
        message,
        config: true,
    })?;
    let publication = engine
        .publication_for(&owner, timeout)
        .map_err(|e| Failed {
            config: matches!(e, EngineError::Config(_)),
            message: format!("tls-rpt {domain}: {e}"),
        })?;
    let runtime = |e: &dyn std::fmt::Display| Failed {
        message: format!("tls-rpt {domain}: {e}"),
        config: false,
    };
    let id = RrsetId::new(owner, RrType::Txt);
    let before = publication
        .provider
        .read(publication.zone, &id)
        .await
        .map_err(|e| runtime(&e))?;
    let records = replace_tagged_txt(&before, record::VERSION, Some(Txt::from_text(text)));
    let wanted = edit_from(&before, records, settings.ttl);
    let matches =
        wanted.add.is_empty() && wanted.remove.is_empty() && before.ttl == Some(settings.ttl);
    if dry_run {
        return Ok(if matches {
            Action::Unchanged
        } else {
            Action::WouldPublish
        });
    }
    // Also when it matches: confirmed on every server and Secure, so that
    // "unchanged" means served everywhere, not only by the primary.
    let confirmed = publication
        .publish_edits(std::slice::from_ref(&wanted))
        .await
        .map_err(|e| runtime(&e))?;
    Ok(if confirmed.changed {
        Action::Published
    } else {
        Action::Unchanged
    })
}
