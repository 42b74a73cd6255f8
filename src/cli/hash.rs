//! `tlsa hash FILE…`: TLSA data for certificates, chains, keys and CSRs.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{Failure, owner};
use crate::tlsa::{self, Certificate, Matching, Material, Selector, TlsaRecord, Usage};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tlsa hash /etc/letsencrypt/live/mail.example.com/fullchain.pem
  tlsa hash --host mail.example.com --ttl 3600 next-key.pem
  tlsa hash --issuer --matching sha2-256,sha2-512 fullchain.pem
  tlsa hash --owner _25._tcp.mail.example.com --format nsupdate cert.pem | nsupdate -k tsig.key")]
pub struct HashArgs {
    /// Certificates (PEM or DER; a chain with the leaf first), private keys
    /// (PKCS#8, PKCS#1, SEC1), public keys or CSRs; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Certificate usage: 0-3 or PKIX-TA, PKIX-EE, DANE-TA, DANE-EE
    /// [default: DANE-EE, or DANE-TA with --issuer].
    #[arg(short, long, value_name = "USAGE")]
    pub usage: Option<Usage>,

    /// Selector: 0/Cert (full certificate) or 1/SPKI (public key).
    #[arg(short, long, default_value = "SPKI", value_name = "SELECTOR")]
    pub selector: Selector,

    /// Matching type(s): 0/Full, 1/SHA2-256, 2/SHA2-512; a comma-separated
    /// list prints one record per type.
    #[arg(
        short,
        long,
        default_value = "SHA2-256",
        value_delimiter = ',',
        value_name = "TYPE"
    )]
    pub matching: Vec<Matching>,

    /// Emit records for every issuer certificate of each chain (usage 2,
    /// DANE-TA) instead of the end-entity key.
    #[arg(long)]
    pub issuer: bool,

    /// TLSA owner name, e.g. _25._tcp.mail.example.com; prints whole records.
    #[arg(long, conflicts_with = "host", value_name = "NAME")]
    pub owner: Option<String>,

    /// Host name of the service; the owner becomes _PORT._PROTO.HOST.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Service port for --host.
    #[arg(long, default_value_t = 25, requires = "host")]
    pub port: u16,

    /// Transport protocol for --host.
    #[arg(long, default_value = "tcp", requires = "host", value_parser = ["tcp", "udp", "sctp"])]
    pub proto: String,

    /// TTL for whole records (nsupdate output defaults to 3600).
    #[arg(long, value_name = "SECONDS")]
    pub ttl: Option<u32>,

    /// Output form [default: data, or rr when an owner is given].
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `3 1 1 <hex>`
    Data,
    /// `OWNER [TTL] IN TLSA 3 1 1 <hex>` (zone-file lines)
    Rr,
    /// `update add OWNER TTL IN TLSA 3 1 1 <hex>` (input for nsupdate)
    Nsupdate,
    /// A JSON array of objects
    Json,
}

/// nsupdate refuses an `update add` without a TTL.
const NSUPDATE_DEFAULT_TTL: u32 = 3600;

/// One output record and where it came from.
#[derive(Debug, Serialize)]
struct Line {
    file: String,
    kind: &'static str,
    key_algorithm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<CertFacts>,
    usage: u8,
    selector: u8,
    matching_type: u8,
    data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u32>,
    #[serde(skip)]
    record: TlsaRecord,
}

#[derive(Debug, Serialize)]
struct CertFacts {
    depth: usize,
    subject: String,
    issuer: String,
    not_after: String,
}

pub fn run(args: &HashArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Failure> {
    let owner = match (&args.owner, &args.host) {
        (Some(name), _) => Some(owner::normalise(name)),
        (None, Some(host)) => Some(owner::for_endpoint(host, args.port, &args.proto)),
        (None, None) => None,
    }
    .transpose()
    .map_err(|e| Failure::Input(vec![e]))?;
    let format = match (args.json, args.format, &owner) {
        (true, _, _) => Format::Json,
        (false, Some(Format::Nsupdate | Format::Rr), None) => {
            return Err(Failure::Input(vec![
                "--format rr and nsupdate need an owner name: give --owner NAME or --host HOST"
                    .into(),
            ]));
        }
        (false, Some(format), _) => format,
        (false, None, Some(_)) => Format::Rr,
        (false, None, None) => Format::Data,
    };
    let usage = args.usage.unwrap_or(if args.issuer {
        Usage::DaneTa
    } else {
        Usage::DaneEe
    });
    warn_about_parameters(args, usage, owner.as_deref(), err);

    // Read every input before printing anything, so that a pipeline such as
    // `tlsa hash … | nsupdate` never receives a partial set of records.
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for file in &args.files {
        match tlsa::load_file(file)
            .map_err(|e| e.to_string())
            .and_then(|material| records_for(file, &material, args, usage, owner.as_deref()))
        {
            Ok(mut records) => lines.append(&mut records),
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        return Err(Failure::Input(problems));
    }
    print(&lines, format, out)
        .map_err(|e| Failure::Input(vec![format!("cannot write output: {e}")]))
}

/// Bytes to hash, and the certificate (with its depth in the chain) they came from.
type Target<'a> = (&'a [u8], Option<(usize, &'a Certificate)>);

/// The records one input yields under the chosen parameters.
fn records_for(
    file: &std::path::Path,
    material: &Material,
    args: &HashArgs,
    usage: Usage,
    owner: Option<&str>,
) -> Result<Vec<Line>, String> {
    let name = file.display().to_string();
    let targets: Vec<Target> = if args.issuer {
        if material.issuers().is_empty() {
            return Err(format!(
                "{name}: --issuer needs a chain with issuer certificates after the leaf (such as fullchain.pem); this {} has none",
                material.kind
            ));
        }
        material
            .issuers()
            .iter()
            .enumerate()
            .map(|(i, cert)| (select(cert, args.selector), Some((i + 1, cert))))
            .collect()
    } else {
        match (args.selector, material.leaf()) {
            (Selector::Cert, None) => {
                return Err(format!(
                    "{name}: selector 0 (Cert) hashes a whole certificate, but this is a {}; use selector 1 (SPKI)",
                    material.kind
                ));
            }
            (Selector::Cert, Some(leaf)) => vec![(leaf.der(), Some((0, leaf)))],
            (Selector::Spki, leaf) => vec![(material.spki.as_slice(), leaf.map(|l| (0, l)))],
        }
    };
    let ttl = args.ttl;
    let name = &name;
    Ok(targets
        .into_iter()
        .flat_map(|(bytes, cert)| {
            args.matching.iter().map(move |&matching| {
                let record = TlsaRecord::compute(usage, args.selector, matching, bytes);
                Line {
                    file: name.clone(),
                    kind: material.kind.id(),
                    key_algorithm: cert
                        .map(|(_, c)| c.key_algorithm.to_string())
                        .unwrap_or_else(|| material.key_algorithm.to_string()),
                    certificate: cert.map(|(depth, c)| CertFacts {
                        depth,
                        subject: c.subject.clone(),
                        issuer: c.issuer.clone(),
                        not_after: c.not_after_rfc3339(),
                    }),
                    usage: record.usage,
                    selector: record.selector,
                    matching_type: record.matching,
                    data: record.data_hex(),
                    owner: owner.map(str::to_string),
                    ttl,
                    record,
                }
            })
        })
        .collect())
}

fn select(cert: &Certificate, selector: Selector) -> &[u8] {
    match selector {
        Selector::Cert => cert.der(),
        Selector::Spki => cert.spki(),
    }
}

/// Advice for parameter choices that break DANE in practice.
fn warn_about_parameters(args: &HashArgs, usage: Usage, owner: Option<&str>, err: &mut dyn Write) {
    let smtp = owner
        .is_some_and(|o| o.starts_with("_25.") || o.starts_with("_465.") || o.starts_with("_587."));
    let mut warn = |text: &str| {
        let _ = writeln!(err, "warning: {text}");
    };
    if smtp && matches!(usage, Usage::PkixTa | Usage::PkixEe) {
        warn(
            "SMTP clients ignore TLSA usages 0 and 1 (RFC 7672 §3.1); use 3 (DANE-EE) or 2 (DANE-TA)",
        );
    }
    if args.selector == Selector::Cert && usage == Usage::DaneEe {
        warn(
            "a 3 0 x record changes with every certificate renewal; 3 1 x survives renewals that keep the key",
        );
    }
    if usage == Usage::DaneTa && !args.issuer {
        warn(
            "usage 2 (DANE-TA) names a trust anchor; with a chain, --issuer selects its issuer certificates",
        );
    }
    if args.matching.contains(&Matching::Full) {
        warn("matching type 0 publishes whole keys or certificates; large RRsets may need TCP");
    }
}

fn print(lines: &[Line], format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    if format == Format::Json {
        serde_json::to_writer_pretty(&mut *out, lines)?;
        return writeln!(out);
    }
    for line in lines {
        let owner = line.owner.as_deref().unwrap_or_default();
        match (format, line.ttl) {
            (Format::Data, _) => writeln!(out, "{}", line.record)?,
            (Format::Rr, Some(ttl)) => writeln!(out, "{owner} {ttl} IN TLSA {}", line.record)?,
            (Format::Rr, None) => writeln!(out, "{owner} IN TLSA {}", line.record)?,
            (Format::Nsupdate, ttl) => writeln!(
                out,
                "update add {owner} {} IN TLSA {}",
                ttl.unwrap_or(NSUPDATE_DEFAULT_TTL),
                line.record
            )?,
            (Format::Json, _) => unreachable!("handled above"),
        }
    }
    Ok(())
}
