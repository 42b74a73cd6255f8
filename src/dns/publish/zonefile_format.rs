//! The format of the records file tlsa owns: rendered one record per line
//! (absolute owner names, explicit TTLs, a stable order) and parsed back,
//! hand edits in that form included and anything else refused with its line
//! number; and the SOA serial of a zone's main file, found and incremented
//! without touching anything else. Pure: [`super::zonefile`] reads, writes
//! and reloads.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use hickory_proto::rr::Name;

use crate::dns::rrset::{Rdata, RrType, RrsetId};

/// The RRsets of the records file: RRset → (TTL, records).
pub type Rrsets = BTreeMap<RrsetId, (u32, BTreeSet<Rdata>)>;

/// The records file for `rrsets`: a header, then one line per record in a
/// stable order (owner, then record), absolute names, explicit TTLs.
pub fn render_records(zone: &Name, rrsets: &Rrsets) -> String {
    let mut text = format!(
        "; TLSA, TXT and MX records of zone {zone}, written by tlsa.\n\
         ; tlsa owns this file: it rewrites it whole at every change.\n\
         ; Keep to one record per line, absolute names, explicit TTLs.\n"
    );
    for (id, (ttl, records)) in rrsets {
        let owner = id.owner.to_lowercase();
        for record in records {
            text.push_str(&format!("{owner} {ttl} IN {} {record}\n", id.rtype));
        }
    }
    text
}

/// `line` up to its comment: the first `;` outside a quoted string.
fn strip_comment(line: &str) -> &str {
    let (mut quoted, mut escaped) = (false, false);
    for (at, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..at],
            _ => {}
        }
    }
    line
}

/// Whether `line` holds a parenthesis outside quoted strings.
fn has_parenthesis(line: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    line.chars().any(|c| {
        let found = !quoted && !escaped && matches!(c, '(' | ')');
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            _ => {}
        }
        found
    })
}

/// Parses a records file; `Err((line number, why))` on anything but TLSA,
/// TXT and MX records in the form [`render_records`] writes (relative names and `@`
/// are read relative to the zone, the usual origin of an `$INCLUDE`).
pub fn parse_records(zone: &Name, text: &str) -> Result<Rrsets, (usize, String)> {
    let mut rrsets = Rrsets::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = strip_comment(raw);
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| (number, why);
        if line.starts_with('$') {
            return Err(bad(
                "directives ($ORIGIN, $TTL, $INCLUDE) are not allowed in tlsa's records file: keep them in the zone file".into(),
            ));
        }
        if line.starts_with(char::is_whitespace) {
            return Err(bad(
                "a line must start with its owner name (tlsa writes every name in full)".into(),
            ));
        }
        if has_parenthesis(line) {
            return Err(bad(
                "parentheses are not allowed: one record per line".into()
            ));
        }
        let mut fields = line.split_whitespace();
        let owner_text = fields.next().unwrap_or_default();
        let owner = owner_name(zone, owner_text)
            .ok_or_else(|| bad(format!("{owner_text:?} is not a domain name")))?;
        if !zone.zone_of(&owner) {
            return Err(bad(format!("{owner} is not in zone {zone}")));
        }
        let (mut ttl, mut rtype) = (None, None);
        for field in fields.by_ref() {
            if let Ok(value) = field.parse::<u32>() {
                if ttl.replace(value).is_some() {
                    return Err(bad("two TTLs".into()));
                }
            } else if field.eq_ignore_ascii_case("IN") {
                continue;
            } else {
                rtype = Some(field);
                break;
            }
        }
        let type_text = rtype.ok_or_else(|| bad("no record type".into()))?;
        let rtype = RrType::from_mnemonic(type_text).ok_or_else(|| {
            bad(format!(
                "a {type_text} record: tlsa owns this file and keeps only TLSA, TXT and MX records in it; move it to the zone file"
            ))
        })?;
        let ttl = ttl.ok_or_else(|| {
            bad("no TTL: write it on the line (the zone file's $TTL is not visible here)".into())
        })?;
        // The RDATA is the rest of the line as written: a TXT string keeps
        // its inner blanks. `type_text` is a slice of `line`.
        let type_end = type_text.as_ptr() as usize - line.as_ptr() as usize + type_text.len();
        let record = Rdata::parse(rtype, line[type_end..].trim()).map_err(bad)?;
        let entry = rrsets
            .entry(RrsetId::new(owner, rtype))
            .or_insert_with(|| (ttl, BTreeSet::new()));
        // Differing TTLs in one RRset: the longest is what caches may keep.
        entry.0 = entry.0.max(ttl);
        entry.1.insert(record);
    }
    Ok(rrsets)
}

fn owner_name(zone: &Name, text: &str) -> Option<Name> {
    if text == "@" {
        return Some(zone.clone());
    }
    let name = Name::from_ascii(text).ok()?;
    if name.is_fqdn() {
        Some(name)
    } else {
        name.append_domain(zone).ok()
    }
}

/// The byte range and value of the first SOA serial in a zone file.
pub fn soa_serial(text: &str) -> Option<(Range<usize>, u32)> {
    let tokens = tokens(text);
    tokens.windows(4).find_map(|window| {
        let [soa, mname, _rname, serial] = window else {
            return None;
        };
        // `soa IN TXT 5` is a record *named* soa: its next word is a class.
        let is_class = ["IN", "CH", "HS"]
            .iter()
            .any(|class| text[mname.clone()].eq_ignore_ascii_case(class));
        if !text[soa.clone()].eq_ignore_ascii_case("SOA") || is_class {
            return None;
        }
        let value = text[serial.clone()].parse::<u32>().ok()?;
        Some((serial.clone(), value))
    })
}

/// `text` with its first SOA serial incremented (RFC 1982 arithmetic).
pub fn bump_serial(text: &str) -> Option<String> {
    let (range, serial) = soa_serial(text)?;
    let mut bumped = String::with_capacity(text.len() + 1);
    bumped.push_str(&text[..range.start]);
    bumped.push_str(&serial.wrapping_add(1).to_string());
    bumped.push_str(&text[range.end..]);
    Some(bumped)
}

/// Byte ranges of the words of a zone file: comments, quoted strings and
/// parentheses skipped.
fn tokens(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b';' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'(' | b')' => i += 1,
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                let start = i;
                while i < bytes.len()
                    && !bytes[i].is_ascii_whitespace()
                    && !matches!(bytes[i], b';' | b'(' | b')' | b'"')
                {
                    i += 1;
                }
                tokens.push(start..i);
            }
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::test_values::name;

    const A: &str = "3 1 1 8f2c3d4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";
    const B: &str = "3 1 1 1111111111111111111111111111111111111111111111111111111111111111";

    fn zone() -> Name {
        Name::from_ascii("example.test.").unwrap()
    }

    fn tlsa(owner: &str) -> RrsetId {
        RrsetId::tlsa(name(owner))
    }

    fn rdata(rtype: RrType, text: &str) -> Rdata {
        Rdata::parse(rtype, text).unwrap()
    }
    #[test]
    fn render_and_parse_round_trip() {
        let mut rrsets = Rrsets::new();
        rrsets.insert(
            tlsa("_25._tcp.Mail.example.test."),
            (300, [rdata(RrType::Tlsa, A), rdata(RrType::Tlsa, B)].into()),
        );
        rrsets.insert(
            tlsa("_443._tcp.www.example.test."),
            (60, [rdata(RrType::Tlsa, B)].into()),
        );
        let sts = "\"v=STSv1; id=20261202;\" \"  two  blanks \\\" ; \"";
        rrsets.insert(
            RrsetId::new(name("_mta-sts.example.test."), RrType::Txt),
            (2, [rdata(RrType::Txt, sts)].into()),
        );
        rrsets.insert(
            RrsetId::new(zone(), RrType::Mx),
            (
                3,
                [
                    rdata(RrType::Mx, "10 mx1.example.test."),
                    rdata(RrType::Mx, "20 mx2.other."),
                ]
                .into(),
            ),
        );
        let text = render_records(&zone(), &rrsets);
        assert!(text.contains(&format!("_25._tcp.mail.example.test. 300 IN TLSA {A}\n")));
        assert!(
            text.contains(&format!("_mta-sts.example.test. 2 IN TXT {sts}\n")),
            "{text}"
        );
        assert!(
            text.contains("example.test. 3 IN MX 20 mx2.other.\n"),
            "{text}"
        );
        assert_eq!(parse_records(&zone(), &text).unwrap(), rrsets);
        assert!(parse_records(&zone(), "").unwrap().is_empty());
    }

    #[test]
    fn reads_hand_written_forms_and_refuses_the_rest() {
        let text = format!(
            "; comment\n_25._tcp.mail IN 60 TLSA {} ; trailing\n@ 30 tlsa {B}\n",
            A.to_ascii_uppercase()
        );
        let rrsets = parse_records(&zone(), &text).unwrap();
        assert_eq!(rrsets[&tlsa("_25._tcp.mail.example.test.")].0, 60);
        assert!(rrsets.contains_key(&RrsetId::tlsa(zone())));
        let txt = parse_records(
            &zone(),
            "_smtp._tls 60 TXT \"v=TLSRPTv1;rua=mailto:r@x\" ; c\n",
        )
        .unwrap();
        let (_, records) = &txt[&RrsetId::new(name("_smtp._tls.example.test."), RrType::Txt)];
        assert_eq!(
            records.first().unwrap().as_txt().unwrap().text(),
            "v=TLSRPTv1;rua=mailto:r@x"
        );
        for (bad, why) in [
            ("$TTL 60\n", "directives"),
            ("  60 IN TLSA 3 1 1 ab\n", "owner name"),
            ("a.example.test. 60 IN TXT ( \"x\" )\n", "parentheses"),
            ("a.example.test. 60 IN TXT \"open\n", "unterminated"),
            ("a.example.test. 60 IN MX mx.example.test.\n", "invalid MX"),
            ("a.example.test. 60 IN A 192.0.2.1\n", "a A record"),
            ("a.other.test. 60 IN TLSA 3 1 1 ab\n", "not in zone"),
            ("a.example.test. IN TLSA 3 1 1 ab\n", "no TTL"),
            ("a.example.test. 60 IN TLSA 3 1 1 abcd\n", "needs 32 bytes"),
            ("a.example.test. 60 IN\n", "no record type"),
            ("a..b 60 IN TLSA 3 1 1 ab\n", "not a domain name"),
        ] {
            let (line, message) = parse_records(&zone(), bad).unwrap_err();
            assert_eq!(line, 1, "{bad}");
            assert!(message.contains(why), "{bad}: {message}");
        }
    }

    #[test]
    fn bumps_only_the_soa_serial() {
        let file = "$ORIGIN example.test.\n$TTL 2\nsoa IN A 192.0.2.1 ; a host named soa\nsoa IN TXT 5\n\
                    @ IN SOA ns1 hostmaster ( 2024010100 ; serial\n  60 30 600 2 )\n\
                    txt IN TXT \"SOA a b 7\"\n";
        let (range, serial) = soa_serial(file).unwrap();
        assert_eq!(serial, 2024010100);
        assert_eq!(&file[range], "2024010100");
        let bumped = bump_serial(file).unwrap();
        assert_eq!(bumped, file.replace("2024010100", "2024010101"));
        assert_eq!(
            bump_serial("@ SOA a b 4294967295 1 1 1 1").unwrap(),
            "@ SOA a b 0 1 1 1 1"
        );
        assert!(soa_serial("@ IN NS ns1\n; SOA a b 1\n").is_none());
    }
}
