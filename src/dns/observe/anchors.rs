//! Trust anchor files for the anchored validator ([`super::dnssec`]): DNSKEY
//! and DS lines in zone-file form (comments, parentheses), DS lines turned
//! into the DNSKEYs of their zone fetched through the resolver and kept only
//! when a SHA-256 or SHA-384 digest matches.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS};
use hickory_proto::dnssec::{DigestType, TrustAnchors};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RData, RecordType};

use super::extended_error::extended_errors;
use crate::dns::DnsError;
use crate::dns::query::{self, Ask, rcode_name};

/// One record of an anchor file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AnchorLine {
    Dnskey {
        owner: Name,
        rdata: String,
        line: usize,
    },
    Ds {
        owner: Name,
        ds: DS,
        line: usize,
    },
}

/// Reads `path` and builds hickory's trust anchors from it: DNSKEY lines as
/// they are, DS lines through the DNSKEYs of their zone fetched via
/// `resolver` (kept when a DS's SHA-256 or SHA-384 digest matches them;
/// refused when none does).
pub async fn load_anchor_file(
    path: &Path,
    resolver: SocketAddr,
    timeout: Duration,
) -> Result<TrustAnchors, DnsError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        DnsError::Config(format!(
            "cannot read trust anchor file {}: {e}",
            path.display()
        ))
    })?;
    let lines = parse_anchor_text(&text).map_err(|why| anchor_error(path, &why))?;
    if lines.is_empty() {
        return Err(anchor_error(
            path,
            "it holds no DNSKEY or DS record (expected zone-file lines such as `example. IN DS 12345 13 2 ABCD…`)",
        ));
    }

    let dnskey_text: String = lines
        .iter()
        .filter_map(|l| match l {
            AnchorLine::Dnskey { owner, rdata, .. } => {
                Some(format!("{owner} 3600 IN DNSKEY {rdata}\n"))
            }
            AnchorLine::Ds { .. } => None,
        })
        .collect();
    for line in &lines {
        if let AnchorLine::Dnskey { owner, rdata, line } = line {
            TrustAnchors::from_str(&format!("{owner} 3600 IN DNSKEY {rdata}\n")).map_err(|e| {
                anchor_error(path, &format!("line {line}: not a usable DNSKEY: {e}"))
            })?;
        }
    }
    let mut anchors = if dnskey_text.is_empty() {
        TrustAnchors::empty()
    } else {
        TrustAnchors::from_str(&dnskey_text).map_err(|e| anchor_error(path, &e.to_string()))?
    };

    let mut ds_owners: Vec<Name> = Vec::new();
    for line in &lines {
        if let AnchorLine::Ds { owner, .. } = line
            && !ds_owners.contains(owner)
        {
            ds_owners.push(owner.clone());
        }
    }
    for owner in ds_owners {
        let ds_records: Vec<&DS> = lines
            .iter()
            .filter_map(|l| match l {
                AnchorLine::Ds { owner: o, ds, .. } if *o == owner => Some(ds),
                _ => None,
            })
            .collect();
        let keys = fetch_dnskeys(&owner, resolver, timeout)
            .await
            .map_err(|why| anchor_error(path, &why))?;
        let matching = keys_matching_ds(&owner, &keys, &ds_records);
        if matching.is_empty() {
            let tags: Vec<String> = ds_records
                .iter()
                .map(|ds| ds.key_tag().to_string())
                .collect();
            let served: Vec<String> = keys
                .iter()
                .map(|k| {
                    k.calculate_key_tag()
                        .map_or_else(|_| "?".to_string(), |t| t.to_string())
                })
                .collect();
            return Err(anchor_error(
                path,
                &format!(
                    "no DNSKEY of {owner} served through resolver {resolver} matches its DS record(s) (key tag {}; served key tags: {}): the anchor is wrong or the zone's keys changed; update the anchor from the zone's current DS",
                    tags.join(", "),
                    if served.is_empty() {
                        "none".to_string()
                    } else {
                        served.join(", ")
                    }
                ),
            ));
        }
        let lower = LowerName::from(&owner);
        for key in matching {
            anchors.insert_with_name(key.public_key(), lower.clone());
        }
    }
    Ok(anchors)
}

fn anchor_error(path: &Path, why: &str) -> DnsError {
    DnsError::Config(format!("trust anchor file {}: {why}", path.display()))
}

/// The DNSKEYs among `keys` that one of `ds_records` hashes (and that are
/// zone keys, not revoked).
fn keys_matching_ds(owner: &Name, keys: &[DNSKEY], ds_records: &[&DS]) -> Vec<DNSKEY> {
    keys.iter()
        .filter(|key| !key.revoke())
        .filter(|key| {
            ds_records
                .iter()
                .any(|ds| ds.covers(owner, key).unwrap_or(false))
        })
        .cloned()
        .collect()
}

/// The DNSKEY RRset of `owner` through the resolver. Not validated here:
/// the DS digests authenticate the keys taken from it.
async fn fetch_dnskeys(
    owner: &Name,
    resolver: SocketAddr,
    timeout: Duration,
) -> Result<Vec<DNSKEY>, String> {
    let ask = Ask {
        timeout,
        ..Ask::recursive()
    };
    let response = query::ask(resolver, owner, RecordType::DNSKEY, ask)
        .await
        .map_err(|e| format!("cannot fetch the DNSKEYs its DS records hash: {e}"))?;
    if response.response_code != ResponseCode::NoError {
        let ede: Vec<String> = extended_errors(&response)
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err(format!(
            "cannot fetch the DNSKEYs its DS records hash: resolver {resolver} answered {} for {owner} DNSKEY{}",
            rcode_name(response.response_code),
            if ede.is_empty() {
                String::new()
            } else {
                format!(" ({})", ede.join("; "))
            }
        ));
    }
    Ok(response
        .answers
        .iter()
        .filter(|r| r.name == *owner)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(key)) => Some(key.clone()),
            _ => None,
        })
        .collect())
}

/// Parses zone-file DS and DNSKEY lines: `;` comments, blank lines,
/// parentheses spanning lines, optional TTL and class (either order), and a
/// blank owner meaning "the previous owner". `$TTL` is ignored; other
/// directives and other record types are refused.
fn parse_anchor_text(text: &str) -> Result<Vec<AnchorLine>, String> {
    let mut records = Vec::new();
    let mut previous_owner: Option<Name> = None;
    let mut pending = String::new();
    let mut pending_line = 0;
    let mut depth = 0i32;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let content = raw.split(';').next().unwrap_or_default();
        if depth == 0 {
            if content.trim().is_empty() {
                continue;
            }
            pending.clear();
            pending_line = line_no;
        }
        depth += content.matches('(').count() as i32 - content.matches(')').count() as i32;
        pending.push_str(&content.replace(['(', ')'], " "));
        pending.push(' ');
        if depth < 0 {
            return Err(format!("line {line_no}: unbalanced ')'"));
        }
        if depth > 0 {
            continue;
        }
        let starts_blank = pending.starts_with(char::is_whitespace);
        let tokens: Vec<&str> = pending.split_whitespace().collect();
        if tokens.first().is_some_and(|t| t.starts_with('$')) {
            if tokens[0].eq_ignore_ascii_case("$TTL") {
                continue;
            }
            return Err(format!(
                "line {pending_line}: directive {} is not supported in anchor files",
                tokens[0]
            ));
        }
        let (owner, rest) = if starts_blank {
            let owner = previous_owner
                .clone()
                .ok_or_else(|| format!("line {pending_line}: no owner name"))?;
            (owner, &tokens[..])
        } else {
            let owner = Name::from_ascii(tokens[0])
                .map_err(|e| format!("line {pending_line}: bad owner name {}: {e}", tokens[0]))?;
            (absolute(owner), &tokens[1..])
        };
        previous_owner = Some(owner.clone());
        let mut at = 0;
        let rtype = loop {
            let Some(token) = rest.get(at) else {
                return Err(format!("line {pending_line}: no record type"));
            };
            at += 1;
            if token.chars().all(|c| c.is_ascii_digit()) || token.eq_ignore_ascii_case("IN") {
                continue;
            }
            break token.to_ascii_uppercase();
        };
        let rdata = rest[at..].join(" ");
        match rtype.as_str() {
            "DNSKEY" => records.push(AnchorLine::Dnskey {
                owner,
                rdata,
                line: pending_line,
            }),
            "DS" => {
                let ds = match RData::try_from_str(RecordType::DS, &rdata) {
                    Ok(RData::DNSSEC(DNSSECRData::DS(ds))) => ds,
                    Ok(_) => return Err(format!("line {pending_line}: not a DS record")),
                    Err(e) => return Err(format!("line {pending_line}: bad DS record: {e}")),
                };
                match ds.digest_type() {
                    DigestType::SHA256 | DigestType::SHA384 => {}
                    other => {
                        return Err(format!(
                            "line {pending_line}: DS digest type {} is not accepted for a trust anchor; use the SHA-256 (2) or SHA-384 (4) DS (e.g. `dnssec-dsfromkey -2`)",
                            u8::from(other)
                        ));
                    }
                }
                records.push(AnchorLine::Ds {
                    owner,
                    ds,
                    line: pending_line,
                });
            }
            other => {
                return Err(format!(
                    "line {pending_line}: record type {other} is not a trust anchor (expected DS or DNSKEY)"
                ));
            }
        }
    }
    if depth != 0 {
        return Err(format!("line {pending_line}: unbalanced '('"));
    }
    Ok(records)
}

fn absolute(mut name: Name) -> Name {
    name.set_fqdn(true);
    name
}

#[cfg(test)]
mod tests {
    use hickory_proto::dnssec::PublicKey;

    use super::*;

    const KEY: &str =
        "mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==";

    #[test]
    fn parses_dnskey_and_ds_lines_with_comments_and_parentheses() {
        let text = format!(
            "; a BIND key file\n\
             example. 3600 IN DNSKEY 257 3 13 {KEY}\n\
             \n\
             example. IN 3600 DS 12345 13 2 (\n  ABCDEF0123456789ABCDEF0123456789\n  ABCDEF0123456789ABCDEF0123456789 ) ; sha-256\n\
             \x20        DS 12345 13 4 {}\n\
             $TTL 300\n\
             other.example DNSKEY 257 3 13 {KEY}\n",
            "ab".repeat(48)
        );
        let lines = parse_anchor_text(&text).unwrap();
        assert_eq!(lines.len(), 4);
        let AnchorLine::Dnskey { owner, rdata, line } = &lines[0] else {
            panic!()
        };
        assert_eq!((owner.to_string().as_str(), line), ("example.", &2));
        assert_eq!(rdata, &format!("257 3 13 {KEY}"));
        let AnchorLine::Ds { owner, ds, line } = &lines[1] else {
            panic!()
        };
        assert_eq!((owner.to_string().as_str(), *line), ("example.", 4));
        assert_eq!(ds.key_tag(), 12345);
        assert_eq!(ds.digest().len(), 32);
        let AnchorLine::Ds { owner, ds, .. } = &lines[2] else {
            panic!()
        };
        assert_eq!(owner.to_string(), "example.");
        assert_eq!(ds.digest_type(), DigestType::SHA384);
        let AnchorLine::Dnskey { owner, .. } = &lines[3] else {
            panic!()
        };
        assert_eq!(owner.to_string(), "other.example.");
    }

    #[test]
    fn refuses_other_types_sha1_and_directives() {
        let err = parse_anchor_text("example. IN A 192.0.2.1\n").unwrap_err();
        assert!(
            err.contains("line 1: record type A is not a trust anchor"),
            "{err}"
        );
        let err =
            parse_anchor_text(&format!("example. IN DS 1 13 1 {}\n", "ab".repeat(20))).unwrap_err();
        assert!(err.contains("digest type 1 is not accepted"), "{err}");
        let err = parse_anchor_text("$ORIGIN example.\n").unwrap_err();
        assert!(err.contains("$ORIGIN"), "{err}");
        let err = parse_anchor_text("example. IN DS (1 13 2 AB\n").unwrap_err();
        assert!(err.contains("unbalanced"), "{err}");
        assert!(parse_anchor_text("; nothing\n\n").unwrap().is_empty());
    }

    #[test]
    fn ds_matching_uses_the_digest_of_owner_and_key() {
        let name = Name::from_ascii("example.").unwrap();
        let anchors =
            TrustAnchors::from_str(&format!("example. 3600 IN DNSKEY 257 3 13 {KEY}\n")).unwrap();
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(KEY)
            .unwrap();
        let key = DNSKEY::with_flags(
            257,
            hickory_proto::dnssec::PublicKeyBuf::new(
                bytes,
                hickory_proto::dnssec::Algorithm::ECDSAP256SHA256,
            ),
        );
        assert!(anchors.contains_with_name(key.public_key(), &LowerName::from(&name)));
        let good = DS::new(
            key.calculate_key_tag().unwrap(),
            key.public_key().algorithm(),
            DigestType::SHA256,
            key.to_digest(&name, DigestType::SHA256)
                .unwrap()
                .as_ref()
                .to_vec(),
        );
        let wrong = DS::new(
            good.key_tag(),
            key.public_key().algorithm(),
            DigestType::SHA256,
            vec![0; 32],
        );
        assert_eq!(
            keys_matching_ds(&name, std::slice::from_ref(&key), &[&good]).len(),
            1
        );
        assert!(keys_matching_ds(&name, std::slice::from_ref(&key), &[&wrong]).is_empty());
        // The owner name is part of the digest.
        let elsewhere = Name::from_ascii("other.").unwrap();
        assert!(keys_matching_ds(&elsewhere, &[key], &[&good]).is_empty());
    }
}
