//! Validated DNS for the live checks: the TLSA RRset (through the DNS
//! layer's [`Validator`]) and the A, AAAA and MX RRsets a sending MTA looks
//! up before it connects (RFC 7672 §2.2).
//!
//! The [`Validator`] judges TLSA only, so the other types are validated here
//! the same way it does: in anchored mode with hickory's `DnssecDnsHandle`
//! from the same trust anchors, in AD mode by the resolver's AD bit. The
//! judgement of negative answers is the validator's own (`judge_negative`,
//! `negative_kind`); when the Validator grows a generic lookup,
//! [`ValidatingDns::lookup`] should call it instead.
//!
//! Checks reach DNS through the [`Dns`] trait, so tests can run them
//! against a fixed world.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hickory_net::NetError;
use hickory_net::dnssec::DnssecDnsHandle;
use hickory_net::xfer::{DnsHandle, FirstAnswer};
use hickory_proto::dnssec::TrustAnchors;
use hickory_proto::op::{DnsRequestOptions, DnsResponse, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::dns::DnsError;
use crate::dns::observe::dnssec::{
    self, Anchors, DEFAULT_VALIDATION_TIMEOUT, Validation, Validator, Verdict, judge_negative,
    negative_kind, worst,
};
use crate::dns::observe::extended_error;
use crate::dns::query::{self, Ask};
use crate::dns::query::{AnswerKind, rcode_name};

/// The answer to one validated question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub name: Name,
    pub rtype: RecordType,
    pub verdict: Verdict,
    /// Why, in words that say what to check.
    pub reason: String,
    /// `None` when no usable answer came (timeout, SERVFAIL).
    pub kind: Option<AnswerKind>,
    /// The records of type `rtype` (at the end of any CNAME chain).
    pub records: Vec<RData>,
}

impl Answer {
    /// The A/AAAA addresses of the answer.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.records
            .iter()
            .filter_map(|r| match r {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect()
    }

    /// The MX records as (preference, exchange), most preferred first.
    pub fn exchanges(&self) -> Vec<(u16, Name)> {
        let mut mx: Vec<(u16, Name)> = self
            .records
            .iter()
            .filter_map(|r| match r {
                RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
                _ => None,
            })
            .collect();
        mx.sort();
        mx.dedup();
        mx
    }
}

/// What the live checks ask DNS.
#[async_trait]
pub trait Dns: Send + Sync {
    /// The validated TLSA RRset at `owner`.
    async fn tlsa(&self, owner: &Name) -> Validation;
    /// A validated RRset of another type (A, AAAA, MX).
    async fn lookup(&self, name: &Name, rtype: RecordType) -> Answer;
    /// How answers are validated, for reports.
    fn method(&self) -> String;
}

/// How answers are trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Validate from trust anchors (the root KSKs or a file).
    Anchored(Anchors),
    /// Trust the resolver's AD bit (weaker: see `dns::observe::dnssec`).
    ResolverAd,
}

#[derive(Clone)]
enum Mode {
    Anchored(Arc<TrustAnchors>),
    ResolverAd,
}

/// [`Dns`] through a recursive resolver, validated per [`Trust`].
#[derive(Clone)]
pub struct ValidatingDns {
    resolver: SocketAddr,
    validator: Validator,
    mode: Mode,
    question_timeout: Duration,
    timeout: Duration,
}

impl ValidatingDns {
    /// Sets up validation through `resolver`. An anchor file with DS lines
    /// needs the resolver now (to fetch the DNSKEYs they hash).
    pub async fn new(resolver: SocketAddr, trust: &Trust) -> Result<Self, DnsError> {
        let (validator, mode) = match trust {
            Trust::Anchored(anchors) => {
                let validator = Validator::anchored(resolver, anchors).await?;
                let keys = match anchors {
                    Anchors::RootKeys => TrustAnchors::default(),
                    Anchors::File(path) => {
                        dnssec::load_anchor_file(path, resolver, query::DEFAULT_TIMEOUT).await?
                    }
                };
                (validator, Mode::Anchored(Arc::new(keys)))
            }
            Trust::ResolverAd => (Validator::resolver_ad(resolver), Mode::ResolverAd),
        };
        Ok(ValidatingDns {
            resolver,
            validator,
            mode,
            question_timeout: query::DEFAULT_TIMEOUT,
            timeout: DEFAULT_VALIDATION_TIMEOUT,
        })
    }

    /// Bounds for one question and one whole validation.
    pub fn with_timeouts(mut self, question: Duration, whole: Duration) -> Self {
        self.validator = self.validator.with_timeouts(question, whole);
        self.question_timeout = question;
        self.timeout = whole;
        self
    }

    async fn decide(&self, name: &Name, rtype: RecordType) -> Answer {
        match &self.mode {
            Mode::Anchored(anchors) => self.decide_anchored(name, rtype, anchors.clone()).await,
            Mode::ResolverAd => self.decide_ad(name, rtype).await,
        }
    }

    async fn decide_anchored(
        &self,
        name: &Name,
        rtype: RecordType,
        anchors: Arc<TrustAnchors>,
    ) -> Answer {
        // TCP, and a fresh handle per question, as in `dns::observe::dnssec`.
        let client = match query::tcp_client(self.resolver, self.question_timeout).await {
            Ok(client) => client,
            Err(e) => {
                return self.indeterminate(
                    name,
                    rtype,
                    format!("cannot reach resolver {} over TCP: {e}", self.resolver),
                );
            }
        };
        let handle = DnssecDnsHandle::with_trust_anchor(client, anchors);
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = true;
        options.edns_set_dnssec_ok = true;
        let result = handle
            .lookup(Query::query(name.clone(), rtype), options)
            .first_answer()
            .await;
        match result {
            Ok(response) => self.judge(name, rtype, &response),
            Err(NetError::Dns(hickory_net::DnsError::Nsec {
                proof, response, ..
            })) => {
                if let Some(failure) = self.resolver_failure(name, rtype, &response) {
                    return failure;
                }
                let kind = negative_kind(&response);
                let verdict = Verdict::from_proof(proof);
                let reason = match verdict {
                    Verdict::Bogus => format!(
                        "the {kind} answer for {name} {rtype} does not validate from the trust anchors: check the zone's NSEC/NSEC3 signatures and its DS"
                    ),
                    Verdict::Insecure => {
                        format!("{kind} from an unsigned zone: DNSSEC does not protect {name}")
                    }
                    _ => format!("the {kind} answer for {name} {rtype} could not be validated"),
                };
                self.answer(name, rtype, verdict, reason, Some(kind), Vec::new())
            }
            Err(e) => self.indeterminate(
                name,
                rtype,
                format!("no answer from resolver {}: {e}", self.resolver),
            ),
        }
    }

    fn judge(&self, name: &Name, rtype: RecordType, response: &DnsResponse) -> Answer {
        if let Some(failure) = self.resolver_failure(name, rtype, response) {
            return failure;
        }
        let data: Vec<&Record> = response
            .answers
            .iter()
            .filter(|r| r.record_type() != RecordType::RRSIG)
            .collect();
        let records: Vec<RData> = data
            .iter()
            .filter(|r| r.record_type() == rtype)
            .map(|r| r.data.clone())
            .collect();
        let chain = worst(data.iter().map(|r| Verdict::from_proof(r.proof)));
        if !records.is_empty() {
            let reason = match chain {
                Verdict::Secure => "validated".to_string(),
                Verdict::Insecure => format!(
                    "{name} is in an unsigned zone: DNSSEC does not protect its {rtype} records"
                ),
                Verdict::Bogus => format!(
                    "the {rtype} records of {name} do not validate from the trust anchors: check the zone's signatures and its DS"
                ),
                Verdict::Indeterminate => {
                    format!("the {rtype} records of {name} could not be validated")
                }
            };
            return self.answer(
                name,
                rtype,
                chain,
                reason,
                Some(AnswerKind::Positive),
                records,
            );
        }
        let (verdict, kind) = judge_negative(response, chain);
        let reason = match verdict {
            Verdict::Bogus => {
                format!("the {kind} answer for {name} {rtype} carries records that do not validate")
            }
            Verdict::Secure => format!("{kind}, proven by validated NSEC/NSEC3"),
            Verdict::Insecure => {
                format!("{kind} from an unsigned zone: DNSSEC does not protect {name}")
            }
            Verdict::Indeterminate => {
                format!("the {kind} answer for {name} {rtype} could not be judged")
            }
        };
        self.answer(name, rtype, verdict, reason, Some(kind), Vec::new())
    }

    async fn decide_ad(&self, name: &Name, rtype: RecordType) -> Answer {
        let ask = Ask {
            timeout: self.question_timeout,
            ..Ask::recursive()
        };
        let response = match query::ask(self.resolver, name, rtype, ask).await {
            Ok(response) => response,
            Err(e) => return self.indeterminate(name, rtype, e.to_string()),
        };
        if let Some(failure) = self.resolver_failure(name, rtype, &response) {
            return failure;
        }
        let records: Vec<RData> = response
            .answers
            .iter()
            .filter(|r| r.record_type() == rtype)
            .map(|r| r.data.clone())
            .collect();
        let kind = if records.is_empty() {
            negative_kind(&response)
        } else {
            AnswerKind::Positive
        };
        let (verdict, reason) = if response.authentic_data {
            (
                Verdict::Secure,
                format!("resolver {} set the AD bit", self.resolver),
            )
        } else {
            (
                Verdict::Insecure,
                format!(
                    "resolver {} did not set the AD bit for {name} {rtype}: the zone is unsigned, or the resolver does not validate",
                    self.resolver
                ),
            )
        };
        self.answer(name, rtype, verdict, reason, Some(kind), records)
    }

    fn resolver_failure(
        &self,
        name: &Name,
        rtype: RecordType,
        response: &DnsResponse,
    ) -> Option<Answer> {
        let rcode = response.response_code;
        if matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
            return None;
        }
        let errors = extended_error::extended_errors(response);
        let ede: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let ede = if ede.is_empty() {
            String::new()
        } else {
            format!(" ({})", ede.join("; "))
        };
        let verdict = if rcode == ResponseCode::ServFail
            && errors
                .iter()
                .any(extended_error::ExtendedError::is_dnssec_failure)
        {
            Verdict::Bogus
        } else {
            Verdict::Indeterminate
        };
        Some(self.answer(
            name,
            rtype,
            verdict,
            format!(
                "resolver {} answered {} for {name} {rtype}{ede}",
                self.resolver,
                rcode_name(rcode)
            ),
            None,
            Vec::new(),
        ))
    }

    fn indeterminate(&self, name: &Name, rtype: RecordType, reason: String) -> Answer {
        self.answer(
            name,
            rtype,
            Verdict::Indeterminate,
            reason,
            None,
            Vec::new(),
        )
    }

    fn answer(
        &self,
        name: &Name,
        rtype: RecordType,
        verdict: Verdict,
        reason: String,
        kind: Option<AnswerKind>,
        records: Vec<RData>,
    ) -> Answer {
        Answer {
            name: name.clone(),
            rtype,
            verdict,
            reason,
            kind,
            records,
        }
    }
}

#[async_trait]
impl Dns for ValidatingDns {
    async fn tlsa(&self, owner: &Name) -> Validation {
        self.validator.validate_tlsa(owner).await
    }

    async fn lookup(&self, name: &Name, rtype: RecordType) -> Answer {
        match tokio::time::timeout(self.timeout, self.decide(name, rtype)).await {
            Ok(answer) => answer,
            Err(_) => self.indeterminate(
                name,
                rtype,
                format!(
                    "no answer could be validated within {} s through resolver {}: check that it runs and can reach the zone's servers",
                    self.timeout.as_secs_f64(),
                    self.resolver
                ),
            ),
        }
    }

    fn method(&self) -> String {
        self.validator.method().to_string()
    }
}

/// The first `nameserver` of /etc/resolv.conf, port 53: the resolver a
/// sending MTA on this host would use.
pub fn system_resolver() -> Result<SocketAddr, String> {
    let text = std::fs::read_to_string("/etc/resolv.conf").map_err(|e| {
        format!(
            "cannot read /etc/resolv.conf ({e}): give a validating resolver with --resolver ADDR"
        )
    })?;
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .find_map(|addr| addr.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .ok_or_else(|| {
            "/etc/resolv.conf names no nameserver: give a validating resolver with --resolver ADDR"
                .to_string()
        })
}
