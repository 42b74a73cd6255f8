//! Values the DNS layer's unit tests build again and again: a name from
//! text, a `3 1 1` record whose digest is one repeated byte.

use hickory_proto::rr::Name;

use crate::tlsa::TlsaRecord;

/// `text` as a DNS name; a test's own literal, so it must parse.
pub(crate) fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// A `3 1 1` record with 32 bytes of `byte`.
pub(crate) fn rec(byte: u8) -> TlsaRecord {
    TlsaRecord {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![byte; 32],
    }
}
