//! Loading a config: the TOML parsed into [`Config`], then checked as a
//! whole (names, back-ends, secrets by reference, `[[mta_sts]]` against the
//! sets and zones, and the settings a roll could not be safe with), each
//! error one paragraph that names the line.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::errors::{self, ConfigError, Invalid};
use super::values::{MAX_TTL, absolute_name, is_env_name, is_file_safe_name, with_default_port};
use super::{BackendKind, Config, DEFAULT_STATE_DIR, KeyAlgorithmChoice, Source};
use crate::mtasts::config::{DEFAULT_MAX_AGE, MtaSts, MxSource};
use crate::mtasts::matching;
use crate::mtasts::policy::{MAX_MAX_AGE, Mode};

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            message: format!(
                "cannot read the config: {e}; give another with -c FILE or TLSA_CONFIG"
            ),
        })?;
        Self::parse(&text).map_err(|message| ConfigError {
            file: path.to_path_buf(),
            message,
        })
    }

    /// Parses and checks a config; the error text locates the problem.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let syntax = text.parse::<toml::Table>().is_err();
            errors::describe(text, &e, syntax)
        })?;
        config.check(text).map_err(|invalid| invalid.render(text))?;
        Ok(config)
    }

    /// Checks the config as a whole; `text` is what it was parsed from.
    fn check(&self, text: &str) -> Result<(), Invalid> {
        let at = Invalid::at;
        if self.concurrency == 0 {
            return Err(
                "concurrency = 0: expected the number of sets one run works on at once, 1 or more"
                    .into(),
            );
        }
        if self.propagation_timeout == 0 {
            return Err(
                "propagation_timeout = 0: expected the seconds one propagation wait may take, 1 or more (default 120)"
                    .into(),
            );
        }
        for (i, set) in self.sets.iter().enumerate() {
            let fail = |message: String| Err(at(set.name.span(), message));
            let name = set.name.get_ref();
            if self.sets[..i].iter().any(|s| s.name.get_ref() == name) {
                return fail(format!(
                    "set name {name:?} is used twice; each [[set]] needs its own name"
                ));
            }
            if !is_file_safe_name(name) {
                return fail(format!(
                    "set name {name:?}: use letters, digits, '.', '_' and '-' only, starting with a letter or digit (at most 64): it names the set's state file and key directory"
                ));
            }
            if set.endpoints.is_empty() {
                return fail(format!(
                    "set {name:?} has no [[set.endpoint]]; add one with host and port"
                ));
            }
            // Caught here rather than at the verify step of some later roll.
            if let Err(why) = set.live_endpoints() {
                return fail(format!("set {name:?}: {why}"));
            }
            if let Source::Acme(acme) = &set.source
                && let Err(why) = acme.check()
            {
                return fail(format!("set {name:?}: {why}"));
            }
        }
        for zone in &self.zones {
            let fail = |message: String| {
                Err(at(
                    zone.name.span(),
                    format!("zone {:?}: {message}", zone.name.get_ref()),
                ))
            };
            let missing = match zone.backend {
                BackendKind::Rfc2136 if zone.server.is_none() => {
                    Some("server = \"ADDRESS[:PORT]\" (the primary accepting UPDATE)")
                }
                BackendKind::Powerdns if zone.api_url.is_none() || zone.api_key.is_none() => {
                    Some("api_url = \"http://HOST:PORT\" and api_key = { file = \"PATH\" }")
                }
                BackendKind::Cloudflare | BackendKind::Desec if zone.token.is_none() => {
                    Some("token = { file = \"PATH\" } (or env = \"VARIABLE\")")
                }
                BackendKind::Zonefile if zone.records_file.is_none() || zone.reload.is_none() => {
                    Some("records_file = \"PATH\" and reload = [\"rndc\", \"reload\", \"{zone}\"]")
                }
                _ => None,
            };
            if let Some(what) = missing {
                return fail(format!(
                    "backend \"{}\" needs {what}",
                    format!("{:?}", zone.backend).to_lowercase()
                ));
            }
            for (key, secret) in zone.secrets() {
                if secret.file.is_some() == secret.env.is_some() {
                    return fail(format!(
                        "{key} needs exactly one of file = \"PATH\" or env = \"VARIABLE\""
                    ));
                }
                // A secret pasted where its variable's name belongs would be
                // printed by every "not set" message: refuse it unquoted.
                if secret.env.as_deref().is_some_and(|name| !is_env_name(name)) {
                    return fail(format!(
                        "{key}: env = expects the name of an environment variable (letters, digits and _, not starting with a digit, at most 64): the value given is not one, and is not shown in case it is the secret itself"
                    ));
                }
            }
        }
        check_mta_sts(self, &at)?;
        if let Some(tlsrpt) = &self.tlsrpt {
            tlsrpt.check()?;
        }
        self.check_roll_safety(text).map_err(Invalid::from)
    }

    /// Settings with which a roll could publish nothing, or deploy a key
    /// whose records are not in DNS: refused at load, naming the line, since
    /// each one would end in an outage (or private keys in the current
    /// directory) at the next roll rather than in an error now.
    fn check_roll_safety(&self, text: &str) -> Result<(), String> {
        // The typed config keeps no positions for these keys: read them again
        // with their spans (the text already parsed once, so this succeeds).
        #[derive(Deserialize)]
        struct Spans {
            state_dir: Option<Spanned<PathBuf>>,
            #[serde(rename = "set", default)]
            sets: Vec<SetSpans>,
        }
        #[derive(Deserialize)]
        struct SetSpans {
            matching: Option<Spanned<toml::Value>>,
            ttl: Option<Spanned<toml::Value>>,
            deploy: Spanned<DeploySpans>,
        }
        #[derive(Deserialize)]
        struct DeploySpans {
            dir: Spanned<PathBuf>,
        }
        // Parsed once already: a failure here cannot carry new information (and
        // its text could quote a secret), so it is not shown.
        let spans: Spans = toml::from_str(text)
            .map_err(|_| "the config could not be read again to locate its settings".to_string())?;
        let line = |span: std::ops::Range<usize>| {
            text[..span.start.min(text.len())].matches('\n').count() + 1
        };
        if let Some(dir) = &spans.state_dir
            && dir.get_ref().as_os_str().is_empty()
        {
            return Err(format!(
                "line {}: state_dir = \"\": expected an absolute directory (default {DEFAULT_STATE_DIR}); an empty one is the current directory, and next keys would be written there",
                line(dir.span())
            ));
        }
        let zones: Vec<hickory_proto::rr::Name> = self
            .zones
            .iter()
            .filter_map(|z| absolute_name(z.name.get_ref()))
            .collect();
        // Owner name and key kind of every set seen so far: two sets rolling
        // keys of the same kind at one owner would each retire the other's
        // key. An RSA and an ECDSA set sharing endpoints is fine: a server
        // presents the kind a client asks for (README, dual certificates).
        let mut owners: Vec<(String, bool, &str)> = Vec::new();
        for (set, at) in self.sets.iter().zip(&spans.sets) {
            let name = set.name.get_ref();
            let place = |span| format!("line {}: set {name:?}", line(span));
            if set.matching.is_empty() {
                let span = at.matching.as_ref().map_or(set.name.span(), |m| m.span());
                return Err(format!(
                    "{}: matching = []: expected at least one of \"sha2-256\", \"sha2-512\" (default [\"sha2-256\"]); with none, no key has a record and a roll would deploy a key no DANE sender can match",
                    place(span)
                ));
            }
            if set.ttl == 0 || set.ttl > MAX_TTL {
                let span = at.ttl.as_ref().map_or(set.name.span(), |t| t.span());
                return Err(format!(
                    "{}: ttl = {}: expected 1 to {MAX_TTL} seconds (RFC 2181 §8; default 3600)",
                    place(span),
                    set.ttl
                ));
            }
            if set.deploy.dir.as_os_str().is_empty() {
                return Err(format!(
                    "{}: deploy.dir = \"\": expected the absolute directory the server reads its certificate from; an empty one is the current directory, and private keys would be written there",
                    place(at.deploy.get_ref().dir.span())
                ));
            }
            let rsa = matches!(
                set.next_key,
                KeyAlgorithmChoice::Rsa2048
                    | KeyAlgorithmChoice::Rsa3072
                    | KeyAlgorithmChoice::Rsa4096
            );
            for endpoint in &set.endpoints {
                let owner = format!(
                    "_{}._tcp.{}.",
                    endpoint.port,
                    endpoint.host.trim_end_matches('.')
                )
                .to_ascii_lowercase();
                let in_zone = absolute_name(&owner).is_some_and(|o| {
                    crate::dns::publish::checked_write::configured_zone(&zones, &o).is_some()
                });
                if !in_zone {
                    return Err(format!(
                        "{}: endpoint {}:{} is in no configured zone: expected a [[zone]] whose name holds {owner}, or nothing can publish its records",
                        place(set.name.span()),
                        endpoint.host,
                        endpoint.port
                    ));
                }
                if let Some((_, _, other)) = owners
                    .iter()
                    .find(|(o, kind, _)| *o == owner && *kind == rsa)
                {
                    return Err(format!(
                        "{}: owner {owner} is also in set {other:?}, with the same kind of next key ({}): each set would retire the other's key; expected one set per owner and key kind (an RSA and an ECDSA set may share it)",
                        place(set.name.span()),
                        if rsa { "RSA" } else { "ECDSA" }
                    ));
                }
                owners.push((owner, rsa, name));
            }
        }
        Ok(())
    }
}

/// Checks every `[[mta_sts]]`; `render(span, message)` locates an error.
fn check_mta_sts(
    config: &Config,
    render: &dyn Fn(std::ops::Range<usize>, String) -> Invalid,
) -> Result<(), Invalid> {
    for (i, policy) in config.mta_sts.iter().enumerate() {
        let domain = matching::normalise(policy.domain.get_ref());
        let fail = |span: std::ops::Range<usize>, message: String| {
            let span = if span.is_empty() {
                policy.domain.span()
            } else {
                span
            };
            Err(render(span, format!("mta_sts {domain:?}: {message}")))
        };
        if matching::check_pattern(&domain).is_err() || domain.starts_with("*.") {
            return fail(
                policy.domain.span(),
                "domain: expected the mail domain, e.g. \"example.com\"".into(),
            );
        }
        if config.mta_sts[..i]
            .iter()
            .any(|p| matching::normalise(p.domain.get_ref()) == domain)
        {
            return fail(
                policy.domain.span(),
                "a second [[mta_sts]] for the same domain; each domain has one policy".into(),
            );
        }
        let max_age = *policy.max_age.get_ref();
        if max_age == 0 || max_age > MAX_MAX_AGE {
            return fail(
                policy.max_age.span(),
                format!(
                    "max_age = {max_age}: expected 1 to {MAX_MAX_AGE} seconds (RFC 8461 §3.2; default {DEFAULT_MAX_AGE})"
                ),
            );
        }
        match policy.mx.get_ref() {
            MxSource::Dns if policy.manage_mx => {
                return fail(
                    policy.mx.span(),
                    "mx = \"dns\" with manage_mx = true: tlsa would manage the MX RRset from itself; list the MX host names".into(),
                );
            }
            MxSource::Patterns(patterns) => {
                if patterns.is_empty() && policy.mode != Mode::None {
                    return fail(
                        policy.mx.span(),
                        format!(
                            "mx = []: a policy in mode {} needs at least one MX pattern",
                            policy.mode
                        ),
                    );
                }
                for pattern in patterns {
                    if let Err(why) = matching::check_pattern(pattern) {
                        return fail(policy.mx.span(), format!("mx: {why}"));
                    }
                    if policy.manage_mx && pattern.contains('*') {
                        return fail(
                            policy.mx.span(),
                            format!(
                                "mx: {pattern:?} is a wildcard, but with manage_mx = true the list is the MX hosts tlsa publishes"
                            ),
                        );
                    }
                }
            }
            MxSource::Dns => {}
        }
        if policy.ttl == 0 || policy.ttl > MAX_TTL {
            return fail(
                0..0,
                format!("ttl = {}: expected 1 to {} seconds", policy.ttl, MAX_TTL),
            );
        }
        if !(policy.fetch_timeout.is_finite()
            && policy.fetch_timeout > 0.0
            && policy.fetch_timeout <= 60.0)
        {
            return fail(
                0..0,
                format!(
                    "fetch_timeout = {}: expected seconds between 0 and 60 (default 4)",
                    policy.fetch_timeout
                ),
            );
        }
        for address in &policy.policy_addresses {
            if with_default_port(address, policy.policy_port).is_none() {
                return fail(
                    0..0,
                    format!(
                        "policy_addresses: {address:?} is not an IP address with an optional port (192.0.2.1, [2001:db8::1]:443)"
                    ),
                );
            }
        }
        if policy.webroots.is_empty() || policy.webroots.iter().any(|w| !w.is_absolute()) {
            return fail(
                policy.domain.span(),
                "webroots: expected one or more absolute directories served as https://mta-sts.DOMAIN/".into(),
            );
        }
        let zone = matching::normalise(policy.zone.get_ref());
        let owner = format!("_mta-sts.{domain}");
        let configured = config
            .zones
            .iter()
            .any(|z| matching::normalise(z.name.get_ref()) == zone);
        if !configured {
            return fail(
                policy.zone.span(),
                format!(
                    "zone = {zone:?} is no [[zone]] of this config: nothing could publish {owner}"
                ),
            );
        }
        if !(owner == zone || owner.ends_with(&format!(".{zone}"))) {
            return fail(
                policy.zone.span(),
                format!("zone {zone:?} does not hold {owner}"),
            );
        }
        if policy.mode != Mode::None
            && let Some((set, host)) = dane_only_mx(config, policy)
        {
            return fail(
                policy.domain.span(),
                format!(
                    "mode = \"{}\", but set {set:?} serves MX host {host} with self-signed certificates (DANE only): MTA-STS senders require a certificate from a public CA for the MX name and {}; give that set a CA-issued source (certbot, acme.sh, lego or files) or keep mode = \"none\"",
                    policy.mode,
                    if policy.mode == Mode::Enforce {
                        "would refuse to deliver"
                    } else {
                        "would report every delivery as failed"
                    }
                ),
            );
        }
    }
    Ok(())
}

/// A self-signed set serving an MX host the policy lists: with explicit
/// patterns, a set endpoint on port 25 they match; with `"dns"` (the config
/// does not know the MX RRset) any SMTP endpoint on port 25 of the domain or
/// below it.
fn dane_only_mx(config: &Config, policy: &MtaSts) -> Option<(String, String)> {
    let domain = matching::normalise(policy.domain.get_ref());
    config.sets.iter().find_map(|set| {
        if !matches!(set.source, Source::SelfSigned { .. }) {
            return None;
        }
        set.endpoints
            .iter()
            .filter(|e| e.port == 25)
            .map(|e| matching::normalise(&e.host))
            .find(|host| match policy.mx.get_ref() {
                MxSource::Patterns(patterns) => {
                    matching::matching_pattern(patterns, host).is_some()
                }
                MxSource::Dns => host == &domain || host.ends_with(&format!(".{domain}")),
            })
            .map(|host| (set.name.get_ref().clone(), host))
    })
}
