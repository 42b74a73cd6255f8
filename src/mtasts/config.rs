//! The `[[mta_sts]]` tables of the config: one MTA-STS policy per mail
//! domain, where its file is written, the zone of its TXT record, and how
//! MX changes are ordered. Checked at load like the rest of the config: a
//! setting that would publish an invalid policy, or break mail under it,
//! is an error naming the line.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::policy::Mode;

/// One mail domain's policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtaSts {
    /// The mail domain (`example.com`: the policy is for mail to `@example.com`).
    pub domain: Spanned<String>,
    pub mode: Mode,
    /// Seconds senders may cache the policy (at most 31557600).
    #[serde(default = "default_max_age")]
    pub max_age: Spanned<u32>,
    /// The MX patterns: a list, or `"dns"` for the domain's validated MX RRset.
    #[serde(deserialize_with = "mx_source")]
    pub mx: Spanned<MxSource>,
    /// Directories served as `https://mta-sts.DOMAIN/`; the policy is
    /// written to `.well-known/mta-sts.txt` in each.
    pub webroots: Vec<PathBuf>,
    /// Command that makes the web server(s) serve a new file (argv, no shell).
    #[serde(default)]
    pub reload: Vec<String>,
    /// The zone (a `[[zone]]` of the config) holding `_mta-sts.DOMAIN`.
    pub zone: Spanned<String>,
    /// PEM file of extra CA roots for the WebPKI checks (private or test CA).
    pub ca_file: Option<PathBuf>,
    /// tlsa changes the MX RRset itself, in the safe order (`mx` then lists
    /// the MX host names).
    #[serde(default)]
    pub manage_mx: bool,
    /// An MX host may enter the MX RRset one TXT TTL after the new id is
    /// published, instead of the previous policy's max_age: weaker, it
    /// trusts every sender to refetch on a new id.
    #[serde(default)]
    pub trust_id_refresh: bool,
    /// Seconds the policy must have been in mode testing (or enforce)
    /// before mode enforce is published.
    #[serde(default = "default_enforce_after")]
    pub enforce_after: u64,
    /// Mode enforce also waits for TLS-RPT reports (the store of
    /// `[tlsrpt]`) showing `enforce_after` of testing without an MTA-STS or
    /// certificate failure, and at least one successful session.
    #[serde(default)]
    pub enforce_clean_reports: bool,
    /// Leave MTA-STS (RFC 8461 §8.3): publish mode none with a short
    /// max_age and remove the TXT record and the file once every policy
    /// served before has expired.
    #[serde(default)]
    pub leave: bool,
    /// TTL of the `_mta-sts` TXT (and of an MX RRset tlsa creates); an
    /// existing RRset keeps its own.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// Seconds each policy fetch may take (4: the shortest a known sender allows).
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout: f64,
    /// Port of the policy host (443; another only for tests and proxies).
    #[serde(default = "default_policy_port")]
    pub policy_port: u16,
    /// Fetch the policy from exactly these addresses (`192.0.2.1` or
    /// `192.0.2.1:443`) instead of the A/AAAA records of `mta-sts.DOMAIN`.
    #[serde(default)]
    pub policy_addresses: Vec<String>,
    /// Port of the MX hosts' SMTP service, for the WebPKI gate (25).
    #[serde(default = "default_mx_port")]
    pub mx_port: u16,
}

/// Where the policy's MX patterns come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxSource {
    /// The domain's validated MX RRset (its host names).
    Dns,
    /// These patterns.
    Patterns(Vec<String>),
}

/// One week: long enough to ride out an outage of the policy host, short
/// enough for changes.
pub const DEFAULT_MAX_AGE: u32 = 604_800;

/// Two weeks of testing before enforce.
pub const DEFAULT_ENFORCE_AFTER: u64 = 14 * 86_400;

fn default_max_age() -> Spanned<u32> {
    Spanned::new(0..0, DEFAULT_MAX_AGE)
}

fn default_ttl() -> u32 {
    3600
}

fn default_fetch_timeout() -> f64 {
    4.0
}

fn default_policy_port() -> u16 {
    443
}

fn default_mx_port() -> u16 {
    25
}

fn default_enforce_after() -> u64 {
    DEFAULT_ENFORCE_AFTER
}

fn mx_source<'de, D: Deserializer<'de>>(d: D) -> Result<Spanned<MxSource>, D::Error> {
    let value = Spanned::<toml::Value>::deserialize(d)?;
    let span = value.span();
    let source = match value.into_inner() {
        toml::Value::String(word) if word == "dns" => MxSource::Dns,
        toml::Value::Array(items) => MxSource::Patterns(
            items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s),
                    other => Err(serde::de::Error::custom(format!(
                        "mx: expected host names in quotes, found {}",
                        other.type_str()
                    ))),
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => {
            return Err(serde::de::Error::custom(
                "mx: expected a list of MX patterns ([\"mx1.example.com\", \"*.mx.example.com\"]) or \"dns\" (the validated MX RRset)",
            ));
        }
    };
    Ok(Spanned::new(span, source))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn config(set_source: &str, policy: &str) -> String {
        format!(
            r#"{dns}
[[set]]
name = "mx"
source = {set_source}
deploy = {{ dir = "/etc/tlsa/live/mx" }}

[[set.endpoint]]
host = "mx1.example.com"
port = 25

[[mta_sts]]
domain = "example.com"
zone = "example.com"
webroots = ["/var/www/mta-sts"]
reload = ["systemctl", "reload", "nginx"]
{policy}
"#,
            dns = crate::config::testing::dns_for_tests("example.com"),
        )
    }

    const CA: &str = r#"{ certbot = "/etc/letsencrypt/live/mx1.example.com" }"#;
    const SELF_SIGNED: &str = r#"{ self-signed = { names = ["mx1.example.com"] } }"#;

    #[test]
    fn a_policy_parses_with_explicit_or_dns_mx() {
        let text = config(
            CA,
            "mode = \"enforce\"\nmx = [\"mx1.example.com\", \"*.mx.example.com\"]",
        );
        let parsed = Config::parse(&text).unwrap();
        let policy = &parsed.mta_sts[0];
        assert_eq!(*policy.max_age.get_ref(), super::DEFAULT_MAX_AGE);
        assert_eq!(
            policy.mx.get_ref(),
            &super::MxSource::Patterns(vec!["mx1.example.com".into(), "*.mx.example.com".into()])
        );
        let parsed = Config::parse(&config(CA, "mode = \"testing\"\nmx = \"dns\"")).unwrap();
        assert_eq!(parsed.mta_sts[0].mx.get_ref(), &super::MxSource::Dns);
    }

    #[test]
    fn a_dane_only_mx_under_testing_or_enforce_is_refused_saying_why() {
        for mx in ["[\"*.example.com\"]", "\"dns\""] {
            let err = Config::parse(&config(
                SELF_SIGNED,
                &format!("mode = \"enforce\"\nmx = {mx}"),
            ))
            .unwrap_err();
            assert!(
                err.contains("set \"mx\"")
                    && err.contains("self-signed")
                    && err.contains("refuse to deliver"),
                "{err}"
            );
            assert!(err.contains("line "), "names the line: {err}");
        }
        let err = Config::parse(&config(
            SELF_SIGNED,
            "mode = \"testing\"\nmx = [\"mx1.example.com\"]",
        ))
        .unwrap_err();
        assert!(err.contains("report every delivery as failed"), "{err}");
        // Mode none, or a pattern that does not match the self-signed host: fine.
        Config::parse(&config(
            SELF_SIGNED,
            "mode = \"none\"\nmx = [\"mx1.example.com\"]",
        ))
        .unwrap();
        Config::parse(&config(
            SELF_SIGNED,
            "mode = \"enforce\"\nmx = [\"mx2.example.com\"]",
        ))
        .unwrap();
    }

    #[test]
    fn bad_settings_name_their_line() {
        for (policy, why) in [
            (
                "mode = \"enforce\"\nmx = [\"mx1.example.com\"]\nmax_age = 31557601",
                "max_age = 31557601",
            ),
            (
                "mode = \"enforce\"\nmx = [\"mx1.example.com\"]\nmax_age = 0",
                "max_age = 0",
            ),
            ("mode = \"enforce\"\nmx = []", "at least one MX pattern"),
            (
                "mode = \"enforce\"\nmx = [\"mx.*.example.com\"]",
                "left-most",
            ),
            ("mode = \"enforce\"\nmx = \"mx1.example.com\"", "or \"dns\""),
            (
                "mode = \"enforce\"\nmx = \"dns\"\nmanage_mx = true",
                "manage_mx",
            ),
            (
                "mode = \"enforce\"\nmx = [\"*.example.com\"]\nmanage_mx = true",
                "wildcard",
            ),
            ("mode = \"enforced\"\nmx = [\"mx1.example.com\"]", "enforce"),
            (
                "mode = \"enforce\"\nmx = [\"mx1.example.com\"]\nmax_agee = 60",
                "max_agee",
            ),
        ] {
            let err = Config::parse(&config(CA, policy)).unwrap_err();
            assert!(err.contains(why), "{policy}: {err}");
        }
        let err = Config::parse(&config(CA, "mode = \"none\"\nmx = []").replace(
            "zone = \"example.com\"\nwebroots",
            "zone = \"example.net\"\nwebroots",
        ))
        .unwrap_err();
        assert!(err.contains("no [[zone]]"), "{err}");
        let err = Config::parse(
            &config(CA, "mode = \"none\"\nmx = []").replace("/var/www/mta-sts", "www"),
        )
        .unwrap_err();
        assert!(err.contains("absolute"), "{err}");
    }
}
