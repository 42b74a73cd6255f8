//! Every integration test, in one test binary. Each file below `tests/` is a module of it
//! (named after the file) and its tests are named `file::test`, so one file's tests run with
//! `cargo test --test integration roll_engine::`. One binary instead of one per file: the
//! shared lab in `tests/support` (7k lines) is compiled once instead of 42 times and one
//! binary is linked instead of 42 (in CI that was most of the tests' build time);
//! `scripts/test-binaries` still runs the tests in parallel, each in its own process.

mod fuzz_support;
mod material;
mod support;

mod acme_ari;
mod acme_ca;
mod acme_dns01;
mod check_resolver;
mod cloudflare;
mod config_check;
mod config_errors;
mod csr_acme;
mod deploy_owner;
mod desec;
mod dns_observe;
mod dns_rfc2136;
mod examples;
mod fuzz_parsers;
mod hash_crosscheck;
mod hash_errors;
mod hostile_dns;
mod hostile_http;
mod hostile_smtp;
mod install;
mod lab;
mod live_check;
mod live_dual;
mod lookup;
mod mta_sts;
mod mta_sts_run;
mod output_modes;
mod powerdns;
mod provider_contract;
mod publish_owned;
mod roll_acme;
mod roll_certbot;
mod roll_engine;
mod roll_faults;
mod roll_lego;
mod roll_powerdns;
mod roll_presented;
mod roll_safety;
mod tlsrpt;
mod tlsrpt_publish;
mod tlsrpt_roll_feedback;
mod zonefile;
