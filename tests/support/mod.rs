//! The integration-test lab: for each test, a private signed zone served by a real BIND 9 or
//! Knot DNS on loopback, accepting TSIG-signed RFC 2136 updates, and a real unbound validating
//! it through a trust anchor. Nothing is shared between labs: directory, ports, zone name and
//! TSIG key are fresh each time, so tests can run in parallel.
//!
//! Entry point: [`Lab`]. Facts about the servers on this machine: `shared/LAB.md`.
//!
//! All helpers are blocking (they run `dig`, `nsupdate`, …); from `#[tokio::test]` call them
//! directly in the test body (a few ms each) or wrap them in `spawn_blocking` — but create and
//! drop the `Lab` itself on the test's own thread (see [`Lab`] for why).

// The integration tests, the examples and the benchmarks each use only part of it.
#![allow(dead_code, unused_imports)]

mod acme;
mod authoritative;
mod bind;
pub mod cloudflare_mock;
pub mod desec_mock;
mod dig;
mod dkim;
mod dovecot;
mod forwarder;
mod http_mock;
mod install;
mod knot;
mod lab;
mod launch;
mod multizone;
mod nginx;
mod postfix;
mod powerdns;
mod process;
pub mod publishing;
pub mod records;
mod resolver;
mod roll;
mod static_server;
mod sts_scene;
mod tools;
mod tsig;
mod wait;
mod wire;
mod zone;
mod zonefile_bind;

pub use acme::{
    Acme, AcmeOptions, CertbotRun, DeployHook, Leaf, RenewKey, acme_source, deployed_leaf,
    state_next_key,
};
pub use authoritative::Server;
pub use dig::{DigReply, Record, dig, query};
pub use dkim::DkimKey;
pub use dovecot::{Dovecot, MailboxServer};
pub use forwarder::Forwarder;
pub use http_mock::{HttpMock, MockRequest, MockResponse, assert_not_applied};
pub use install::{HASH_SLINGER_TLSA, Installed, path_with_hash_slinger_first};
pub use lab::{Lab, LabOptions, StartupTimes};
pub use multizone::MultiZoneLab;
pub use nginx::{Nginx, Serve, Site, start_plain_http};
pub use postfix::{
    Delivery, MAIL_UID, Postfix, PostfixOptions, SilentServer, TestCa, TlsIdentity, closed_port,
};
pub use powerdns::PowerDnsLab;
pub use resolver::Resolver;
pub use roll::{
    InService, LivePostfixSet, MAIL_OWNER, ProbeLog, RollDns, SafetyProbe, certbot_source,
    deployed_key, deployed_key_in, presented_key, remove_live_record, self_signed_for,
    self_signed_source, self_signed_source_in, served, served_by_powerdns, set_section,
    three_one_one, tlsa, write_config, write_many_sets_config, write_roll_config,
    write_roll_config_for,
};
pub use static_server::{
    LOOPBACK_V6, Setup, StaticServer, random_loopback_v4, served_serial, soa_serial,
};
pub use sts_scene::StsScene;
pub use tools::{TlsaRun, tlsa_binary, tool, tool_with_hint};
pub use tsig::TSIG_ALGORITHM;
pub use wait::{POLL_INTERVAL, poll_until, runtime, try_poll_every, try_poll_until};
pub use zonefile_bind::BindZoneFileLab;
