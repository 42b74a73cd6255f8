//! DNS-01 challenge records (RFC 8555 §8.4): `_acme-challenge.HOST` TXT,
//! owned whole by tlsa while an order is in flight, published and removed
//! through [`Publication`] — so the CA is only asked to look once every
//! authoritative server serves the record, and a record left by a run that
//! was killed is removed by the next one.

use std::collections::BTreeMap;

use hickory_proto::rr::Name;

use super::AcmeError;
use crate::dns::publication::{Owned, Publication};
use crate::dns::{Rdata, RrType, RrsetId, Txt};

/// The TTL of challenge records: resolvers should not keep them.
pub const CHALLENGE_TTL: u32 = 60;

/// `_acme-challenge.HOST` for `HOST` or `*.HOST` (RFC 8555 §8.4: the
/// wildcard's label is not part of the name).
pub fn challenge_owner(host: &str) -> Result<Name, AcmeError> {
    let host = host.trim_end_matches('.');
    let base = host.strip_prefix("*.").unwrap_or(host);
    Name::from_ascii(format!("_acme-challenge.{base}."))
        .map_err(|e| AcmeError::Challenge(format!("{host:?} is not a host name: {e}")))
}

/// Publishes and removes challenge records in one zone.
pub struct Challenges<'a> {
    pub publication: &'a Publication<'a>,
    pub ttl: u32,
}

impl Challenges<'_> {
    /// Makes each owner hold exactly its values (a host and its wildcard
    /// share one owner), confirmed everywhere.
    pub async fn publish(&self, values: &BTreeMap<Name, Vec<String>>) -> Result<(), AcmeError> {
        let owned: Vec<Owned> = values
            .iter()
            .map(|(owner, values)| {
                let records = values.iter().map(|v| Rdata::Txt(Txt::from_text(v)));
                Owned::new(RrsetId::new(owner.clone(), RrType::Txt), records, self.ttl)
            })
            .collect();
        self.publication
            .publish(&owned)
            .await
            .map(drop)
            .map_err(|e| AcmeError::Challenge(format!("publishing the DNS-01 challenge: {e}")))
    }

    /// Removes the challenge records at `owners`, confirmed everywhere.
    pub async fn clear(&self, owners: &[Name]) -> Result<(), AcmeError> {
        let gone: Vec<Owned> = owners
            .iter()
            .map(|o| Owned::absent(RrsetId::new(o.clone(), RrType::Txt)))
            .collect();
        self.publication
            .publish(&gone)
            .await
            .map(drop)
            .map_err(|e| AcmeError::Challenge(format!("removing the DNS-01 challenge: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wildcard_label_is_not_part_of_the_owner() {
        let plain = challenge_owner("mail.example.com").unwrap();
        assert_eq!(plain.to_string(), "_acme-challenge.mail.example.com.");
        assert_eq!(challenge_owner("*.mail.example.com").unwrap(), plain);
        assert_eq!(challenge_owner("mail.example.com.").unwrap(), plain);
        assert!(challenge_owner("bad..name").is_err());
    }
}
