//! Obtaining a certificate for a key tlsa holds, from an RFC 8555 CA, with
//! the DNS-01 challenge published through the zone's own back-end
//! ([`crate::dns::publication`]: compare-and-swap, confirmed on every
//! authoritative server and validated before the CA is asked to look), or
//! the HTTP-01 challenge from a webroot or a listener of tlsa's own.
//! The ACME protocol itself (JWS, nonces, polling) is `instant-acme`'s.

pub mod account;
pub mod dns01;
pub mod http01;
pub mod order;
pub mod renewal_info;
pub mod source;

pub use account::{AccountStore, AcmeError};
pub use order::{Obtained, Responder, obtain};
