//! `tlsa config check`: what would make a run fail later, found now.
//! Offline: every file the config names (readable, sane modes), every
//! endpoint inside a configured zone, deploy directories writable, reload
//! programs present. Online: each back-end's credentials with a read-only
//! call (RFC 2136: a TSIG-signed SOA query), and the resolver passing on
//! DNSSEC data that validates from the configured anchor.
//!
//! Each problem is one line naming the file, zone or server and what to do.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use super::{CertSet, Config, SecretRef, Source};
use crate::dns::observe::dnssec::{Validator, Verdict};
use crate::dns::observe::resolver_probe::{self, ResolverDnssec};
use crate::live::resolve::Trust;

/// Which part of the check found a problem: it decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// The config or a file it names: fixable on this host (exit 2).
    Config,
    /// A server, provider or resolver said no (exit 1).
    Online,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub class: Class,
    /// `zone example.com`, `set mail`, `[dnssec]`.
    pub place: String,
    /// What is wrong and what to do.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.what)
    }
}

/// Collects problems, each with its place.
struct Findings {
    class: Class,
    problems: Vec<Problem>,
}

impl Findings {
    fn add(&mut self, place: impl Into<String>, what: impl Into<String>) {
        self.problems.push(Problem {
            class: self.class,
            place: place.into(),
            what: what.into(),
        });
    }
}

fn absolute(name: &str) -> Option<Name> {
    let mut name = Name::from_ascii(name).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// The checks that need no network.
pub fn offline(config: &Config) -> Vec<Problem> {
    let mut found = Findings {
        class: Class::Config,
        problems: Vec::new(),
    };
    if let Some(anchor) = &config.dnssec.anchor {
        readable(&mut found, "[dnssec]", "anchor", anchor);
    }
    writable_dir(&mut found, "state_dir", "state_dir", &config.state_dir);
    let zones: Vec<Name> = config
        .zones
        .iter()
        .filter_map(|z| absolute(z.name.get_ref()))
        .collect();
    for zone in &config.zones {
        let place = format!("zone {}", zone.name.get_ref());
        for (key, secret) in zone.secrets() {
            secret_source(&mut found, &place, key, secret);
        }
        let Some(name) = absolute(zone.name.get_ref()) else {
            found.add(&place, "not a DNS name");
            continue;
        };
        // Loads the TSIG key or token as a run would, with its message.
        match zone.backend(&name) {
            // Its message names the zone already.
            Err(why) => found.add(
                &place,
                why.strip_prefix(&format!("zone {name}: ")).unwrap_or(&why),
            ),
            Ok(backend) => {
                if let Err(e) = backend.build() {
                    found.add(&place, e.to_string());
                }
            }
        }
        if let Some(reload) = &zone.reload {
            program(&mut found, &place, "reload", reload);
        }
        if let Some(url) = &zone.api_url
            && cleartext_to_another_host(url)
        {
            found.add(
                &place,
                "api_url uses http:// to a host that is not this one: the API key or token would cross the network unencrypted; use https:// (or reach the API on loopback)",
            );
        }
    }
    for set in &config.sets {
        set_files(&mut found, config, set, &zones);
    }
    found.problems
}

/// An `http://` URL whose host is not a loopback address or `localhost`.
fn cleartext_to_another_host(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let host = url.host_str().unwrap_or("localhost");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    url.scheme() == "http" && !local
}

fn set_files(found: &mut Findings, config: &Config, set: &CertSet, zones: &[Name]) {
    let place = format!("set {}", set.name.get_ref());
    for endpoint in &set.endpoints {
        let owner = format!("_{}._tcp.{}", endpoint.port, endpoint.host);
        let inside = absolute(&owner).is_some_and(|o| zones.iter().any(|z| z.zone_of(&o)));
        if !inside {
            let names: Vec<String> = config
                .zones
                .iter()
                .map(|z| z.name.get_ref().clone())
                .collect();
            found.add(
                &place,
                format!(
                    "endpoint {owner} is in no configured zone ({}): add a [[zone]] that holds it, or fix the host name",
                    if names.is_empty() { "there are none".to_string() } else { names.join(", ") }
                ),
            );
        }
    }
    let lineages: Vec<&PathBuf> = match &set.source {
        Source::Certbot(dir) => vec![dir],
        Source::CertbotPair(dirs) => dirs.iter().collect(),
        _ => Vec::new(),
    };
    for lineage in &lineages {
        let files = crate::roll::files::CertFiles::in_dir(lineage);
        let unreadable: Vec<String> = [&files.chain, &files.key]
            .into_iter()
            .filter_map(|file| {
                std::fs::File::open(file).err().map(|why| {
                    let name = file.file_name().unwrap_or_default().to_string_lossy();
                    format!("{name} ({why})")
                })
            })
            .collect();
        if !unreadable.is_empty() {
            found.add(
                &place,
                format!(
                    "certbot lineage {}: cannot read {}; issue it with `certbot certonly --cert-name {}` or fix `source`",
                    lineage.display(),
                    unreadable.join(", "),
                    lineage.file_name().map_or("NAME".into(), |n| n.to_string_lossy())
                ),
            );
        }
    }
    // Self-signed and ACME sets stage their own certificates.
    if lineages.is_empty() && !matches!(set.source, Source::SelfSigned { .. } | Source::Acme(_)) {
        let files = crate::roll::files::source_files_of(set, &config.state_dir);
        for file in [&files.chain, &files.key] {
            readable(found, &place, "source", file);
        }
    }
    writable_dir(found, &place, "deploy.dir", &set.deploy.dir);
    if let Err(why) = crate::roll::files::deploy_files(set).access.ownership() {
        found.add(
            &place,
            format!("deploy.{why}: create it, or name the user/group the server runs as"),
        );
    }
    if !set.deploy.reload.is_empty() {
        program(found, &place, "deploy.reload", &set.deploy.reload);
    }
}

fn readable(found: &mut Findings, place: &str, key: &str, file: &Path) {
    if let Err(why) = std::fs::File::open(file) {
        found.add(
            place,
            format!("{key} {}: cannot read it ({why})", file.display()),
        );
    }
}

/// A secret's file is readable by nobody else (it is a credential). Whether
/// it (or an `env =` variable) can be loaded at all is what building the
/// back-end tells, as a run would.
fn secret_source(found: &mut Findings, place: &str, key: &str, secret: &SecretRef) {
    let Some(meta) = secret.file.as_ref().and_then(|f| std::fs::metadata(f).ok()) else {
        return;
    };
    let file = secret.file.as_ref().expect("has metadata").display();
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 || mode & 0o020 != 0 {
        found.add(
            place,
            format!(
                "{key} file {file}: mode {mode:04o} lets other users read or change the credential: chmod 600 {file} (or 640 with a group only tlsa's user is in)"
            ),
        );
    }
}

/// A directory tlsa writes into: writable if it exists (tried with a file,
/// which honours ACLs and read-only mounts), else creatable.
fn writable_dir(found: &mut Findings, place: &str, key: &str, dir: &Path) {
    let existing = dir.ancestors().find(|d| d.is_dir());
    let Some(existing) = existing else {
        found.add(
            place,
            format!("{key} {}: no part of the path exists", dir.display()),
        );
        return;
    };
    let probe = existing.join(format!(".tlsa-config-check.{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(why) => {
            let what = if existing == dir {
                format!("{key} {}: cannot write there ({why})", dir.display())
            } else {
                format!(
                    "{key} {}: does not exist, and {} is not writable to create it ({why})",
                    dir.display(),
                    existing.display()
                )
            };
            found.add(
                place,
                format!("{what}; run tlsa as a user that may write it, or change {key}"),
            );
        }
    }
}

/// A command's program exists and is executable.
fn program(found: &mut Findings, place: &str, key: &str, argv: &[String]) {
    let Some(name) = argv.first() else {
        found.add(place, format!("{key}: the command is empty"));
        return;
    };
    if crate::dns::publish::zonefile::find_program(name).is_none() {
        found.add(
            place,
            format!(
                "{key}: the program {name:?} is not an executable file{}; give its full path or install it",
                if name.contains('/') { "" } else { " in PATH" }
            ),
        );
    }
}

/// The checks that ask servers, providers and the resolver (read-only).
pub async fn online(config: &Config) -> Vec<Problem> {
    let mut found = Findings {
        class: Class::Online,
        problems: Vec::new(),
    };
    let resolver = config.dnssec.resolver;
    let validator = match config.dnssec.trust() {
        Trust::ResolverAd => Ok(Validator::resolver_ad(resolver)),
        Trust::Anchored(anchors) => Validator::anchored(resolver, &anchors).await,
    };
    for zone in &config.zones {
        let place = format!("zone {}", zone.name.get_ref());
        let Some(name) = absolute(zone.name.get_ref()) else {
            continue;
        };
        // A back-end that cannot be built is an offline problem already.
        if let Ok(backend) = zone.backend(&name) {
            let check = crate::dns::publish::backend::check_credentials(&backend, &name).await;
            if let Err(e) = check.outcome {
                found.add(&place, e.to_string());
            }
        }
        match resolver_probe::probe(resolver, &name).await {
            Ok(ResolverDnssec::PassesSignatures) => {}
            Ok(ResolverDnssec::StripsSignatures) => {
                let (short, detail) = resolver_probe::strips_advice(resolver, &name);
                found.add("[dnssec]", format!("{short}; {detail}"));
                continue;
            }
            Ok(ResolverDnssec::NoAnswer(why)) => {
                found.add(&place, format!("{why}: the zone is not signed, or the resolver cannot reach it; check `resolver =` in [dnssec]"));
                continue;
            }
            Err(e) => {
                found.add("[dnssec]", format!("resolver {resolver}: {e}"));
                continue;
            }
        }
        match &validator {
            Err(e) => found.add("[dnssec]", e.to_string()),
            Ok(validator) => {
                // Any name of the zone will do: a validated (negative) answer
                // proves the chain of trust from the anchor.
                let probe = Name::from_ascii("_25._tcp.tlsa-config-check")
                    .ok()
                    .and_then(|n| n.append_domain(&name).ok())
                    .unwrap_or_else(|| name.clone());
                let validation = validator.validate_tlsa(&probe).await;
                if validation.verdict != Verdict::Secure {
                    found.add(
                        &place,
                        format!(
                            "does not validate as Secure through {resolver} ({}: {}); nothing will be published or removed until it does",
                            validation.verdict, validation.reason
                        ),
                    );
                }
            }
        }
    }
    found.problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleartext_api_urls_to_other_hosts_are_flagged() {
        assert!(cleartext_to_another_host("http://pdns.example.net:8081"));
        assert!(cleartext_to_another_host("http://192.0.2.7:8081/api/v1"));
        assert!(!cleartext_to_another_host("http://127.0.0.1:8081"));
        assert!(!cleartext_to_another_host("http://localhost:8081"));
        assert!(!cleartext_to_another_host("http://[::1]:8081"));
        assert!(!cleartext_to_another_host("https://pdns.example.net"));
    }
}
