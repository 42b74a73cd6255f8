//! The reporting record (RFC 8460 §3): `_smtp._tls.DOMAIN` TXT
//! `v=TLSRPTv1; rua=URI[,URI]`, telling senders where to send their daily
//! reports. Pure: the URIs checked and encoded, the record's text, its owner
//! name (which policy domains a config needs it for is
//! [`crate::config::Config::tlsrpt_domains`]).

use hickory_proto::rr::Name;

/// How the record begins (RFC 8460 §3: `v=TLSRPTv1` first, case-sensitive).
pub const VERSION: &str = "v=TLSRPTv1";

/// Why a `rua` URI is refused; the text says what is expected.
pub fn check_rua(uri: &str) -> Result<(), String> {
    let expected = "expected mailto:ADDRESS (mailto:tlsrpt@example.com) or https://HOST/PATH (https://reports.example.com/tlsrpt), RFC 8460 §3";
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{uri:?} contains blanks or control characters; {expected}"
        ));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(format!("{uri:?} has no scheme; {expected}"));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "mailto" => {
            let address = rest.split('?').next().unwrap_or_default();
            match address.rsplit_once('@') {
                Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(()),
                _ => Err(format!(
                    "{uri:?} names no mail address (LOCAL@DOMAIN); {expected}"
                )),
            }
        }
        "https" => {
            let host = rest
                .strip_prefix("//")
                .map(|r| r.split(['/', '?', '#']).next().unwrap_or_default())
                .map(|authority| authority.rsplit('@').next().unwrap_or_default())
                .map(|h| h.split(':').next().unwrap_or_default())
                .unwrap_or_default();
            match host.is_empty() {
                true => Err(format!("{uri:?} names no host; {expected}")),
                false => Ok(()),
            }
        }
        _ => Err(format!(
            "{uri:?}: scheme {scheme:?} is not one senders use; {expected}"
        )),
    }
}

/// `uri` with the characters that separate the record's fields and URIs
/// (`,` `!` `;`) percent-encoded (RFC 8460 §3).
pub fn encode_uri(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    for c in uri.chars() {
        match c {
            ',' => out.push_str("%2C"),
            '!' => out.push_str("%21"),
            ';' => out.push_str("%3B"),
            c => out.push(c),
        }
    }
    out
}

/// The record's text for these URIs.
pub fn text(rua: &[String]) -> String {
    let uris: Vec<String> = rua.iter().map(|u| encode_uri(u)).collect();
    format!("{VERSION}; rua={}", uris.join(","))
}

/// `_smtp._tls.DOMAIN.`
pub fn owner(domain: &str) -> Result<Name, String> {
    let text = format!("_smtp._tls.{}.", domain.trim_end_matches('.'));
    Name::from_ascii(&text)
        .map_err(|e| format!("TLS-RPT policy domain {domain:?} is not a DNS name: {e}"))
}

/// A domain as policy domains are compared: lower case, no trailing dot.
pub fn normalise(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_checked_by_scheme() {
        for good in [
            "mailto:tlsrpt@example.com",
            "MAILTO:a@b",
            "https://reports.example.com/v1",
            "https://reports.example.com:8443",
        ] {
            assert_eq!(check_rua(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("ftp://example.com", "scheme \"ftp\""),
            ("mailto:nobody", "no mail address"),
            ("mailto:@example.com", "no mail address"),
            ("https:///path", "no host"),
            ("https:reports", "no host"),
            ("tlsrpt@example.com", "no scheme"),
            ("mailto:a b@c", "blanks"),
        ] {
            let err = check_rua(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("expected mailto:"), "{err}");
        }
    }

    #[test]
    fn separators_inside_uris_are_encoded() {
        let rua = vec![
            "mailto:tls,rpt!x;y@example.com".to_string(),
            "https://r.example.com/a;b".to_string(),
        ];
        assert_eq!(
            text(&rua),
            "v=TLSRPTv1; rua=mailto:tls%2Crpt%21x%3By@example.com,https://r.example.com/a%3Bb"
        );
        assert_eq!(
            owner("Example.COM.").unwrap().to_ascii(),
            "_smtp._tls.Example.COM."
        );
    }
}
