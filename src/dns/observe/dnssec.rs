//! Whether a TLSA RRset (or its absence) validates under DNSSEC.
//!
//! Two ways to decide, chosen by configuration:
//!
//! - **Anchored** ([`Validator::anchored`]): this tool validates, with
//!   hickory's `DnssecDnsHandle`, every answer it gets from a recursive
//!   resolver, from trust anchors: the root KSKs by default, or an anchor
//!   file holding DNSKEY and/or DS lines. The resolver only carries data; a
//!   forged answer, or a resolver that lies about validation, is caught.
//! - **Resolver AD bit** ([`Validator::resolver_ad`]): trust the AD bit of a
//!   local validating resolver. **Weaker**: it trusts that resolver, its
//!   trust anchors, and the path to it (anyone on the path can set AD). Use
//!   it only with a resolver on the same host or a protected link.
//!
//! Verdicts ([`Verdict`]): Secure, Insecure, Bogus, Indeterminate, with a
//! reason a person can act on. Only Secure is acceptable for changes
//! ([`Validation::is_acceptable_for_changes`]); DANE itself needs Secure.
//!
//! **SERVFAIL from the resolver.** A validating resolver answers SERVFAIL both
//! when the data failed validation and when it could not reach the zone's
//! servers. With an Extended DNS Error (RFC 8914) naming a DNSSEC failure
//! (codes 6–12: DNSSEC Bogus, Signature Expired, Signature Not Yet Valid,
//! DNSKEY Missing, RRSIGs Missing, No Zone Key Bit Set, NSEC Missing) the
//! verdict is **Bogus**; otherwise (no EDE, or e.g. 22 No Reachable
//! Authority) it is **Indeterminate**: it is no evidence of tampering, and
//! neither verdict allows changes. The reason names the SERVFAIL and its EDE.
//!
//! **Why one file (about 670 lines of code):** both ways of deciding end in
//! the same four verdicts through the same rules for negative answers,
//! SERVFAIL and Extended DNS Errors, the same cache and the same bound on
//! concurrent validations. Split by mode, those shared rules would have to
//! be imported back by both halves, and a change to one verdict could reach
//! one mode and not the other.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_net::NetError;
use hickory_net::dnssec::DnssecDnsHandle;
use hickory_net::xfer::{DnsHandle, FirstAnswer};
use hickory_proto::dnssec::{Proof, TrustAnchors};
use hickory_proto::op::{DnsRequestOptions, DnsResponse, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};

pub use super::anchors::load_anchor_file;
use super::extended_error::{ExtendedError, extended_errors};
use crate::dns::DnsError;
use crate::dns::query::{self, Ask, FreshSocketsHandle};
use crate::dns::query::{AnswerKind, rcode_name, seconds};
use crate::dns::rdata;
use crate::dns::rrset::{Rdata, RrType, Rrset, RrsetId};
use crate::tlsa::TlsaRecord;
use futures_util::StreamExt;

/// The DNSSEC status of an answer (RFC 4035 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Validated from a trust anchor.
    Secure,
    /// Provably not signed (an unsigned zone below a signed delegation):
    /// valid DNS, but no DANE.
    Insecure,
    /// Should validate and does not: forged, broken signatures, wrong anchor.
    Bogus,
    /// Could not be decided (no answer, resolver failure without evidence).
    Indeterminate,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Secure => "Secure",
            Verdict::Insecure => "Insecure",
            Verdict::Bogus => "Bogus",
            Verdict::Indeterminate => "Indeterminate",
        })
    }
}

impl Verdict {
    /// The verdict as the JSON reports of `tlsa check` and `tlsa sts check` name it.
    pub fn json_name(self) -> &'static str {
        match self {
            Verdict::Secure => "secure",
            Verdict::Insecure => "insecure",
            Verdict::Bogus => "bogus",
            Verdict::Indeterminate => "indeterminate",
        }
    }

    pub(crate) fn from_proof(proof: Proof) -> Verdict {
        match proof {
            Proof::Secure => Verdict::Secure,
            Proof::Insecure => Verdict::Insecure,
            Proof::Bogus => Verdict::Bogus,
            _ => Verdict::Indeterminate,
        }
    }

    /// How bad a verdict is when several records must all be Secure.
    fn badness(self) -> u8 {
        match self {
            Verdict::Secure => 0,
            Verdict::Insecure => 1,
            Verdict::Indeterminate => 2,
            Verdict::Bogus => 3,
        }
    }
}

/// The verdict on one RRset (a TLSA RRset for DANE; TXT and MX for the
/// features that publish those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    pub owner: Name,
    pub verdict: Verdict,
    /// Why, in words that say what to check.
    pub reason: String,
    /// How the answer was shaped; `None` when there was no usable answer
    /// (SERVFAIL, timeout).
    pub answer: Option<AnswerKind>,
    /// The RRset as answered (empty for negative or failed answers); TTL as
    /// the resolver gave it.
    pub rrset: Rrset,
    /// How the verdict was reached, e.g. `anchored (file …) via resolver …`.
    pub method: String,
}

impl Validation {
    /// Only a Secure answer (positive or negative) may be acted upon.
    pub fn is_acceptable_for_changes(&self) -> bool {
        self.verdict == Verdict::Secure
    }

    pub fn records(&self) -> &BTreeSet<Rdata> {
        &self.rrset.records
    }

    /// The TLSA records of the answer.
    pub fn tlsa(&self) -> BTreeSet<TlsaRecord> {
        self.rrset.tlsa()
    }
}

impl fmt::Display for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.owner, self.rrset.rtype, self.verdict)?;
        if let Some(answer) = self.answer {
            write!(f, " ({answer})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Where the trust anchors of [`Validator::anchored`] come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchors {
    /// The root zone's KSKs built into hickory (`TrustAnchors::default()`).
    RootKeys,
    /// A file of DNSKEY and/or DS records in zone-file syntax (a BIND
    /// `K*.key` file, unbound's `trust-anchor-file`, `dnssec-dsfromkey`
    /// output). DS lines are resolved to the DNSKEYs they hash.
    File(PathBuf),
}

impl fmt::Display for Anchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anchors::RootKeys => f.write_str("the root KSKs"),
            Anchors::File(path) => write!(f, "trust anchor file {}", path.display()),
        }
    }
}

/// Owners of one change validated concurrently.
const VALIDATIONS_AT_ONCE: usize = 8;

/// Default bound on one whole validation (it takes several questions:
/// DNSKEY, DS, NS of each zone on the chain).
pub const DEFAULT_VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a validation result is reused (bounded further by the
/// RRset's TTL): what a validating resolver would cache, and short enough
/// that a chain broken meanwhile is noticed within a minute.
const VALIDATION_CACHE_LIFE: Duration = Duration::from_secs(60);
/// A failed validation is retried this soon: the operator may be fixing it.
const FAILED_VALIDATION_CACHE_LIFE: Duration = Duration::from_secs(2);

#[derive(Clone)]
enum Mode {
    /// One validating handle for the validator's life: a zone's DNSKEY
    /// RRset and the chain above it are verified once, not once per owner
    /// and step (ECDSA verification was most of a large run's CPU time).
    /// Every answer is still fetched from the resolver; a changed RRset or
    /// signature is a cache miss.
    Anchored {
        anchors: Arc<TrustAnchors>,
        handle: DnssecDnsHandle<FreshSocketsHandle>,
    },
    ResolverAd,
}

fn validating_handle(
    resolver: SocketAddr,
    anchors: &Arc<TrustAnchors>,
    question_timeout: Duration,
) -> DnssecDnsHandle<FreshSocketsHandle> {
    DnssecDnsHandle::with_trust_anchor(
        FreshSocketsHandle::new(resolver, question_timeout),
        anchors.clone(),
    )
    .positive_validation_ttl(Duration::ZERO..=VALIDATION_CACHE_LIFE)
    .negative_validation_ttl(Duration::ZERO..=FAILED_VALIDATION_CACHE_LIFE)
}

/// What every publisher asks before and after a change: these RRsets,
/// validated. The seam tests replace.
#[async_trait::async_trait]
pub trait ValidateRrsets: Send + Sync {
    /// One validation per RRset, in the order given.
    async fn validate_all(&self, ids: &[RrsetId]) -> Vec<Validation>;
}

#[async_trait::async_trait]
impl ValidateRrsets for Validator {
    async fn validate_all(&self, ids: &[RrsetId]) -> Vec<Validation> {
        Validator::validate_all(self, ids).await
    }
}

/// Validates TLSA answers; see the module documentation for the two modes.
#[derive(Clone)]
pub struct Validator {
    resolver: SocketAddr,
    mode: Mode,
    method: String,
    /// One question to the resolver.
    question_timeout: Duration,
    /// One whole validation.
    timeout: Duration,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("method", &self.method)
            .finish()
    }
}

impl Validator {
    /// Validates itself from `anchors`, asking the recursive resolver at
    /// `resolver` for the data. An anchor file with DS lines needs the
    /// resolver now, to fetch the DNSKEYs they hash; a DS line that matches
    /// no DNSKEY of its zone is refused.
    pub async fn anchored(resolver: SocketAddr, anchors: &Anchors) -> Result<Validator, DnsError> {
        let trust = match anchors {
            Anchors::RootKeys => TrustAnchors::default(),
            Anchors::File(path) => load_anchor_file(path, resolver, query::DEFAULT_TIMEOUT).await?,
        };
        let anchors_text = anchors.to_string();
        let anchors = Arc::new(trust);
        Ok(Validator {
            resolver,
            mode: Mode::Anchored {
                handle: validating_handle(resolver, &anchors, query::DEFAULT_TIMEOUT),
                anchors,
            },
            method: format!("validated from {anchors_text} via resolver {resolver}"),
            question_timeout: query::DEFAULT_TIMEOUT,
            timeout: DEFAULT_VALIDATION_TIMEOUT,
        })
    }

    /// Trusts the AD bit of the validating resolver at `resolver`. Weaker
    /// than [`Self::anchored`]: see the module documentation.
    pub fn resolver_ad(resolver: SocketAddr) -> Validator {
        Validator {
            resolver,
            mode: Mode::ResolverAd,
            method: format!(
                "AD bit of resolver {resolver} (trusts that resolver and the path to it)"
            ),
            question_timeout: query::DEFAULT_TIMEOUT,
            timeout: DEFAULT_VALIDATION_TIMEOUT,
        }
    }

    /// Bounds for one question and for one whole validation.
    pub fn with_timeouts(mut self, question: Duration, whole: Duration) -> Self {
        self.question_timeout = question;
        self.timeout = whole;
        if let Mode::Anchored { anchors, handle } = &mut self.mode {
            *handle = validating_handle(self.resolver, anchors, question);
        }
        self
    }

    /// How this validator decides, for reports.
    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn resolver(&self) -> SocketAddr {
        self.resolver
    }

    /// The verdict on the RRset `id`: positive or negative (NODATA,
    /// NXDOMAIN) answers alike. Never fails: a failure to get an answer is
    /// an Indeterminate verdict saying why.
    pub async fn validate(&self, id: &RrsetId) -> Validation {
        let outcome = tokio::time::timeout(self.timeout, self.decide(id)).await;
        self.validation(id, outcome)
    }

    /// [`Self::validate`] for several RRsets (of one change), a few at a
    /// time, in the order given.
    pub async fn validate_all(&self, ids: &[RrsetId]) -> Vec<Validation> {
        // Owned names: a closure over borrowed ones makes this future
        // unusable in spawned tasks (a higher-ranked lifetime rustc cannot prove).
        futures_util::stream::iter(ids.to_vec())
            .map(|id| async move { self.validate(&id).await })
            .buffered(VALIDATIONS_AT_ONCE)
            .collect()
            .await
    }

    /// The verdict on the TLSA RRset at `owner`.
    pub async fn validate_tlsa(&self, owner: &Name) -> Validation {
        self.validate(&RrsetId::tlsa(owner.clone())).await
    }

    /// [`Self::validate_tlsa`] for several owners.
    pub async fn validate_tlsa_all(&self, owners: &[Name]) -> Vec<Validation> {
        let ids: Vec<RrsetId> = owners.iter().cloned().map(RrsetId::tlsa).collect();
        self.validate_all(&ids).await
    }

    fn validation(
        &self,
        id: &RrsetId,
        outcome: Result<Decision, tokio::time::error::Elapsed>,
    ) -> Validation {
        let owner = &id.owner;
        let (verdict, reason, answer, rrset) = outcome.unwrap_or_else(|_| {
            (
                Verdict::Indeterminate,
                format!(
                    "no answer could be validated within {} through resolver {}: check that it runs and can reach the zone's servers",
                    seconds(self.timeout),
                    self.resolver
                ),
                None,
                Rrset::empty(owner.clone(), id.rtype),
            )
        });
        Validation {
            owner: owner.clone(),
            verdict,
            reason,
            answer,
            rrset,
            method: self.method.clone(),
        }
    }

    async fn decide(&self, id: &RrsetId) -> Decision {
        match &self.mode {
            Mode::Anchored { handle, .. } => self.decide_with(handle, id).await,
            Mode::ResolverAd => self.decide_ad(id).await,
        }
    }

    async fn decide_with<H: DnsHandle>(
        &self,
        handle: &DnssecDnsHandle<H>,
        id: &RrsetId,
    ) -> Decision {
        let owner = &id.owner;
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = true;
        options.edns_set_dnssec_ok = true;
        let result = handle
            .lookup(Query::query(owner.clone(), id.rtype.record_type()), options)
            .first_answer()
            .await;
        match result {
            Ok(response) => self.judge_validated(id, &response),
            Err(NetError::Dns(hickory_net::DnsError::Nsec {
                proof, response, ..
            })) => self.judge_unproven_negative(id, proof, &response),
            Err(e) => indeterminate(
                id,
                format!("no answer from resolver {}: {e}", self.resolver),
            ),
        }
    }

    /// An answer the DNSSEC handle let through: positive answers carry a
    /// proof per record (a Bogus one is *not* an error); negative answers
    /// get here only when their denial was proven Secure or provably Insecure.
    fn judge_validated(&self, id: &RrsetId, response: &DnsResponse) -> Decision {
        if let Some(failure) = self.resolver_failure(id, response) {
            return failure;
        }
        let owner = &id.owner;
        let rrset = answer_rrset(id, response);
        let data: Vec<&Record> = response
            .answers
            .iter()
            .filter(|r| r.record_type() != RecordType::RRSIG)
            .collect();
        if !rrset.records.is_empty() {
            let verdict = worst(data.iter().map(|r| Verdict::from_proof(r.proof)));
            let reason = match verdict {
                Verdict::Secure => {
                    format!("every record of the answer validated ({})", self.method)
                }
                Verdict::Insecure => format!(
                    "{owner} is in an unsigned zone (a secure delegation without DS): DNSSEC does not protect it{}; sign the zone and publish its DS",
                    if id.rtype == RrType::Tlsa {
                        ", so DANE does not apply"
                    } else {
                        ""
                    }
                ),
                Verdict::Bogus => format!(
                    "the answer does not validate from the trust anchors ({}): check the zone's signatures, its DS at the parent, and the anchors",
                    self.method
                ),
                Verdict::Indeterminate => format!(
                    "the answer could not be validated either way ({})",
                    self.method
                ),
            };
            return (verdict, reason, Some(AnswerKind::Positive), rrset);
        }

        let chain = worst(data.iter().map(|r| Verdict::from_proof(r.proof)));
        let (verdict, kind) = judge_negative(response, chain);
        let (verdict, reason) = if verdict == Verdict::Bogus {
            (
                Verdict::Bogus,
                format!(
                    "the denial of existence ({kind}) carries records that do not validate ({})",
                    self.method
                ),
            )
        } else if verdict == Verdict::Secure {
            (
                Verdict::Secure,
                format!(
                    "{kind} proven by validated NSEC/NSEC3 records ({})",
                    self.method
                ),
            )
        } else if verdict == Verdict::Insecure {
            (
                Verdict::Insecure,
                format!(
                    "{kind} from an unsigned zone (proven insecure delegation): DNSSEC does not protect {owner}"
                ),
            )
        } else {
            (
                Verdict::Indeterminate,
                format!("{kind} whose denial could not be judged ({})", self.method),
            )
        };
        (verdict, reason, Some(kind), rrset)
    }

    /// A negative answer (or an empty failure) whose denial did not validate.
    fn judge_unproven_negative(
        &self,
        id: &RrsetId,
        proof: Proof,
        response: &DnsResponse,
    ) -> Decision {
        if let Some(failure) = self.resolver_failure(id, response) {
            return failure;
        }
        let owner = &id.owner;
        let kind = negative_kind(response);
        let verdict = Verdict::from_proof(proof);
        let reason = match verdict {
            Verdict::Bogus => format!(
                "the {kind} answer's proof of non-existence does not validate from the trust anchors ({}): check the zone's NSEC/NSEC3 signatures, its DS, and the anchors",
                self.method
            ),
            Verdict::Insecure => {
                format!("{kind} from an unsigned zone: DNSSEC does not protect {owner}")
            }
            _ => format!("the {kind} answer could not be validated ({})", self.method),
        };
        (
            verdict,
            reason,
            Some(kind),
            Rrset::empty(owner.clone(), id.rtype),
        )
    }

    async fn decide_ad(&self, id: &RrsetId) -> Decision {
        let ask = Ask {
            timeout: self.question_timeout,
            ..Ask::recursive()
        };
        let owner = &id.owner;
        let response = match query::ask(self.resolver, owner, id.rtype.record_type(), ask).await {
            Ok(response) => response,
            Err(e) => return indeterminate(id, e.to_string()),
        };
        if let Some(failure) = self.resolver_failure(id, &response) {
            return failure;
        }
        let rrset = answer_rrset(id, &response);
        let kind = if rrset.records.is_empty() {
            negative_kind(&response)
        } else {
            AnswerKind::Positive
        };
        if response.authentic_data {
            (
                Verdict::Secure,
                format!(
                    "resolver {} set the AD bit (it validated; this mode trusts it and the path to it)",
                    self.resolver
                ),
                Some(kind),
                rrset,
            )
        } else {
            (
                Verdict::Insecure,
                format!(
                    "resolver {} did not set the AD bit: {owner} is in an unsigned zone, or the resolver does not validate (check its trust anchors, or use an anchored validator)",
                    self.resolver
                ),
                Some(kind),
                rrset,
            )
        }
    }

    /// SERVFAIL, REFUSED and other rcodes that carry no answer to judge.
    fn resolver_failure(&self, id: &RrsetId, response: &DnsResponse) -> Option<Decision> {
        let rcode = response.response_code;
        if matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
            return None;
        }
        let errors = extended_errors(response);
        let ede = if errors.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        let (verdict, hint) = if rcode == ResponseCode::ServFail
            && errors.iter().any(ExtendedError::is_dnssec_failure)
        {
            (
                Verdict::Bogus,
                "the resolver found the zone's DNSSEC broken: check the zone's signatures and its DS at the parent against the resolver's trust anchors",
            )
        } else if rcode == ResponseCode::ServFail {
            (
                Verdict::Indeterminate,
                "the resolver could not answer (validation failure or unreachable servers): check its log",
            )
        } else {
            (
                Verdict::Indeterminate,
                "check that the resolver may be queried from here and recurses for this name",
            )
        };
        Some((
            verdict,
            format!(
                "resolver {} answered {} for {id}{ede}: {hint}",
                self.resolver,
                rcode_name(rcode)
            ),
            None,
            Rrset::empty(id.owner.clone(), id.rtype),
        ))
    }
}

type Decision = (Verdict, String, Option<AnswerKind>, Rrset);

fn indeterminate(id: &RrsetId, reason: String) -> Decision {
    (
        Verdict::Indeterminate,
        reason,
        None,
        Rrset::empty(id.owner.clone(), id.rtype),
    )
}

/// Secure only if every verdict is; otherwise the worst one. An empty list
/// is Indeterminate.
/// How a validated negative answer (NODATA or NXDOMAIN) is judged, given
/// the verdict of the records that led to it (`chain`, e.g. a CNAME):
/// Bogus if any record of the denial (or the chain) is; Secure if a
/// validated NSEC/NSEC3 proves it; Insecure if everything is provably
/// unsigned; otherwise Indeterminate. The one rule for the roll engine's
/// TLSA lookups and the live check's address and MX lookups.
pub(crate) fn judge_negative(response: &DnsResponse, chain: Verdict) -> (Verdict, AnswerKind) {
    let kind = negative_kind(response);
    let authority: Vec<&Record> = response
        .authorities
        .iter()
        .filter(|r| r.record_type() != RecordType::RRSIG)
        .collect();
    let any_bogus = authority.iter().any(|r| r.proof == Proof::Bogus) || chain == Verdict::Bogus;
    let proven = authority.iter().any(|r| {
        r.proof == Proof::Secure && matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3)
    });
    let insecure = authority.iter().all(|r| r.proof == Proof::Insecure);
    let verdict = if any_bogus {
        Verdict::Bogus
    } else if proven && chain != Verdict::Insecure {
        Verdict::Secure
    } else if insecure || chain == Verdict::Insecure {
        Verdict::Insecure
    } else {
        Verdict::Indeterminate
    };
    (verdict, kind)
}

pub(crate) fn worst(verdicts: impl Iterator<Item = Verdict>) -> Verdict {
    verdicts
        .fold(None, |acc: Option<Verdict>, v| match acc {
            Some(a) if a.badness() >= v.badness() => Some(a),
            _ => Some(v),
        })
        .unwrap_or(Verdict::Indeterminate)
}

pub(crate) fn negative_kind(response: &DnsResponse) -> AnswerKind {
    if response.response_code == ResponseCode::NXDomain {
        AnswerKind::NxDomain
    } else {
        AnswerKind::NoData
    }
}

/// The records of type `id.rtype` in an answer (at the owner, or at the
/// end of a CNAME chain) with their smallest TTL.
fn answer_rrset(id: &RrsetId, response: &DnsResponse) -> Rrset {
    let mut rrset = Rrset::empty(id.owner.clone(), id.rtype);
    for record in &response.answers {
        if let Some(data) = rdata::from_hickory(id.rtype, &record.data) {
            rrset.records.insert(data);
            rrset.ttl = Some(rrset.ttl.map_or(record.ttl, |t| t.min(record.ttl)));
        }
    }
    rrset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_verdict_wins_and_only_secure_is_acceptable() {
        use Verdict::*;
        assert_eq!(worst([Secure, Secure].into_iter()), Secure);
        assert_eq!(worst([Secure, Insecure].into_iter()), Insecure);
        assert_eq!(
            worst([Insecure, Indeterminate, Secure].into_iter()),
            Indeterminate
        );
        assert_eq!(worst([Bogus, Indeterminate].into_iter()), Bogus);
        assert_eq!(worst(std::iter::empty()), Indeterminate);
        for (verdict, ok) in [
            (Secure, true),
            (Insecure, false),
            (Bogus, false),
            (Indeterminate, false),
        ] {
            let v = Validation {
                owner: Name::root(),
                verdict,
                reason: String::new(),
                answer: None,
                rrset: Rrset::empty(Name::root(), RrType::Tlsa),
                method: String::new(),
            };
            assert_eq!(v.is_acceptable_for_changes(), ok);
        }
    }
}
