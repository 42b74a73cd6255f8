//! TLSA data: reading certificates and keys, computing association data, and
//! matching a presented chain against an RRset.

pub mod cert;
mod der;
pub mod input;
pub mod key;
pub mod matching;
pub mod params;
pub mod record;

pub use cert::Certificate;
pub use input::{InputError, Kind, Material, load_file};
pub use key::KeyAlgorithm;
pub use matching::{MatchReport, Outcome, Profile, RecordVerdict, match_chain};
pub use params::{Matching, Selector, Usage};
pub use record::TlsaRecord;
