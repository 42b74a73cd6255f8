//! `tlsa`: manage the lifecycle of DANE TLSA records.

pub mod cli;
pub mod dns;
pub mod tlsa;
