//! Record values for the back-end tests: one set of helpers instead of a copy per test
//! file. Everything is [`Rdata`], the type back-ends read and write, so what a provider
//! reads, what dig shows and what a test expects compare directly.

use std::collections::BTreeSet;

use hickory_proto::rr::Name;
use tlsa::dns::{Edit, Rdata, RrType, RrsetId};

use super::DigReply;

/// Three TLSA records of different shapes (3 1 1 twice, 3 1 2 once).
pub const A: &str = "3 1 1 8f2c3d4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";
pub const B: &str = "3 1 1 1111111111111111111111111111111111111111111111111111111111111111";
pub const C: &str = "3 1 2 22222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222";

pub fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap_or_else(|e| panic!("name {text:?}: {e}"))
}

/// One record of type `rtype` from its presentation form.
pub fn rdata(rtype: RrType, text: &str) -> Rdata {
    Rdata::parse(rtype, text).unwrap_or_else(|e| panic!("{rtype} {text:?}: {e}"))
}

/// A TLSA record from its presentation form.
pub fn rec(text: &str) -> Rdata {
    rdata(RrType::Tlsa, text)
}

/// TLSA records from their presentation forms.
pub fn set(records: &[&str]) -> BTreeSet<Rdata> {
    records.iter().map(|r| rec(r)).collect()
}

/// Records of type `rtype`.
pub fn set_of(rtype: RrType, records: &[&str]) -> BTreeSet<Rdata> {
    records.iter().map(|r| rdata(rtype, r)).collect()
}

pub fn tlsa_id(owner: &str) -> RrsetId {
    RrsetId::tlsa(name(owner))
}

/// An edit of the TLSA RRset at `owner` that keeps records it does not name.
pub fn edit(owner: &str, add: &[&str], remove: &[&str], ttl: u32) -> Edit {
    Edit {
        owner: name(owner),
        rtype: RrType::Tlsa,
        add: set(add),
        remove: set(remove),
        replace_all: false,
        ttl,
    }
}

/// The records of type `rtype` in a dig answer (dig prints TLSA hex in upper case).
pub fn records_in(reply: &DigReply, rtype: RrType) -> BTreeSet<Rdata> {
    reply
        .rdata(rtype.mnemonic())
        .into_iter()
        .map(|text| rdata(rtype, text))
        .collect()
}

/// The TLSA records of a dig answer.
pub fn tlsa_of(reply: &DigReply) -> BTreeSet<Rdata> {
    records_in(reply, RrType::Tlsa)
}

/// A TXT record holding `text` (split into 255-byte strings where longer).
pub fn txt(text: &str) -> Rdata {
    Rdata::Txt(tlsa::dns::Txt::from_text(text))
}

/// An MX record from its presentation form (`10 mx1.example.net.`).
pub fn mx(text: &str) -> Rdata {
    rdata(RrType::Mx, text)
}
