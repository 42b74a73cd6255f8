//! The values both halves of the DNS layer speak: which RRset ([`RrsetId`]:
//! owner and [`RrType`]), its records ([`Rdata`]: TLSA for DANE, TXT for
//! MTA-STS, TLS-RPT and ACME challenges, MX for a managed MX list), and an
//! RRset as read ([`Rrset`]). Presentation forms follow RFC 1035 §5.1, so
//! zone files and provider APIs that speak text share one parser.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use hickory_proto::rr::{Name, RecordType};

use crate::tlsa::TlsaRecord;

/// The record types tlsa publishes and observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RrType {
    Tlsa,
    Txt,
    Mx,
}

impl RrType {
    pub const ALL: [RrType; 3] = [RrType::Tlsa, RrType::Txt, RrType::Mx];

    pub fn record_type(self) -> RecordType {
        match self {
            RrType::Tlsa => RecordType::TLSA,
            RrType::Txt => RecordType::TXT,
            RrType::Mx => RecordType::MX,
        }
    }

    /// `TLSA`, `TXT`, `MX`: the mnemonic zone files and provider APIs use.
    pub fn mnemonic(self) -> &'static str {
        match self {
            RrType::Tlsa => "TLSA",
            RrType::Txt => "TXT",
            RrType::Mx => "MX",
        }
    }

    pub fn from_mnemonic(text: &str) -> Option<RrType> {
        RrType::ALL
            .into_iter()
            .find(|t| t.mnemonic().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for RrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mnemonic())
    }
}

/// One RRset's identity: owner name and type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RrsetId {
    pub owner: Name,
    pub rtype: RrType,
}

impl RrsetId {
    pub fn new(owner: Name, rtype: RrType) -> Self {
        RrsetId { owner, rtype }
    }

    pub fn tlsa(owner: Name) -> Self {
        RrsetId::new(owner, RrType::Tlsa)
    }
}

impl fmt::Display for RrsetId {
    /// `_mta-sts.example.com. TXT`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.owner, self.rtype)
    }
}

/// The character-strings of one TXT record (RFC 1035 §3.3.14), each at
/// most 255 bytes. Records are compared string by string, as DNS does:
/// `"ab" "c"` and `"abc"` are different records that readers of MTA-STS
/// and TLS-RPT records concatenate to the same text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Txt {
    strings: Vec<Vec<u8>>,
}

/// The longest character-string DNS can carry.
pub const MAX_TXT_STRING: usize = 255;

impl Txt {
    /// The strings as given; `None` when there are none (no valid TXT
    /// RDATA) or one is longer than 255 bytes.
    pub fn from_strings(strings: Vec<Vec<u8>>) -> Option<Txt> {
        (!strings.is_empty() && strings.iter().all(|s| s.len() <= MAX_TXT_STRING))
            .then_some(Txt { strings })
    }

    /// `text` as one record, split into 255-byte strings where longer (at
    /// character boundaries, so every string is valid UTF-8).
    pub fn from_text(text: &str) -> Txt {
        let mut strings = Vec::new();
        let mut rest = text;
        while rest.len() > MAX_TXT_STRING {
            let mut cut = MAX_TXT_STRING;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            strings.push(rest.as_bytes()[..cut].to_vec());
            rest = &rest[cut..];
        }
        strings.push(rest.as_bytes().to_vec());
        Txt { strings }
    }

    pub fn strings(&self) -> &[Vec<u8>] {
        &self.strings
    }

    /// The strings concatenated (RFC 8461 §3.1, RFC 8460 §3), invalid
    /// UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.strings.concat()).into_owned()
    }
}

impl fmt::Display for Txt {
    /// Every string quoted, `"` and `\` escaped, bytes outside printable
    /// ASCII as `\DDD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, string) in self.strings.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str("\"")?;
            for &byte in string {
                match byte {
                    b'"' | b'\\' => write!(f, "\\{}", byte as char)?,
                    0x20..=0x7e => write!(f, "{}", byte as char)?,
                    _ => write!(f, "\\{byte:03}")?,
                }
            }
            f.write_str("\"")?;
        }
        Ok(())
    }
}

impl FromStr for Txt {
    type Err = String;

    /// Quoted or unquoted character-strings separated by blanks, with
    /// `\X` and `\DDD` escapes (RFC 1035 §5.1).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        let mut strings = Vec::new();
        let mut i = 0;
        loop {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i == bytes.len() {
                break;
            }
            let quoted = bytes[i] == b'"';
            if quoted {
                i += 1;
            }
            let mut string = Vec::new();
            let mut closed = !quoted;
            while i < bytes.len() {
                let byte = bytes[i];
                if quoted && byte == b'"' {
                    closed = true;
                    i += 1;
                    break;
                }
                if !quoted && byte.is_ascii_whitespace() {
                    break;
                }
                if byte == b'\\' {
                    let (unescaped, used) = unescape(&bytes[i + 1..])
                        .ok_or_else(|| format!("invalid escape in TXT data {s:?}"))?;
                    string.push(unescaped);
                    i += 1 + used;
                } else {
                    string.push(byte);
                    i += 1;
                }
            }
            if !closed {
                return Err(format!("unterminated quoted string in TXT data {s:?}"));
            }
            if string.len() > MAX_TXT_STRING {
                return Err(format!(
                    "a string of {} bytes in TXT data (at most {MAX_TXT_STRING})",
                    string.len()
                ));
            }
            strings.push(string);
        }
        if strings.is_empty() {
            return Err("empty TXT data".into());
        }
        Ok(Txt { strings })
    }
}

/// The byte an escape stands for and how many bytes after the `\` it used.
fn unescape(after: &[u8]) -> Option<(u8, usize)> {
    match after {
        [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            let value = u32::from(a - b'0') * 100 + u32::from(b - b'0') * 10 + u32::from(c - b'0');
            u8::try_from(value).ok().map(|v| (v, 3))
        }
        [d, ..] if d.is_ascii_digit() => None,
        [other, ..] => Some((*other, 1)),
        [] => None,
    }
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mx {
    pub preference: u16,
    pub exchange: Name,
}

impl fmt::Display for Mx {
    /// `10 mail.example.com.`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut exchange = self.exchange.clone();
        exchange.set_fqdn(true);
        write!(f, "{} {exchange}", self.preference)
    }
}

impl FromStr for Mx {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut fields = s.split_whitespace();
        let (Some(preference), Some(exchange), None) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!(
                "invalid MX data {s:?}: expected a preference and a host name"
            ));
        };
        let preference = preference
            .parse()
            .map_err(|_| format!("invalid MX preference {preference:?} (0-65535)"))?;
        let mut exchange =
            Name::from_ascii(exchange).map_err(|e| format!("invalid MX host {exchange:?}: {e}"))?;
        exchange.set_fqdn(true);
        Ok(Mx {
            preference,
            exchange,
        })
    }
}

/// One record of any type tlsa handles.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rdata {
    Tlsa(TlsaRecord),
    Txt(Txt),
    Mx(Mx),
}

impl Rdata {
    pub fn rtype(&self) -> RrType {
        match self {
            Rdata::Tlsa(_) => RrType::Tlsa,
            Rdata::Txt(_) => RrType::Txt,
            Rdata::Mx(_) => RrType::Mx,
        }
    }

    /// Parses the presentation form of a record of type `rtype`.
    pub fn parse(rtype: RrType, text: &str) -> Result<Rdata, String> {
        Ok(match rtype {
            RrType::Tlsa => Rdata::Tlsa(text.parse().map_err(|e| format!("{e}"))?),
            RrType::Txt => Rdata::Txt(text.parse()?),
            RrType::Mx => Rdata::Mx(text.parse()?),
        })
    }

    pub fn as_tlsa(&self) -> Option<&TlsaRecord> {
        match self {
            Rdata::Tlsa(record) => Some(record),
            _ => None,
        }
    }

    pub fn as_txt(&self) -> Option<&Txt> {
        match self {
            Rdata::Txt(txt) => Some(txt),
            _ => None,
        }
    }

    pub fn as_mx(&self) -> Option<&Mx> {
        match self {
            Rdata::Mx(mx) => Some(mx),
            _ => None,
        }
    }
}

impl From<TlsaRecord> for Rdata {
    fn from(record: TlsaRecord) -> Self {
        Rdata::Tlsa(record)
    }
}

impl From<Txt> for Rdata {
    fn from(txt: Txt) -> Self {
        Rdata::Txt(txt)
    }
}

impl From<Mx> for Rdata {
    fn from(mx: Mx) -> Self {
        Rdata::Mx(mx)
    }
}

impl fmt::Display for Rdata {
    /// The presentation form of the RDATA (no owner, TTL or type).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rdata::Tlsa(record) => record.fmt(f),
            Rdata::Txt(txt) => txt.fmt(f),
            Rdata::Mx(mx) => mx.fmt(f),
        }
    }
}

/// The TLSA records among `records`.
pub fn tlsa_of<'a>(records: impl IntoIterator<Item = &'a Rdata>) -> BTreeSet<TlsaRecord> {
    records
        .into_iter()
        .filter_map(Rdata::as_tlsa)
        .cloned()
        .collect()
}

/// `records` as record data.
pub fn rdata_of<R: Into<Rdata>>(records: impl IntoIterator<Item = R>) -> BTreeSet<Rdata> {
    records.into_iter().map(Into::into).collect()
}

/// One RRset as a back-end or a server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rrset {
    pub owner: Name,
    pub rtype: RrType,
    /// `None` when the RRset does not exist.
    pub ttl: Option<u32>,
    pub records: BTreeSet<Rdata>,
}

impl Rrset {
    pub fn empty(owner: Name, rtype: RrType) -> Self {
        Rrset {
            owner,
            rtype,
            ttl: None,
            records: BTreeSet::new(),
        }
    }

    /// RRset `id` as a store keeps it: TTL and records, or nothing.
    pub fn stored(id: &RrsetId, stored: Option<&(u32, BTreeSet<Rdata>)>) -> Self {
        match stored {
            Some((ttl, records)) => Rrset {
                owner: id.owner.clone(),
                rtype: id.rtype,
                ttl: Some(*ttl),
                records: records.clone(),
            },
            None => Rrset::empty(id.owner.clone(), id.rtype),
        }
    }

    pub fn id(&self) -> RrsetId {
        RrsetId::new(self.owner.clone(), self.rtype)
    }

    /// The TLSA records of the set (all of them, for a TLSA RRset).
    pub fn tlsa(&self) -> BTreeSet<TlsaRecord> {
        tlsa_of(&self.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_presentation_round_trips_quotes_escapes_and_bytes() {
        for strings in [
            vec![b"v=STSv1; id=20261202T000000;".to_vec()],
            vec![b"say \"hi\" \\ there".to_vec(), Vec::new()],
            vec![vec![0, 9, 200, 255], b"x".to_vec()],
        ] {
            let txt = Txt::from_strings(strings.clone()).unwrap();
            let parsed: Txt = txt.to_string().parse().unwrap();
            assert_eq!(parsed, txt, "{txt}");
            assert_eq!(parsed.strings(), strings.as_slice());
        }
    }

    #[test]
    fn txt_parses_unquoted_and_several_strings() {
        let txt: Txt = r#"v=TLSRPTv1;  "rua=mailto:a@b.example" \065b"#.parse().unwrap();
        assert_eq!(
            txt.strings(),
            [
                b"v=TLSRPTv1;".to_vec(),
                b"rua=mailto:a@b.example".to_vec(),
                b"Ab".to_vec()
            ]
        );
        assert_eq!(txt.text(), "v=TLSRPTv1;rua=mailto:a@b.exampleAb");
    }

    #[test]
    fn txt_rejects_what_is_not_txt_data() {
        for bad in [
            "",
            "   ",
            "\"open",
            "\\256",
            "a\\2",
            &format!("\"{}\"", "x".repeat(256)),
        ] {
            assert!(bad.parse::<Txt>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn long_text_is_split_at_255_bytes_on_character_boundaries() {
        let text = format!("{}é{}", "a".repeat(254), "b".repeat(300));
        let txt = Txt::from_text(&text);
        assert!(txt.strings().iter().all(|s| s.len() <= 255));
        assert_eq!(txt.strings()[0].len(), 254);
        assert_eq!(txt.text(), text);
        assert_eq!(Txt::from_text("").strings(), [Vec::<u8>::new()]);
    }

    #[test]
    fn mx_presentation_round_trips_and_rejects_junk() {
        let mx: Mx = "10 mail.example.com".parse().unwrap();
        assert_eq!(mx.to_string(), "10 mail.example.com.");
        assert_eq!(mx.to_string().parse::<Mx>().unwrap(), mx);
        for bad in ["", "10", "x mail.example.com", "70000 a.example", "1 a b"] {
            assert!(bad.parse::<Mx>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rdata_parses_by_type_and_knows_its_type() {
        let hex = "ab".repeat(32);
        for (rtype, text) in [
            (RrType::Tlsa, format!("3 1 1 {hex}")),
            (RrType::Txt, "\"v=STSv1; id=1\"".to_string()),
            (RrType::Mx, "0 mx.example.".to_string()),
        ] {
            let rdata = Rdata::parse(rtype, &text).unwrap();
            assert_eq!(rdata.rtype(), rtype);
            assert_eq!(Rdata::parse(rtype, &rdata.to_string()).unwrap(), rdata);
            assert_eq!(
                RrType::from_mnemonic(&rtype.to_string().to_lowercase()),
                Some(rtype)
            );
        }
        assert!(Rdata::parse(RrType::Tlsa, "0 mx.example.").is_err());
    }
}
