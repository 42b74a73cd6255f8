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
}
