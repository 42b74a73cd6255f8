//! The value types and checks that every section of the config shares
//! (addresses, secrets by reference, TTL and name rules): a base that the
//! sections defined elsewhere (`[[mta_sts]]`, `[tlsrpt]`, an ACME source)
//! use without depending on the whole config.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The port a DNS server address means when it names none, everywhere an
/// address is read (config and command line).
pub const DNS_PORT: u16 = 53;

/// A DNS server's address: `192.0.2.53`, `192.0.2.53:5353`, `2001:db8::53`
/// or `[2001:db8::53]:5353`; port 53 when absent.
pub fn parse_dns_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    with_default_port(text, DNS_PORT).ok_or_else(|| {
            format!(
            "{text:?} is not an IP address with an optional port (192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:5353; port {DNS_PORT} when absent)"
        )
    })
}

/// `192.0.2.1:25`, `[2001:db8::1]:25`, or an address alone (then `port`).
pub fn with_default_port(text: &str, port: u16) -> Option<SocketAddr> {
    let text = text.trim();
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port))
    })
}

pub(crate) fn dns_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    parse_dns_address(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

pub(crate) fn optional_dns_address<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    dns_address(d).map(Some)
}

pub(crate) fn dns_addresses<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<SocketAddr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|text| parse_dns_address(text).map_err(serde::de::Error::custom))
        .collect()
}

/// A secret given by reference, never inline: a file or an environment variable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

impl SecretRef {
    /// The HTTP back-ends' form of the reference (checked: exactly one is set).
    pub fn source(&self) -> crate::secrets::SecretSource {
        match (&self.file, &self.env) {
            (Some(file), _) => crate::secrets::SecretSource::File(file.clone()),
            (None, Some(var)) => crate::secrets::SecretSource::Env(var.clone()),
            (None, None) => crate::secrets::SecretSource::Env(String::new()),
        }
    }
}

/// The largest TTL (RFC 2181 §8: 2^31 - 1).
pub const MAX_TTL: u32 = 2_147_483_647;

/// `name` as an absolute DNS name, if it is one.
pub(crate) fn absolute_name(name: &str) -> Option<hickory_proto::rr::Name> {
    hickory_proto::rr::Name::from_ascii(format!("{}.", name.trim_end_matches('.'))).ok()
}

/// Whether `name` can be an environment variable's name.
pub(crate) fn is_env_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a set name can name files: no path separators, no leading dot.
pub(crate) fn is_file_safe_name(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(allowed)
}
