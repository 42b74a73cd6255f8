//! Config errors as an operator meets them: every command that reads the config, on configs
//! with a planted secret that are wrong in every way we could think of — no output of any of
//! them may hold the secret, or the line that holds it. Also: the operator's words, "did you
//! mean", and one exit code per class of error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SECRET: &str = "c2VjcmV0LXRzaWctdmFsdWUtNDI0Mg==";
const TOKEN: &str = "tok-9f8e7d6c5b4a39281706";

/// Every command that reads the config, with the arguments it needs.
const COMMANDS: &[&[&str]] = &[
    &["status"],
    &["run"],
    &["plan"],
    &["rollover"],
    &["check"],
    &["csr", "mail"],
    &["hook", "certbot", "--lineage", "/nonexistent/lineage"],
    &["lookup", "_25._tcp.mail.example.com"],
    &["providers"],
    &["config", "check"],
    &["config", "check", "--online"],
    &["tlsrpt", "publish"],
];

fn tlsa(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tlsa"))
        .args(args)
        .env("TLSA_CONFIG", config)
        .env("TLSA_TEST_TOKEN", TOKEN)
        .output()
        .expect("run tlsa")
}

fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A complete config around `zone` (the `[[zone]]` keys after `name`) and `extra` lines at
/// the end of the `[[set]]` table; its state directory under `dir` (the commands that get
/// that far create it).
fn config(dir: &Path, zone: &str, set_extra: &str) -> String {
    format!(
        r#"state_dir = "{state}"

[dnssec]
resolver = "127.0.0.1:9"

[[zone]]
name = "example.com"
{zone}

[[set]]
name = "mail"
source = {{ certbot = "/nonexistent/lineage" }}
deploy = {{ dir = "/nonexistent/deploy" }}
{set_extra}

[[set.endpoint]]
host = "mail.example.com"
"#,
        state = dir.join("state").display()
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn no_error_ever_shows_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let tsig = format!("hmac-sha256:tlsa-key:{SECRET}");
    let rfc2136 =
        |key_line: &str| format!("backend = \"rfc2136\"\nserver = \"127.0.0.1:9\"\n{key_line}");
    let cloudflare = |token_line: &str| format!("backend = \"cloudflare\"\n{token_line}");
    let cases: Vec<(&str, String)> = vec![
        (
            "inline TSIG key",
            config(dir.path(), &rfc2136(&format!("tsig_key = \"{tsig}\"")), ""),
        ),
        (
            "inline token",
            config(dir.path(), &cloudflare(&format!("token = \"{TOKEN}\"")), ""),
        ),
        (
            "inline TSIG key as a multi-line string",
            config(
                dir.path(),
                &rfc2136(&format!(
                    "tsig_key = \"\"\"\nhmac-sha256:tlsa-key:\n{SECRET}\"\"\""
                )),
                "",
            ),
        ),
        (
            "unterminated string on the secret line",
            config(dir.path(), &rfc2136(&format!("tsig_key = \"{tsig}")), ""),
        ),
        (
            "unquoted secret",
            config(dir.path(), &rfc2136(&format!("tsig_key = {SECRET}")), ""),
        ),
        (
            "bad escape in the secret",
            config(
                dir.path(),
                &rfc2136(&format!("tsig_key = \"{tsig}\\q\"")),
                "",
            ),
        ),
        (
            "garbage after the secret",
            config(
                dir.path(),
                &rfc2136(&format!("tsig_key = \"{tsig}\" x")),
                "",
            ),
        ),
        (
            "unknown key beside a file reference",
            config(
                dir.path(),
                &rfc2136(&format!(
                    "tsig_key = {{ file = \"/x\", secret = \"{SECRET}\" }}"
                )),
                "",
            ),
        ),
        (
            "secret as the file reference's wrong type",
            config(
                dir.path(),
                &rfc2136(&format!("tsig_key = {{ file = [\"{SECRET}\"] }}")),
                "",
            ),
        ),
        (
            "unknown secret-looking key",
            config(
                dir.path(),
                &rfc2136(&format!("password = \"{SECRET}\"")),
                "",
            ),
        ),
        (
            "a dotted key under a secret one",
            config(
                dir.path(),
                &rfc2136(&format!("tsig_key.value = \"{SECRET}\"")),
                "",
            ),
        ),
        (
            "a table named by a secret key",
            config(
                dir.path(),
                &format!(
                    "backend = \"rfc2136\"\nserver = \"127.0.0.1:53\"\n[zone.tsig_key]\nvalue = \"{SECRET}\""
                ),
                "",
            ),
        ),
        (
            "a multi-line array under a secret key",
            config(
                dir.path(),
                &cloudflare(&format!("token = [\n\"{SECRET}\" junk\n]")),
                "",
            ),
        ),
        (
            "misspelt secret key",
            config(dir.path(), &rfc2136(&format!("tsig-key = \"{tsig}\"")), ""),
        ),
        (
            "secret under an unknown key",
            config(dir.path(), &rfc2136(&format!("tsig = \"{tsig}\"")), ""),
        ),
        (
            "inline token in an array",
            config(
                dir.path(),
                &cloudflare(&format!("token = [\n  \"{TOKEN}\",\n]")),
                "",
            ),
        ),
        (
            "inline secret, error elsewhere",
            config(
                dir.path(),
                &rfc2136(&format!("tsig_key = \"{tsig}\"")),
                "ttl = \"long\"",
            ),
        ),
        (
            "inline secret and both file and env",
            config(
                dir.path(),
                &cloudflare(&format!("token = {{ file = \"/x\", env = \"{TOKEN}\" }}")),
                "",
            ),
        ),
        (
            "secret in a quoted key",
            config(
                dir.path(),
                &rfc2136(&format!("\"tsig_key\" = \"{tsig}\"")),
                "",
            ),
        ),
    ];
    let key_file_cases = [
        (
            "unterminated key file",
            format!("key \"k\" {{\n algorithm hmac-sha256;\n secret \"{SECRET}\";\n"),
        ),
        (
            "key file with an unknown algorithm",
            format!("key \"k\" {{ algorithm hmac-foo; secret \"{SECRET}\"; }};\n"),
        ),
        (
            "spec with a bad algorithm",
            format!("hmac-foo:k:{SECRET}\n"),
        ),
        (
            "spec with two lines",
            format!("hmac-sha256:k:{SECRET}\nhmac-sha256:k:{SECRET}\n"),
        ),
        (
            "world-readable key file",
            format!("hmac-sha256:k:{SECRET}\n"),
        ),
    ];
    // The config itself is refused in these cases: every command must fail.
    let refused = cases.len();
    let mut cases = cases;
    for (i, (what, content)) in key_file_cases.iter().enumerate() {
        let file = write(dir.path(), &format!("key{i}"), content);
        cases.push((
            what,
            config(
                dir.path(),
                &rfc2136(&format!("tsig_key = {{ file = \"{}\" }}", file.display())),
                "",
            ),
        ));
    }
    cases.push((
        "token from the environment, refused by the API",
        config(
            dir.path(),
            &cloudflare("token = { env = \"TLSA_TEST_TOKEN\" }\napi_url = \"http://127.0.0.1:9\""),
            "",
        ),
    ));
    // The commands that reach the network wait for 3 s timeouts (nothing answers at
    // 127.0.0.1:9), up to 30 s a case: every command of every case runs side by side.
    std::thread::scope(|scope| {
        for (i, (what, text)) in cases.iter().enumerate() {
            let path = write(dir.path(), &format!("case{i}.toml"), text);
            for args in COMMANDS {
                let path = path.clone();
                scope.spawn(move || {
                    let out = tlsa(&path, args);
                    let all = all_output(&out);
                    assert!(
                        !all.contains(SECRET) && !all.contains(TOKEN) && !all.contains("c2VjcmV0"),
                        "{what}: `tlsa {}` printed the secret:\n{all}",
                        args.join(" ")
                    );
                    assert!(
                        i >= refused || !out.status.success(),
                        "{what}: tlsa {args:?} succeeded"
                    );
                });
            }
        }
    });
}

#[test]
fn errors_are_in_the_operators_words() {
    let dir = tempfile::tempdir().unwrap();
    let zone = "backend = \"rfc2136\"\nserver = \"127.0.0.1\"\ntsig_key = { file = \"/x\" }";
    let cases: Vec<(String, &[&str])> = vec![
        (
            config(
                dir.path(),
                &zone.replace("{ file = \"/x\" }", "\"hmac-sha256:k:abc\""),
                "",
            ),
            &[
                "tsig_key",
                "expected { file = \"PATH\" } or { env = \"VARIABLE\" }",
            ],
        ),
        (
            config(dir.path(), zone, "").replace("[[set]]", "[[sets]]"),
            &["unknown table `sets`, did you mean `set`?"],
        ),
        (
            config(dir.path(), zone, "matchng = [\"sha2-256\"]"),
            &["unknown key `matchng`", "did you mean `matching`?"],
        ),
        (
            config(dir.path(), zone, "").replace("rfc2136", "rfc2316"),
            &["did you mean \"rfc2136\"?"],
        ),
        (
            config(dir.path(), zone, "").replace(
                "host = \"mail.example.com\"",
                "host = \"mail.example.com\"\nport = 70000",
            ),
            &["`port`: expected a port number (1-65535)"],
        ),
        (
            config(dir.path(), zone, "").replace(
                "host = \"mail.example.com\"",
                "host = \"mail.example.com\"\nport = 2525",
            ),
            &["starttls = \"smtp\""],
        ),
        (
            config(dir.path(), zone, "").replace("127.0.0.1:9", "resolver.example"),
            &[
                "not an IP address with an optional port",
                "port 53 when absent",
            ],
        ),
    ];
    for (text, expected) in &cases {
        let path = write(dir.path(), "words.toml", text);
        let out = tlsa(&path, &["status"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        for phrase in *expected {
            assert!(
                stderr.contains(phrase),
                "{phrase:?} missing from:\n{stderr}"
            );
        }
        assert!(
            !stderr.contains("SecretRef") && !stderr.contains("u16"),
            "{stderr}"
        );
        // toml's layout: the message, then the line with its number and a caret.
        // (Every stderr line carries the `tlsa: ` prefix, so the caret still aligns.)
        assert!(
            stderr
                .lines()
                .any(|l| l.trim_start_matches("tlsa:").trim_start().starts_with('|')),
            "{stderr}"
        );
        assert!(stderr.contains('^'), "{stderr}");
    }
    // A resolver without a port means 53, in the config as on the command line.
    let bare = write(
        dir.path(),
        "bare.toml",
        &config(dir.path(), zone, "").replace("127.0.0.1:9", "127.0.0.1"),
    );
    let out = tlsa(&bare, &["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_missing_key_file_and_a_missing_token_file_exit_alike() {
    let dir = tempfile::tempdir().unwrap();
    let tsig = config(
        dir.path(),
        "backend = \"rfc2136\"\nserver = \"127.0.0.1:9\"\ntsig_key = { file = \"/nonexistent/tsig.key\" }",
        "",
    );
    let token = config(
        dir.path(),
        "backend = \"cloudflare\"\ntoken = { file = \"/nonexistent/token\" }",
        "",
    );
    for (what, text) in [("TSIG key file", tsig), ("token file", token)] {
        let path = write(dir.path(), "missing.toml", &text);
        for args in [&["run"][..], &["providers"], &["config", "check"]] {
            let out = tlsa(&path, args);
            let all = all_output(&out);
            assert_eq!(out.status.code(), Some(2), "{what}, tlsa {args:?}: {all}");
            assert!(all.contains("/nonexistent/"), "{what}: {all}");
        }
    }
}
