//! The configuration file (TOML): zones with their back-end and credentials,
//! DNSSEC validation, and certificate sets with their endpoints, source,
//! deploy target and record policy. Unknown keys are errors (a typo must not
//! silently disable a safety setting), and every error names the file, line
//! and key.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::dns::observe::dnssec::Anchors;
use crate::live::endpoint::{Endpoint as LiveEndpoint, Protocol};
use crate::live::resolve::Trust;
use crate::tlsa::Matching;
use crate::tlsrpt::record::normalise;

pub mod audit;
mod errors;
mod load;
#[cfg(test)]
pub(crate) mod testing;
pub mod tlsrpt;
mod values;

pub use errors::{ConfigError, Invalid};
pub use values::{DNS_PORT, MAX_TTL, SecretRef, parse_dns_address, with_default_port};
pub(crate) use values::{is_env_name, is_file_safe_name};

/// Where the config is looked for when neither `-c` nor `TLSA_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/tlsa/tlsa.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/tlsa";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    pub dnssec: Dnssec,
    #[serde(rename = "zone", default)]
    pub zones: Vec<Zone>,
    #[serde(rename = "set", default)]
    pub sets: Vec<CertSet>,
    /// How many sets one run works on at once (each waits on DNS most of
    /// the time; the bound keeps the load on the primary and resolver sane).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Seconds one propagation wait may take before the run gives up (the
    /// next run goes on from there).
    #[serde(default = "default_propagation_timeout")]
    pub propagation_timeout: u64,
    /// MTA-STS policies, one per mail domain (`[[mta_sts]]`).
    #[serde(rename = "mta_sts", default)]
    pub mta_sts: Vec<crate::mtasts::config::MtaSts>,
    /// TLS-RPT report ingestion (optional).
    pub tlsrpt: Option<tlsrpt::Tlsrpt>,
}

pub const DEFAULT_PROPAGATION_TIMEOUT_SECS: u64 = 120;

fn default_propagation_timeout() -> u64 {
    DEFAULT_PROPAGATION_TIMEOUT_SECS
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}

pub const DEFAULT_CONCURRENCY: usize = 16;

fn default_concurrency() -> usize {
    DEFAULT_CONCURRENCY
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dnssec {
    /// The recursive resolver used for validation and NS/address lookups
    /// (port 53 when absent).
    #[serde(deserialize_with = "values::dns_address")]
    pub resolver: SocketAddr,
    /// DNSKEY or DS lines; the root KSKs when absent.
    pub anchor: Option<PathBuf>,
    #[serde(default)]
    pub mode: ValidationMode,
}

impl Dnssec {
    /// How DNS answers are trusted by live checks: the AD bit in `ad` mode,
    /// otherwise validation here from the anchor (the root KSKs when absent).
    pub fn trust(&self) -> Trust {
        match self.mode {
            ValidationMode::Ad => Trust::ResolverAd,
            ValidationMode::Anchored => Trust::Anchored(match &self.anchor {
                Some(file) => Anchors::File(file.clone()),
                None => Anchors::RootKeys,
            }),
        }
    }
}

/// An endpoint with the addresses the config pins, if any (otherwise its
/// A/AAAA records are used).
pub type PinnedEndpoint = (LiveEndpoint, Option<Vec<SocketAddr>>);

impl CertSet {
    /// The set's endpoints as live checks take them; `Err` names the
    /// endpoint and what is wrong with it.
    pub fn live_endpoints(&self) -> Result<Vec<PinnedEndpoint>, String> {
        self.endpoints
            .iter()
            .map(|e| {
                let place = format!("endpoint {}:{}", e.host, e.port);
                let protocol = e
                    .starttls
                    .as_deref()
                    .map(str::parse::<Protocol>)
                    .transpose()
                    .map_err(|why| format!("{place}: starttls: {why}"))?;
                if protocol.is_none() && Protocol::for_port(e.port).is_none() {
                    // The config's own key, not the `check --starttls` flag.
                    return Err(format!(
                        "{place}: port {} has no default protocol; say how TLS starts with starttls = \"smtp\" (or \"lmtp\", \"imap\", \"pop3\", \"none\" for implicit TLS)",
                        e.port
                    ));
                }
                let endpoint = LiveEndpoint::new(&e.host, e.port, protocol)
                    .map_err(|why| format!("{place}: {why}"))?;
                let addresses = (!e.addresses.is_empty()).then(|| e.addresses.clone());
                Ok((endpoint, addresses))
            })
            .collect()
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValidationMode {
    /// tlsa validates the chain of trust itself from the anchor.
    #[default]
    Anchored,
    /// Trust the AD bit of a local validating resolver (weaker: trusts the
    /// resolver and the path to it).
    Ad,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub name: Spanned<String>,
    /// How records are published; each back-end reads its own keys below.
    pub backend: BackendKind,
    /// RFC 2136: the primary server that accepts UPDATE (port 53 when absent).
    #[serde(default, deserialize_with = "values::optional_dns_address")]
    pub server: Option<SocketAddr>,
    /// RFC 2136: the TSIG key (a BIND key file or `algorithm:name:secret`).
    pub tsig_key: Option<SecretRef>,
    /// PowerDNS: the webserver URL; Cloudflare/deSEC: another API base (tests).
    pub api_url: Option<String>,
    /// PowerDNS: the `api-key` of pdns.conf.
    pub api_key: Option<SecretRef>,
    /// PowerDNS: the server id (`localhost`).
    pub server_id: Option<String>,
    /// Cloudflare, deSEC: the API token.
    pub token: Option<SecretRef>,
    /// Zone file: the `$INCLUDE`d file tlsa owns.
    pub records_file: Option<PathBuf>,
    /// Zone file: the command that makes the server load it (argv; `{zone}`
    /// is replaced), e.g. `["rndc", "reload", "{zone}"]`.
    pub reload: Option<Vec<String>>,
    /// Zone file: the zone's main file, whose SOA serial tlsa increments.
    pub serial_file: Option<PathBuf>,
    /// Authoritative servers not in the NS set (a hidden primary); port 53
    /// when absent.
    #[serde(default, deserialize_with = "values::dns_addresses")]
    pub extra_servers: Vec<SocketAddr>,
    /// Port for the addresses of the NS set (53 in production).
    #[serde(default = "default_ns_port")]
    pub ns_port: u16,
}

impl Zone {
    /// The zone's back-end, ready to build (a TSIG key is loaded here; an
    /// HTTP token when the back-end is built). `Err` names what is wrong.
    pub fn backend(
        &self,
        name: &hickory_proto::rr::Name,
    ) -> Result<crate::dns::publish::backend::BackendConfig, String> {
        use crate::dns::publish::backend::BackendConfig;
        use crate::dns::{
            publish::cloudflare, publish::desec, publish::powerdns, publish::rfc2136,
            publish::tsig, publish::zonefile,
        };
        let required = |what: &str| format!("zone {name}: {what} is missing");
        Ok(match self.backend {
            BackendKind::Rfc2136 => {
                let server = self.server.ok_or_else(|| required("server"))?;
                let key = match &self.tsig_key {
                    Some(SecretRef {
                        file: Some(file), ..
                    }) => Some(tsig::TsigKey::from_file(file, None)),
                    Some(SecretRef { env: Some(var), .. }) => Some(tsig::TsigKey::from_env(var)),
                    Some(_) => return Err(format!("zone {name}: tsig_key needs file or env")),
                    None => None,
                }
                .transpose()
                .map_err(|e| format!("zone {name}: {e}"))?;
                BackendConfig::Rfc2136(rfc2136::Rfc2136::new(server, key).with_zone(name.clone()))
            }
            BackendKind::Powerdns => {
                let url = self.api_url.clone().ok_or_else(|| required("api_url"))?;
                let key = self.api_key.as_ref().ok_or_else(|| required("api_key"))?;
                let mut config = powerdns::PowerDnsConfig::new(url, key.source());
                if let Some(id) = &self.server_id {
                    config.server_id = id.clone();
                }
                config.zones = vec![name.clone()];
                BackendConfig::PowerDns(config)
            }
            BackendKind::Cloudflare => {
                let token = self.token.as_ref().ok_or_else(|| required("token"))?;
                let mut config = cloudflare::CloudflareConfig::new(token.source());
                if let Some(url) = &self.api_url {
                    config.base_url = url.clone();
                }
                config.zones = vec![name.clone()];
                BackendConfig::Cloudflare(config)
            }
            BackendKind::Desec => {
                let token = self.token.as_ref().ok_or_else(|| required("token"))?;
                let mut config = desec::DesecConfig::new(token.source());
                if let Some(url) = &self.api_url {
                    config.base_url = url.clone();
                }
                config.zones = vec![name.clone()];
                BackendConfig::Desec(config)
            }
            BackendKind::Zonefile => {
                let file = self
                    .records_file
                    .clone()
                    .ok_or_else(|| required("records_file"))?;
                let reload = self.reload.clone().ok_or_else(|| required("reload"))?;
                let mut config = zonefile::ZoneFileConfig::new(name.clone(), file, reload);
                config.serial_file = self.serial_file.clone();
                BackendConfig::ZoneFile(config)
            }
        })
    }

    /// The zone's secret references with their config keys.
    pub fn secrets(&self) -> impl Iterator<Item = (&'static str, &SecretRef)> {
        [
            ("tsig_key", &self.tsig_key),
            ("api_key", &self.api_key),
            ("token", &self.token),
        ]
        .into_iter()
        .filter_map(|(key, secret)| secret.as_ref().map(|s| (key, s)))
    }
}

fn default_ns_port() -> u16 {
    DNS_PORT
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Rfc2136,
    Powerdns,
    Cloudflare,
    Desec,
    Zonefile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertSet {
    pub name: Spanned<String>,
    #[serde(rename = "endpoint", default)]
    pub endpoints: Vec<Endpoint>,
    pub source: Source,
    pub deploy: Deploy,
    #[serde(default)]
    pub next_key: KeyAlgorithmChoice,
    /// Matching types of the `3 1 x` records, in lockstep.
    #[serde(default = "default_matching")]
    pub matching: Vec<MatchingName>,
    /// Fixed trust-anchor records published beside the keys and never
    /// rolled: `2 1 1` (or `2 0 1`) of the CA intermediates that issue the
    /// set's certificates, e.g. `["2 1 1 8d02…"]`.
    #[serde(default)]
    pub issuer: Vec<IssuerRecord>,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// Seconds added to `t_safe`.
    #[serde(default = "default_margin")]
    pub margin: u64,
    /// tlsa owns the whole RRset (otherwise records it did not create stay).
    #[serde(default)]
    pub fully_managed: bool,
    /// How the `verified` step checks that the new key is in service:
    /// `live` (connect to every address of every endpoint) or
    /// `deployed-files` (only the deploy target; for hosts tlsa cannot reach).
    #[serde(default)]
    pub verify: VerifyMode,
    /// What to do when a server presents a key tlsa did not expect and no
    /// record matches it: publish its records at once (and alarm), or only
    /// alarm (a key tlsa did not put there may be a mistake or an attack).
    #[serde(default)]
    pub on_unmatched_key: UnmatchedKey,
    /// Steps performed only with `tlsa run --confirm` (all automatic by default).
    #[serde(default)]
    pub manual: Vec<ManualStep>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyMode {
    #[default]
    Live,
    DeployedFiles,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnmatchedKey {
    #[default]
    Publish,
    Alarm,
}

/// Steps an operator may want to confirm by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManualStep {
    /// Publishing records (of a new key, or the next key).
    Publish,
    /// Putting a new certificate into service.
    Deploy,
    /// Removing the records of keys no longer in service.
    Retire,
}

fn default_matching() -> Vec<MatchingName> {
    vec![MatchingName(Matching::Sha256)]
}

fn default_ttl() -> u32 {
    3600
}

fn default_margin() -> u64 {
    60
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchingName(pub Matching);

impl<'de> Deserialize<'de> for MatchingName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.parse::<Matching>() {
            Ok(Matching::Full) => Err(serde::de::Error::custom(
                "matching type 0 (Full) is not supported for rolled keys: use sha2-256 and/or sha2-512",
            )),
            Ok(m) => Ok(MatchingName(m)),
            Err(e) => Err(serde::de::Error::custom(e)),
        }
    }
}

/// A `2 x y` record in presentation form. Only usage 2 (DANE-TA): usages 0
/// and 1 are unusable for SMTP (RFC 7672 §3.1), and usage 3 records are
/// the keys tlsa rolls itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRecord(pub crate::tlsa::TlsaRecord);

impl<'de> Deserialize<'de> for IssuerRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let record: crate::tlsa::TlsaRecord = text.parse().map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a TLSA record in presentation form (\"2 1 1 HEX\"): {e}"
            ))
        })?;
        if record.usage != 2 {
            return Err(serde::de::Error::custom(format!(
                "{text:?}: issuer records are usage 2 (DANE-TA); the set's own keys get their 3 1 x records automatically"
            )));
        }
        Ok(IssuerRecord(record))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// smtp, lmtp, imap, pop3 or none (implicit TLS); by port when absent.
    pub starttls: Option<String>,
    /// Connect to these instead of the host's validated A/AAAA addresses
    /// (e.g. internal addresses, or a server behind NAT).
    #[serde(default)]
    pub addresses: Vec<SocketAddr>,
}

fn default_port() -> u16 {
    25
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Source {
    /// A certbot lineage directory (`/etc/letsencrypt/live/NAME`).
    Certbot(PathBuf),
    /// Two certbot lineages that alternate the live and next roles, both
    /// renewed with `--reuse-key`: the one whose key is deployed is live,
    /// the other one's key is the pre-published next key (instead of one
    /// tlsa generates), so a planned roll has its certificate ready.
    CertbotPair([PathBuf; 2]),
    /// Plain certificate chain and key files written by some ACME client.
    Files { cert: PathBuf, key: PathBuf },
    /// An acme.sh certificate directory (`~/.acme.sh/NAME` or `NAME_ecc`):
    /// `fullchain.cer` and `NAME.key`.
    AcmeSh(PathBuf),
    /// lego's `--path` directory and the certificate's domain:
    /// `certificates/DOMAIN.crt` (the bundle) and `certificates/DOMAIN.key`.
    Lego { path: PathBuf, domain: String },
    /// tlsa issues self-signed certificates for its own keys (DANE-EE needs
    /// no CA: RFC 7672 §3.1.1).
    SelfSigned { names: Vec<String> },
    /// tlsa orders the certificates for its own keys from an ACME CA,
    /// DNS-01 through the zone's back-end.
    Acme(crate::acme::source::AcmeSource),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// Directory tlsa owns; the server reads `fullchain.pem` and
    /// `privkey.pem` from it, or `combined.pem` (key then chain, one file:
    /// replaced in one rename, so no server ever reads a key with the wrong
    /// certificate; Postfix: `smtpd_tls_chain_files`).
    pub dir: PathBuf,
    /// Command run after a deploy, as an argument list (no shell).
    #[serde(default)]
    pub reload: Vec<String>,
    /// User that owns the deployed files (a server running as another
    /// user, e.g. `Debian-exim`, must read its key); tlsa's user when absent.
    pub owner: Option<String>,
    /// Group of the deployed files (e.g. `mail`).
    pub group: Option<String>,
    /// Mode of the private key files (`privkey.pem`, `combined.pem`), in
    /// octal: `"0640"` lets `group` read them; 0600 when absent. The chain is
    /// public (0644).
    #[serde(default, deserialize_with = "key_mode")]
    pub mode: Option<u32>,
}

/// The default mode of deployed private key files.
pub const DEFAULT_KEY_MODE: u32 = 0o600;

/// `"0640"`: octal, owner and group bits only (a private key readable by
/// every user is a key anyone on the host can use).
fn key_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let text = String::deserialize(d)?;
    let mode = u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "mode {text:?}: expected an octal file mode in quotes, e.g. \"0640\""
            ))
        })?;
    if mode & 0o007 != 0 {
        return Err(serde::de::Error::custom(format!(
            "mode \"{mode:04o}\" lets every user of the host read or change the private key: use \"0640\" with group = \"…\" (or \"0600\")"
        )));
    }
    Ok(Some(mode))
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithmChoice {
    #[default]
    EcdsaP256,
    EcdsaP384,
    // "rsa-2048" reads like "ecdsa-p256"; both spellings are accepted.
    #[serde(alias = "rsa-2048")]
    Rsa2048,
    #[serde(alias = "rsa-3072")]
    Rsa3072,
    #[serde(alias = "rsa-4096")]
    Rsa4096,
}

impl Config {
    /// Every environment variable the config reads a secret from (`env = "…"`
    /// of a TSIG key, API key or token), and `TLSA_TSIG_KEY`: a command tlsa
    /// runs does not need them, and a reload script that logs its environment
    /// must not be able to leak them.
    pub fn secret_env_names(&self) -> Vec<String> {
        let mut names = vec![crate::dns::publish::tsig::KEY_ENV.to_string()];
        for zone in &self.zones {
            for secret in [&zone.tsig_key, &zone.api_key, &zone.token]
                .into_iter()
                .flatten()
            {
                if let Some(var) = &secret.env
                    && !names.contains(var)
                {
                    names.push(var.clone());
                }
            }
        }
        for set in &self.sets {
            if let Source::Acme(acme) = &set.source
                && let Some(var) = acme.eab.as_ref().and_then(|e| e.hmac_key.env.as_ref())
                && !names.contains(var)
            {
                names.push(var.clone());
            }
        }
        names
    }

    /// The DANE MX hosts of the config: the hosts of its port-25 endpoints.
    /// For DANE the policy domain of a report is the TLSA base domain, the MX
    /// host (RFC 8460 §3).
    pub fn dane_mx_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self.sets.iter().flat_map(CertSet::mx_hosts).collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// The policy domains that get the TLS-RPT record: `[tlsrpt] domains` when
    /// given; otherwise every `[[mta_sts]]` mail domain and every DANE MX host
    /// (some reporters use the recipient domain for DANE too, so both).
    pub fn tlsrpt_domains(&self) -> Vec<String> {
        let given = self.tlsrpt.as_ref().map(|t| t.domains.as_slice());
        let mut domains: Vec<String> = match given {
            Some(given) if !given.is_empty() => given.iter().map(|d| normalise(d)).collect(),
            _ => self
                .mta_sts
                .iter()
                .map(|p| normalise(p.domain.get_ref()))
                .chain(self.dane_mx_hosts())
                .collect(),
        };
        domains.sort();
        domains.dedup();
        domains
    }
}

impl CertSet {
    /// The DANE MX hosts of one set: the hosts of its port-25 endpoints.
    pub fn mx_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .endpoints
            .iter()
            .filter(|e| e.port == 25)
            .map(|e| normalise(&e.host))
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlsrpt_domains_are_the_mta_sts_domains_and_dane_mx_hosts_unless_named() {
        let base = include_str!("../examples/mta-sts.toml");
        let with = |table: &str| Config::parse(&format!("{base}\n[tlsrpt]\n{table}\n")).unwrap();
        let derived = with("rua = [\"mailto:r@example.org\"]");
        assert_eq!(derived.tlsrpt_domains(), ["example.org", "mx1.example.org"]);
        let named = with("rua = [\"mailto:r@example.org\"]\ndomains = [\"Other.example.\"]");
        assert_eq!(named.tlsrpt_domains(), ["other.example"]);
        let err =
            Config::parse(&format!("{base}\n[tlsrpt]\ndomains = [\"a.example\"]\n")).unwrap_err();
        assert!(err.contains("rua is not"), "{err}");
        let err = Config::parse(&format!(
            "{base}\n[tlsrpt]\nrua = [\"mailto:a@b\"]\nttl = 0\n"
        ))
        .unwrap_err();
        assert!(err.contains("[tlsrpt] ttl = 0"), "{err}");
    }

    const GOOD: &str = r#"
state_dir = "/tmp/tlsa-state"

[dnssec]
resolver = "127.0.0.1:53"
anchor = "/etc/tlsa/anchor.key"

[[zone]]
name = "example.com"
backend = "rfc2136"
server = "192.0.2.53:53"
tsig_key = { file = "/etc/tlsa/tsig.key" }

[[set]]
name = "mail"
source = { certbot = "/etc/letsencrypt/live/mail.example.com" }
deploy = { dir = "/etc/tlsa/live/mail", reload = ["postfix", "reload"] }
matching = ["sha2-256", "sha2-512"]

[[set.endpoint]]
host = "mail.example.com"
port = 25
"#;

    #[test]
    fn endpoints_are_checked_at_load() {
        let err = Config::parse(&GOOD.replace("port = 25", "port = 25\nstarttls = \"smpt\""))
            .unwrap_err();
        assert!(
            err.contains("mail.example.com:25") && err.contains("smpt"),
            "{err}"
        );
        let err =
            Config::parse(&GOOD.replace("host = \"mail.example.com\"", "host = \"192.0.2.1\""))
                .unwrap_err();
        assert!(
            err.contains("set \"mail\"") && err.contains("192.0.2.1"),
            "{err}"
        );
    }

    #[test]
    fn parses_a_complete_config() {
        let config = Config::parse(GOOD).unwrap();
        assert_eq!(config.sets[0].endpoints[0].host, "mail.example.com");
        assert_eq!(config.sets[0].matching.len(), 2);
        assert_eq!(config.sets[0].next_key, KeyAlgorithmChoice::EcdsaP256);
        for (text, expected) in [
            ("rsa-2048", KeyAlgorithmChoice::Rsa2048),
            ("rsa4096", KeyAlgorithmChoice::Rsa4096),
            ("ecdsa-p384", KeyAlgorithmChoice::EcdsaP384),
        ] {
            let line = format!("next_key = \"{text}\"\nmatching =");
            let config = Config::parse(&GOOD.replace("matching =", &line)).unwrap();
            assert_eq!(config.sets[0].next_key, expected, "{text}");
        }
        assert_eq!(config.dnssec.mode, ValidationMode::Anchored);
        assert_eq!(config.zones[0].backend, BackendKind::Rfc2136);
    }

    #[test]
    fn a_typo_names_the_line_and_key() {
        let typo = GOOD.replace("matching =", "matchin =");
        let err = Config::parse(&typo).unwrap_err();
        assert!(
            err.contains("line 18") && err.contains("did you mean `matching`?"),
            "{err}"
        );
        // toml's layout: the message, then the line under a gutter, with a caret.
        assert!(err.contains("\n18 | matchin = "), "{err}");
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        let err = Config::parse(&GOOD.replace("192.0.2.53:53", "ns1.example.com")).unwrap_err();
        assert!(
            err.contains("line 11") && err.contains("not an IP address with an optional port"),
            "{err}"
        );
        let bare = Config::parse(&GOOD.replace("127.0.0.1:53", "127.0.0.1")).unwrap();
        assert_eq!(bare.dnssec.resolver, "127.0.0.1:53".parse().unwrap());
        let err = Config::parse(&GOOD.replace("port = 25", "port = 70000")).unwrap_err();
        assert!(err.contains("a port number (1-65535)"), "{err}");
        let err = Config::parse(&GOOD.replace("[[set]]", "[[sets]]")).unwrap_err();
        assert!(
            err.contains("unknown table `sets`, did you mean `set`?"),
            "{err}"
        );
        let err = Config::parse(&GOOD.replace("port = 25", "port = 2525")).unwrap_err();
        assert!(err.contains("starttls = \"smtp\""), "{err}");
        let err = Config::parse(&GOOD.replace("sha2-512", "md5")).unwrap_err();
        assert!(err.contains("SHA2-256"), "{err}");
        let err =
            Config::parse(&GOOD.replace("{ file = \"/etc/tlsa/tsig.key\" }", "{ }")).unwrap_err();
        assert!(
            err.contains("line 9") && err.contains("exactly one"),
            "{err}"
        );
        let err = Config::parse(&GOOD.replace("backend = \"rfc2136\"", "backend = \"powerdns\""))
            .unwrap_err();
        assert!(err.contains("line 9") && err.contains("api_url"), "{err}");
    }

    #[test]
    fn a_secret_pasted_as_a_variable_name_is_refused_without_being_shown() {
        let pasted = "c2VjcmV0LXRva2VuLTQy+/==";
        let err = Config::parse(&GOOD.replace(
            "tsig_key = { file = \"/etc/tlsa/tsig.key\" }",
            &format!("tsig_key = {{ env = \"{pasted}\" }}"),
        ))
        .unwrap_err();
        assert!(err.contains("name of an environment variable"), "{err}");
        assert!(!err.contains(pasted), "{err}");
        assert!(is_env_name("TLSA_TSIG_KEY") && !is_env_name("1X") && !is_env_name(""));
    }

    #[test]
    fn issuer_records_are_usage_2_in_presentation_form() {
        let hex = "ab".repeat(32);
        let with = |list: &str| GOOD.replace("matching =", &format!("issuer = {list}\nmatching ="));
        let config = Config::parse(&with(&format!("[\"2 1 1 {hex}\"]"))).unwrap();
        assert_eq!(config.sets[0].issuer[0].0.usage, 2);
        let err = Config::parse(&with(&format!("[\"3 1 1 {hex}\"]"))).unwrap_err();
        assert!(err.contains("usage 2"), "{err}");
        let err = Config::parse(&with("[\"2 1 1 zz\"]")).unwrap_err();
        assert!(err.contains("presentation form"), "{err}");
    }

    #[test]
    fn a_set_without_endpoints_is_refused() {
        let cut = &GOOD[..GOOD.find("[[set.endpoint]]").unwrap()];
        let err = Config::parse(cut).unwrap_err();
        assert!(
            err.contains("line 15") && err.contains("no [[set.endpoint]]"),
            "{err}"
        );
    }

    #[test]
    fn settings_that_would_roll_without_records_are_refused_with_their_line() {
        let cases = [
            (
                "matching = [\"sha2-256\", \"sha2-512\"]",
                "matching = []",
                18,
                "matching = []",
            ),
            ("matching =", "ttl = 0\nmatching =", 18, "ttl = 0"),
            (
                "matching =",
                "ttl = 2147483648\nmatching =",
                18,
                "2147483647",
            ),
            (
                "dir = \"/etc/tlsa/live/mail\"",
                "dir = \"\"",
                17,
                "deploy.dir",
            ),
            (
                "state_dir = \"/tmp/tlsa-state\"",
                "state_dir = \"\"",
                2,
                "state_dir",
            ),
            (
                "host = \"mail.example.com\"",
                "host = \"mail.example.org\"",
                15,
                "no configured zone",
            ),
        ];
        for (from, to, line, says) in cases {
            let err = Config::parse(&GOOD.replace(from, to)).unwrap_err();
            assert!(
                err.contains(&format!("line {line}"))
                    && err.contains(says)
                    && err.contains("expected"),
                "{to}: {err}"
            );
        }
        assert!(Config::parse(&GOOD.replace("matching =", "ttl = 2147483647\nmatching =")).is_ok());
    }

    #[test]
    fn two_sets_rolling_one_kind_of_key_at_one_owner_are_refused() {
        let second = |next_key: &str| {
            format!(
                "{GOOD}\n[[set]]\nname = \"mail-2\"\nnext_key = \"{next_key}\"\nsource = {{ certbot = \"/etc/letsencrypt/live/b\" }}\ndeploy = {{ dir = \"/etc/tlsa/live/b\" }}\n\n[[set.endpoint]]\nhost = \"MAIL.example.com.\"\nport = 25\n"
            )
        };
        let err = Config::parse(&second("ecdsa-p384")).unwrap_err();
        assert!(
            err.contains("set \"mail-2\"")
                && err.contains("_25._tcp.mail.example.com.")
                && err.contains("\"mail\""),
            "{err}"
        );
        // The README's dual RSA + ECDSA server.
        assert!(Config::parse(&second("rsa-2048")).is_ok());
    }

    #[test]
    fn set_names_that_would_escape_the_state_directory_are_refused() {
        for bad in ["../mail", "a/b", ".hidden", ""] {
            let err = Config::parse(&GOOD.replace("name = \"mail\"", &format!("name = {bad:?}")))
                .unwrap_err();
            assert!(
                err.contains("line 15") && err.contains("set name"),
                "{bad}: {err}"
            );
        }
        assert!(Config::parse(&GOOD.replace("name = \"mail\"", "name = \"mx-1.rsa_2\"")).is_ok());
    }
}
