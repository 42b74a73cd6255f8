//! Live checks: connect to every address of an endpoint, start TLS the way
//! its protocol does, and judge the presented chain against the validated
//! TLSA RRset (RFC 7671, and RFC 7672 for SMTP).
//!
//! One module per job: [`endpoint`] (what is checked), [`starttls`] (the
//! plain-text dialogues), [`mod@capture`] (TLS and the presented chain),
//! [`verdict`] (the DANE judgement per address), [`webpki`] (the WebPKI
//! judgement beside it, for MTA-STS), [`resolve`] (validated DNS lookups) and
//! [`check`] (all of it, concurrently, for a [`report`]), [`presented`]
//! (which key every address presents, for the roll engine).

pub mod capture;
pub mod check;
pub mod endpoint;
pub mod presented;
pub mod report;
pub mod resolve;
pub mod starttls;
pub mod verdict;
pub mod webpki;

pub use capture::{CaptureFailure, ConnectOptions, KeyKind, Presented, capture};
pub use endpoint::{Endpoint, Protocol};
