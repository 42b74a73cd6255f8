//! DKIM keys and signatures made by independent tools: `opendkim-genkey` (opendkim-tools)
//! makes the key and its TXT record, `dkimsign` (Debian's python3-dkim) signs. The record
//! is published in the lab's signed zone, so a verifier finds it through the validating
//! resolver like any other key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::lab::Lab;
use super::tools;

const INSTALL_HINT: &str = "install the DKIM tools with `scripts/install-test-deps` \
     (apt-get install -y --no-install-recommends python3-dkim opendkim-tools)";

pub struct DkimKey {
    pub selector: String,
    /// Signing domain (`d=`), no trailing dot.
    pub domain: String,
    pub private_key: PathBuf,
    /// The TXT record's text, its strings joined (`v=DKIM1; … p=…`).
    pub record: String,
}

impl DkimKey {
    /// A 2048-bit RSA key for `selector._domainkey.DOMAIN`, written in `dir`.
    pub fn generate(dir: &Path, domain: &str, selector: &str) -> Self {
        let genkey = tools::tool_with_hint("opendkim-genkey", INSTALL_HINT);
        tools::tool_with_hint("dkimsign", INSTALL_HINT);
        std::fs::create_dir_all(dir).expect("create the DKIM key directory");
        tools::run_ok(
            Command::new(genkey)
                .args(["-b", "2048", "-d", domain, "-s", selector, "-D"])
                .arg(dir),
        );
        let txt = std::fs::read_to_string(dir.join(format!("{selector}.txt")))
            .expect("read opendkim-genkey's TXT file");
        // `s1._domainkey IN TXT ( "v=DKIM1; h=sha256; k=rsa; " "p=MIIB…" "…" ) ; comment`:
        // the quoted strings, in order, before the comment.
        let record: String = txt
            .split(')')
            .next()
            .unwrap_or_default()
            .split('"')
            .skip(1)
            .step_by(2)
            .collect();
        assert!(record.contains("p="), "no key in {txt}");
        DkimKey {
            selector: selector.to_string(),
            domain: domain.to_string(),
            private_key: dir.join(format!("{selector}.private")),
            record,
        }
    }

    /// `SELECTOR._domainkey.DOMAIN.`
    pub fn owner(&self) -> String {
        format!("{}._domainkey.{}.", self.selector, self.domain)
    }

    /// Adds the TXT record (in strings of at most 250 characters) to the lab's zone and
    /// waits until the validating resolver answers it with AD set.
    pub fn publish(&self, lab: &Lab) {
        let strings: Vec<String> = self
            .record
            .as_bytes()
            .chunks(250)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect();
        lab.nsupdate_ok(&format!(
            "update add {} {} IN TXT {}",
            self.owner(),
            lab.ttl(),
            strings.join(" ")
        ));
        super::wait::poll_until(
            "the DKIM key validated through the resolver",
            std::time::Duration::from_secs(20),
            || {
                let reply = lab.query_resolver(&self.owner(), "TXT");
                (reply.status == "NOERROR"
                    && reply.flags.iter().any(|f| f == "ad")
                    && !reply.answer.is_empty())
                .then_some(())
            },
        );
    }

    /// The message signed by `dkimsign` (rsa-sha256, relaxed/simple).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut child = Command::new(tools::tool_with_hint("dkimsign", INSTALL_HINT))
            .arg(&self.selector)
            .arg(&self.domain)
            .arg(&self.private_key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dkimsign");
        child
            .stdin
            .take()
            .expect("dkimsign stdin")
            .write_all(message)
            .expect("write the message to dkimsign");
        let output = child.wait_with_output().expect("wait for dkimsign");
        assert!(
            output.status.success(),
            "dkimsign failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.stdout.starts_with(b"DKIM-Signature:"),
            "dkimsign did not sign"
        );
        output.stdout
    }
}
