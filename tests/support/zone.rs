//! The lab zone: its unique name, its zone file, and its trust anchors (DS and DNSKEY lines)
//! in the forms unbound and hickory read.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh zone name such as `t3f9a0c12b7e4-1.test.`: random (so that concurrent test
/// binaries differ) plus a per-process counter (so that labs of one binary always differ).
pub fn unique_zone_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut random = [0u8; 6];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .expect("read /dev/urandom");
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("t{hex}-{}.test.", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The unsigned zone the servers start from. Short TTLs and SOA minimum keep caches short.
pub fn zone_file_text(zone: &str, ttl: u32) -> String {
    format!(
        "$ORIGIN {zone}\n\
         $TTL {ttl}\n\
         @ IN SOA ns1 hostmaster 1 60 30 600 {ttl}\n\
         @ IN NS ns1\n\
         ns1 IN A 127.0.0.1\n"
    )
}

/// Fields of a DS record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ds {
    pub key_tag: u16,
    pub algorithm: u8,
    pub digest_type: u8,
    pub digest: String,
}

/// Fields of a DNSKEY record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dnskey {
    pub flags: u16,
    pub protocol: u8,
    pub algorithm: u8,
    pub key: String,
}

/// The TTL written into anchor files (anchors have no real TTL; 3600 is conventional).
const ANCHOR_TTL: u32 = 3600;

impl Ds {
    /// `ZONE 3600 IN DS TAG ALG TYPE DIGEST`, digest in upper case.
    pub fn line(&self, zone: &str) -> String {
        format!(
            "{zone} {ANCHOR_TTL} IN DS {} {} {} {}",
            self.key_tag,
            self.algorithm,
            self.digest_type,
            self.digest.to_ascii_uppercase()
        )
    }
}

impl Dnskey {
    /// `ZONE 3600 IN DNSKEY FLAGS 3 ALG BASE64`.
    pub fn line(&self, zone: &str) -> String {
        format!(
            "{zone} {ANCHOR_TTL} IN DNSKEY {} {} {} {}",
            self.flags, self.protocol, self.algorithm, self.key
        )
    }

    /// A key-signing key (KSK or CSK): the SEP bit is set.
    pub fn is_sep(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// DS records in any of the tools' presentation forms (`dnssec-dsfromkey`: `Z. IN DS …`,
/// `keymgr`: `Z. DS …`), one per line; comments and other lines are ignored.
pub fn parse_ds(text: &str) -> Vec<Ds> {
    records_of_type(text, "DS")
        .filter_map(|f| {
            Some(Ds {
                key_tag: f.first()?.parse().ok()?,
                algorithm: f.get(1)?.parse().ok()?,
                digest_type: f.get(2)?.parse().ok()?,
                digest: f.get(3..)?.concat(),
            })
        })
        .collect()
}

/// DNSKEY records in presentation form, one per line (base64 may be split by spaces).
pub fn parse_dnskey(text: &str) -> Vec<Dnskey> {
    records_of_type(text, "DNSKEY")
        .filter_map(|f| {
            Some(Dnskey {
                flags: f.first()?.parse().ok()?,
                protocol: f.get(1)?.parse().ok()?,
                algorithm: f.get(2)?.parse().ok()?,
                key: f.get(3..)?.concat(),
            })
        })
        .collect()
}

/// For each non-comment line holding `rtype` as a field, the fields after it.
fn records_of_type<'a>(text: &'a str, rtype: &'a str) -> impl Iterator<Item = Vec<&'a str>> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with(';'))
        .filter_map(move |line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let at = fields.iter().position(|f| f.eq_ignore_ascii_case(rtype))?;
            Some(fields[at + 1..].to_vec())
        })
}

/// `lines` as file content: one per line, each ended by a newline.
pub fn lines_text(lines: &[String]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// Writes `lines` to `path` (see [`lines_text`]).
pub fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines_text(lines))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
