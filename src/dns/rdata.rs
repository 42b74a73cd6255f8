//! Conversions between this crate's [`TlsaRecord`] and hickory's TLSA RDATA.

use hickory_proto::rr::rdata::TLSA;
use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};

use crate::tlsa::TlsaRecord;

pub fn to_hickory(record: &TlsaRecord) -> TLSA {
    TLSA::new(
        CertUsage::from(record.usage),
        Selector::from(record.selector),
        Matching::from(record.matching),
        record.data.clone(),
    )
}

pub fn from_hickory(tlsa: &TLSA) -> TlsaRecord {
    TlsaRecord {
        usage: u8::from(tlsa.cert_usage),
        selector: u8::from(tlsa.selector),
        matching: u8::from(tlsa.matching),
        data: tlsa.cert_data.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_and_unknown_parameters() {
        for record in [
            TlsaRecord {
                usage: 3,
                selector: 1,
                matching: 1,
                data: vec![0xab; 32],
            },
            TlsaRecord {
                usage: 2,
                selector: 0,
                matching: 2,
                data: vec![1; 64],
            },
            TlsaRecord {
                usage: 9,
                selector: 7,
                matching: 200,
                data: vec![1, 2],
            },
        ] {
            assert_eq!(from_hickory(&to_hickory(&record)), record);
        }
    }
}
