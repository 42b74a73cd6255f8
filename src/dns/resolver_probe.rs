//! Does a recursive resolver pass DNSSEC data on? A stub or forwarder that
//! strips RRSIGs makes every anchored validation fail as if the zone were
//! broken; asking it for a DNSKEY RRset with DO set tells the two apart.

use std::net::SocketAddr;

use hickory_proto::rr::{Name, RecordType};

use super::DnsError;
use super::query::{self, Ask};

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

/// What to do about a resolver that strips DNSSEC, for messages.
pub fn strips_advice(resolver: SocketAddr, zone: &Name) -> String {
    format!(
        "the resolver {resolver} returns {zone} DNSKEY without RRSIG records: it does not pass DNSSEC on, so nothing it answers can validate (the zone may be fine); use a validating resolver such as unbound on this host and set `resolver =` in [dnssec] (or --resolver)"
    )
}
