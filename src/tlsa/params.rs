//! The three TLSA parameter fields (RFC 6698 §2.1) with their RFC 7218 mnemonics.

use std::fmt;
use std::str::FromStr;

/// Certificate usage: which certificate of the presented chain a record constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Usage {
    /// 0: a CA that must also pass WebPKI validation.
    PkixTa,
    /// 1: the end-entity certificate, which must also pass WebPKI validation.
    PkixEe,
    /// 2: a trust anchor that the presented chain leads to (no WebPKI).
    DaneTa,
    /// 3: the end-entity certificate or key itself (names and dates ignored).
    DaneEe,
}

/// Selector: which part of the certificate is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// 0: the full DER certificate; changes at every renewal.
    Cert,
    /// 1: the DER SubjectPublicKeyInfo; survives renewals that keep the key.
    Spki,
}

/// Matching type: how the selected bytes are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Matching {
    /// 0: the selected bytes themselves.
    Full,
    /// 1: SHA-256 of the selected bytes.
    Sha256,
    /// 2: SHA-512 of the selected bytes.
    Sha512,
}

/// A parameter value that is neither a known number nor a known mnemonic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownParam {
    field: &'static str,
    value: String,
    expected: &'static str,
}

impl fmt::Display for UnknownParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown TLSA {} {:?}: expected {}",
            self.field, self.value, self.expected
        )
    }
}

impl std::error::Error for UnknownParam {}

/// Shared mechanism of the three fields: a number, an RFC 7218 mnemonic and aliases.
macro_rules! tlsa_param {
    ($ty:ident, $field:literal, $expected:literal, [$(($variant:ident, $num:literal, $mnemonic:literal $(, $alias:literal)*)),+ $(,)?]) => {
        impl $ty {
            /// Every value this field can take, in numeric order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The wire value.
            pub fn number(self) -> u8 {
                match self { $($ty::$variant => $num),+ }
            }

            /// The RFC 7218 mnemonic.
            pub fn mnemonic(self) -> &'static str {
                match self { $($ty::$variant => $mnemonic),+ }
            }

            /// The value for a wire number, if it is one this tool knows.
            pub fn from_number(n: u8) -> Option<Self> {
                match n { $($num => Some($ty::$variant),)+ _ => None }
            }
        }

        impl FromStr for $ty {
            type Err = UnknownParam;

            /// Accepts the number, the RFC 7218 mnemonic or a common alias, in any case.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let wanted = s.trim().to_ascii_lowercase();
                $(
                    if wanted == stringify!($num)
                        || wanted == $mnemonic.to_ascii_lowercase()
                        $(|| wanted == $alias)*
                    {
                        return Ok($ty::$variant);
                    }
                )+
                Err(UnknownParam { field: $field, value: s.to_string(), expected: $expected })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.number())
            }
        }
    };
}

tlsa_param!(
    Usage,
    "usage",
    "0-3 or PKIX-TA, PKIX-EE, DANE-TA, DANE-EE",
    [
        (PkixTa, 0, "PKIX-TA", "pkix_ta", "pkixta"),
        (PkixEe, 1, "PKIX-EE", "pkix_ee", "pkixee"),
        (DaneTa, 2, "DANE-TA", "dane_ta", "daneta"),
        (DaneEe, 3, "DANE-EE", "dane_ee", "daneee"),
    ]
);

tlsa_param!(
    Selector,
    "selector",
    "0-1 or Cert, SPKI",
    [
        (Cert, 0, "Cert", "full", "certificate"),
        (Spki, 1, "SPKI", "pubkey", "publickey"),
    ]
);

tlsa_param!(
    Matching,
    "matching type",
    "0-2 or Full, SHA2-256, SHA2-512",
    [
        (Full, 0, "Full", "exact"),
        (Sha256, 1, "SHA2-256", "sha256", "sha-256"),
        (Sha512, 2, "SHA2-512", "sha512", "sha-512"),
    ]
);

impl Matching {
    /// Length of the association data this matching type produces, if fixed.
    pub fn digest_len(self) -> Option<usize> {
        match self {
            Matching::Full => None,
            Matching::Sha256 => Some(32),
            Matching::Sha512 => Some(64),
        }
    }
}

impl Usage {
    /// Whether a record with this usage constrains the end-entity certificate
    /// (as opposed to an issuer in the chain).
    pub fn is_end_entity(self) -> bool {
        matches!(self, Usage::PkixEe | Usage::DaneEe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_mnemonics_parse_alike() {
        assert_eq!("3".parse::<Usage>().unwrap(), Usage::DaneEe);
        assert_eq!("dane-ee".parse::<Usage>().unwrap(), Usage::DaneEe);
        assert_eq!("DANE-TA".parse::<Usage>().unwrap(), Usage::DaneTa);
        assert_eq!("spki".parse::<Selector>().unwrap(), Selector::Spki);
        assert_eq!("0".parse::<Selector>().unwrap(), Selector::Cert);
        assert_eq!("sha2-256".parse::<Matching>().unwrap(), Matching::Sha256);
        assert_eq!("SHA2-512".parse::<Matching>().unwrap(), Matching::Sha512);
        assert_eq!("full".parse::<Matching>().unwrap(), Matching::Full);
    }

    #[test]
    fn unknown_values_name_the_field_and_the_choices() {
        let err = "4".parse::<Usage>().unwrap_err().to_string();
        assert!(err.contains("usage") && err.contains("DANE-EE"), "{err}");
        let err = "sha1".parse::<Matching>().unwrap_err().to_string();
        assert!(
            err.contains("matching type") && err.contains("sha1"),
            "{err}"
        );
    }

    #[test]
    fn every_value_round_trips_through_its_number_and_mnemonic() {
        for u in Usage::ALL {
            assert_eq!(Usage::from_number(u.number()), Some(*u));
            assert_eq!(u.mnemonic().parse::<Usage>().unwrap(), *u);
        }
        for s in Selector::ALL {
            assert_eq!(Selector::from_number(s.number()), Some(*s));
            assert_eq!(s.mnemonic().parse::<Selector>().unwrap(), *s);
        }
        for m in Matching::ALL {
            assert_eq!(Matching::from_number(m.number()), Some(*m));
            assert_eq!(m.mnemonic().parse::<Matching>().unwrap(), *m);
        }
        assert_eq!(Usage::from_number(4), None);
    }
}
