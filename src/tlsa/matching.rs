//! Matching a presented certificate chain against a TLSA RRset (RFC 6698
//! §2.1, RFC 7671 §5, RFC 7672 §3.1). The live checks and the roll engine
//! use this to decide whether a server is authenticated by what DNS serves.

use std::fmt;

use super::cert::Certificate;
use super::params::{Matching, Selector, Usage};
use super::record::{TlsaRecord, association_data};

/// What became of one record of the RRset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordVerdict {
    /// The record matches the certificate at `depth` (0 = leaf).
    Matched { depth: usize },
    /// The record is usable but matches no certificate it may constrain.
    NoMatch { reason: String },
    /// The record cannot be used at all and is ignored (RFC 7671 §4.1).
    Unusable { reason: String },
}

/// The verdict for a whole RRset against one presented chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchReport {
    /// Per record, in RRset order.
    pub records: Vec<(TlsaRecord, RecordVerdict)>,
}

/// Overall outcome of a [`MatchReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// At least one usable record matched.
    Authenticated,
    /// Usable records exist and none matched: a DANE client refuses the server.
    Mismatch,
    /// No usable record: RFC 7672 §2.2 — SMTP falls back to unauthenticated TLS.
    NoUsableRecords,
}

impl MatchReport {
    pub fn outcome(&self) -> Outcome {
        let verdicts = self.records.iter().map(|(_, v)| v);
        if verdicts
            .clone()
            .any(|v| matches!(v, RecordVerdict::Matched { .. }))
        {
            Outcome::Authenticated
        } else if verdicts
            .clone()
            .any(|v| matches!(v, RecordVerdict::NoMatch { .. }))
        {
            Outcome::Mismatch
        } else {
            Outcome::NoUsableRecords
        }
    }

    /// The first record that matched, with the depth of the certificate it matched.
    pub fn matched(&self) -> Option<(&TlsaRecord, usize)> {
        self.records.iter().find_map(|(r, v)| match v {
            RecordVerdict::Matched { depth } => Some((r, *depth)),
            _ => None,
        })
    }
}

impl fmt::Display for RecordVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordVerdict::Matched { depth: 0 } => f.write_str("matches the leaf certificate"),
            RecordVerdict::Matched { depth } => {
                write!(f, "matches the certificate at depth {depth} of the chain")
            }
            RecordVerdict::NoMatch { reason } => write!(f, "no match: {reason}"),
            RecordVerdict::Unusable { reason } => write!(f, "unusable: {reason}"),
        }
    }
}

/// Which client is matching: SMTP (RFC 7672) forbids the PKIX usages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Smtp,
    /// Other protocols: usages 0/1 would also need WebPKI validation, which
    /// this matcher does not do, so they are reported unusable too, with a
    /// different reason.
    Generic,
}

/// Matches `chain` (leaf first, as presented) against every record of `rrset`.
///
/// Usage 3 looks at the leaf only, ignoring names and dates (RFC 7672 §3.1.1).
/// Usage 2 looks at the certificates after the leaf (RFC 7671 §5.2.2); the
/// signature path from that anchor to the leaf and the name checks are the
/// caller's job (live checks), this function finds the anchor.
pub fn match_chain(chain: &[Certificate], rrset: &[TlsaRecord], profile: Profile) -> MatchReport {
    MatchReport {
        records: rrset
            .iter()
            .map(|record| (record.clone(), judge(chain, record, profile)))
            .collect(),
    }
}

fn judge(chain: &[Certificate], record: &TlsaRecord, profile: Profile) -> RecordVerdict {
    let unusable = |reason: String| RecordVerdict::Unusable { reason };
    let (Some(usage), Some(selector), Some(matching)) =
        (record.usage(), record.selector(), record.matching())
    else {
        return unusable(format!(
            "unknown parameters {} {} {}",
            record.usage, record.selector, record.matching
        ));
    };
    if let Some(len) = matching.digest_len()
        && record.data.len() != len
    {
        return unusable(format!(
            "{} data must be {len} bytes, the record has {}",
            matching.mnemonic(),
            record.data.len()
        ));
    }
    let candidates: Vec<(usize, &Certificate)> = match usage {
        Usage::PkixTa | Usage::PkixEe => {
            return unusable(match profile {
                Profile::Smtp => format!(
                    "usage {} ({}) is not used by SMTP clients (RFC 7672 §3.1)",
                    usage.number(),
                    usage.mnemonic()
                ),
                Profile::Generic => format!(
                    "usage {} ({}) needs WebPKI validation, which this check does not do",
                    usage.number(),
                    usage.mnemonic()
                ),
            });
        }
        Usage::DaneEe => chain.iter().enumerate().take(1).collect(),
        Usage::DaneTa => chain.iter().enumerate().skip(1).collect(),
    };
    if candidates.is_empty() {
        return RecordVerdict::NoMatch {
            reason: match usage {
                Usage::DaneTa => {
                    "the server presented no issuer certificate to anchor a usage 2 record".into()
                }
                _ => "the server presented no certificate".into(),
            },
        };
    }
    for (depth, cert) in &candidates {
        if association_data(matching, selected(cert, selector)) == record.data {
            return RecordVerdict::Matched { depth: *depth };
        }
    }
    RecordVerdict::NoMatch {
        reason: describe_miss(&candidates, usage, selector, matching),
    }
}

fn selected(cert: &Certificate, selector: Selector) -> &[u8] {
    match selector {
        Selector::Cert => cert.der(),
        Selector::Spki => cert.spki(),
    }
}

/// Says what the presented certificates would have needed, so an operator
/// can see which key is live and which record is stale.
fn describe_miss(
    candidates: &[(usize, &Certificate)],
    usage: Usage,
    selector: Selector,
    matching: Matching,
) -> String {
    let presented: Vec<String> = candidates
        .iter()
        .map(|(depth, cert)| {
            let data = hex::encode(association_data(matching, selected(cert, selector)));
            let shown = if data.len() > 64 {
                &data[..64]
            } else {
                &data[..]
            };
            format!("depth {depth} ({}) has {shown}", cert.subject)
        })
        .collect();
    let what = if usage == Usage::DaneEe {
        "the leaf"
    } else {
        "no issuer certificate matches;"
    };
    format!("{what} {}", presented.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    /// A CA and a leaf it signed, as DER certificates.
    fn chain() -> Vec<Certificate> {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["mail.example.com".into()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        vec![
            Certificate::from_der(leaf.der()).unwrap(),
            Certificate::from_der(ca.der()).unwrap(),
        ]
    }

    fn record(
        usage: Usage,
        selector: Selector,
        matching: Matching,
        cert: &Certificate,
    ) -> TlsaRecord {
        TlsaRecord::compute(usage, selector, matching, selected(cert, selector))
    }

    #[test]
    fn usage_3_matches_the_leaf_only() {
        let chain = chain();
        let leaf = record(Usage::DaneEe, Selector::Spki, Matching::Sha256, &chain[0]);
        let ca_as_ee = record(Usage::DaneEe, Selector::Spki, Matching::Sha256, &chain[1]);
        let report = match_chain(&chain, &[ca_as_ee, leaf.clone()], Profile::Smtp);
        assert_eq!(report.outcome(), Outcome::Authenticated);
        assert_eq!(report.matched(), Some((&leaf, 0)));
        let RecordVerdict::NoMatch { reason } = &report.records[0].1 else {
            panic!("{:?}", report.records[0]);
        };
        let expected = hex::encode(association_data(Matching::Sha256, chain[0].spki()));
        assert!(reason.contains(&expected), "{reason}");
    }

    #[test]
    fn usage_2_matches_an_issuer_never_the_leaf() {
        let chain = chain();
        let ta = record(Usage::DaneTa, Selector::Cert, Matching::Sha512, &chain[1]);
        let report = match_chain(&chain, std::slice::from_ref(&ta), Profile::Smtp);
        assert_eq!(report.matched(), Some((&ta, 1)));
        let leaf_as_ta = record(Usage::DaneTa, Selector::Spki, Matching::Sha256, &chain[0]);
        let report = match_chain(&chain, &[leaf_as_ta], Profile::Smtp);
        assert_eq!(report.outcome(), Outcome::Mismatch);
        let only_leaf = match_chain(&chain[..1], &[ta], Profile::Smtp);
        let (_, verdict) = &only_leaf.records[0];
        assert!(
            verdict.to_string().contains("no issuer certificate"),
            "{verdict}"
        );
    }

    #[test]
    fn pkix_usages_and_malformed_records_are_unusable() {
        let chain = chain();
        let pkix = record(Usage::PkixEe, Selector::Spki, Matching::Sha256, &chain[0]);
        let short = TlsaRecord {
            usage: 3,
            selector: 1,
            matching: 1,
            data: vec![1, 2, 3],
        };
        let unknown = TlsaRecord {
            usage: 3,
            selector: 7,
            matching: 1,
            data: vec![0; 32],
        };
        let report = match_chain(&chain, &[pkix, short, unknown], Profile::Smtp);
        assert_eq!(report.outcome(), Outcome::NoUsableRecords);
        assert!(report.records[0].1.to_string().contains("RFC 7672"));
        assert!(report.records[1].1.to_string().contains("32 bytes"));
        assert!(
            report.records[2]
                .1
                .to_string()
                .contains("unknown parameters")
        );
    }

    #[test]
    fn full_data_and_full_certificate_forms_match() {
        let chain = chain();
        let full_spki = record(Usage::DaneEe, Selector::Spki, Matching::Full, &chain[0]);
        let full_cert = record(Usage::DaneEe, Selector::Cert, Matching::Sha256, &chain[0]);
        for r in [full_spki, full_cert] {
            assert_eq!(
                match_chain(&chain, &[r], Profile::Generic).outcome(),
                Outcome::Authenticated
            );
        }
    }
}
