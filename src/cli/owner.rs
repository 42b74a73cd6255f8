//! TLSA owner names: `_PORT._PROTO.HOST.` (RFC 6698 §3).

/// Checks and normalises an owner name to its absolute form (trailing dot).
pub fn normalise(name: &str) -> Result<String, String> {
    let trimmed = name.trim().trim_end_matches('.');
    let problem = if trimmed.is_empty() {
        Some("it is empty".to_string())
    } else if trimmed.len() > 253 {
        Some("it is longer than 253 characters".to_string())
    } else {
        trimmed.split('.').find_map(|label| {
            if label.is_empty() {
                Some("it has an empty label (two dots in a row)".to_string())
            } else if label.len() > 63 {
                Some(format!("the label {label:?} is longer than 63 characters"))
            } else if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                Some(format!(
                    "the label {label:?} has characters other than letters, digits, '-' and '_'"
                ))
            } else {
                None
            }
        })
    };
    match problem {
        Some(why) => Err(format!("invalid DNS name {name:?}: {why}")),
        None => Ok(format!("{}.", trimmed.to_ascii_lowercase())),
    }
}

/// The owner name for a service endpoint.
pub fn for_endpoint(host: &str, port: u16, proto: &str) -> Result<String, String> {
    normalise(&format!("_{port}._{proto}.{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_checks_owner_names() {
        assert_eq!(
            for_endpoint("Mail.Example.com.", 25, "tcp").unwrap(),
            "_25._tcp.mail.example.com."
        );
        assert_eq!(
            normalise("_443._tcp.www.example.org").unwrap(),
            "_443._tcp.www.example.org."
        );
        assert!(normalise("a..b").unwrap_err().contains("empty label"));
        assert!(normalise("bad name").unwrap_err().contains("characters"));
        assert!(normalise(&"a".repeat(64)).unwrap_err().contains("63"));
    }
}
