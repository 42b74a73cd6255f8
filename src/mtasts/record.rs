//! The `_mta-sts.DOMAIN` TXT record (RFC 8461 §3.1): judging what DNS
//! serves, and rendering the record tlsa publishes.
//!
//! A TXT record made of several strings is their concatenation. Records
//! that do not begin with `v=STSv1` are not STS records and are ignored; if
//! the rest are not exactly one, or that one is not valid (`id` of 1–32
//! letters and digits, extension fields as the grammar says), senders treat
//! the domain as publishing no policy (a policy they cached still applies).

use std::fmt;

use serde::Serialize;

/// One valid STS record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StsRecord {
    pub id: String,
    /// Extension fields (`name=value`), kept as served.
    pub extensions: Vec<String>,
}

/// What the TXT RRset at `_mta-sts.DOMAIN` amounts to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum TxtVerdict {
    /// No record begins with `v=STSv1`: the domain announces no policy.
    NoRecord {
        /// TXT records that are not STS records (ignored, as senders do).
        ignored: usize,
    },
    /// Exactly one valid STS record.
    Valid { record: StsRecord, ignored: usize },
    /// Exactly one STS record, and it is not valid.
    Invalid { text: String, reason: String },
    /// More than one STS record: senders see no policy.
    Several { texts: Vec<String> },
}

impl TxtVerdict {
    pub fn name(&self) -> &'static str {
        match self {
            TxtVerdict::NoRecord { .. } => "no-record",
            TxtVerdict::Valid { .. } => "valid",
            TxtVerdict::Invalid { .. } => "invalid",
            TxtVerdict::Several { .. } => "several",
        }
    }

    /// The id announced, when there is exactly one valid record.
    pub fn id(&self) -> Option<&str> {
        match self {
            TxtVerdict::Valid { record, .. } => Some(&record.id),
            _ => None,
        }
    }
}

impl fmt::Display for TxtVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxtVerdict::NoRecord { .. } => f.write_str("no record begins with v=STSv1"),
            TxtVerdict::Valid { record, .. } => write!(f, "v=STSv1, id {}", record.id),
            TxtVerdict::Invalid { text, reason } => write!(f, "{text:?} is not valid: {reason}"),
            TxtVerdict::Several { texts } => write!(
                f,
                "{} records begin with v=STSv1 ({}): senders treat that as no policy (RFC 8461 §3.1)",
                texts.len(),
                texts
                    .iter()
                    .map(|t| format!("{t:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The text of one TXT record: its character-strings concatenated.
pub fn concatenate(strings: &[Vec<u8>]) -> String {
    let bytes: Vec<u8> = strings.concat();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Judges the TXT records at `_mta-sts.DOMAIN`, each already concatenated.
pub fn judge(records: &[String]) -> TxtVerdict {
    let (sts, other): (Vec<&String>, Vec<&String>) =
        records.iter().partition(|r| r.starts_with("v=STSv1"));
    let ignored = other.len();
    match sts.as_slice() {
        [] => TxtVerdict::NoRecord { ignored },
        [one] => match parse(one) {
            Ok(record) => TxtVerdict::Valid { record, ignored },
            Err(reason) => TxtVerdict::Invalid {
                text: (*one).clone(),
                reason,
            },
        },
        several => TxtVerdict::Several {
            texts: several.iter().map(|s| (*s).clone()).collect(),
        },
    }
}

/// Parses a record beginning with `v=STSv1` under the §3.1 grammar:
/// `v=STSv1` then `;`-separated fields (white space around `;` allowed), one
/// `id=` of 1–32 letters and digits, extensions `name=value`.
pub fn parse(text: &str) -> Result<StsRecord, String> {
    let rest = text
        .strip_prefix("v=STSv1")
        .ok_or_else(|| "it does not begin with v=STSv1".to_string())?;
    let mut fields = rest.split(';');
    // What follows the version must be a delimiter.
    if !fields
        .next()
        .is_some_and(|f| f.trim_matches([' ', '\t']).is_empty())
    {
        return Err("v=STSv1 is not followed by ';'".into());
    }
    let mut id: Option<String> = None;
    let mut extensions = Vec::new();
    let fields: Vec<&str> = fields.collect();
    for (i, field) in fields.iter().enumerate() {
        let field = field.trim_matches([' ', '\t']);
        if field.is_empty() {
            // Only a final delimiter may be left empty.
            if i + 1 == fields.len() {
                continue;
            }
            return Err("an empty field between two ';'".into());
        }
        let Some((name, value)) = field.split_once('=') else {
            return Err(format!("field {field:?} is not name=value"));
        };
        if name == "id" {
            if id.is_some() {
                return Err("id is given twice".into());
            }
            if value.is_empty()
                || value.len() > 32
                || !value.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "id {value:?} is not 1 to 32 letters and digits (RFC 8461 §3.1)"
                ));
            }
            id = Some(value.to_string());
        } else {
            let name_ok = name.len() <= 32
                && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            let value_ok = !value.is_empty()
                && value
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && b != b';' && b != b'=');
            if !name_ok || !value_ok {
                return Err(format!("extension field {field:?} is not valid"));
            }
            extensions.push(field.to_string());
        }
    }
    let id = id.ok_or_else(|| "no id= field".to_string())?;
    Ok(StsRecord { id, extensions })
}

/// The record tlsa publishes for a policy id.
pub fn render(id: &str) -> String {
    format!("v=STSv1; id={id}")
}

/// The owner name of the record: `_mta-sts.DOMAIN.`
pub fn owner(domain: &str) -> String {
    format!("_mta-sts.{}.", domain.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(records: &[&str]) -> Vec<String> {
        records.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_valid_record_among_others() {
        let v = judge(&texts(&["v=spf1 -all", "v=STSv1; id=20261202T0001"]));
        assert_eq!(v.id(), Some("20261202T0001"));
        assert!(matches!(v, TxtVerdict::Valid { ignored: 1, .. }), "{v:?}");
        let v = judge(&texts(&["v=STSv1;id=abc;"]));
        assert_eq!(v.id(), Some("abc"));
        let v = judge(&texts(&["v=STSv1 ; id=abc ; ext_1=x!y"]));
        let TxtVerdict::Valid { record, .. } = v else {
            panic!("{v:?}")
        };
        assert_eq!(record.extensions, vec!["ext_1=x!y"]);
    }

    #[test]
    fn a_multi_string_record_is_concatenated() {
        let strings = vec![b"v=STSv1; id=abc".to_vec(), b"def".to_vec()];
        let text = concatenate(&strings);
        assert_eq!(text, "v=STSv1; id=abcdef");
        assert_eq!(judge(&[text]).id(), Some("abcdef"));
        // Split inside the version: still one record once joined.
        let strings = vec![b"v=ST".to_vec(), b"Sv1; id=x1".to_vec()];
        assert_eq!(judge(&[concatenate(&strings)]).id(), Some("x1"));
    }

    #[test]
    fn v_stsv1_not_first_is_no_sts_record() {
        let v = judge(&texts(&["id=abc; v=STSv1"]));
        assert_eq!(v, TxtVerdict::NoRecord { ignored: 1 });
        // Case-sensitive, as the grammar says.
        assert_eq!(judge(&texts(&["v=stsv1; id=abc"])).name(), "no-record");
    }

    #[test]
    fn ids_with_illegal_characters_or_length_are_invalid() {
        for bad in [
            "v=STSv1; id=2026-12-02",
            "v=STSv1; id=abc_def",
            "v=STSv1; id=",
            "v=STSv1; id=123456789012345678901234567890123",
            "v=STSv1; id=a; id=b",
            "v=STSv1",
            "v=STSv1 id=abc",
            "v=STSv1id=abc",
            "v=STSv1; ;id=abc",
        ] {
            let v = judge(&texts(&[bad]));
            assert_eq!(v.name(), "invalid", "{bad:?}: {v:?}");
        }
        assert_eq!(
            judge(&texts(&["v=STSv1; id=12345678901234567890123456789012"])).name(),
            "valid"
        );
    }

    #[test]
    fn two_sts_records_are_no_policy() {
        let v = judge(&texts(&["v=STSv1; id=a", "v=STSv1; id=b"]));
        assert_eq!(v.name(), "several");
        assert_eq!(v.id(), None);
        assert!(v.to_string().contains("no policy"), "{v}");
    }

    #[test]
    fn rendered_records_parse_back() {
        let text = render("0123abcd");
        assert_eq!(judge(&[text]).id(), Some("0123abcd"));
        assert_eq!(owner("example.com."), "_mta-sts.example.com.");
    }
}
