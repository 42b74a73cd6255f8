//! What is checked: a host, a port, and how TLS starts on that port.

use std::fmt;
use std::str::FromStr;

use crate::tlsa::Profile;

/// How a client gets from a TCP connection to TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// SMTP or submission: EHLO, STARTTLS (RFC 3207).
    Smtp,
    /// LMTP: LHLO, STARTTLS (RFC 2033).
    Lmtp,
    /// IMAP: STARTTLS (RFC 3501 §6.2.1, RFC 9051).
    Imap,
    /// POP3: STLS (RFC 2595 §4).
    Pop3,
    /// TLS from the first byte (SMTPS/submissions, IMAPS, POP3S, HTTPS).
    #[serde(rename = "none")]
    ImplicitTls,
}

impl Protocol {
    /// The protocol a port is known for: 25/587 SMTP, 143 IMAP, 110 POP3;
    /// 465, 993, 995, 443 implicit TLS. `None` for other ports.
    pub fn for_port(port: u16) -> Option<Protocol> {
        match port {
            25 | 587 => Some(Protocol::Smtp),
            143 => Some(Protocol::Imap),
            110 => Some(Protocol::Pop3),
            465 | 993 | 995 | 443 => Some(Protocol::ImplicitTls),
            _ => None,
        }
    }

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Lmtp => "lmtp",
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
            Protocol::ImplicitTls => "none",
        }
    }

    /// What this protocol calls its STARTTLS command (for messages).
    pub fn starttls_command(self) -> &'static str {
        match self {
            Protocol::Pop3 => "STLS",
            Protocol::ImplicitTls => "(implicit TLS)",
            _ => "STARTTLS",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "smtp" | "submission" => Ok(Protocol::Smtp),
            "lmtp" => Ok(Protocol::Lmtp),
            "imap" => Ok(Protocol::Imap),
            "pop3" | "pop" => Ok(Protocol::Pop3),
            "none" | "tls" | "implicit" => Ok(Protocol::ImplicitTls),
            _ => Err(format!(
                "unknown STARTTLS protocol {s:?}: expected smtp, lmtp, imap, pop3 or none (implicit TLS)"
            )),
        }
    }
}

/// One service endpoint: the TLSA owner `_PORT._tcp.HOST` and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Host name, lower case, without the trailing dot. Also the TLS SNI and
    /// the reference identifier for DANE-TA(2) name checks.
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
}

impl Endpoint {
    /// An endpoint for `host` (a DNS name) and `port`; the protocol defaults
    /// by port (see [`Protocol::for_port`]) and must be given for other ports.
    pub fn new(host: &str, port: u16, protocol: Option<Protocol>) -> Result<Self, String> {
        let host = normalise_host(host)?;
        if port == 0 {
            return Err(format!("{host}: port 0 is not a service port"));
        }
        let protocol = match protocol.or_else(|| Protocol::for_port(port)) {
            Some(p) => p,
            None => {
                return Err(format!(
                    "{host}: port {port} has no default protocol; say how TLS starts with --starttls smtp|lmtp|imap|pop3|none"
                ));
            }
        };
        Ok(Endpoint {
            host,
            port,
            protocol,
        })
    }

    /// The TLSA owner name, absolute: `_25._tcp.mail.example.com.`.
    pub fn owner(&self) -> String {
        format!("_{}._tcp.{}.", self.port, self.host)
    }

    /// Which matching rules a client of this endpoint applies: RFC 7672 for
    /// SMTP (MX delivery and submission), RFC 7671 otherwise.
    pub fn profile(&self) -> Profile {
        match (self.protocol, self.port) {
            (Protocol::Smtp | Protocol::Lmtp, _) | (_, 25 | 465 | 587) => Profile::Smtp,
            _ => Profile::Generic,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} ({})", self.host, self.port, self.protocol)
    }
}

/// Checks a host name (letters, digits, '-', '_'; labels of 1–63 bytes) and
/// returns it in lower case without the trailing dot.
pub fn normalise_host(host: &str) -> Result<String, String> {
    let trimmed = host.trim().trim_end_matches('.');
    let bad = |why: String| Err(format!("invalid host name {host:?}: {why}"));
    if trimmed.is_empty() {
        return bad("it is empty".into());
    }
    if trimmed.parse::<std::net::IpAddr>().is_ok() {
        return bad(
            "an IP address has no TLSA records; give the host name, and the address with --address"
                .into(),
        );
    }
    if trimmed.len() > 253 {
        return bad("it is longer than 253 characters".into());
    }
    for label in trimmed.split('.') {
        if label.is_empty() {
            return bad("it has an empty label".into());
        }
        if label.len() > 63 {
            return bad(format!("the label {label:?} is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad(format!(
                "the label {label:?} has characters other than letters, digits, '-' and '_'"
            ));
        }
    }
    Ok(trimmed.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_default_by_port() {
        let e = |port| Endpoint::new("Mail.Example.COM.", port, None).map(|e| e.protocol);
        assert_eq!(e(25), Ok(Protocol::Smtp));
        assert_eq!(e(587), Ok(Protocol::Smtp));
        assert_eq!(e(143), Ok(Protocol::Imap));
        assert_eq!(e(110), Ok(Protocol::Pop3));
        for port in [465, 993, 995, 443] {
            assert_eq!(e(port), Ok(Protocol::ImplicitTls));
        }
        let err = e(2525).unwrap_err();
        assert!(err.contains("--starttls"), "{err}");
        let explicit = Endpoint::new("mail.example.com", 2525, Some(Protocol::Smtp)).unwrap();
        assert_eq!(explicit.owner(), "_2525._tcp.mail.example.com.");
        assert_eq!(explicit.profile(), Profile::Smtp);
        assert_eq!(
            Endpoint::new("x.y", 443, None).unwrap().profile(),
            Profile::Generic
        );
        assert_eq!(
            Endpoint::new("x.y", 465, None).unwrap().profile(),
            Profile::Smtp
        );
    }

    #[test]
    fn host_names_are_checked() {
        assert_eq!(
            normalise_host("Mail.Example.com.").unwrap(),
            "mail.example.com"
        );
        assert!(
            normalise_host("127.0.0.1")
                .unwrap_err()
                .contains("--address")
        );
        assert!(normalise_host("a..b").unwrap_err().contains("empty label"));
        assert!(normalise_host("a b").unwrap_err().contains("characters"));
        assert!("bogus".parse::<Protocol>().is_err());
        assert_eq!("NONE".parse::<Protocol>(), Ok(Protocol::ImplicitTls));
    }
}
