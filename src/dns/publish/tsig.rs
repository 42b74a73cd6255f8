//! TSIG keys (RFC 8945): loading them from BIND key files or
//! `ALGORITHM:NAME:SECRET` text (a file or an environment variable), signing
//! a request and verifying its answer.
//!
//! The secret never leaves this module in printable form: [`TsigKey`] has a
//! redacting `Debug`, no `Display` and no `Serialize`, and no error message
//! quotes it.
//!
//! hickory's `TSigner` signs only hmac-sha256/384/512, so every request is
//! signed, and every answer verified, here — one path for all five
//! algorithms, with hickory's wire primitives and aws-lc-rs' HMAC (the tests
//! check it byte for byte against hickory's signer). hmac-sha1 (deprecated,
//! still found on old servers) and hmac-sha224 keys are warned about, not
//! refused.
//!
//! Requests are signed with [`TsigKey::sign`] and sent through an *unsigned*
//! hickory client: with a signing client, hickory turns the server's unsigned
//! BADSIG/BADKEY answers into an opaque "truncated HMACs" protocol error,
//! while signing the message ourselves keeps the real rcode and TSIG error.

mod named_conf;

use std::fmt;
use std::path::Path;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hickory_proto::op::Message;
use hickory_proto::rr::Name;
#[cfg(test)]
use hickory_proto::rr::TSigner;
use hickory_proto::rr::rdata::tsig::{
    TSIG, TsigAlgorithm, make_tsig_record, message_tbs, signed_bitmessage_to_buf,
};

use crate::dns::DnsError;

/// The environment variable conventionally holding `ALGORITHM:NAME:SECRET`.
pub const KEY_ENV: &str = "TLSA_TSIG_KEY";

/// Allowed clock difference between us and the server, in seconds (what
/// BIND's nsupdate uses too).
pub const FUDGE: u16 = 300;

/// What an operator should run to get a good key.
const KEYGEN_HINT: &str = "generate one with `tsig-keygen -a hmac-sha256 NAME`";

/// The TSIG algorithms tlsa can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Deprecated (RFC 8945 §6); accepted with a warning.
    HmacSha1,
    HmacSha224,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Algorithm {
    /// The algorithm's name as BIND and Knot write it (`hmac-sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha1 => "hmac-sha1",
            Algorithm::HmacSha224 => "hmac-sha224",
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    /// Parses a name as found in key files (case-insensitive, a trailing dot
    /// allowed). The error says what is accepted instead.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().trim_end_matches('.').to_ascii_lowercase();
        match lower.as_str() {
            "hmac-sha1" => Ok(Algorithm::HmacSha1),
            "hmac-sha224" => Ok(Algorithm::HmacSha224),
            "hmac-sha256" => Ok(Algorithm::HmacSha256),
            "hmac-sha384" => Ok(Algorithm::HmacSha384),
            "hmac-sha512" => Ok(Algorithm::HmacSha512),
            "hmac-md5" | "hmac-md5.sig-alg.reg.int" => Err(format!(
                "algorithm {lower} is rejected: HMAC-MD5 must not be used any more (RFC 8945 §6); {KEYGEN_HINT} and configure it on the server"
            )),
            _ if lower.starts_with("hmac-sha") && lower[8..].contains('-') => Err(format!(
                "algorithm {lower} uses a truncated MAC, which tlsa does not support; use hmac-sha256, hmac-sha384 or hmac-sha512"
            )),
            _ => Err(format!(
                "unknown TSIG algorithm `{}`: expected hmac-sha256, hmac-sha384 or hmac-sha512 (hmac-sha1 and hmac-sha224 are accepted too)",
                text.trim()
            )),
        }
    }

    /// Deprecated algorithms (still usable, with a warning).
    pub fn is_deprecated(self) -> bool {
        self == Algorithm::HmacSha1
    }

    /// hickory's name for it.
    pub fn to_hickory(self) -> TsigAlgorithm {
        match self {
            Algorithm::HmacSha1 => TsigAlgorithm::HmacSha1,
            Algorithm::HmacSha224 => TsigAlgorithm::HmacSha224,
            Algorithm::HmacSha256 => TsigAlgorithm::HmacSha256,
            Algorithm::HmacSha384 => TsigAlgorithm::HmacSha384,
            Algorithm::HmacSha512 => TsigAlgorithm::HmacSha512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Algorithm::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::HmacSha224 => hmac::HMAC_SHA224,
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha384 => hmac::HMAC_SHA384,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    /// Length of a full MAC, in bytes.
    pub fn mac_len(self) -> usize {
        self.hmac().digest_algorithm().output_len()
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Key bytes, overwritten when dropped (best effort: hickory's `TSigner`
/// keeps its own copy).
#[derive(Clone, PartialEq, Eq)]
struct Secret(Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// A TSIG key: name, algorithm and shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// The key's name, fully qualified; it must match the server's.
    pub name: Name,
    pub algorithm: Algorithm,
    secret: Secret,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &format_args!("<redacted>"))
            .finish()
    }
}

/// A key that could not be loaded; `origin` names the file or variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct TsigKeyError {
    /// `TSIG key file /etc/…`, `environment variable TLSA_TSIG_KEY`, …
    pub origin: String,
    pub message: String,
}

impl From<TsigKeyError> for DnsError {
    fn from(error: TsigKeyError) -> Self {
        DnsError::Config(error.to_string())
    }
}

impl TsigKey {
    /// A key from its parts. `name` is made fully qualified.
    pub fn new(mut name: Name, algorithm: Algorithm, secret: Vec<u8>) -> Self {
        name.set_fqdn(true);
        TsigKey {
            name,
            algorithm,
            secret: Secret(secret),
        }
    }

    /// Reads a key file: a BIND key file (`key "NAME" { algorithm …; secret
    /// "…"; };`, as `tsig-keygen` writes it; several keys allowed, `name`
    /// selects one) or one line `ALGORITHM:NAME:SECRET`.
    pub fn from_file(path: &Path, name: Option<&str>) -> Result<Self, TsigKeyError> {
        let origin = format!("TSIG key file {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| TsigKeyError {
            origin: origin.clone(),
            message: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, name, &origin)
    }

    /// Reads `ALGORITHM:NAME:SECRET` (or a BIND key statement) from the
    /// environment variable `var` (e.g. [`KEY_ENV`]).
    pub fn from_env(var: &str) -> Result<Self, TsigKeyError> {
        Self::from_env_value(var, std::env::var(var))
    }

    /// [`TsigKey::from_env`] on a value already read (tests need not touch
    /// the process environment).
    fn from_env_value(
        var: &str,
        value: Result<String, std::env::VarError>,
    ) -> Result<Self, TsigKeyError> {
        let origin = format!("environment variable {var}");
        match value {
            Ok(text) => Self::parse(&text, None, &origin),
            Err(std::env::VarError::NotPresent) => Err(TsigKeyError {
                origin,
                message:
                    "is not set; expected ALGORITHM:NAME:SECRET, e.g. hmac-sha256:tlsa-key:BASE64"
                        .into(),
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(TsigKeyError {
                origin,
                message: "is not valid UTF-8; expected ALGORITHM:NAME:SECRET".into(),
            }),
        }
    }

    /// Parses key text of either form; `origin` names where it came from.
    pub fn parse(text: &str, name: Option<&str>, origin: &str) -> Result<Self, TsigKeyError> {
        if looks_like_bind(text) {
            Self::parse_bind(text, name, origin)
        } else {
            let key = Self::parse_spec(text, origin)?;
            match name {
                Some(wanted) if !same_name(&key.name, wanted) => Err(TsigKeyError {
                    origin: origin.into(),
                    message: format!(
                        "holds key \"{}\", not the requested key \"{wanted}\"",
                        display_name(&key.name)
                    ),
                }),
                _ => Ok(key),
            }
        }
    }

    /// Parses `ALGORITHM:NAME:SECRET` (surrounding whitespace ignored).
    pub fn parse_spec(text: &str, origin: &str) -> Result<Self, TsigKeyError> {
        let fail = |message: String| TsigKeyError {
            origin: origin.into(),
            message,
        };
        let fields: Vec<&str> = text.trim().splitn(3, ':').collect();
        let [algorithm, name, secret] = fields[..] else {
            return Err(fail(
                "expected ALGORITHM:NAME:SECRET, e.g. hmac-sha256:tlsa-key:BASE64 (or a BIND key file)"
                    .into(),
            ));
        };
        let algorithm = Algorithm::parse(algorithm).map_err(fail)?;
        build(name.trim(), algorithm, secret, origin)
    }

    /// Parses BIND configuration text holding `key` statements. Comments
    /// (`#`, `//`, `/* */`) and statements other than `key` are skipped;
    /// `include` is refused (name the included file instead). With several
    /// keys, `name` must say which one.
    pub fn parse_bind(text: &str, name: Option<&str>, origin: &str) -> Result<Self, TsigKeyError> {
        let fail = |message: String| TsigKeyError {
            origin: origin.into(),
            message,
        };
        let statements = named_conf::parse(text).map_err(fail)?;
        let mut keys: Vec<(String, usize, &[named_conf::Statement])> = Vec::new();
        for statement in &statements {
            match statement.keyword() {
                Some(k) if k.eq_ignore_ascii_case("include") => {
                    return Err(fail(format!(
                        "line {}: `include` is not followed; give tlsa the included key file itself",
                        statement.line
                    )));
                }
                Some(k) if k.eq_ignore_ascii_case("key") => {
                    let (Some(key_name), Some(body), 2) = (
                        statement.head.get(1),
                        &statement.block,
                        statement.head.len(),
                    ) else {
                        return Err(fail(format!(
                            "line {}: expected `key \"NAME\" {{ algorithm hmac-sha256; secret \"BASE64\"; }};`",
                            statement.line
                        )));
                    };
                    if keys
                        .iter()
                        .any(|(n, _, _)| n.eq_ignore_ascii_case(&key_name.text))
                    {
                        return Err(fail(format!(
                            "line {}: key \"{}\" is defined twice",
                            statement.line, key_name.text
                        )));
                    }
                    keys.push((key_name.text.clone(), statement.line, body));
                }
                _ => {}
            }
        }
        let names = || {
            keys.iter()
                .map(|(n, _, _)| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let chosen = match (name, keys.len()) {
            (_, 0) => {
                return Err(fail(
                    "holds no `key \"NAME\" { algorithm …; secret \"…\"; };` statement".into(),
                ));
            }
            (None, 1) => &keys[0],
            (None, _) => {
                return Err(fail(format!(
                    "holds several keys ({}): say which one to use",
                    names()
                )));
            }
            (Some(wanted), _) => keys
                .iter()
                .find(|(n, _, _)| {
                    n.trim_end_matches('.')
                        .eq_ignore_ascii_case(wanted.trim_end_matches('.'))
                })
                .ok_or_else(|| fail(format!("has no key \"{wanted}\" (it holds {})", names())))?,
        };
        let (key_name, line, body) = chosen;
        let mut algorithm = None;
        let mut secret = None;
        for clause in body.iter() {
            let value = match (clause.head.as_slice(), &clause.block) {
                ([_, value], None) => value,
                _ => {
                    return Err(fail(format!(
                        "line {}: in key \"{key_name}\": expected `algorithm NAME;` or `secret \"BASE64\";`",
                        clause.line
                    )));
                }
            };
            match clause.keyword() {
                Some(k) if k.eq_ignore_ascii_case("algorithm") => algorithm = Some(value),
                Some(k) if k.eq_ignore_ascii_case("secret") => secret = Some(value),
                other => {
                    return Err(fail(format!(
                        "line {}: in key \"{key_name}\": unknown clause `{}` (expected `algorithm` and `secret`)",
                        clause.line,
                        other.unwrap_or("\"…\"")
                    )));
                }
            }
        }
        let algorithm = algorithm.ok_or_else(|| {
            fail(format!(
                "key \"{key_name}\" (line {line}) has no algorithm: expected `algorithm hmac-sha256;`"
            ))
        })?;
        let secret = secret.ok_or_else(|| {
            fail(format!(
                "key \"{key_name}\" (line {line}) has no secret: expected `secret \"BASE64\";`"
            ))
        })?;
        let algorithm = Algorithm::parse(&algorithm.text)
            .map_err(|e| fail(format!("key \"{key_name}\": {e}")))?;
        build(key_name, algorithm, &secret.text, origin)
    }

    /// Things the operator should fix, though the key works (e.g. hmac-sha1,
    /// a secret shorter than the MAC).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let name = display_name(&self.name);
        if self.algorithm.is_deprecated() {
            warnings.push(format!(
                "TSIG key \"{name}\" uses {}, which is deprecated (RFC 8945 §6); {KEYGEN_HINT} and replace it on the server",
                self.algorithm
            ));
        }
        let recommended = self.algorithm.mac_len();
        if self.secret.0.len() < recommended {
            warnings.push(format!(
                "TSIG key \"{name}\": its secret is {} bytes, shorter than the {recommended} bytes recommended for {} (RFC 8945 §6); {KEYGEN_HINT}",
                self.secret.0.len(),
                self.algorithm
            ));
        }
        warnings
    }

    /// hickory's signer for this key (fudge [`FUDGE`]), or `None` for
    /// algorithms hickory cannot compute (hmac-sha1, hmac-sha224). Only the
    /// tests use it, as an independent check of [`TsigKey::sign`], which
    /// signs every algorithm one way.
    #[cfg(test)]
    pub fn to_signer(&self) -> Option<TSigner> {
        TSigner::new(
            self.secret.0.clone(),
            self.algorithm.to_hickory(),
            self.name.clone(),
            FUDGE,
        )
        .ok()
    }

    /// Signs `message` (adds its TSIG record, time `now` in seconds since the
    /// epoch). Nothing may change in the message afterwards, except its ID
    /// (the TSIG record keeps the original). Returns what verifies the answer.
    pub fn sign(&self, message: &mut Message, now: u64) -> Result<RequestSignature, TsigError> {
        let request_mac = self.sign_here(message, now)?;
        Ok(RequestSignature {
            key: self.clone(),
            request_mac,
            now,
        })
    }

    /// Signs with aws-lc-rs' HMAC (every algorithm); returns the MAC.
    fn sign_here(&self, message: &mut Message, now: u64) -> Result<Vec<u8>, TsigError> {
        let stub = TSIG::new(
            self.algorithm.to_hickory(),
            now,
            FUDGE,
            Vec::new(),
            message.metadata.id,
            None,
            Vec::new(),
        );
        let tbs = message_tbs(message, &stub, &self.name)
            .map_err(|e| TsigError::Encode(e.to_string()))?;
        let mac = hmac::sign(&hmac::Key::new(self.algorithm.hmac(), &self.secret.0), &tbs)
            .as_ref()
            .to_vec();
        message.set_signature(Box::new(make_tsig_record(
            self.name.clone(),
            stub.set_mac(mac.clone()),
        )));
        Ok(mac)
    }
}

/// Why a message could not be signed, or an answer's signature not verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsigError {
    #[error("cannot encode the message to sign it: {0}")]
    Encode(String),
    #[error("undecodable answer: {0}")]
    Undecodable(String),
    #[error("the answer is not signed")]
    Unsigned,
    #[error("the answer is signed with another key ({0})")]
    OtherKey(String),
    #[error("the answer is signed with {used}, not {ours}")]
    OtherAlgorithm { used: String, ours: String },
    #[error("the answer carries TSIG error {0}")]
    Carried(String),
    #[error("the answer's MAC is {got} bytes, not {want}")]
    MacLength { got: usize, want: usize },
    #[error("wrong MAC")]
    WrongMac,
    #[error("the answer was signed at {time}, more than {fudge} s from our request at {now}")]
    Time { time: u64, fudge: u64, now: u64 },
}

/// What a signed request needs to verify its answer.
pub struct RequestSignature {
    key: TsigKey,
    request_mac: Vec<u8>,
    /// When the request was signed (seconds since the epoch).
    now: u64,
}

impl fmt::Debug for RequestSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSignature")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl RequestSignature {
    /// Verifies the TSIG of the answer `response` (wire bytes): signed with
    /// our key, MAC correct over our request's MAC and the answer, signing
    /// time within the fudge of our request. The error says what failed.
    pub fn verify(&mut self, response: &[u8]) -> Result<(), TsigError> {
        let parsed =
            Message::from_vec(response).map_err(|e| TsigError::Undecodable(e.to_string()))?;
        let Some(tsig) = parsed.signature() else {
            return Err(TsigError::Unsigned);
        };
        if !tsig.name.eq_ignore_case_fqdn(&self.key.name) {
            return Err(TsigError::OtherKey(tsig.name.to_string()));
        }
        if tsig.data.algorithm != self.key.algorithm.to_hickory() {
            return Err(TsigError::OtherAlgorithm {
                used: tsig.data.algorithm.to_string(),
                ours: self.key.algorithm.to_string(),
            });
        }
        if let Some(error) = tsig.data.error {
            return Err(TsigError::Carried(format!("{error:?}")));
        }
        if tsig.data.mac.len() != self.key.algorithm.mac_len() {
            return Err(TsigError::MacLength {
                got: tsig.data.mac.len(),
                want: self.key.algorithm.mac_len(),
            });
        }
        let (tbv, record) = signed_bitmessage_to_buf(response, Some(&self.request_mac), true)
            .map_err(|e| TsigError::Undecodable(e.to_string()))?;
        let key = hmac::Key::new(self.key.algorithm.hmac(), &self.key.secret.0);
        hmac::verify(&key, &tbv, &record.data.mac).map_err(|_| TsigError::WrongMac)?;
        let (time, fudge, now) = (record.data.time, u64::from(record.data.fudge), self.now);
        if time.abs_diff(now) > fudge {
            return Err(TsigError::Time { time, fudge, now });
        }
        Ok(())
    }
}

/// Case-insensitive name comparison that ignores whether either is fully qualified.
trait EqIgnoreCaseFqdn {
    fn eq_ignore_case_fqdn(&self, other: &Name) -> bool;
}

impl EqIgnoreCaseFqdn for Name {
    fn eq_ignore_case_fqdn(&self, other: &Name) -> bool {
        let (mut a, mut b) = (self.clone(), other.clone());
        a.set_fqdn(true);
        b.set_fqdn(true);
        a == b
    }
}

/// `name` without the final dot, as key names are written in key files.
fn display_name(name: &Name) -> String {
    name.to_string().trim_end_matches('.').to_string()
}

fn same_name(name: &Name, text: &str) -> bool {
    Name::from_ascii(text.trim()).is_ok_and(|n| n.eq_ignore_case_fqdn(name))
}

/// Whether `text` is BIND configuration rather than `ALGORITHM:NAME:SECRET`.
fn looks_like_bind(text: &str) -> bool {
    text.contains('{') || text.contains(';') || {
        let first = text.split_whitespace().next().unwrap_or_default();
        first.eq_ignore_ascii_case("key") || first.starts_with('#') || first.starts_with("//")
    }
}

fn build(
    name: &str,
    algorithm: Algorithm,
    secret: &str,
    origin: &str,
) -> Result<TsigKey, TsigKeyError> {
    let fail = |message: String| TsigKeyError {
        origin: origin.into(),
        message,
    };
    if name.is_empty() {
        return Err(fail("the key name is empty".into()));
    }
    let parsed_name = Name::from_ascii(name)
        .map_err(|_| fail(format!("key name `{name}` is not a valid domain name")))?;
    let compact: String = secret.split_whitespace().collect();
    if compact.is_empty() {
        return Err(fail(format!(
            "the secret of key \"{name}\" is empty; {KEYGEN_HINT}"
        )));
    }
    // Never quote the secret, not even the offending character.
    let engine = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(compact.as_bytes()).map_err(|_| {
        fail(format!(
            "the secret of key \"{name}\" is not valid base64 (expected what `tsig-keygen` prints)"
        ))
    })?;
    if bytes.is_empty() {
        return Err(fail(format!(
            "the secret of key \"{name}\" is empty; {KEYGEN_HINT}"
        )));
    }
    Ok(TsigKey::new(parsed_name, algorithm, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tsig-keygen -a hmac-sha256 tlsa-key` output shape.
    const SECRET_A: &str = "c2VjcmV0LWEtc2VjcmV0LWEtc2VjcmV0LWEtc2VjcmV0LWE=";
    const SECRET_B: &str =
        "c2VjcmV0LWItc2VjcmV0LWItc2VjcmV0LWItc2VjcmV0LWItc2VjcmV0LWItc2VjcmV0LWI=";

    fn two_keys() -> String {
        format!(
            r#"# generated by tsig-keygen
/* two keys:
   one per zone */
key "alpha-key" {{
	algorithm hmac-sha256;   // the default
	secret "{SECRET_A}";
}};

options {{ directory "/tmp"; listen-on {{ any; }}; }};

key beta-key.example. {{ algorithm HMAC-SHA512; secret
    "{SECRET_B}"; }};
"#
        )
    }

    fn origin() -> &'static str {
        "TSIG key file /etc/tlsa/keys.conf"
    }

    fn err(result: Result<TsigKey, TsigKeyError>) -> String {
        result.expect_err("should fail").to_string()
    }

    #[test]
    fn reads_tsig_keygen_output() {
        let text = format!(
            "key \"tlsa-key\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET_A}\";\n}};\n"
        );
        let key = TsigKey::parse(&text, None, origin()).unwrap();
        assert_eq!(key.name, Name::from_ascii("tlsa-key.").unwrap());
        assert!(key.name.is_fqdn());
        assert_eq!(key.algorithm, Algorithm::HmacSha256);
        assert_eq!(
            key.secret.0,
            b"secret-a-secret-a-secret-a-secret-a".to_vec()
        );
        assert!(key.warnings().is_empty(), "{:?}", key.warnings());
        assert!(key.to_signer().is_some());
    }

    #[test]
    fn selects_one_of_several_keys_by_name_skipping_comments_and_other_statements() {
        let text = two_keys();
        let a = TsigKey::parse_bind(&text, Some("alpha-key"), origin()).unwrap();
        assert_eq!(a.algorithm, Algorithm::HmacSha256);
        let b = TsigKey::parse_bind(&text, Some("BETA-KEY.example"), origin()).unwrap();
        assert_eq!(b.name, Name::from_ascii("beta-key.example.").unwrap());
        assert_eq!(b.algorithm, Algorithm::HmacSha512);
        assert_eq!(b.secret.0.len(), 53);

        let e = err(TsigKey::parse_bind(&text, None, origin()));
        assert!(e.starts_with(origin()), "{e}");
        assert!(
            e.contains("several keys")
                && e.contains("\"alpha-key\"")
                && e.contains("\"beta-key.example.\""),
            "{e}"
        );
        let e = err(TsigKey::parse_bind(&text, Some("gamma"), origin()));
        assert!(
            e.starts_with(origin()) && e.contains("no key \"gamma\""),
            "{e}"
        );
    }

    #[test]
    fn reads_files_naming_them_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tsig.key");
        std::fs::write(&path, two_keys()).unwrap();
        let key = TsigKey::from_file(&path, Some("alpha-key")).unwrap();
        assert_eq!(key.algorithm, Algorithm::HmacSha256);

        let spec = dir.path().join("spec");
        std::fs::write(&spec, format!("hmac-sha384:k1:{SECRET_B}\n")).unwrap();
        let key = TsigKey::from_file(&spec, None).unwrap();
        assert_eq!(key.algorithm, Algorithm::HmacSha384);

        let missing = dir.path().join("missing.key");
        let e = err(TsigKey::from_file(&missing, None));
        assert!(
            e.starts_with(&format!(
                "TSIG key file {}: cannot read it",
                missing.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn reads_algorithm_name_secret() {
        let key = TsigKey::parse_spec(&format!(" hmac-sha512:tlsa-key:{SECRET_B}\n"), "x").unwrap();
        assert_eq!(key.algorithm, Algorithm::HmacSha512);
        assert_eq!(key.name, Name::from_ascii("tlsa-key.").unwrap());
        // parse() recognises the form too, and checks a requested name.
        let spec = format!("hmac-sha256:tlsa-key:{SECRET_A}");
        assert!(TsigKey::parse(&spec, Some("tlsa-key."), "x").is_ok());
        let e = err(TsigKey::parse(&spec, Some("other"), "x"));
        assert!(e.contains("not the requested key \"other\""), "{e}");

        for bad in ["tlsa-key:c2VjcmV0", "hmac-sha256", ""] {
            let e = err(TsigKey::parse_spec(
                bad,
                "environment variable TLSA_TSIG_KEY",
            ));
            assert!(
                e.starts_with("environment variable TLSA_TSIG_KEY: expected ALGORITHM:NAME:SECRET"),
                "{e}"
            );
        }
    }

    #[test]
    fn reads_the_environment() {
        // Setting variables races with other threads reading the environment:
        // the value is passed in, and only an unset variable is really read.
        let var = "TLSA_TSIG_KEY";
        let value = Ok(format!("hmac-sha256:env-key:{SECRET_A}"));
        let key = TsigKey::from_env_value(var, value).unwrap();
        assert_eq!(key.name, Name::from_ascii("env-key.").unwrap());
        let value = Ok("hmac-sha256:env-key:not base64!".to_string());
        let e = err(TsigKey::from_env_value(var, value));
        assert!(
            e.starts_with("environment variable TLSA_TSIG_KEY: ") && e.contains("not valid base64"),
            "{e}"
        );
        assert!(
            !e.contains("not base64!"),
            "the secret must not be quoted: {e}"
        );
        let e = err(TsigKey::from_env("TLSA_TSIG_KEY_NEVER_SET_BY_ANYONE"));
        assert!(
            e.starts_with("environment variable TLSA_TSIG_KEY_NEVER_SET_BY_ANYONE: is not set; expected ALGORITHM:NAME:SECRET"),
            "{e}"
        );
    }

    #[test]
    fn hmac_sha1_is_accepted_with_a_warning() {
        let key = TsigKey::parse_spec(&format!("hmac-sha1:old-key:{SECRET_A}"), "x").unwrap();
        assert_eq!(key.algorithm, Algorithm::HmacSha1);
        let warnings = key.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("old-key")
                && warnings[0].contains("hmac-sha1")
                && warnings[0].contains("deprecated")
        );
        // hickory cannot sign it; tlsa can.
        assert!(key.to_signer().is_none());
        let mut message = Message::query();
        key.sign(&mut message, 1_700_000_000).unwrap();
        assert_eq!(message.signature().unwrap().data.mac.len(), 20);
    }

    #[test]
    fn short_secrets_are_warned_about() {
        let key = TsigKey::parse_spec("hmac-sha256:k:c2hvcnQ=", "x").unwrap();
        let warnings = key.warnings();
        assert!(
            warnings.iter().any(|w| w.contains("5 bytes")),
            "{warnings:?}"
        );
    }

    #[test]
    fn hmac_md5_and_truncated_macs_are_rejected() {
        let text = format!("key \"old\" {{ algorithm hmac-md5; secret \"{SECRET_A}\"; }};");
        let e = err(TsigKey::parse(&text, None, origin()));
        assert!(
            e.starts_with(origin())
                && e.contains("hmac-md5 is rejected")
                && e.contains("tsig-keygen -a hmac-sha256"),
            "{e}"
        );
        let e = err(TsigKey::parse_spec(
            &format!("HMAC-MD5.SIG-ALG.REG.INT:old:{SECRET_A}"),
            "x",
        ));
        assert!(e.contains("rejected"), "{e}");
        let e = err(TsigKey::parse_spec(
            &format!("hmac-sha256-128:k:{SECRET_A}"),
            "x",
        ));
        assert!(e.contains("truncated MAC"), "{e}");
        let e = err(TsigKey::parse_spec(
            &format!("hmac-blake3:k:{SECRET_A}"),
            "x",
        ));
        assert!(e.contains("unknown TSIG algorithm `hmac-blake3`"), "{e}");
    }

    #[test]
    fn bad_base64_and_missing_parts_name_the_file() {
        let cases = [
            (
                "key \"k\" { algorithm hmac-sha256; secret \"%%%%\"; };",
                "the secret of key \"k\" is not valid base64",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; };",
                "key \"k\" (line 1) has no secret: expected `secret \"BASE64\";`",
            ),
            (
                "key \"k\" {\n secret \"c2VjcmV0\";\n};",
                "key \"k\" (line 1) has no algorithm",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"\"; };",
                "the secret of key \"k\" is empty",
            ),
            ("# nothing here\n", "holds no `key"),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; }",
                "does not end with `;`",
            ),
            (
                "key \"k\" {\n algorithm hmac-sha256;\n secret \"c2VjcmV0\";\n",
                "line 1: `{` is never closed",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"c2Vj; };",
                "unterminated quoted string",
            ),
            ("/* open\nkey \"k\" {};", "unterminated /* comment"),
            (
                "include \"/etc/bind/tsig.key\";",
                "`include` is not followed",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; keyid 3; };",
                "unknown clause `keyid`",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };\nkey \"K\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };",
                "line 2: key \"K\" is defined twice",
            ),
            (
                "key { algorithm hmac-sha256; };",
                "line 1: expected `key \"NAME\" {",
            ),
        ];
        for (text, expected) in cases {
            let e = err(TsigKey::parse(text, None, origin()));
            assert!(e.starts_with(&format!("{}: ", origin())), "{text:?}: {e}");
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_secret_is_never_printed() {
        let key = TsigKey::parse_spec(&format!("hmac-sha256:tlsa-key:{SECRET_A}"), "x").unwrap();
        let debug = format!("{key:?} {key:#?}");
        assert!(
            debug.contains("tlsa-key") && debug.contains("<redacted>"),
            "{debug}"
        );
        let raw = String::from_utf8_lossy(&key.secret.0).into_owned();
        for needle in [
            SECRET_A,
            raw.as_str(),
            &format!("{:?}", key.secret.0)[1..20],
        ] {
            assert!(!debug.contains(needle), "{debug}");
        }
        let mut message = Message::query();
        let signature = key.sign(&mut message, 1).unwrap();
        let debug = format!("{signature:?}");
        assert!(
            !debug.contains(SECRET_A) && !debug.contains(&raw),
            "{debug}"
        );
    }

    /// The signing done here for algorithms hickory lacks is byte for byte
    /// what hickory's `finalize` produces for one it has.
    #[test]
    fn own_signing_matches_hickory() {
        let key = TsigKey::parse_spec(&format!("hmac-sha256:tlsa-key:{SECRET_A}"), "x").unwrap();
        let mut message = Message::query();
        message.add_query(hickory_proto::op::Query::query(
            Name::from_ascii("example.").unwrap(),
            hickory_proto::rr::RecordType::SOA,
        ));
        let mut ours = message.clone();
        key.sign_here(&mut ours, 1_700_000_000).unwrap();
        let mut theirs = message.clone();
        theirs
            .finalize(&key.to_signer().unwrap(), 1_700_000_000)
            .unwrap();
        assert_eq!(ours.to_vec().unwrap(), theirs.to_vec().unwrap());
    }

    /// A server's signed answer, built with hickory's server-side code,
    /// verifies under both verification paths; a tampered one does not.
    #[test]
    fn verifies_signed_answers() {
        use hickory_proto::rr::TSigResponseContext;
        let now = 1_700_000_000;
        for spec in [
            format!("hmac-sha256:k:{SECRET_A}"),
            format!("hmac-sha1:k:{SECRET_A}"),
        ] {
            let key = TsigKey::parse_spec(&spec, "x").unwrap();
            let unsigned_request = Message::query();
            let mut request = unsigned_request.clone();
            let mut signature = key.sign(&mut request, now).unwrap();
            let request_mac = request.signature().unwrap().data.mac.clone();

            let mut response = Message::response(request.metadata.id, request.metadata.op_code);
            let unsigned = response.to_vec().unwrap();
            let answer = if key.algorithm == Algorithm::HmacSha256 {
                let context = TSigResponseContext::new(
                    request.metadata.id,
                    now + 2,
                    key.to_signer().unwrap(),
                    request_mac,
                    None,
                );
                context.sign(&unsigned).unwrap()
            } else {
                // hickory cannot sign sha1 answers: build the same with aws-lc-rs.
                let stub = TSIG::new(
                    key.algorithm.to_hickory(),
                    now + 2,
                    FUDGE,
                    Vec::new(),
                    request.metadata.id,
                    None,
                    Vec::new(),
                );
                let mut tbs = (request_mac.len() as u16).to_be_bytes().to_vec();
                tbs.extend_from_slice(&request_mac);
                tbs.extend_from_slice(&unsigned);
                let mut encoder_buf = Vec::new();
                let mut encoder =
                    hickory_proto::serialize::binary::BinEncoder::new(&mut encoder_buf);
                stub.emit_tsig_for_mac(&mut encoder, &key.name).unwrap();
                tbs.extend_from_slice(&encoder_buf);
                let mac = hmac::sign(&hmac::Key::new(key.algorithm.hmac(), &key.secret.0), &tbs);
                Box::new(make_tsig_record(
                    key.name.clone(),
                    stub.set_mac(mac.as_ref().to_vec()),
                ))
            };
            response.set_signature(answer);
            let bytes = response.to_vec().unwrap();
            signature
                .verify(&bytes)
                .unwrap_or_else(|e| panic!("{spec}: {e}"));

            let mut tampered = bytes.clone();
            tampered[3] ^= 0x01; // rcode NOERROR -> FORMERR
            // Signing is deterministic: the same request, signed again, expects the same answer.
            let mut fresh = key.sign(&mut unsigned_request.clone(), now).unwrap();
            fresh.verify(&bytes).unwrap();
            let mut fresh = key.sign(&mut unsigned_request.clone(), now).unwrap();
            assert!(fresh.verify(&tampered).is_err(), "{spec}");
            let unsigned_answer = Message::response(request.metadata.id, request.metadata.op_code)
                .to_vec()
                .unwrap();
            assert_eq!(
                fresh.verify(&unsigned_answer).unwrap_err(),
                TsigError::Unsigned
            );
        }
    }
}
