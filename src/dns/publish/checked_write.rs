//! The checks around a write for back-ends that have no conditional write
//! (every HTTP API, zone files): which configured zone an owner is in, that
//! the RRset read just before the write is what the plan expected, and that
//! the RRset read back after it is what was written. Together they are the
//! compare-and-swap these back-ends can offer (see docs/design.md).

use std::collections::BTreeSet;

use hickory_proto::rr::Name;

use super::provider::RrsetChange;
use crate::dns::DnsError;
use crate::dns::rrset::Rdata;

/// The configured zone that holds `owner`: the longest one it is in.
pub fn configured_zone(zones: &[Name], owner: &Name) -> Option<Name> {
    zones
        .iter()
        .filter(|zone| zone.zone_of(owner))
        .max_by_key(|zone| zone.num_labels())
        .cloned()
}

/// An error for an owner outside every configured zone.
pub fn outside_zones(backend: &str, zones: &[Name], owner: &Name) -> DnsError {
    let list: Vec<String> = zones.iter().map(|z| z.to_string()).collect();
    DnsError::Config(format!(
        "{owner} is in none of the zones configured for the {backend} back-end ({}): add its zone to the configuration",
        list.join(", ")
    ))
}

/// `records` in presentation form, for messages: `{3 1 1 ab…, …}`.
pub fn records_text<'a, T: std::fmt::Display + 'a>(
    records: impl IntoIterator<Item = &'a T>,
) -> String {
    let list: Vec<String> = records.into_iter().map(|r| r.to_string()).collect();
    if list.is_empty() {
        "no records".into()
    } else {
        format!("{{{}}}", list.join(", "))
    }
}

/// Compare-and-swap for back-ends without conditional writes (every HTTP
/// API, zone files): before writing, the RRset read just now must be what
/// the plan expected, else [`DnsError::ChangedBeforeWrite`] (nothing is
/// written; [`crate::dns::apply_edits`] re-reads and re-plans).
pub fn expect_unchanged(
    backend: &str,
    change: &RrsetChange,
    found: &BTreeSet<Rdata>,
) -> Result<(), DnsError> {
    if *found == change.expected {
        Ok(())
    } else {
        Err(DnsError::ChangedBeforeWrite {
            backend: backend.to_string(),
            owner: change.owner.clone(),
            rtype: change.rtype,
            found: records_text(found),
        })
    }
}

/// After writing: the RRset read back must be exactly what was written
/// (records, and TTL unless deleted), else [`DnsError::WriteNotApplied`] when
/// it is still what was read before the write, or [`DnsError::ChangedAfterWrite`]:
/// another writer got in, and that is reported, never papered over.
pub fn expect_written(
    backend: &str,
    zone: &Name,
    change: &RrsetChange,
    found: &BTreeSet<Rdata>,
    found_ttl: Option<u32>,
) -> Result<(), DnsError> {
    let ttl_ok = change.desired.is_empty() || found_ttl == Some(change.ttl);
    if *found == change.desired && ttl_ok {
        return Ok(());
    }
    let wrote = format!("{} (TTL {})", records_text(&change.desired), change.ttl);
    let found_text = format!(
        "{}{}",
        records_text(found),
        found_ttl.map(|t| format!(" (TTL {t})")).unwrap_or_default()
    );
    // Exactly the RRset read before the write (checked unchanged just
    // before it): the write did nothing. Another writer restoring precisely
    // that content in between is far less likely than an API that claims
    // success without applying; a TTL-only change that did not take counts
    // here too.
    if *found == change.expected {
        return Err(DnsError::WriteNotApplied {
            backend: backend.to_string(),
            owner: change.owner.clone(),
            wrote,
            found: found_text,
        });
    }
    Err(DnsError::ChangedAfterWrite {
        backend: backend.to_string(),
        zone: zone.clone(),
        owner: change.owner.clone(),
        rtype: change.rtype,
        wrote,
        found: found_text,
    })
}
