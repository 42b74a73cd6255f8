//! Configs for the unit tests of other modules.

use super::Config;

/// For unit tests: `[dnssec]` and one `[[zone]]` named `zone` (RFC 2136 on loopback, never
/// contacted), ending with its `server` line so that a test may add keys to the zone table.
pub(crate) fn dns_for_tests(zone: &str) -> String {
    format!(
        "[dnssec]\nresolver = \"127.0.0.1:53\"\n\n[[zone]]\nname = \"{zone}\"\nbackend = \"rfc2136\"\nserver = \"127.0.0.1:53\"\n"
    )
}

/// For unit tests: one set `mail` for `mail.example.test:25` in zone
/// `example.test` (rfc2136 on loopback, never contacted), its state under
/// `dir/state`, deployed into `dir/live`, with `source` (a TOML inline table).
pub(crate) fn one_set_for_tests(dir: &std::path::Path, ttl: u32, source: &str) -> Config {
    Config::parse(&format!(
        r#"state_dir = "{dir}/state"
propagation_timeout = 30

{dns}
[[set]]
name = "mail"
source = {source}
deploy = {{ dir = "{dir}/live" }}
ttl = {ttl}
margin = 0

[[set.endpoint]]
host = "mail.example.test"
port = 25
"#,
        dir = dir.display(),
        dns = dns_for_tests("example.test"),
    ))
    .expect("the test config parses")
}
