//! `tlsa`: manage the lifecycle of DANE TLSA records.

// DNS errors carry the server address, zone and owner names they are about
// (hickory's `Name` alone is 80 bytes) so that every message can say exactly
// what failed. They travel only on cold paths next to network round trips,
// where a few hundred bytes per `Result` cost nothing measurable.
#![allow(clippy::result_large_err)]

pub mod acme;
pub mod cli;
pub mod clock;
pub mod command;
pub mod config;
pub mod dns;
pub mod fsutil;
pub mod live;
pub mod mtasts;
pub mod roll;
pub mod secrets;
pub mod timestamp;
pub mod tlsa;
pub mod tlsrpt;
