//! The DNS layer: one [`Provider`] trait for every back-end that publishes
//! RRsets (TLSA, TXT, MX: [`rrset`]), and the observations every roll decision stands on —
//! what each authoritative server serves ([`propagation`]), whether it
//! validates ([`dnssec`]), and how long caches may hold it ([`ttl`]).

pub mod anchors;
pub mod backend;
pub mod cloudflare;
pub mod desec;
pub mod dnssec;
pub mod error;
pub mod http;
pub mod memory;
pub mod powerdns;
pub mod propagation;
pub mod provider;
pub mod publish;
pub mod query;
pub mod rdata;
pub mod resolver_probe;
pub mod rfc2136;
pub mod rrset;
pub mod servers;
pub mod tsig;
pub mod ttl;
pub mod zone;
pub mod zonefile;

pub use error::DnsError;
pub use provider::{
    Applied, ChangeSet, Edit, Provider, RrsetChange, apply_edits, apply_edits_known, read_rrsets,
};
pub use rrset::{Mx, Rdata, RrType, Rrset, RrsetId, Txt};
