//! `tlsa lookup OWNER`: what every authoritative server of the zone serves
//! for a TLSA owner name (serial, TTL, records) and the DNSSEC verdict —
//! the first thing to look at when a DANE sender complains.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use hickory_proto::rr::Name;
use serde::Serialize;

use super::common;
use super::{Failure, owner};
use crate::dns::RrsetId;
use crate::dns::observe::dnssec::{Anchors, Validation, Validator};
use crate::dns::observe::propagation::{Discovery, Lookup, Observation, Origin};
use crate::dns::observe::servers::ZoneServers;
use crate::dns::observe::zone::zone_via_resolver;
use crate::live::resolve::{self, Trust};

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// The TLSA owner name, e.g. _25._tcp.mail.example.com.
    pub owner: String,
    #[command(flatten)]
    pub config: common::OptionalConfigArgs,
    /// Recursive resolver for the zone's NS set, addresses and validation
    /// (port 53 when absent) [default: the config's, else the first
    /// nameserver in /etc/resolv.conf].
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = crate::config::parse_dns_address)]
    pub resolver: Option<SocketAddr>,
    /// Trust anchor file (DNSKEY or DS lines) [default: the config's, else the root KSKs].
    #[arg(long, value_name = "FILE", conflicts_with = "ad")]
    pub anchor: Option<PathBuf>,
    /// Trust the resolver's AD bit instead of validating (weaker: trusts the
    /// resolver and the path to it).
    #[arg(long)]
    pub ad: bool,
    /// Also ask this server (e.g. a hidden primary); repeatable.
    #[arg(long = "server", value_name = "ADDR:PORT")]
    pub servers: Vec<SocketAddr>,
    /// Port to use for the NS addresses [default: the config's zone's
    /// `ns_port`, else 53].
    #[arg(long)]
    pub ns_port: Option<u16>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
    /// Why the servers could not be asked (zone or NS set not found).
    #[serde(skip_serializing_if = "Option::is_none")]
    servers_error: Option<String>,
    dnssec: Dnssec,
    servers: Vec<ServerReport>,
    unresolved_ns: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Dnssec {
    verdict: String,
    reason: String,
    method: String,
    records: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ServerReport {
    ns: Option<String>,
    address: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u32>,
    records: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(args: &LookupArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let owner_text = owner::normalise(&args.owner).map_err(|e| Failure::Input(vec![e]))?;
    let owner = Name::from_ascii(&owner_text).map_err(|e| Failure::Input(vec![e.to_string()]))?;
    let settings = Settings::new(args, &owner)?;
    let report = common::runtime()?.block_on(lookup(&settings, owner))?;
    let written = if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        print_text(&report, out)
    };
    written.map_err(|e| Failure::Runtime(vec![format!("cannot write output: {e}")]))?;
    // A script can rely on the exit status: 0 only for a Secure answer.
    if report.dnssec.verdict == "Secure" {
        Ok(())
    } else {
        Err(Failure::Runtime(vec![format!(
            "{}: the TLSA answer is {}, not Secure: DANE senders will not use it",
            report.owner, report.dnssec.verdict
        )]))
    }
}

/// The command line over the config over the defaults.
struct Settings {
    resolver: SocketAddr,
    trust: Trust,
    servers: Vec<SocketAddr>,
    ns_port: u16,
}

impl Settings {
    fn new(args: &LookupArgs, owner: &Name) -> Result<Self, Failure> {
        let config = args.config.load()?;
        let resolver = match (args.resolver, &config) {
            (Some(resolver), _) => resolver,
            (None, Some(config)) => config.dnssec.resolver,
            (None, None) => resolve::system_resolver().map_err(|e| Failure::Input(vec![e]))?,
        };
        let trust = match (&args.anchor, args.ad, &config) {
            (_, true, _) => Trust::ResolverAd,
            (Some(file), false, _) => Trust::Anchored(Anchors::File(file.clone())),
            (None, false, Some(config)) => config.dnssec.trust(),
            (None, false, None) => Trust::Anchored(Anchors::RootKeys),
        };
        // The configured zone that holds the owner: its hidden primary and NS port.
        let zone = config.as_ref().and_then(|config| {
            config.zones.iter().find(|z| {
                Name::from_ascii(z.name.get_ref()).is_ok_and(|mut name| {
                    name.set_fqdn(true);
                    name.zone_of(owner)
                })
            })
        });
        let mut servers = args.servers.clone();
        if servers.is_empty() {
            servers = zone.map(|z| z.extra_servers.clone()).unwrap_or_default();
        }
        let ns_port = args
            .ns_port
            .or(zone.map(|z| z.ns_port))
            .unwrap_or(crate::config::DNS_PORT);
        Ok(Settings {
            resolver,
            trust,
            servers,
            ns_port,
        })
    }
}

async fn lookup(args: &Settings, owner: Name) -> Result<Report, Failure> {
    let runtime_error = |e: crate::dns::DnsError| Failure::Runtime(vec![e.to_string()]);
    let validator = match &args.trust {
        Trust::ResolverAd => Validator::resolver_ad(args.resolver),
        Trust::Anchored(anchors) => Validator::anchored(args.resolver, anchors)
            .await
            .map_err(runtime_error)?,
    };
    let observe = async {
        let zone = zone_via_resolver(args.resolver, &owner).await?;
        let discovery = Discovery::new(zone.clone(), Lookup::Resolver(args.resolver))
            .port(args.ns_port)
            .extra(args.servers.iter().copied());
        let servers = ZoneServers::discover(&discovery).await?;
        Ok::<_, crate::dns::DnsError>((
            zone,
            servers.observe_now(&[RrsetId::tlsa(owner.clone())]).await,
        ))
    };
    let (observed, validation) = tokio::join!(observe, validator.validate_tlsa(&owner));
    Ok(report(&owner, observed, &validation))
}

fn report(
    owner: &Name,
    observed: Result<(Name, Observation), crate::dns::DnsError>,
    validation: &Validation,
) -> Report {
    let (zone, observation, servers_error) = match observed {
        Ok((zone, observation)) => (Some(zone.to_string()), Some(observation), None),
        Err(e) => (None, None, Some(e.to_string())),
    };
    let servers = observation
        .iter()
        .flat_map(|o| &o.servers)
        .map(|s| {
            let ns = match &s.server.origin {
                Origin::Ns(name) => Some(name.to_string()),
                Origin::Extra => None,
            };
            match &s.result {
                Ok(served) => {
                    let id = RrsetId::tlsa(owner.clone());
                    let rrset = served.rrsets.get(&id);
                    ServerReport {
                        ns,
                        address: s.server.addr,
                        serial: Some(served.serial()),
                        ttl: rrset.and_then(|r| r.rrset.ttl),
                        records: served
                            .records(&id)
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                        error: None,
                    }
                }
                Err(e) => ServerReport {
                    ns,
                    address: s.server.addr,
                    serial: None,
                    ttl: None,
                    records: Vec::new(),
                    error: Some(e.to_string()),
                },
            }
        })
        .collect();
    Report {
        owner: owner.to_string(),
        zone,
        servers_error,
        dnssec: Dnssec {
            verdict: validation.verdict.to_string(),
            reason: validation.reason.clone(),
            method: validation.method.clone(),
            records: validation
                .records()
                .iter()
                .map(ToString::to_string)
                .collect(),
        },
        servers,
        unresolved_ns: observation
            .iter()
            .flat_map(|o| &o.unresolved)
            .map(|u| format!("{}: {}", u.name, u.why))
            .collect(),
    }
}

fn print_text(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    match &report.zone {
        Some(zone) => writeln!(out, "{} TLSA in zone {zone}", report.owner)?,
        None => writeln!(out, "{} TLSA", report.owner)?,
    }
    // The reason names the method already (how it was validated).
    let method = &report.dnssec.method;
    let reason = &report.dnssec.reason;
    if reason.contains(method.as_str()) {
        writeln!(out, "DNSSEC: {} — {reason}", report.dnssec.verdict)?;
    } else {
        writeln!(
            out,
            "DNSSEC: {} — {reason} ({method})",
            report.dnssec.verdict
        )?;
    }
    for record in &report.dnssec.records {
        writeln!(out, "  {record}")?;
    }
    if let Some(error) = &report.servers_error {
        writeln!(out, "authoritative servers not asked: {error}")?;
    }
    writeln!(out, "authoritative servers:")?;
    for server in &report.servers {
        let name = server.ns.as_deref().unwrap_or("extra server");
        match &server.error {
            Some(error) => writeln!(out, "  {name} {}: {error}", server.address)?,
            None => {
                let ttl = server.ttl.map_or("-".to_string(), |t| t.to_string());
                let records = if server.records.is_empty() {
                    "no TLSA records".to_string()
                } else {
                    server.records.join(", ")
                };
                writeln!(
                    out,
                    "  {name} {}: serial {} TTL {ttl}: {records}",
                    server.address,
                    server.serial.unwrap_or_default()
                )?;
            }
        }
    }
    for ns in &report.unresolved_ns {
        writeln!(out, "  NS {ns}")?;
    }
    Ok(())
}
