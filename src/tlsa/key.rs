//! Public keys: naming their algorithm, and deriving the SubjectPublicKeyInfo
//! (the bytes that selector 1 hashes) from private keys and bare public keys.

use std::fmt;

use rcgen::{KeyPair, PublicKeyData};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::der;

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";

/// What kind of key a SubjectPublicKeyInfo holds, for display and policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rsa {
        bits: usize,
    },
    Ecdsa {
        curve: &'static str,
    },
    Ed25519,
    /// A key type this tool can hash (from a certificate or SPKI) but not use.
    Other(String),
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyAlgorithm::Ecdsa { curve } => write!(f, "ECDSA-{curve}"),
            KeyAlgorithm::Ed25519 => f.write_str("Ed25519"),
            KeyAlgorithm::Other(name) => f.write_str(name),
        }
    }
}

/// Human name of a key-type OID, for messages about keys we cannot use.
fn oid_name(oid: &str) -> String {
    let name = match oid {
        OID_RSA => "RSA",
        OID_EC => "EC",
        OID_ED25519 => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.2.840.10040.4.1" => "DSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.10046.2.1" => "DH",
        _ => return format!("key type with OID {oid}"),
    };
    name.to_string()
}

/// Human name of a named-curve OID; `None` for curves outside the supported set.
fn curve_name(oid: &str) -> Option<&'static str> {
    match oid {
        "1.2.840.10045.3.1.7" => Some("P-256"),
        "1.3.132.0.34" => Some("P-384"),
        "1.3.132.0.35" => Some("P-521"),
        _ => None,
    }
}

/// Algorithm of a DER SubjectPublicKeyInfo; `None` if it is not an SPKI.
pub fn spki_algorithm(spki_der: &[u8]) -> Option<KeyAlgorithm> {
    let (rest, spki) = SubjectPublicKeyInfo::from_der(spki_der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    Some(describe(&spki))
}

/// Algorithm of a parsed SubjectPublicKeyInfo.
pub fn describe(spki: &SubjectPublicKeyInfo<'_>) -> KeyAlgorithm {
    let oid = spki.algorithm.algorithm.to_id_string();
    match oid.as_str() {
        OID_RSA => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => KeyAlgorithm::Rsa {
                bits: rsa.key_size(),
            },
            _ => KeyAlgorithm::Other("RSA (malformed)".into()),
        },
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|c| c.to_id_string());
            match curve.as_deref().and_then(curve_name) {
                Some(curve) => KeyAlgorithm::Ecdsa { curve },
                None => KeyAlgorithm::Other(format!(
                    "EC on curve {}",
                    curve.unwrap_or_else(|| "(unnamed)".into())
                )),
            }
        }
        OID_ED25519 => KeyAlgorithm::Ed25519,
        other => KeyAlgorithm::Other(oid_name(other)),
    }
}

/// The encodings a private key may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateKeyEncoding {
    /// PKCS#8 / RFC 5958 `PRIVATE KEY`.
    Pkcs8,
    /// PKCS#1 `RSA PRIVATE KEY`.
    Pkcs1,
    /// SEC1 / RFC 5915 `EC PRIVATE KEY`.
    Sec1,
}

impl fmt::Display for PrivateKeyEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrivateKeyEncoding::Pkcs8 => "PKCS#8",
            PrivateKeyEncoding::Pkcs1 => "PKCS#1",
            PrivateKeyEncoding::Sec1 => "SEC1",
        })
    }
}

/// Why a private key could not be turned into its public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateKeyError {
    /// Well-formed, but of a type this tool does not handle.
    Unsupported(String),
    /// Not a readable key in the claimed encoding.
    Malformed(String),
}

/// The SPKI of a private key, with its algorithm.
pub fn private_key_spki(
    der_bytes: &[u8],
    encoding: PrivateKeyEncoding,
) -> Result<(Vec<u8>, KeyAlgorithm), PrivateKeyError> {
    // Name unsupported key types before handing the key to the crypto library,
    // whose only error would be "could not parse".
    check_supported(der_bytes, encoding)?;
    let owned = der_bytes.to_vec();
    let key = match encoding {
        PrivateKeyEncoding::Pkcs8 => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(owned)),
        PrivateKeyEncoding::Pkcs1 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(owned)),
        PrivateKeyEncoding::Sec1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(owned)),
    };
    let pair = KeyPair::try_from(&key).map_err(|e| {
        PrivateKeyError::Malformed(format!(
            "the {encoding} private key could not be read ({e}); supported keys are RSA 2048-8192 bits, ECDSA P-256/P-384/P-521 and Ed25519"
        ))
    })?;
    let spki = pair.subject_public_key_info();
    let algorithm = spki_algorithm(&spki)
        .ok_or_else(|| PrivateKeyError::Malformed("derived public key is not an SPKI".into()))?;
    Ok((spki, algorithm))
}

/// Rejects, by name, key types outside RSA, ECDSA P-256/384/521 and Ed25519.
fn check_supported(der_bytes: &[u8], encoding: PrivateKeyEncoding) -> Result<(), PrivateKeyError> {
    let malformed =
        || PrivateKeyError::Malformed(format!("not a well-formed {encoding} private key"));
    let outer = der::expect(der_bytes, der::SEQUENCE).ok_or_else(malformed)?;
    let version = der::expect(outer.content, der::INTEGER).ok_or_else(malformed)?;
    match encoding {
        PrivateKeyEncoding::Pkcs1 => Ok(()),
        PrivateKeyEncoding::Pkcs8 => {
            let algorithm = der::expect(version.rest, der::SEQUENCE).ok_or_else(malformed)?;
            let oid_tlv = der::expect(algorithm.content, der::OID).ok_or_else(malformed)?;
            let oid = der::oid_to_string(oid_tlv.content).ok_or_else(malformed)?;
            match oid.as_str() {
                OID_RSA | OID_ED25519 => Ok(()),
                OID_EC => check_curve(der::expect(oid_tlv.rest, der::OID).map(|c| c.content)),
                other => Err(PrivateKeyError::Unsupported(oid_name(other))),
            }
        }
        PrivateKeyEncoding::Sec1 => {
            let private = der::expect(version.rest, der::OCTET_STRING).ok_or_else(malformed)?;
            // The curve is in the optional [0] parameters; without it the
            // crypto library decides.
            match der::expect(private.rest, der::CONTEXT_0) {
                Some(params) => {
                    check_curve(der::expect(params.content, der::OID).map(|c| c.content))
                }
                None => Ok(()),
            }
        }
    }
}

fn check_curve(curve_oid: Option<&[u8]>) -> Result<(), PrivateKeyError> {
    let Some(oid) = curve_oid.and_then(der::oid_to_string) else {
        return Err(PrivateKeyError::Unsupported(
            "EC key with explicit curve parameters".into(),
        ));
    };
    match curve_name(&oid) {
        Some(_) => Ok(()),
        None => {
            let known = match oid.as_str() {
                "1.3.132.0.10" => "secp256k1",
                "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1",
                "1.3.36.3.3.2.8.1.1.11" => "brainpoolP384r1",
                _ => oid.as_str(),
            };
            Err(PrivateKeyError::Unsupported(format!(
                "EC key on curve {known}"
            )))
        }
    }
}

/// Wraps a PKCS#1 `RSAPublicKey` into a SubjectPublicKeyInfo (RFC 3279 §2.3.1).
pub fn rsa_public_key_to_spki(pkcs1: &[u8]) -> Vec<u8> {
    let oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let mut algorithm = der::encode(der::OID, &oid);
    algorithm.extend(der::encode(der::NULL, &[]));
    let mut bits = vec![0u8]; // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut body = der::encode(der::SEQUENCE, &algorithm);
    body.extend(der::encode(der::BIT_STRING, &bits));
    der::encode(der::SEQUENCE, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pkcs8() {
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let pair = KeyPair::generate_for(alg).unwrap();
            let (spki, _) =
                private_key_spki(pair.serialized_der(), PrivateKeyEncoding::Pkcs8).unwrap();
            assert_eq!(spki, pair.subject_public_key_info());
        }
    }

    #[test]
    fn names_algorithms() {
        let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let alg = spki_algorithm(&p384.subject_public_key_info()).unwrap();
        assert_eq!(alg.to_string(), "ECDSA-P-384");
        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert_eq!(
            spki_algorithm(&ed.subject_public_key_info()).unwrap(),
            KeyAlgorithm::Ed25519
        );
    }

    #[test]
    fn names_unsupported_pkcs8_key_types() {
        // PKCS#8 Ed448 key (RFC 8410 §10.3 structure, zero key material).
        let mut inner = der::encode(der::INTEGER, &[0]);
        inner.extend(der::encode(
            der::SEQUENCE,
            &der::encode(der::OID, &[0x2b, 0x65, 0x71]),
        ));
        inner.extend(der::encode(
            der::OCTET_STRING,
            &der::encode(der::OCTET_STRING, &[0; 57]),
        ));
        let ed448 = der::encode(der::SEQUENCE, &inner);
        assert_eq!(
            private_key_spki(&ed448, PrivateKeyEncoding::Pkcs8).unwrap_err(),
            PrivateKeyError::Unsupported("Ed448".into())
        );
    }
}
