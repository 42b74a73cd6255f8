//! Queries with `dig`, and a small parser of its default output.

use std::net::SocketAddr;

use super::tools;

/// Runs `dig @ADDR -p PORT ARGS…` and returns its stdout (also when dig fails, e.g. on a
/// timeout, so that polls can simply ask again). Timeouts are short by default (1 s, 2 tries);
/// later arguments such as `+time=5` override them.
pub fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let output = tools::run(
        tools::command("dig")
            .arg(format!("@{}", addr.ip()))
            .args(["-p", &addr.port().to_string(), "+time=1", "+tries=2"])
            .args(args),
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Queries `name`/`rtype` with DNSSEC records requested (`+dnssec`) and unsplit hex/base64
/// (`+nosplit`, so TLSA data reads as one token), plus `extra` arguments (e.g. `+norec`).
pub fn query(addr: SocketAddr, name: &str, rtype: &str, extra: &[&str]) -> DigReply {
    let mut args = vec!["+dnssec", "+nosplit", name, rtype];
    args.extend_from_slice(extra);
    DigReply::parse(&dig(addr, &args))
}

/// One resource record of an answer section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub class: String,
    pub rtype: String,
    /// The presentation-format RDATA, fields separated by single spaces.
    pub rdata: String,
}

/// What `dig` printed: status, header flags and answer section. A failed query (timeout,
/// refused connection) parses to an empty status.
#[derive(Clone, Debug, Default)]
pub struct DigReply {
    /// `NOERROR`, `SERVFAIL`, `NXDOMAIN`, …; empty if no reply was received.
    pub status: String,
    /// Header flags in lower case: `qr`, `aa`, `rd`, `ra`, `ad`, `cd`.
    pub flags: Vec<String>,
    pub answer: Vec<Record>,
    /// dig's full output, for assertion messages.
    pub raw: String,
}

impl DigReply {
    pub fn parse(out: &str) -> Self {
        let mut reply = DigReply {
            raw: out.to_owned(),
            ..DigReply::default()
        };
        let mut in_answer = false;
        for line in out.lines() {
            if let Some((_, rest)) = line.split_once("status: ") {
                reply.status = rest.split(',').next().unwrap_or_default().to_owned();
            } else if let Some(rest) = line.strip_prefix(";; flags:") {
                let flags = rest.split(';').next().unwrap_or_default();
                reply.flags = flags.split_whitespace().map(str::to_owned).collect();
            } else if line.starts_with(";; ANSWER SECTION:") {
                in_answer = true;
            } else if line.trim().is_empty() {
                in_answer = false;
            } else if in_answer && !line.starts_with(';') {
                reply.answer.extend(parse_record(line));
            }
        }
        reply
    }

    pub fn is_noerror(&self) -> bool {
        self.status == "NOERROR"
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The answer records of type `rtype`.
    pub fn records<'a>(&'a self, rtype: &'a str) -> impl Iterator<Item = &'a Record> {
        self.answer
            .iter()
            .filter(move |r| r.rtype.eq_ignore_ascii_case(rtype))
    }

    /// The RDATA of the answer records of type `rtype`.
    pub fn rdata(&self, rtype: &str) -> Vec<&str> {
        self.answer
            .iter()
            .filter(|r| r.rtype.eq_ignore_ascii_case(rtype))
            .map(|r| r.rdata.as_str())
            .collect()
    }

    /// Whether the answer holds an RRSIG covering `rtype`.
    pub fn is_signed(&self, rtype: &str) -> bool {
        self.records("RRSIG").any(|sig| {
            sig.rdata
                .split_whitespace()
                .next()
                .is_some_and(|covered| covered.eq_ignore_ascii_case(rtype))
        })
    }
}

fn parse_record(line: &str) -> Option<Record> {
    let mut fields = line.split_whitespace();
    Some(Record {
        name: fields.next()?.to_owned(),
        ttl: fields.next()?.parse().ok()?,
        class: fields.next()?.to_owned(),
        rtype: fields.next()?.to_owned(),
        rdata: fields.collect::<Vec<_>>().join(" "),
    })
}
