//! MTA-STS (RFC 8461): the policy file and its id ([`policy`]), the
//! `_mta-sts` TXT record ([`record`]), MX patterns ([`matching`]), the
//! sender-strict fetch from every address of the policy host ([`fetch`]),
//! the judgement `tlsa check --mx` adds ([`check`]), the `[[mta_sts]]`
//! config ([`config`]), and the pure planner of a policy change in RFC 8461
//! §8 order ([`plan`]) with the local steps it can perform ([`execute`]) and
//! its DNS steps through the zone's back-end ([`dns`]).

pub mod check;
pub mod config;
pub mod dns;
pub mod execute;
pub mod fetch;
pub mod matching;
pub mod observe;
pub mod plan;
pub mod policy;
pub mod record;
pub mod report_gate;
pub mod run;
pub mod service;
