//! TLSA record data: the four RDATA fields, their presentation form, and how
//! association data is computed from certificate or key bytes.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256, Sha512};

use super::params::{Matching, Selector, Usage};

/// The RDATA of one TLSA record as it appears in DNS.
///
/// The fields are kept as raw numbers because an RRset read from DNS may carry
/// values this tool does not know; those records are "unusable" (RFC 7671 §4)
/// rather than a parse failure.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TlsaRecord {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

impl TlsaRecord {
    /// A record with known parameters.
    pub fn new(usage: Usage, selector: Selector, matching: Matching, data: Vec<u8>) -> Self {
        TlsaRecord {
            usage: usage.number(),
            selector: selector.number(),
            matching: matching.number(),
            data,
        }
    }

    /// The record for `selected` bytes (a DER certificate or SPKI) under the given parameters.
    pub fn compute(usage: Usage, selector: Selector, matching: Matching, selected: &[u8]) -> Self {
        TlsaRecord::new(
            usage,
            selector,
            matching,
            association_data(matching, selected),
        )
    }

    pub fn usage(&self) -> Option<Usage> {
        Usage::from_number(self.usage)
    }

    pub fn selector(&self) -> Option<Selector> {
        Selector::from_number(self.selector)
    }

    pub fn matching(&self) -> Option<Matching> {
        Matching::from_number(self.matching)
    }

    /// The association data in lower-case hex, as in presentation format.
    pub fn data_hex(&self) -> String {
        hex::encode(&self.data)
    }
}

/// Association data for `selected` bytes: the bytes themselves or their digest.
pub fn association_data(matching: Matching, selected: &[u8]) -> Vec<u8> {
    match matching {
        Matching::Full => selected.to_vec(),
        Matching::Sha256 => Sha256::digest(selected).to_vec(),
        Matching::Sha512 => Sha512::digest(selected).to_vec(),
    }
}

impl fmt::Display for TlsaRecord {
    /// Presentation format (RFC 6698 §2.2): `3 1 1 <hex>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.usage,
            self.selector,
            self.matching,
            self.data_hex()
        )
    }
}

/// Presentation text that is not a TLSA RDATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecordText(String);

impl fmt::Display for BadRecordText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadRecordText {}

impl FromStr for TlsaRecord {
    type Err = BadRecordText;

    /// Parses `usage selector matching hex…`; the hex may be split by
    /// whitespace as in zone files, and mnemonics are accepted for the fields.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| BadRecordText(format!("invalid TLSA data {s:?}: {why}"));
        let mut fields = s.split_whitespace();
        let mut number = |name: &str, parse: fn(&str) -> Result<u8, String>| {
            let field = fields
                .next()
                .ok_or_else(|| bad(format!("missing {name}")))?;
            parse(field).map_err(bad)
        };
        let usage = number("usage", |f| parse_field::<Usage>(f, |u| u.number()))?;
        let selector = number("selector", |f| parse_field::<Selector>(f, |v| v.number()))?;
        let matching = number("matching type", |f| {
            parse_field::<Matching>(f, |m| m.number())
        })?;
        let hex_text: String = fields.collect();
        if hex_text.is_empty() {
            return Err(bad("missing association data".into()));
        }
        let data = hex::decode(&hex_text).map_err(|e| bad(format!("association data: {e}")))?;
        if let Some(expected) = Matching::from_number(matching).and_then(Matching::digest_len)
            && data.len() != expected
        {
            return Err(bad(format!(
                "matching type {matching} needs {expected} bytes of data, got {}",
                data.len()
            )));
        }
        Ok(TlsaRecord {
            usage,
            selector,
            matching,
            data,
        })
    }
}

/// A field is a plain number 0–255 (possibly unknown to us) or a mnemonic.
fn parse_field<T: FromStr>(text: &str, number: fn(T) -> u8) -> Result<u8, String>
where
    T::Err: fmt::Display,
{
    if let Ok(n) = text.parse::<u8>() {
        return Ok(n);
    }
    text.parse::<T>().map(number).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        let rec = TlsaRecord::compute(Usage::DaneEe, Selector::Spki, Matching::Sha256, b"abc");
        assert_eq!(
            rec.to_string(),
            "3 1 1 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sha512_and_full_lengths() {
        let full = TlsaRecord::compute(Usage::DaneTa, Selector::Cert, Matching::Full, b"xyz");
        assert_eq!(full.to_string(), "2 0 0 78797a");
        let long = TlsaRecord::compute(Usage::DaneEe, Selector::Spki, Matching::Sha512, b"x");
        assert_eq!(long.data.len(), 64);
    }

    #[test]
    fn parses_presentation_text_with_split_hex_and_mnemonics() {
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let split = format!("DANE-EE SPKI SHA2-256 {} {}", &hex[..20], &hex[20..]);
        let rec: TlsaRecord = split.parse().unwrap();
        assert_eq!(rec.to_string(), format!("3 1 1 {hex}"));
        let upper: TlsaRecord = format!("3 1 1 {}", hex.to_uppercase()).parse().unwrap();
        assert_eq!(upper, rec);
    }

    #[test]
    fn keeps_unknown_numbers_but_rejects_wrong_digest_lengths() {
        let odd: TlsaRecord = "7 1 9 abcd".parse().unwrap();
        assert_eq!((odd.usage, odd.matching), (7, 9));
        assert!(odd.usage().is_none());
        let err = "3 1 1 abcd".parse::<TlsaRecord>().unwrap_err().to_string();
        assert!(err.contains("needs 32 bytes"), "{err}");
        assert!("3 1".parse::<TlsaRecord>().is_err());
        assert!("3 1 1 zz".parse::<TlsaRecord>().is_err());
    }
}
