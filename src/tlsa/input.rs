//! Reading certificates, chains, keys and CSRs from files, recognising the
//! kind from the content (PEM labels or DER structure), never the file name.

use std::fmt;
use std::path::{Path, PathBuf};

use x509_parser::prelude::{FromDer, X509CertificationRequest};

use super::cert::Certificate;
use super::key::{self, KeyAlgorithm, PrivateKeyEncoding, PrivateKeyError};

/// What a file turned out to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One certificate, or a chain with the leaf first (e.g. `fullchain.pem`).
    Certificate,
    PrivateKey(PrivateKeyEncoding),
    PublicKey,
    /// A PKCS#10 certificate signing request.
    Csr,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Certificate => f.write_str("certificate"),
            Kind::PrivateKey(enc) => write!(f, "private key ({enc})"),
            Kind::PublicKey => f.write_str("public key"),
            Kind::Csr => f.write_str("certificate request"),
        }
    }
}

impl Kind {
    /// A short machine-friendly name, for JSON.
    pub fn id(&self) -> &'static str {
        match self {
            Kind::Certificate => "certificate",
            Kind::PrivateKey(_) => "private-key",
            Kind::PublicKey => "public-key",
            Kind::Csr => "csr",
        }
    }
}

/// TLSA-relevant content of one input: the end-entity public key and, for
/// certificates, the whole presented chain.
#[derive(Debug, Clone)]
pub struct Material {
    pub kind: Kind,
    /// Leaf first; empty for keys and CSRs.
    pub chain: Vec<Certificate>,
    /// DER SubjectPublicKeyInfo of the end-entity key.
    pub spki: Vec<u8>,
    pub key_algorithm: KeyAlgorithm,
}

impl Material {
    /// The leaf certificate, if the input had certificates.
    pub fn leaf(&self) -> Option<&Certificate> {
        self.chain.first()
    }

    /// Every certificate after the leaf (usage 2 candidates).
    pub fn issuers(&self) -> &[Certificate] {
        self.chain.get(1..).unwrap_or_default()
    }
}

/// Why an input could not be used. Displayed as one line naming the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub source: PathBuf,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Unreadable(String),
    /// More than [`MAX_INPUT`] bytes: no certificate chain or key is that large.
    TooLarge,
    Empty,
    Unrecognised,
    /// A PEM block with a BEGIN line but no matching END line.
    TruncatedPem(String),
    /// A PEM block whose base64 or DER content is damaged.
    DamagedPem {
        label: String,
        why: String,
    },
    Encrypted,
    /// PEM blocks were found, but none holds a certificate, key or CSR.
    NothingUsable(Vec<String>),
    UnsupportedKey(String),
    KeyMismatch,
    MultipleKeys,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.source.display();
        match &self.problem {
            Problem::Unreadable(why) => write!(f, "{file}: cannot read: {why}"),
            Problem::TooLarge => write!(
                f,
                "{file}: larger than 1 MiB; expected a certificate (chain), key or CSR, which are a few kB"
            ),
            Problem::Empty => write!(
                f,
                "{file}: the file is empty; expected a certificate, key or CSR in PEM or DER form"
            ),
            Problem::Unrecognised => write!(
                f,
                "{file}: not a certificate, private key, public key or CSR in PEM or DER form"
            ),
            Problem::TruncatedPem(label) => write!(
                f,
                "{file}: the PEM block \"{label}\" has no END line: the file is truncated; copy it again"
            ),
            Problem::DamagedPem { label, why } => {
                write!(f, "{file}: the PEM block \"{label}\" is damaged: {why}")
            }
            Problem::Encrypted => write!(
                f,
                "{file}: the private key is encrypted; decrypt it first (openssl pkey -in FILE -out PLAIN.pem) or give its certificate instead"
            ),
            Problem::NothingUsable(labels) => write!(
                f,
                "{file}: no certificate, key or CSR in this file (it holds: {})",
                labels.join(", ")
            ),
            Problem::UnsupportedKey(what) => write!(
                f,
                "{file}: unsupported key type {what}; supported are RSA, ECDSA P-256/P-384/P-521 and Ed25519"
            ),
            Problem::KeyMismatch => write!(
                f,
                "{file}: the private key does not belong to the (first) certificate in the same file"
            ),
            Problem::MultipleKeys => write!(
                f,
                "{file}: more than one key or CSR in one file; give each its own file"
            ),
        }
    }
}

impl std::error::Error for InputError {}

/// The most read from one input: far above any certificate chain, and a
/// bound on what `/dev/zero`, a pipe without end or a huge file can cost.
pub const MAX_INPUT: u64 = 1024 * 1024;

/// Reads and recognises one file; `-` reads standard input.
pub fn load_file(path: &Path) -> Result<Material, InputError> {
    let fail = |problem| InputError {
        source: path.to_path_buf(),
        problem,
    };
    let unreadable = |e: std::io::Error| fail(Problem::Unreadable(e.to_string()));
    let reader: Box<dyn std::io::Read> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(unreadable)?)
    };
    // One byte more than allowed tells a file at the limit from a larger one.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(reader, MAX_INPUT + 1), &mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(fail(Problem::TooLarge));
    }
    parse(&bytes).map_err(|problem| InputError {
        source: path.to_path_buf(),
        problem,
    })
}

/// Recognises PEM or DER content.
pub fn parse(bytes: &[u8]) -> Result<Material, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::Empty);
    }
    if contains(bytes, b"-----BEGIN ") {
        parse_pem(bytes)
    } else {
        parse_der(bytes)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One decoded item of an input, before items are combined.
enum Item {
    Cert(Certificate),
    Key(Vec<u8>, KeyAlgorithm, Kind),
}

fn parse_pem(bytes: &[u8]) -> Result<Material, Problem> {
    let blocks = pem::parse_many(bytes).map_err(|e| Problem::DamagedPem {
        label: first_label(bytes).unwrap_or_default(),
        why: e.to_string(),
    })?;
    // The PEM parser skips a block without an END line; count BEGIN lines to notice.
    let begins = bytes.windows(11).filter(|w| w == b"-----BEGIN ").count();
    if begins > blocks.len() {
        let label = nth_label(bytes, blocks.len()).unwrap_or_default();
        return Err(Problem::TruncatedPem(label));
    }
    let mut items = Vec::new();
    let mut ignored = Vec::new();
    for block in &blocks {
        let label = block.tag();
        let damaged = |why: String| Problem::DamagedPem {
            label: label.to_string(),
            why,
        };
        if label == "ENCRYPTED PRIVATE KEY"
            || block
                .headers()
                .get("Proc-Type")
                .is_some_and(|v| v.contains("ENCRYPTED"))
        {
            return Err(Problem::Encrypted);
        }
        let item = match label {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                // OpenSSL's TRUSTED CERTIFICATE appends trust settings after
                // the certificate; only the certificate is hashed.
                let der = if label == "TRUSTED CERTIFICATE" {
                    super::der::read(block.contents())
                        .map(|t| t.whole)
                        .unwrap_or(block.contents())
                } else {
                    block.contents()
                };
                Item::Cert(Certificate::from_der(der).map_err(|e| damaged(e.0))?)
            }
            "PRIVATE KEY" => private_key(block.contents(), PrivateKeyEncoding::Pkcs8)?,
            "RSA PRIVATE KEY" => private_key(block.contents(), PrivateKeyEncoding::Pkcs1)?,
            "EC PRIVATE KEY" => private_key(block.contents(), PrivateKeyEncoding::Sec1)?,
            "PUBLIC KEY" => public_key(block.contents())
                .ok_or_else(|| damaged("not a DER SubjectPublicKeyInfo".into()))?,
            "RSA PUBLIC KEY" => public_key(&key::rsa_public_key_to_spki(block.contents()))
                .ok_or_else(|| damaged("not a DER PKCS#1 RSAPublicKey".into()))?,
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => {
                csr(block.contents()).ok_or_else(|| damaged("not a DER PKCS#10 request".into()))?
            }
            label if label.ends_with("PRIVATE KEY") => {
                return Err(Problem::UnsupportedKey(
                    label.trim_end_matches(" PRIVATE KEY").to_string(),
                ));
            }
            // EC PARAMETERS (written by `openssl ecparam -genkey`), DH
            // PARAMETERS and the like carry nothing to hash.
            other => {
                ignored.push(other.to_string());
                continue;
            }
        };
        items.push(item);
    }
    if items.is_empty() {
        return Err(Problem::NothingUsable(ignored));
    }
    combine(items)
}

fn first_label(bytes: &[u8]) -> Option<String> {
    nth_label(bytes, 0)
}

/// The label of the n-th BEGIN line, for messages.
fn nth_label(bytes: &[u8], n: usize) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let begin = text.match_indices("-----BEGIN ").nth(n)?.0 + "-----BEGIN ".len();
    let end = text[begin..].find("-----")?;
    Some(text[begin..begin + end].to_string())
}

/// Joins the items of one file: a chain, or a single key or CSR, or a
/// certificate chain with its own private key (which must match the leaf).
fn combine(items: Vec<Item>) -> Result<Material, Problem> {
    let mut chain = Vec::new();
    let mut keys = Vec::new();
    for item in items {
        match item {
            Item::Cert(cert) => chain.push(cert),
            Item::Key(spki, algorithm, kind) => keys.push((spki, algorithm, kind)),
        }
    }
    if keys.len() > 1 {
        return Err(Problem::MultipleKeys);
    }
    match (chain.first(), keys.pop()) {
        (Some(leaf), Some((spki, _, _))) if leaf.spki() != spki.as_slice() => {
            Err(Problem::KeyMismatch)
        }
        (Some(leaf), _) => Ok(Material {
            kind: Kind::Certificate,
            spki: leaf.spki().to_vec(),
            key_algorithm: leaf.key_algorithm.clone(),
            chain,
        }),
        (None, Some((spki, key_algorithm, kind))) => Ok(Material {
            kind,
            chain,
            spki,
            key_algorithm,
        }),
        (None, None) => Err(Problem::Unrecognised),
    }
}

fn private_key(der: &[u8], encoding: PrivateKeyEncoding) -> Result<Item, Problem> {
    match key::private_key_spki(der, encoding) {
        Ok((spki, algorithm)) => Ok(Item::Key(spki, algorithm, Kind::PrivateKey(encoding))),
        Err(PrivateKeyError::Unsupported(what)) => Err(Problem::UnsupportedKey(what)),
        Err(PrivateKeyError::Malformed(why)) => Err(Problem::DamagedPem {
            label: format!("{encoding} private key"),
            why,
        }),
    }
}

fn public_key(spki: &[u8]) -> Option<Item> {
    let algorithm = key::spki_algorithm(spki)?;
    Some(Item::Key(spki.to_vec(), algorithm, Kind::PublicKey))
}

fn csr(der: &[u8]) -> Option<Item> {
    let (rest, request) = X509CertificationRequest::from_der(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let spki = &request.certification_request_info.subject_pki;
    Some(Item::Key(spki.raw.to_vec(), key::describe(spki), Kind::Csr))
}

/// DER has no label: try each structure in turn, most common first.
fn parse_der(bytes: &[u8]) -> Result<Material, Problem> {
    if let Ok(cert) = Certificate::from_der(bytes) {
        return combine(vec![Item::Cert(cert)]);
    }
    if let Some(item) = csr(bytes).or_else(|| public_key(bytes)) {
        return combine(vec![item]);
    }
    for encoding in [
        PrivateKeyEncoding::Pkcs8,
        PrivateKeyEncoding::Pkcs1,
        PrivateKeyEncoding::Sec1,
    ] {
        match key::private_key_spki(bytes, encoding) {
            Ok((spki, algorithm)) => {
                return combine(vec![Item::Key(spki, algorithm, Kind::PrivateKey(encoding))]);
            }
            Err(PrivateKeyError::Unsupported(what)) => return Err(Problem::UnsupportedKey(what)),
            Err(PrivateKeyError::Malformed(_)) => continue,
        }
    }
    if looks_like_encrypted_pkcs8(bytes) {
        return Err(Problem::Encrypted);
    }
    Err(Problem::Unrecognised)
}

/// EncryptedPrivateKeyInfo: SEQUENCE { SEQUENCE { OID PBES2/PBE… }, OCTET STRING }.
fn looks_like_encrypted_pkcs8(bytes: &[u8]) -> bool {
    use super::der;
    (|| {
        let outer = der::expect(bytes, der::SEQUENCE)?;
        let algorithm = der::expect(outer.content, der::SEQUENCE)?;
        let oid = der::expect(algorithm.content, der::OID)?;
        der::expect(algorithm.rest, der::OCTET_STRING)?;
        let oid = der::oid_to_string(oid.content)?;
        // PKCS#5 (1.2.840.113549.1.5.*) and PKCS#12 PBE (1.2.840.113549.1.12.1.*).
        Some(oid.starts_with("1.2.840.113549.1.5.") || oid.starts_with("1.2.840.113549.1.12.1."))
    })()
    .unwrap_or(false)
}
