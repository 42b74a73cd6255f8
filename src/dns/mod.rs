//! The DNS layer, in two halves over a small shared base:
//! - the base: [`DnsError`], the RRset value type of every record type the
//!   features publish (TLSA, TXT, MX: [`rrset`], [`rdata`]), and one query
//!   to one server ([`query`]);
//! - [`observe`]: what each authoritative server serves, whether it
//!   validates, how long caches may hold it — the observations every roll
//!   decision stands on;
//! - [`publish`]: the [`Provider`] trait and every back-end behind it;
//! - [`publication`], above both: an edit published through a provider,
//!   then confirmed on every authoritative server and validated.
//!
//! `observe` and `publish` do not use each other (`scripts/import-cycles`
//! and docs/design.md give the layers).

pub mod error;
pub mod observe;
pub mod publication;
pub mod publish;
pub mod query;
pub mod rdata;
pub mod rrset;
#[cfg(test)]
pub(crate) mod test_values;

pub use error::DnsError;
pub use publish::provider::{
    Applied, ChangeSet, Edit, Provider, RrsetChange, apply_edits, apply_edits_known, read_rrsets,
};
pub use rrset::{Mx, Rdata, RrType, Rrset, RrsetId, Txt};
