//! Conversions between this crate's record data ([`Rdata`]) and hickory's.

use hickory_proto::rr::RData;
use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_proto::rr::rdata::{MX, TLSA, TXT};

use super::rrset::{Mx, Rdata, RrType, Txt};
use crate::tlsa::TlsaRecord;

pub fn to_hickory_tlsa(record: &TlsaRecord) -> TLSA {
    TLSA::new(
        CertUsage::from(record.usage),
        Selector::from(record.selector),
        Matching::from(record.matching),
        record.data.clone(),
    )
}

pub fn from_hickory_tlsa(tlsa: &TLSA) -> TlsaRecord {
    TlsaRecord {
        usage: u8::from(tlsa.cert_usage),
        selector: u8::from(tlsa.selector),
        matching: u8::from(tlsa.matching),
        data: tlsa.cert_data.clone(),
    }
}

pub fn to_hickory(rdata: &Rdata) -> RData {
    match rdata {
        Rdata::Tlsa(record) => RData::TLSA(to_hickory_tlsa(record)),
        Rdata::Txt(txt) => RData::TXT(TXT::from_bytes(
            txt.strings().iter().map(Vec::as_slice).collect(),
        )),
        Rdata::Mx(mx) => RData::MX(MX::new(mx.preference, mx.exchange.clone())),
    }
}

/// The record data of `data` when it is of type `rtype` (an answer may
/// carry other types: a CNAME, signatures).
pub fn from_hickory(rtype: RrType, data: &RData) -> Option<Rdata> {
    match (rtype, data) {
        (RrType::Tlsa, RData::TLSA(tlsa)) => Some(Rdata::Tlsa(from_hickory_tlsa(tlsa))),
        (RrType::Txt, RData::TXT(txt)) => {
            Txt::from_strings(txt.txt_data.iter().map(|s| s.to_vec()).collect()).map(Rdata::Txt)
        }
        (RrType::Mx, RData::MX(mx)) => Some(Rdata::Mx(Mx {
            preference: mx.preference,
            exchange: mx.exchange.clone(),
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type_and_unknown_tlsa_parameters() {
        let records = [
            Rdata::Tlsa(TlsaRecord {
                usage: 3,
                selector: 1,
                matching: 1,
                data: vec![0xab; 32],
            }),
            Rdata::Tlsa(TlsaRecord {
                usage: 9,
                selector: 7,
                matching: 200,
                data: vec![1, 2],
            }),
            Rdata::Txt(Txt::from_strings(vec![b"v=STSv1;".to_vec(), b" id=1".to_vec()]).unwrap()),
            Rdata::Mx("10 mx.example.".parse().unwrap()),
        ];
        for record in records {
            let back = from_hickory(record.rtype(), &to_hickory(&record));
            assert_eq!(back, Some(record.clone()));
            let other = RrType::ALL
                .into_iter()
                .find(|t| *t != record.rtype())
                .unwrap();
            assert_eq!(from_hickory(other, &to_hickory(&record)), None);
        }
    }
}
