//! Cloudflare's record JSON: a listed record decoded (only records of the
//! asked type and owner, never failing on others), the body of a record to
//! create, and the batch body that turns the listed RRsets into the desired
//! ones. Pure: [`super::cloudflare`] does the requests.

use std::collections::BTreeSet;

use hickory_proto::rr::Name;
use serde_json::{Value, json};

use super::checked_write::expect_unchanged;
use super::provider::ChangeSet;
use crate::dns::DnsError;
use crate::dns::rrset::{Mx, Rdata, RrType, RrsetId, Txt};
use crate::tlsa::TlsaRecord;

/// The `ttl` value that means "automatic".
pub const AUTOMATIC_TTL_MARKER: u32 = 1;

/// What an "automatic" TTL is in DNS: Cloudflare documents automatic as
/// 300 seconds for records that are not proxied (TLSA never is). This is
/// the TTL caches apply, so the roll engine must wait with it.
pub const AUTOMATIC_TTL: u32 = 300;

/// Written into the `comment` of every record tlsa creates.
pub const RECORD_COMMENT: &str = "managed by tlsa";

pub(super) const BACKEND: &str = "Cloudflare";

/// One record as listed, with what a batch needs to touch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    pub id: String,
    pub record: Rdata,
    /// The TTL as the API states it (`1`: automatic).
    pub api_ttl: u32,
}

impl ListedRecord {
    /// The TTL caches apply.
    pub fn ttl(&self) -> u32 {
        effective_ttl(self.api_ttl)
    }
}

/// The TTL served for an API `ttl` value.
pub fn effective_ttl(api_ttl: u32) -> u32 {
    if api_ttl == AUTOMATIC_TTL_MARKER {
        AUTOMATIC_TTL
    } else {
        api_ttl
    }
}
/// A name as the API writes it: lower case, no trailing dot.
pub fn api_name(name: &Name) -> String {
    name.to_lowercase()
        .to_ascii()
        .trim_end_matches('.')
        .to_string()
}

/// The record data in one listed record, if it is a record of `rrset`;
/// an error only for a record of that type that cannot be understood.
pub(super) fn decode_record(
    record: &Value,
    rrset: &RrsetId,
) -> Result<Option<ListedRecord>, String> {
    let (owner, rtype) = (&rrset.owner, rrset.rtype);
    if record.get("type").and_then(Value::as_str) != Some(rtype.mnemonic()) {
        return Ok(None);
    }
    let name = record
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !name
        .trim_end_matches('.')
        .eq_ignore_ascii_case(&api_name(owner))
    {
        return Ok(None);
    }
    let id = record
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("a {rtype} record at {name} has no id"))?;
    let api_ttl = record
        .get("ttl")
        .and_then(Value::as_u64)
        .and_then(|t| u32::try_from(t).ok())
        .ok_or_else(|| format!("{rtype} record {id} has no valid ttl"))?;
    let content = record.get("content").and_then(Value::as_str);
    let parsed = match rtype {
        RrType::Tlsa => record
            .get("data")
            .and_then(from_data)
            .or_else(|| content.and_then(|c| c.parse::<TlsaRecord>().ok()))
            .map(Rdata::Tlsa),
        RrType::Txt => content.and_then(txt_from_content).map(Rdata::Txt),
        RrType::Mx => mx_from_api(content, record.get("priority")).map(Rdata::Mx),
    }
    .ok_or_else(|| {
        let fields = match rtype {
            RrType::Tlsa => "data {usage, selector, matching_type, certificate} nor content",
            RrType::Txt => "content",
            RrType::Mx => "content and priority",
        };
        format!("{rtype} record {id} at {name} has no readable {fields}")
    })?;
    Ok(Some(ListedRecord {
        id: id.to_string(),
        record: parsed,
        api_ttl,
    }))
}

/// `data {usage, selector, matching_type, certificate}`; the certificate in
/// hex of either case. Digest lengths are not enforced: a hand-made record
/// of the wrong length is still a record of the RRset.
fn from_data(data: &Value) -> Option<TlsaRecord> {
    let field = |name: &str| {
        data.get(name)
            .and_then(Value::as_u64)
            .and_then(|n| u8::try_from(n).ok())
    };
    let certificate = data.get("certificate")?.as_str()?;
    let hex_text: String = certificate.split_whitespace().collect();
    Some(TlsaRecord {
        usage: field("usage")?,
        selector: field("selector")?,
        matching: field("matching_type")?,
        data: hex::decode(hex_text).ok()?,
    })
}

/// TXT `content`: quoted character-strings as the API documents them, or
/// unquoted text (records made before quoting was required).
fn txt_from_content(content: &str) -> Option<Txt> {
    if content.trim_start().starts_with('"') {
        content.parse().ok()
    } else {
        Some(Txt::from_text(content))
    }
}

/// MX `content` is the host, `priority` the preference.
fn mx_from_api(content: Option<&str>, priority: Option<&Value>) -> Option<Mx> {
    let preference = u16::try_from(priority?.as_u64()?).ok()?;
    let mut exchange = Name::from_ascii(content?).ok()?;
    exchange.set_fqdn(true);
    Some(Mx {
        preference,
        exchange,
    })
}

/// A record to create, as the batch's `posts` (and the create endpoint) take it.
pub fn post_body(owner: &Name, record: &Rdata, ttl: u32) -> Value {
    let mut body = json!({
        "type": record.rtype().mnemonic(),
        "name": api_name(owner),
        "ttl": ttl,
        "comment": RECORD_COMMENT,
    });
    let fields = match record {
        Rdata::Tlsa(tlsa) => json!({"data": {
            "usage": tlsa.usage,
            "selector": tlsa.selector,
            "matching_type": tlsa.matching,
            "certificate": tlsa.data_hex(),
        }}),
        Rdata::Txt(txt) => json!({"content": txt.to_string()}),
        Rdata::Mx(mx) => json!({"content": api_name(&mx.exchange), "priority": mx.preference}),
    };
    if let (Value::Object(body), Value::Object(fields)) = (&mut body, fields) {
        body.extend(fields);
    }
    body
}

/// The batch body for `set` given what is listed now at each owner (in the
/// order of `set.changes`); [`DnsError::ChangedBeforeWrite`] when an RRset
/// is not what the plan expected.
pub fn batch_body(
    set: &ChangeSet,
    listed: &[Vec<ListedRecord>],
) -> Result<Option<Value>, DnsError> {
    let (mut deletes, mut patches, mut posts) = (Vec::new(), Vec::new(), Vec::new());
    for (change, current) in set.changes.iter().zip(listed) {
        let found: BTreeSet<Rdata> = current.iter().map(|l| l.record.clone()).collect();
        expect_unchanged(BACKEND, change, &found)?;
        let mut kept = BTreeSet::new();
        for listed in current {
            // A second copy of a record (possible only by hand) goes too.
            if !change.desired.contains(&listed.record) || !kept.insert(&listed.record) {
                deletes.push(json!({ "id": listed.id }));
            } else if listed.ttl() != change.ttl {
                patches.push(json!({ "id": listed.id, "ttl": change.ttl }));
            }
        }
        posts.extend(
            change
                .to_add()
                .map(|r| post_body(&change.owner, r, change.ttl)),
        );
    }
    if deletes.is_empty() && patches.is_empty() && posts.is_empty() {
        return Ok(None);
    }
    let mut body = serde_json::Map::new();
    for (key, list) in [("deletes", deletes), ("patches", patches), ("posts", posts)] {
        if !list.is_empty() {
            body.insert(key.into(), Value::Array(list));
        }
    }
    Ok(Some(Value::Object(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::publish::provider::RrsetChange;

    fn rec(text: &str) -> Rdata {
        Rdata::Tlsa(text.parse().unwrap())
    }

    /// Any JSON a server lists decodes to a record, to nothing, or to an
    /// error — never a panic. Built from the fields decode_record reads, so
    /// most cases get past the type and name checks (tests/fuzz_parsers.rs
    /// cannot reach this private function).
    #[test]
    fn any_listed_json_decodes_without_panic() {
        use proptest::prelude::*;
        let owner: Name = "_25._tcp.mail.example.com.".parse().unwrap();
        let rrset = RrsetId::tlsa(owner);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            Just(Value::from("TLSA")),
            Just(Value::from("_25._tcp.mail.example.com.")),
            "[0-9a-fA-F ]{0,70}".prop_map(Value::from),
            "[ -~]{0,40}".prop_map(Value::from),
        ];
        let field = prop::sample::select(vec![
            "type",
            "name",
            "id",
            "ttl",
            "data",
            "content",
            "usage",
            "selector",
            "matching_type",
            "certificate",
        ]);
        let json = leaf.prop_recursive(3, 48, 8, move |inner| {
            prop::collection::btree_map(field.clone().prop_map(String::from), inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect()))
        });
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: 2000,
            failure_persistence: None,
            ..Default::default()
        });
        runner
            .run(&json, |record| {
                let _ = decode_record(&record, &rrset);
                Ok(())
            })
            .unwrap();
    }

    const A: &str = "3 1 1 8f2c3d4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";
    const B: &str = "3 1 1 1111111111111111111111111111111111111111111111111111111111111111";

    fn owner() -> Name {
        Name::from_ascii("_25._tcp.Mail.Example.com.").unwrap()
    }

    fn tlsa_at_owner() -> RrsetId {
        RrsetId::tlsa(owner())
    }

    #[test]
    fn decodes_and_posts_txt_and_mx() {
        let id = |rtype| RrsetId::new(Name::from_ascii("example.com.").unwrap(), rtype);
        let quoted = json!({"id": "t1", "type": "TXT", "name": "example.com", "ttl": 60,
            "content": "\"v=STSv1; id=1\" \"x\""});
        let txt = decode_record(&quoted, &id(RrType::Txt)).unwrap().unwrap();
        assert_eq!(
            txt.record,
            Rdata::Txt("\"v=STSv1; id=1\" \"x\"".parse().unwrap())
        );
        let bare = json!({"id": "t2", "type": "TXT", "name": "example.com", "ttl": 60,
            "content": "v=TLSRPTv1; rua=mailto:r@example.com"});
        let txt = decode_record(&bare, &id(RrType::Txt)).unwrap().unwrap();
        assert_eq!(
            txt.record,
            Rdata::Txt(Txt::from_text("v=TLSRPTv1; rua=mailto:r@example.com"))
        );
        assert_eq!(decode_record(&bare, &id(RrType::Mx)), Ok(None));
        let mx = json!({"id": "m1", "type": "MX", "name": "example.com", "ttl": 60,
            "content": "mx1.example.com", "priority": 10});
        let listed = decode_record(&mx, &id(RrType::Mx)).unwrap().unwrap();
        assert_eq!(
            listed.record,
            Rdata::Mx("10 mx1.example.com.".parse().unwrap())
        );
        let no_priority = json!({"id": "m2", "type": "MX", "name": "example.com", "ttl": 60,
            "content": "mx1.example.com"});
        assert!(
            decode_record(&no_priority, &id(RrType::Mx))
                .unwrap_err()
                .contains("m2")
        );

        let owner = Name::from_ascii("example.com.").unwrap();
        assert_eq!(
            post_body(&owner, &listed.record, 60),
            json!({"type": "MX", "name": "example.com", "ttl": 60, "content": "mx1.example.com",
                "priority": 10, "comment": RECORD_COMMENT})
        );
        let posted = post_body(&owner, &txt.record, 60);
        assert_eq!(
            posted["content"],
            "\"v=TLSRPTv1; rua=mailto:r@example.com\""
        );
        assert_eq!(posted["type"], "TXT");
    }

    #[test]
    fn decodes_tlsa_only_and_ignores_everything_else() {
        let other = json!({"id": "1", "type": "SVCB", "name": "_25._tcp.mail.example.com",
            "data": {"priority": 1, "target": ".", "value": "alpn=h2"}, "ttl": "weird"});
        assert_eq!(decode_record(&other, &tlsa_at_owner()), Ok(None));
        let future = json!({"type": "ZZZ", "data": [1, 2, {"x": null}]});
        assert_eq!(decode_record(&future, &tlsa_at_owner()), Ok(None));
        let upper = json!({"id": "r1", "type": "TLSA", "name": "_25._tcp.mail.example.com",
            "ttl": 1, "content": "ignored when data is there",
            "data": {"usage": 3, "selector": 1, "matching_type": 1,
                     "certificate": A[6..].to_ascii_uppercase()}});
        let listed = decode_record(&upper, &tlsa_at_owner()).unwrap().unwrap();
        assert_eq!(listed.record, rec(A));
        assert_eq!((listed.api_ttl, listed.ttl()), (1, AUTOMATIC_TTL));
        let content_only = json!({"id": "r2", "type": "TLSA",
            "name": "_25._tcp.mail.example.com", "ttl": 3600, "content": B});
        assert_eq!(
            decode_record(&content_only, &tlsa_at_owner())
                .unwrap()
                .unwrap()
                .record,
            rec(B)
        );
        let elsewhere = json!({"id": "r3", "type": "TLSA", "name": "_443._tcp.mail.example.com",
            "ttl": 1, "content": B});
        assert_eq!(decode_record(&elsewhere, &tlsa_at_owner()), Ok(None));
        let broken = json!({"id": "r4", "type": "TLSA", "name": "_25._tcp.mail.example.com",
            "ttl": 1, "data": {"usage": 3}});
        let err = decode_record(&broken, &tlsa_at_owner()).unwrap_err();
        assert!(err.contains("r4"), "{err}");
    }

    #[test]
    fn batch_deletes_posts_and_patches_only_what_changes() {
        let listed = vec![ListedRecord {
            id: "old".into(),
            record: rec(A),
            api_ttl: 1,
        }];
        let change = RrsetChange {
            owner: owner(),
            rtype: RrType::Tlsa,
            expected: [rec(A)].into(),
            desired: [rec(B)].into(),
            ttl: 300,
        };
        let set = ChangeSet {
            zone: Name::from_ascii("example.com.").unwrap(),
            changes: vec![change],
        };
        let body = batch_body(&set, std::slice::from_ref(&listed))
            .unwrap()
            .unwrap();
        assert_eq!(
            body,
            json!({"deletes": [{"id": "old"}], "posts": [post_body(&owner(), &rec(B), 300)]})
        );
        assert_eq!(body["posts"][0]["name"], "_25._tcp.mail.example.com");

        // Keeping A with an automatic TTL is no change at 300 s, a patch at 600 s.
        let mut keep = set.clone();
        keep.changes[0].desired = [rec(A)].into();
        assert_eq!(
            batch_body(&keep, std::slice::from_ref(&listed)).unwrap(),
            None
        );
        keep.changes[0].ttl = 600;
        assert_eq!(
            batch_body(&keep, std::slice::from_ref(&listed))
                .unwrap()
                .unwrap(),
            json!({"patches": [{"id": "old", "ttl": 600}]})
        );

        let mut stale = set.clone();
        stale.changes[0].expected = BTreeSet::new();
        let err = batch_body(&stale, &[listed]).unwrap_err();
        assert!(err.is_conflict(), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("3 1 1 8f2c") && text.contains("_25._tcp.Mail"),
            "{text}"
        );
    }
}
