//! From what arrives (a JSON file, gzip, a whole mail message) to the report's JSON, with
//! every size bounded: the input is untrusted, and a gzip bomb must fail in bounded memory.

use std::io::Read;

use mail_parser::{MessageParser, MimeHeaders};

/// The most bytes read from one input (a file, a message, a POST body).
pub const MAX_INPUT_BYTES: usize = 16 * 1024 * 1024;
/// The most bytes one report may decompress to. Real daily reports are kilobytes; a large
/// provider's with every failing sender listed stays well below this.
pub const MAX_REPORT_BYTES: usize = 16 * 1024 * 1024;

/// What the input said it was, when it said so (file name, HTTP media type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    Json,
    Gzip,
    Mail,
    /// Decide from the content.
    Sniff,
}

impl Hint {
    /// From a file name: `.json`, `.json.gz`/`.gz`, `.eml`; anything else is sniffed.
    pub fn from_name(name: &str) -> Self {
        let name = name.to_ascii_lowercase();
        if name.ends_with(".gz") {
            Hint::Gzip
        } else if name.ends_with(".json") {
            Hint::Json
        } else if name.ends_with(".eml") {
            Hint::Mail
        } else {
            Hint::Sniff
        }
    }
}

/// The mail a report came in, as far as ingestion needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailInfo {
    /// `TLS-Report-Domain` (RFC 8460 §5.3).
    pub report_domain: Option<String>,
    /// `TLS-Report-Submitter`.
    pub submitter: Option<String>,
    pub message_id: Option<String>,
    /// Whether the top-level type is `multipart/report; report-type=tlsrpt`.
    pub is_tlsrpt_report: bool,
}

/// A report's JSON and, for mail, the message's details.
#[derive(Debug)]
pub struct Unwrapped {
    pub json: Vec<u8>,
    pub mail: Option<MailInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    #[error("larger than {limit} bytes ({what}); not a report")]
    TooLarge { what: &'static str, limit: usize },
    #[error("not gzip data: {0}")]
    Gzip(String),
    #[error("not a mail message with a TLS report: {0}")]
    Mail(String),
}

/// Unwraps one input into the report's JSON.
pub fn unwrap(bytes: &[u8], hint: Hint) -> Result<Unwrapped, UnwrapError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(UnwrapError::TooLarge {
            what: "input",
            limit: MAX_INPUT_BYTES,
        });
    }
    let kind = match hint {
        Hint::Sniff => sniff(bytes),
        other => other,
    };
    match kind {
        Hint::Gzip => Ok(Unwrapped {
            json: gunzip(bytes)?,
            mail: None,
        }),
        Hint::Mail => from_mail(bytes),
        Hint::Json | Hint::Sniff => Ok(Unwrapped {
            json: bytes.to_vec(),
            mail: None,
        }),
    }
}

fn sniff(bytes: &[u8]) -> Hint {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Hint::Gzip;
    }
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | Some(b'[') => Hint::Json,
        _ => Hint::Mail,
    }
}

/// Decompresses gzip (several members are read as one stream, as gzip(1) does), refusing
/// to produce more than [`MAX_REPORT_BYTES`]: at most that much is ever held.
pub fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, UnwrapError> {
    let decoder = flate2::read::MultiGzDecoder::new(bytes);
    let mut out = Vec::new();
    // One byte past the limit tells "exactly the limit" from "more".
    decoder
        .take(MAX_REPORT_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| UnwrapError::Gzip(e.to_string()))?;
    if out.len() > MAX_REPORT_BYTES {
        return Err(UnwrapError::TooLarge {
            what: "decompressed report",
            limit: MAX_REPORT_BYTES,
        });
    }
    Ok(out)
}

/// Media types of a report part (RFC 8460 §5.3, §6.1).
const GZIP_TYPE: &str = "tlsrpt+gzip";
const JSON_TYPE: &str = "tlsrpt+json";

fn from_mail(bytes: &[u8]) -> Result<Unwrapped, UnwrapError> {
    let message = MessageParser::default()
        .parse(bytes)
        .ok_or_else(|| UnwrapError::Mail("no message headers".into()))?;
    let header = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|v| !v.is_empty())
    };
    let is_tlsrpt_report = message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct
                .attribute("report-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("tlsrpt"))
    });
    let info = MailInfo {
        report_domain: header("TLS-Report-Domain"),
        submitter: header("TLS-Report-Submitter"),
        message_id: message.message_id().map(str::to_string),
        is_tlsrpt_report,
    };
    // The report part: by media type first, then by file name (some reporters label it
    // application/gzip or application/octet-stream).
    let mut by_name = None;
    for part in message.parts.iter() {
        let subtype = part
            .content_type()
            .filter(|ct| ct.ctype().eq_ignore_ascii_case("application"))
            .and_then(|ct| ct.subtype())
            .map(str::to_ascii_lowercase);
        match subtype.as_deref() {
            Some(GZIP_TYPE) => return gzip_part(part.contents(), info),
            Some(JSON_TYPE) => {
                return Ok(Unwrapped {
                    json: part.contents().to_vec(),
                    mail: Some(info),
                });
            }
            _ => {}
        }
        if by_name.is_none()
            && let Some(name) = part.attachment_name()
        {
            match Hint::from_name(name) {
                Hint::Gzip | Hint::Json => by_name = Some((Hint::from_name(name), part)),
                _ => {}
            }
        }
    }
    match by_name {
        Some((Hint::Gzip, part)) => gzip_part(part.contents(), info),
        Some((_, part)) => Ok(Unwrapped {
            json: part.contents().to_vec(),
            mail: Some(info),
        }),
        None => Err(UnwrapError::Mail(format!(
            "no part of type application/{GZIP_TYPE} or application/{JSON_TYPE}, and no attachment named .json or .gz{}",
            if info.is_tlsrpt_report {
                ""
            } else {
                " (and the message is not multipart/report; report-type=tlsrpt)"
            }
        ))),
    }
}

fn gzip_part(bytes: &[u8], info: MailInfo) -> Result<Unwrapped, UnwrapError> {
    Ok(Unwrapped {
        json: gunzip(bytes)?,
        mail: Some(info),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_is_sniffed_and_bounded() {
        let data = gzip(b"{\"a\":1}");
        assert_eq!(unwrap(&data, Hint::Sniff).unwrap().json, b"{\"a\":1}");
        let bomb = gzip(&vec![b' '; MAX_REPORT_BYTES + 1]);
        assert!(matches!(
            unwrap(&bomb, Hint::Sniff),
            Err(UnwrapError::TooLarge { .. })
        ));
    }

    #[test]
    fn finds_the_report_part_of_a_message() {
        let body = gzip(b"{}");
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, body);
        let message = format!(
            "From: r@reporter.test\r\nTLS-Report-Domain: example.test\r\nTLS-Report-Submitter: reporter.test\r\nContent-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b--\r\n"
        );
        let out = unwrap(message.as_bytes(), Hint::Mail).unwrap();
        assert_eq!(out.json, b"{}");
        let mail = out.mail.unwrap();
        assert!(mail.is_tlsrpt_report);
        assert_eq!(mail.report_domain.as_deref(), Some("example.test"));
        assert_eq!(mail.submitter.as_deref(), Some("reporter.test"));
    }
}
