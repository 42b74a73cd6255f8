//! Extended DNS Errors (RFC 8914): the reason a resolver gives, in an EDNS
//! option, for an answer it could not give or could not validate. Read from
//! the validating resolver's answers ([`super::dnssec`]) and from the
//! answers that check a trust anchor ([`super::anchors`]).

use std::fmt;

use hickory_proto::op::DnsResponse;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

/// An Extended DNS Error (RFC 8914) from a response's OPT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedError {
    pub code: u16,
    pub text: String,
}

/// The EDNS option code of Extended DNS Errors.
const EDE_OPTION: u16 = 15;

impl ExtendedError {
    /// Codes 6–12: the resolver's DNSSEC validation failed.
    pub fn is_dnssec_failure(&self) -> bool {
        (6..=12).contains(&self.code)
    }

    /// The IANA name of the code.
    pub fn name(&self) -> &'static str {
        match self.code {
            0 => "Other Error",
            1 => "Unsupported DNSKEY Algorithm",
            2 => "Unsupported DS Digest Type",
            3 => "Stale Answer",
            4 => "Forged Answer",
            5 => "DNSSEC Indeterminate",
            6 => "DNSSEC Bogus",
            7 => "Signature Expired",
            8 => "Signature Not Yet Valid",
            9 => "DNSKEY Missing",
            10 => "RRSIGs Missing",
            11 => "No Zone Key Bit Set",
            12 => "NSEC Missing",
            13 => "Cached Error",
            14 => "Not Ready",
            15 => "Blocked",
            16 => "Censored",
            17 => "Filtered",
            18 => "Prohibited",
            19 => "Stale NXDomain Answer",
            20 => "Not Authoritative",
            21 => "Not Supported",
            22 => "No Reachable Authority",
            23 => "Network Error",
            24 => "Invalid Data",
            _ => "Unknown",
        }
    }
}

impl fmt::Display for ExtendedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EDE {} {}", self.code, self.name())?;
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        Ok(())
    }
}

/// Every Extended DNS Error in a response.
pub fn extended_errors(response: &DnsResponse) -> Vec<ExtendedError> {
    let Some(edns) = response.edns.as_ref() else {
        return Vec::new();
    };
    edns.options()
        .get_all(EdnsCode::Unknown(EDE_OPTION))
        .into_iter()
        .filter_map(|option| match option {
            EdnsOption::Unknown(_, data) if data.len() >= 2 => Some(ExtendedError {
                code: u16::from_be_bytes([data[0], data[1]]),
                text: String::from_utf8_lossy(&data[2..])
                    .trim_end_matches('\0')
                    .to_string(),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnssec_extended_errors_are_6_to_12() {
        let ede = |code| ExtendedError {
            code,
            text: String::new(),
        };
        assert!(ede(9).is_dnssec_failure());
        assert!(ede(6).is_dnssec_failure());
        assert!(!ede(22).is_dnssec_failure());
        assert!(!ede(5).is_dnssec_failure());
        assert_eq!(
            ExtendedError {
                code: 9,
                text: "no DNSKEY".into()
            }
            .to_string(),
            "EDE 9 DNSKEY Missing: no DNSKEY"
        );
    }
}
