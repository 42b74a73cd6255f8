//! Finding the zone that holds a name, through a recursive resolver.

use std::net::SocketAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::dns::DnsError;
use crate::dns::query::{self, Ask};

/// The zone of `name`: the owner of the SOA in the answer (when `name` is an
/// apex) or in the authority section (NXDOMAIN / NODATA), as the resolver
/// returns it for `name SOA`.
pub async fn zone_via_resolver(resolver: SocketAddr, name: &Name) -> Result<Name, DnsError> {
    let response = query::ask(resolver, name, RecordType::SOA, Ask::recursive()).await?;
    if !matches!(
        response.response_code,
        ResponseCode::NoError | ResponseCode::NXDomain
    ) {
        return Err(DnsError::Rcode {
            server: resolver,
            question: format!("{name} SOA"),
            rcode: response.response_code.to_string(),
            hint: ": the resolver cannot tell which zone holds this name; check that it can reach the zone's servers (and that the zone validates)".into(),
        });
    }
    response
        .answers
        .iter()
        .chain(response.authorities.iter())
        .find(|r| matches!(r.data, RData::SOA(_)))
        .map(|r| r.name.clone())
        .ok_or_else(|| DnsError::Malformed {
            server: resolver,
            question: format!("{name} SOA"),
            why: "no SOA record in the answer or authority section".into(),
        })
}
