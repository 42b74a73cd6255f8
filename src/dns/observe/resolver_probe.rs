//! Does a recursive resolver pass DNSSEC data on? A stub or forwarder that
//! strips RRSIGs makes every anchored validation fail as if the zone were
//! broken; asking it for a DNSKEY RRset with DO set tells the two apart.

use std::net::SocketAddr;

use hickory_proto::rr::{Name, RecordType};

use super::dnssec::Anchors;
use crate::dns::DnsError;
use crate::dns::query::{self, Ask};

/// What the resolver returned for `ZONE DNSKEY` with DO set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolverDnssec {
    /// DNSKEY records with their RRSIGs.
    PassesSignatures,
    /// DNSKEY records without any RRSIG: the resolver strips DNSSEC.
    StripsSignatures,
    /// No DNSKEY answer at all (rcode and why), so nothing can be said.
    NoAnswer(String),
}

/// Asks `resolver` for the DNSKEY RRset of `zone` with DO set.
pub async fn probe(resolver: SocketAddr, zone: &Name) -> Result<ResolverDnssec, DnsError> {
    let response = query::ask(resolver, zone, RecordType::DNSKEY, Ask::recursive()).await?;
    let has = |rtype: RecordType| response.answers.iter().any(|r| r.record_type() == rtype);
    Ok(if !has(RecordType::DNSKEY) {
        ResolverDnssec::NoAnswer(format!(
            "{} answered {} with no DNSKEY for {zone}",
            resolver,
            query::rcode_name(response.response_code)
        ))
    } else if has(RecordType::RRSIG) {
        ResolverDnssec::PassesSignatures
    } else {
        ResolverDnssec::StripsSignatures
    })
}

/// What to do about a resolver that strips DNSSEC: a line short enough for
/// a monitoring summary, and the explanation.
pub fn strips_advice(resolver: SocketAddr, zone: &Name) -> (String, String) {
    (
        format!(
            "resolver {resolver} strips DNSSEC: use a validating one (unbound), resolver = or --resolver"
        ),
        format!(
            "{zone} DNSKEY came back from {resolver} without RRSIG records, so no answer it gives can validate and DNSSEC failures through it say nothing about the zone; run a validating resolver such as unbound on this host and point tlsa at it (`resolver =` in [dnssec], or --resolver)"
        ),
    )
}

/// A zone known to be signed: the one the trust anchors are for (the root
/// for the built-in KSKs; the owner of the first record of an anchor file).
/// Its DNSKEY RRset must come back with RRSIGs from any resolver fit for
/// validation, whatever the zone being checked.
pub fn anchor_zone(anchors: &Anchors) -> Name {
    let first_owner = match anchors {
        Anchors::RootKeys => None,
        Anchors::File(path) => std::fs::read_to_string(path).ok().and_then(|text| {
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with([';', '#']))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|owner| Name::from_ascii(owner).ok())
        }),
    };
    first_owner.map_or_else(Name::root, |mut name| {
        name.set_fqdn(true);
        name
    })
}
