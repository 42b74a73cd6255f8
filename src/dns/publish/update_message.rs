//! The RFC 2136 UPDATE message of a change set: the zone, per RRset a
//! prerequisite pinning it as read and the updates that turn it into the
//! desired one; and the split of a change set too large for one message.
//! Pure: [`super::rfc2136`] signs, sends and judges the answer.

use hickory_proto::op::{Message, OpCode, Query, UpdateMessage};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

use super::provider::{ChangeSet, RrsetChange};
use crate::dns::DnsError;
use crate::dns::rdata;
use crate::dns::rrset::Rdata;

/// The largest UPDATE sent: a DNS message over TCP is at most 65,535 bytes,
/// and the TSIG record added when signing takes up to a few hundred.
pub(super) const MAX_UPDATE_BYTES: usize = 65_535 - 1_024;

/// The UPDATE message for `set`, unsigned: zone section = the zone; per
/// change, a prerequisite on the RRset as read and the updates that turn it
/// into the desired one, TTL included.
///
/// - Prerequisite: the exact RRset as read (RFC 2136 §2.4.2: each record,
///   class IN, TTL 0), or "RRset does not exist" (§2.4.3: class NONE, type
///   TLSA, no RDATA) when nothing was read.
/// - Records added: delete each record to remove (§2.5.4: class NONE, TTL 0)
///   and add each new record (§2.5.1) with the change's TTL. Adding a record
///   sets the TTL of the whole RRset, on BIND 9.18 and Knot 3.2 alike.
/// - Nothing added but records kept (a TTL-only change, or a removal that
///   may also change the TTL): delete the RRset (§2.5.2: class ANY) and add
///   the kept records back with the change's TTL, in the same message. Just
///   re-adding an existing record with another TTL is not enough: BIND then
///   changes the RRset's TTL, but Knot ignores the duplicate and keeps the
///   old TTL (both seen in `tests/dns_rfc2136.rs`). The prerequisite makes
///   the delete safe: it removes exactly what was read.
/// - Nothing left: delete each record read (§2.5.4).
pub fn update_message(set: &ChangeSet) -> Message {
    let mut message = Message::query();
    message.metadata.op_code = OpCode::Update;
    message.metadata.recursion_desired = false;
    let mut zone = Query::query(set.zone.clone(), RecordType::SOA);
    zone.set_query_class(DNSClass::IN);
    message.add_zone(zone);
    for change in &set.changes {
        add_prerequisite(&mut message, change);
        add_updates(&mut message, change);
    }
    message
}

fn add_prerequisite(message: &mut Message, change: &RrsetChange) {
    if change.expected.is_empty() {
        let mut absent = Record::update0(change.owner.clone(), 0, change.rtype.record_type());
        absent.dns_class = DNSClass::NONE;
        message.add_pre_requisite(absent);
    }
    for record in &change.expected {
        message.add_pre_requisite(record_of(&change.owner, 0, record));
    }
}

fn add_updates(message: &mut Message, change: &RrsetChange) {
    let adds_records = change.to_add().next().is_some();
    if !adds_records && !change.desired.is_empty() {
        let mut all = Record::update0(change.owner.clone(), 0, change.rtype.record_type());
        all.dns_class = DNSClass::ANY;
        message.add_update(all);
        for record in &change.desired {
            message.add_update(record_of(&change.owner, change.ttl, record));
        }
        return;
    }
    for record in change.to_remove() {
        let mut delete = record_of(&change.owner, 0, record);
        delete.dns_class = DNSClass::NONE;
        message.add_update(delete);
    }
    for record in change.to_add() {
        message.add_update(record_of(&change.owner, change.ttl, record));
    }
}

/// Splits `set` into change sets whose UPDATE messages fit in `limit`
/// bytes, in order; one part when it fits. Each part is measured as
/// encoded: name compression cannot point past the first 16 KiB of a
/// message, so sizes do not add up per change.
pub(super) fn split_to_fit(set: &ChangeSet, limit: usize) -> Result<Vec<ChangeSet>, DnsError> {
    let part = |changes: &[RrsetChange]| ChangeSet {
        zone: set.zone.clone(),
        changes: changes.to_vec(),
    };
    let mut parts = Vec::new();
    let mut pending = vec![set.changes.as_slice()];
    while let Some(changes) = pending.pop() {
        let candidate = part(changes);
        let size = encoded_size(&update_message(&candidate), &set.zone)?;
        if size.is_some_and(|size| size <= limit) {
            parts.push(candidate);
            continue;
        }
        if let [change] = changes {
            return Err(DnsError::Config(format!(
                "the change to {} alone is larger than one UPDATE message can carry ({limit} bytes); publish fewer records there (fewer matching types or keys)",
                change.owner
            )));
        }
        // Halves, the first half on top so that parts come out in order.
        let (first, second) = changes.split_at(changes.len() / 2);
        pending.push(second);
        pending.push(first);
    }
    Ok(parts)
}

/// The encoded size of `message`, or `None` when it does not fit in one
/// DNS message: hickory then drops records and sets the TC bit, and a
/// truncated UPDATE would be a partial change.
fn encoded_size(message: &Message, zone: &Name) -> Result<Option<usize>, DnsError> {
    let bytes = message
        .to_vec()
        .map_err(|e| DnsError::Config(format!("cannot encode the UPDATE of zone {zone}: {e}")))?;
    Ok((!is_truncated(&bytes)).then_some(bytes.len()))
}

/// The TC bit of an encoded message (RFC 1035 §4.1.1: header byte 2, 0x02).
pub(super) fn is_truncated(bytes: &[u8]) -> bool {
    bytes.get(2).is_some_and(|flags| flags & 0x02 != 0)
}

/// `name`, fully qualified (names from the wire always are).
pub(super) fn fqdn(name: &Name) -> Name {
    let mut name = name.clone();
    name.set_fqdn(true);
    name
}

fn record_of(owner: &Name, ttl: u32, record: &Rdata) -> Record {
    Record::from_rdata(owner.clone(), ttl, rdata::to_hickory(record))
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::dns::test_values::{name, rec};
    use std::collections::BTreeSet;

    use hickory_proto::rr::RData;

    use super::*;
    use crate::tlsa::TlsaRecord;

    fn records(bytes: &[u8]) -> BTreeSet<Rdata> {
        bytes.iter().map(|b| Rdata::Tlsa(rec(*b))).collect()
    }

    /// A `3 1 2` record: 64 bytes of digest.
    fn big(byte: u8) -> TlsaRecord {
        TlsaRecord {
            matching: 2,
            data: vec![byte; 64],
            ..rec(byte)
        }
    }

    pub(crate) fn change(owner: &str, expected: &[u8], desired: &[u8], ttl: u32) -> RrsetChange {
        RrsetChange {
            owner: name(owner),
            rtype: crate::dns::RrType::Tlsa,
            expected: records(expected),
            desired: records(desired),
            ttl,
        }
    }

    /// (class, type, ttl, rdata byte or None for no rdata) of each record.
    fn shape(records: &[Record]) -> Vec<(DNSClass, RecordType, u32, Option<u8>)> {
        records
            .iter()
            .map(|r| {
                let byte = match &r.data {
                    RData::TLSA(t) => Some(t.cert_data[0]),
                    _ => None,
                };
                (r.dns_class, r.record_type(), r.ttl, byte)
            })
            .collect()
    }
    #[test]
    fn one_message_with_prerequisites_and_updates_per_owner() {
        let set = ChangeSet {
            zone: name("example."),
            changes: vec![
                change("_25._tcp.a.example.", &[1, 2], &[2, 3], 60),
                change("_25._tcp.b.example.", &[], &[4], 300),
                change("_25._tcp.c.example.", &[5], &[], 60),
            ],
        };
        let m = update_message(&set);
        assert_eq!(m.metadata.op_code, OpCode::Update);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].name(), &name("example."));
        assert_eq!(m.queries[0].query_type(), RecordType::SOA);
        assert_eq!(m.queries[0].query_class(), DNSClass::IN);
        use {DNSClass::*, RecordType::TLSA};
        // prerequisites (answer section): exact RRset, "does not exist", exact RRset
        assert_eq!(
            shape(&m.answers),
            vec![
                (IN, TLSA, 0, Some(1)),
                (IN, TLSA, 0, Some(2)),
                (NONE, TLSA, 0, None),
                (IN, TLSA, 0, Some(5))
            ]
        );
        let names: Vec<String> = m.answers.iter().map(|r| r.name.to_string()).collect();
        assert_eq!(names[0], "_25._tcp.a.example.");
        assert_eq!(names[2], "_25._tcp.b.example.");
        // updates (authority section): delete 1, add 3; add 4; delete 5
        assert_eq!(
            shape(&m.authorities),
            vec![
                (NONE, TLSA, 0, Some(1)),
                (IN, TLSA, 60, Some(3)),
                (IN, TLSA, 300, Some(4)),
                (NONE, TLSA, 0, Some(5))
            ]
        );
    }

    #[test]
    fn a_change_set_too_large_for_one_message_is_split_by_owner() {
        let changes: Vec<RrsetChange> = (0..40)
            .map(|i| change(&format!("_25._tcp.h{i}.example."), &[1, 2], &[2, 3], 60))
            .collect();
        let set = ChangeSet {
            zone: name("example."),
            changes: changes.clone(),
        };
        let whole = update_message(&set).to_vec().unwrap().len();
        assert_eq!(split_to_fit(&set, whole).unwrap(), vec![set.clone()]);
        let parts = split_to_fit(&set, whole / 3).unwrap();
        assert!(parts.len() >= 3, "{} parts", parts.len());
        for part in &parts {
            assert!(update_message(part).to_vec().unwrap().len() <= whole / 3);
            assert!(!part.changes.is_empty());
        }
        let rejoined: Vec<RrsetChange> = parts.into_iter().flat_map(|p| p.changes).collect();
        assert_eq!(rejoined, changes, "every change once, in order");
        let err = split_to_fit(&set, 100).unwrap_err().to_string();
        // Past 16 KiB names cannot be compressed: measured, not added up.
        let many = ChangeSet {
            zone: name("example."),
            changes: (0..400)
                .map(|i| {
                    let mut c = change(&format!("_25._tcp.host-{i:03}.example."), &[], &[], 60);
                    c.desired = [0u8, 1]
                        .iter()
                        .map(|b| Rdata::Tlsa(big(*b ^ i as u8)))
                        .collect();
                    c
                })
                .collect(),
        };
        let parts = split_to_fit(&many, MAX_UPDATE_BYTES).unwrap();
        assert_eq!(parts.iter().map(|p| p.changes.len()).sum::<usize>(), 400);
        for part in &parts {
            let size = encoded_size(&update_message(part), &many.zone).unwrap();
            assert!(size.is_some_and(|s| s <= MAX_UPDATE_BYTES), "{size:?}");
        }
        assert!(err.contains("_25._tcp.h0.example."), "{err}");
    }

    #[test]
    fn ttl_changes_without_additions_replace_the_rrset() {
        use {DNSClass::*, RecordType::TLSA};
        for (expected, desired) in [(&[1u8, 2][..], &[1u8, 2][..]), (&[1, 2, 3], &[1, 2])] {
            let set = ChangeSet {
                zone: name("example."),
                changes: vec![change("_25._tcp.a.example.", expected, desired, 300)],
            };
            let m = update_message(&set);
            assert_eq!(
                shape(&m.authorities),
                vec![
                    (ANY, TLSA, 0, None),
                    (IN, TLSA, 300, Some(1)),
                    (IN, TLSA, 300, Some(2))
                ]
            );
            // the prerequisite still pins the RRset as read
            assert_eq!(m.answers.len(), expected.len());
        }
    }
}
