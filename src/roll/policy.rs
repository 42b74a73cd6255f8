//! Record policy: which TLSA records a key gets at each owner name.

use std::collections::BTreeSet;

use crate::tlsa::{Matching, Selector, TlsaRecord, Usage};

/// The records published for every end-entity key, `3 1 1` by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPolicy {
    /// Matching types for `3 1 x` records; SHA-256 and SHA-512 are kept in
    /// lockstep when both are listed (RFC 7671 §9: a client may use only the
    /// strongest digest it supports, so both must always describe the same keys).
    pub matching: Vec<Matching>,
    /// Fixed records for trust anchors (`2 1 1` of a CA's intermediates),
    /// published alongside the keys and never rolled.
    pub issuer_records: BTreeSet<TlsaRecord>,
}

/// Some senders stop reading TLSA RRsets past this size.
pub const MAX_RECOMMENDED_RECORDS: usize = 12;

impl Default for RecordPolicy {
    fn default() -> Self {
        RecordPolicy {
            matching: vec![Matching::Sha256],
            issuer_records: BTreeSet::new(),
        }
    }
}

impl RecordPolicy {
    /// The end-entity records for one key (its DER SubjectPublicKeyInfo).
    pub fn records_for_key(&self, spki: &[u8]) -> BTreeSet<TlsaRecord> {
        self.matching
            .iter()
            .map(|&m| TlsaRecord::compute(Usage::DaneEe, Selector::Spki, m, spki))
            .collect()
    }

    /// Every `3 1 x` record a key may have, whatever the policy says now: a
    /// key's records are recognised and removed even after its matching
    /// types changed in the config.
    pub fn all_records_for_key(spki: &[u8]) -> BTreeSet<TlsaRecord> {
        [Matching::Full, Matching::Sha256, Matching::Sha512]
            .into_iter()
            .map(|m| TlsaRecord::compute(Usage::DaneEe, Selector::Spki, m, spki))
            .collect()
    }

    /// Records of `spki` served that the policy no longer lists (a matching
    /// type removed from the config).
    pub fn stale_records_for_key(
        &self,
        spki: &[u8],
        served: &BTreeSet<TlsaRecord>,
    ) -> BTreeSet<TlsaRecord> {
        let current = self.records_for_key(spki);
        Self::all_records_for_key(spki)
            .into_iter()
            .filter(|r| served.contains(r) && !current.contains(r))
            .collect()
    }

    /// The whole RRset for a set of keys.
    pub fn rrset_for_keys<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a [u8]>,
    ) -> BTreeSet<TlsaRecord> {
        keys.into_iter()
            .flat_map(|spki| self.records_for_key(spki))
            .chain(self.issuer_records.iter().cloned())
            .collect()
    }
}

/// Whether every DANE client can match `spki` against `served`: a client
/// uses only the strongest digest it supports among the `3 1 x` records
/// present (RFC 7671 §9), so for each digest type present the key must have
/// a record of that type; and at least one record of the key must be there.
/// A matching type added for every key in one change keeps this true
/// throughout, which is why a policy change is not an emergency.
pub fn key_usable(spki: &[u8], served: &BTreeSet<TlsaRecord>) -> bool {
    let mine = RecordPolicy::all_records_for_key(spki);
    if !served.iter().any(|r| mine.contains(r)) {
        return false;
    }
    let digests: BTreeSet<u8> = served
        .iter()
        .filter(|r| r.usage == 3 && r.selector == 1 && r.matching != 0)
        .map(|r| r.matching)
        .collect();
    digests
        .iter()
        .all(|&m| mine.iter().any(|r| r.matching == m && served.contains(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockstep_digests_per_key() {
        let policy = RecordPolicy {
            matching: vec![Matching::Sha256, Matching::Sha512],
            ..RecordPolicy::default()
        };
        let records = policy.rrset_for_keys([b"key one".as_slice(), b"key two".as_slice()]);
        assert_eq!(records.len(), 4);
        assert_eq!(records.iter().filter(|r| r.matching == 2).count(), 2);
        assert!(records.iter().all(|r| r.usage == 3 && r.selector == 1));
    }

    #[test]
    fn a_key_is_usable_only_under_every_digest_present() {
        let sha256 = RecordPolicy::default();
        let both = RecordPolicy {
            matching: vec![Matching::Sha256, Matching::Sha512],
            ..RecordPolicy::default()
        };
        let (a, b) = (b"key a".as_slice(), b"key b".as_slice());
        let only_256 = sha256.rrset_for_keys([a, b]);
        assert!(key_usable(a, &only_256));
        let lockstep = both.rrset_for_keys([a, b]);
        assert!(key_usable(a, &lockstep) && key_usable(b, &lockstep));
        // b has a 3 1 2 record, a does not: a SHA-512 client cannot match a.
        let mut broken = only_256.clone();
        broken.extend(both.records_for_key(b));
        assert!(!key_usable(a, &broken));
        assert!(!key_usable(b"key c", &lockstep));
    }
}
