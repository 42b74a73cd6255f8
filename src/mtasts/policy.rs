//! The MTA-STS policy file (RFC 8461 §3.2): parsing what a server serves,
//! and generating the canonical form tlsa publishes.
//!
//! Parsing follows the RFC's grammar: `key: value` lines ended by CRLF (LF
//! alone is accepted, as every sender does), `version: STSv1`, `mode`,
//! `max_age` (at most 31557600), one or more `mx` (required unless the mode
//! is `none`), unknown keys ignored (extensions). It is strict about what it
//! then claims: a repeated `version`, `mode` or `max_age`, a value outside
//! the grammar or a missing field is an error naming the line. Things the
//! RFC allows but some senders reject (version not first, LF line ends) are
//! warnings.
//!
//! The canonical form is `version: STSv1` first, then `mode`, one `mx:` per
//! line (lower case, sorted, each once), `max_age`, every line ended by CRLF.
//! Its [`Policy::id`] is derived from that text, so it changes exactly when
//! the policy does (a reordering of the configured MX list is no change).

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::matching;

/// The largest `max_age` (RFC 8461 §3.2: one year, in seconds).
pub const MAX_MAX_AGE: u32 = 31_557_600;

/// The largest policy a sender reads (RFC 8461 §3.3 suggests 64 KiB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// A policy's mode (RFC 8461 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Senders do not apply a policy (and forget a cached one).
    None,
    /// Senders deliver anyway and report failures (TLS-RPT).
    Testing,
    /// Senders refuse to deliver to an MX that fails the policy.
    Enforce,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Testing => "testing",
            Mode::Enforce => "enforce",
        }
    }

    fn parse(text: &str) -> Option<Mode> {
        match text {
            "none" => Some(Mode::None),
            "testing" => Some(Mode::Testing),
            "enforce" => Some(Mode::Enforce),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A policy: what the canonical file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub mode: Mode,
    /// Seconds a sender may cache the policy.
    pub max_age: u32,
    /// MX patterns (host names, or `*.` + a host name).
    pub mx: Vec<String>,
}

/// A policy parsed from a server's file, with what a strict reader may dislike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub policy: Policy,
    /// Allowed by the RFC, but worth changing (some senders reject it).
    pub warnings: Vec<String>,
}

impl Policy {
    /// A policy; its MX patterns are kept in canonical order (lower case,
    /// sorted, each once). `Err` says which value is out of bounds.
    pub fn new(mode: Mode, max_age: u32, mx: &[String]) -> Result<Policy, String> {
        if max_age > MAX_MAX_AGE {
            return Err(format!(
                "max_age {max_age} is more than {MAX_MAX_AGE} (one year, RFC 8461 §3.2)"
            ));
        }
        let mut patterns = Vec::new();
        for pattern in mx {
            matching::check_pattern(pattern)?;
            patterns.push(matching::normalise(pattern));
        }
        patterns.sort();
        patterns.dedup();
        if patterns.is_empty() && mode != Mode::None {
            return Err(format!(
                "a policy in mode {mode} needs at least one mx pattern (RFC 8461 §3.2)"
            ));
        }
        Ok(Policy {
            mode,
            max_age,
            mx: patterns,
        })
    }

    /// The file as tlsa publishes it.
    pub fn canonical(&self) -> String {
        let mut text = String::from("version: STSv1\r\n");
        text.push_str(&format!("mode: {}\r\n", self.mode));
        for mx in &self.mx {
            text.push_str(&format!("mx: {mx}\r\n"));
        }
        text.push_str(&format!("max_age: {}\r\n", self.max_age));
        text
    }

    /// The `id` of the TXT record announcing this policy: the first 32 hex
    /// digits (128 bits) of the SHA-256 of the canonical file, which fits
    /// RFC 8461 §3.1's 1–32 alphanumerics.
    pub fn id(&self) -> String {
        let digest = Sha256::digest(self.canonical().as_bytes());
        hex::encode(digest)[..32].to_string()
    }

    /// Whether the policy matches the MX host `host`.
    pub fn matches(&self, host: &str) -> bool {
        matching::matching_pattern(&self.mx, host).is_some()
    }
}

/// Why a served file is not a valid policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a served policy file.
pub fn parse(text: &str) -> Result<Parsed, PolicyError> {
    let fail = |message: String| Err(PolicyError(message));
    let mut warnings = Vec::new();
    let mut version: Option<usize> = None;
    let mut mode: Option<Mode> = None;
    let mut max_age: Option<u32> = None;
    let mut mx: Vec<String> = Vec::new();
    let mut bare_lf = false;
    let mut first_field = true;
    let lines: Vec<&str> = text.split('\n').collect();
    for (index, raw) in lines.iter().enumerate() {
        let number = index + 1;
        let line = match raw.strip_suffix('\r') {
            Some(line) => line,
            None => {
                // The last piece after a final line end is no line.
                if index + 1 < lines.len() {
                    bare_lf = true;
                }
                raw
            }
        };
        if line.contains('\r') {
            return fail(format!("line {number}: a CR inside a line"));
        }
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return fail(format!("line {number}: expected \"key: value\""));
        };
        // RFC 8461 §3.2: the value follows `:` and optional white space;
        // trailing white space is tolerated as senders do.
        let value = value.trim_matches([' ', '\t']);
        let is_first = std::mem::take(&mut first_field);
        match key {
            "version" => {
                if version.is_some() {
                    return fail(format!("line {number}: version given twice"));
                }
                if value != "STSv1" {
                    return fail(format!(
                        "line {number}: version {value:?}: only STSv1 exists"
                    ));
                }
                if !is_first {
                    warnings.push(
                        "version is not the first line: some senders reject such a policy".into(),
                    );
                }
                version = Some(number);
            }
            "mode" => {
                if mode.is_some() {
                    return fail(format!("line {number}: mode given twice"));
                }
                mode = Some(Mode::parse(value).ok_or_else(|| {
                    PolicyError(format!(
                        "line {number}: mode {value:?}: expected enforce, testing or none"
                    ))
                })?);
            }
            "max_age" => {
                if max_age.is_some() {
                    return fail(format!("line {number}: max_age given twice"));
                }
                let seconds = (!value.is_empty()
                    && value.len() <= 10
                    && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| {
                    PolicyError(format!(
                        "line {number}: max_age {value:?} is not a number of seconds"
                    ))
                })?;
                if seconds > u64::from(MAX_MAX_AGE) {
                    return fail(format!(
                        "line {number}: max_age {seconds} is more than {MAX_MAX_AGE} (RFC 8461 §3.2)"
                    ));
                }
                max_age = Some(seconds as u32);
            }
            "mx" => {
                matching::check_pattern(value)
                    .map_err(|why| PolicyError(format!("line {number}: mx {why}")))?;
                mx.push(matching::normalise(value));
            }
            other => {
                let extension = !other.is_empty()
                    && other.len() <= 32
                    && other
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if !extension {
                    return fail(format!(
                        "line {number}: {:?} is not a field name",
                        other.chars().take(40).collect::<String>()
                    ));
                }
            }
        }
    }
    if version.is_none() {
        return fail("no \"version: STSv1\" line".into());
    }
    let Some(mode) = mode else {
        return fail("no mode line".into());
    };
    let Some(max_age) = max_age else {
        return fail("no max_age line".into());
    };
    if bare_lf {
        warnings.push("lines end in LF, not CRLF as RFC 8461 §3.2 says".into());
    }
    let policy = Policy::new(mode, max_age, &mx).map_err(PolicyError)?;
    Ok(Parsed { policy, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: Mode, mx: &[&str]) -> Policy {
        let mx: Vec<String> = mx.iter().map(|s| s.to_string()).collect();
        Policy::new(mode, 86_400, &mx).unwrap()
    }

    #[test]
    fn canonical_form_is_version_first_crlf_one_mx_per_line() {
        let p = policy(
            Mode::Enforce,
            &["MX2.example.com", "mx1.example.com", "mx1.example.com."],
        );
        assert_eq!(
            p.canonical(),
            "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: mx2.example.com\r\nmax_age: 86400\r\n"
        );
        let again = parse(&p.canonical()).unwrap();
        assert_eq!(again.policy, p);
        assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    }

    #[test]
    fn the_id_changes_exactly_when_the_policy_does() {
        let a = policy(Mode::Testing, &["a.example.com", "b.example.com"]);
        let reordered = policy(Mode::Testing, &["b.example.com", "a.example.com"]);
        assert_eq!(a.id(), reordered.id());
        assert_eq!(a.id().len(), 32);
        assert!(a.id().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(
            a.id(),
            policy(Mode::Enforce, &["a.example.com", "b.example.com"]).id()
        );
        assert_ne!(a.id(), policy(Mode::Testing, &["a.example.com"]).id());
        let longer = Policy::new(Mode::Testing, 86_401, &a.mx).unwrap();
        assert_ne!(a.id(), longer.id());
    }

    #[test]
    fn lf_unknown_keys_and_order_are_tolerated_with_warnings() {
        let parsed =
            parse("mode: testing\nmx: *.example.com\nfoo_bar: whatever\nversion: STSv1\nmax_age: 604800\n")
                .unwrap();
        assert_eq!(parsed.policy.mode, Mode::Testing);
        assert_eq!(parsed.policy.mx, vec!["*.example.com"]);
        assert_eq!(parsed.warnings.len(), 2, "{:?}", parsed.warnings);
        // No final line end, white space after the colon.
        let parsed = parse("version: STSv1\r\nmode:\tnone\r\nmax_age:  0").unwrap();
        assert_eq!(parsed.policy.mode, Mode::None);
        assert!(parsed.policy.mx.is_empty());
    }

    #[test]
    fn what_it_claims_is_checked() {
        for (text, why) in [
            (
                "mode: enforce\r\nmx: a.example\r\nmax_age: 1\r\n",
                "version",
            ),
            (
                "version: STSv2\r\nmode: enforce\r\nmx: a.example\r\nmax_age: 1\r\n",
                "STSv1",
            ),
            (
                "version: STSv1\r\nmode: Enforce\r\nmx: a.example\r\nmax_age: 1\r\n",
                "mode",
            ),
            (
                "version: STSv1\r\nmode: enforce\r\nmax_age: 1\r\n",
                "mx pattern",
            ),
            (
                "version: STSv1\r\nmode: enforce\r\nmx: a.example\r\n",
                "max_age",
            ),
            (
                "version: STSv1\r\nmode: enforce\r\nmx: a.example\r\nmax_age: 31557601\r\n",
                "more than",
            ),
            (
                "version: STSv1\r\nmode: enforce\r\nmx: a.example\r\nmax_age: -1\r\n",
                "not a number",
            ),
            (
                "version: STSv1\r\nmode: enforce\r\nmode: testing\r\nmx: a.example\r\nmax_age: 1\r\n",
                "twice",
            ),
            (
                "version: STSv1\r\nmode: enforce\r\nmx: a.*.example\r\nmax_age: 1\r\n",
                "left-most",
            ),
            ("<html>\r\n<body>policy</body>\r\n", "key: value"),
            (
                "version: STSv1\r\nmode: none\r\nmax_age: 1\rmx: x.example\r\n",
                "CR",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.0.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn max_age_has_a_ceiling_when_built_too() {
        assert!(Policy::new(Mode::None, MAX_MAX_AGE + 1, &[]).is_err());
        assert!(Policy::new(Mode::Enforce, 60, &[]).is_err());
        assert!(Policy::new(Mode::None, MAX_MAX_AGE, &[]).is_ok());
    }
}
