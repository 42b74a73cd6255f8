//! MX host patterns of an MTA-STS policy (RFC 8461 §4.1): a pattern is a
//! host name, or `*.` followed by a host name, where the `*` stands for
//! exactly one whole left-most label. Comparison ignores case and a
//! trailing dot.

/// Whether the MX host `host` is matched by the policy pattern `pattern`.
///
/// `*.example.com` matches `a.example.com`, but neither `a.b.example.com`
/// (two labels) nor `example.com` (none).
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let pattern = normalise(pattern);
    let host = normalise(host);
    if host.is_empty() || host.contains('*') {
        return false;
    }
    match pattern.strip_prefix("*.") {
        Some(rest) => {
            !rest.contains('*')
                && host
                    .split_once('.')
                    .is_some_and(|(first, tail)| !first.is_empty() && tail == rest)
        }
        None => !pattern.contains('*') && pattern == host,
    }
}

/// The first of `patterns` that matches `host`, if any.
pub fn matching_pattern<'a>(patterns: &'a [String], host: &str) -> Option<&'a str> {
    patterns
        .iter()
        .map(String::as_str)
        .find(|p| mx_matches(p, host))
}

/// Checks that `pattern` can stand in a policy's `mx:` field: A-labels
/// (letters, digits, hyphens; no label starting or ending with a hyphen),
/// at least two labels, `*` only as the whole left-most label.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let name = normalise(pattern);
    let (wildcard, rest) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name.as_str()),
    };
    let labels: Vec<&str> = rest.split('.').collect();
    if name.is_empty() || labels.iter().any(|l| l.is_empty()) {
        return Err(format!("{pattern:?} is not a host name (an empty label)"));
    }
    if labels.len() + usize::from(wildcard) < 2 {
        return Err(format!(
            "{pattern:?} is a single label: MX patterns are host names such as mx.example.com or *.example.com"
        ));
    }
    for label in &labels {
        if label.len() > 63 {
            return Err(format!(
                "{pattern:?}: label {label:?} is longer than 63 characters"
            ));
        }
        if label.contains('*') {
            return Err(format!(
                "{pattern:?}: '*' may only be the whole left-most label (*.example.com)"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(format!(
                "{pattern:?}: label {label:?} is not letters, digits and inner hyphens (write internationalised names as A-labels, xn--…)"
            ));
        }
    }
    if name.len() > 253 {
        return Err(format!("{pattern:?} is longer than 253 characters"));
    }
    Ok(())
}

/// Lower case, without a trailing dot.
pub fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_is_exactly_one_left_most_label() {
        assert!(mx_matches("*.example.com", "a.example.com"));
        assert!(!mx_matches("*.example.com", "a.b.example.com"));
        assert!(!mx_matches("*.example.com", "example.com"));
        assert!(!mx_matches("*.example.com", ".example.com"));
        assert!(!mx_matches("a*.example.com", "ab.example.com"));
        assert!(!mx_matches("*.*.example.com", "a.b.example.com"));
    }

    #[test]
    fn case_and_trailing_dots_do_not_matter() {
        assert!(mx_matches("MX.Example.COM", "mx.example.com."));
        assert!(mx_matches("*.example.com.", "A.EXAMPLE.COM"));
        assert!(!mx_matches("mx.example.com", "mx2.example.com"));
        assert!(!mx_matches("mx.example.com", ""));
    }

    #[test]
    fn the_first_matching_pattern_is_named() {
        let patterns = vec!["mx1.example.com".to_string(), "*.example.net".to_string()];
        assert_eq!(
            matching_pattern(&patterns, "b.example.net"),
            Some("*.example.net")
        );
        assert_eq!(matching_pattern(&patterns, "example.net"), None);
    }

    #[test]
    fn patterns_are_host_names_with_at_most_a_left_most_wildcard() {
        for good in [
            "mx.example.com",
            "*.example.com",
            "xn--bcher-kva.example",
            "a-b.c",
        ] {
            check_pattern(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "localhost",
            "mx..example.com",
            "m*.example.com",
            "mx.*.example.com",
            "-mx.example.com",
            "mx_1.example.com",
            "bücher.example",
        ] {
            assert!(check_pattern(bad).is_err(), "{bad:?} accepted");
        }
    }
}
