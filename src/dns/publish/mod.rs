//! Publishing to DNS: one [`provider::Provider`] trait with its change sets
//! and compare-and-swap loop, and every back-end behind it — RFC 2136
//! UPDATE with TSIG ([`rfc2136`], [`tsig`]), the HTTP APIs of PowerDNS,
//! Cloudflare and deSEC over one client ([`http`]), a zone file with a
//! reload command ([`zonefile`]), and an in-memory zone for tests
//! ([`memory`]). Back-ends without a conditional write share the checks
//! around it ([`checked_write`]). [`backend`] builds one from a zone's configuration.

pub mod api_messages;
pub mod backend;
pub mod checked_write;
pub mod cloudflare;
pub mod cloudflare_records;
pub mod desec;
pub mod http;
pub mod memory;
pub mod powerdns;
pub mod provider;
pub mod rfc2136;
pub mod tsig;
pub mod update_message;
pub mod zonefile;
pub mod zonefile_format;
