//! Just enough DER to look inside private-key containers and to wrap a bare
//! RSA public key: the certificate and key parsers do the real work.

/// One tag-length-value element and what follows it.
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    /// The whole element, header included.
    pub whole: &'a [u8],
    pub rest: &'a [u8],
}

pub const SEQUENCE: u8 = 0x30;
pub const INTEGER: u8 = 0x02;
pub const OCTET_STRING: u8 = 0x04;
pub const BIT_STRING: u8 = 0x03;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;
/// `[0]` constructed, context-specific (SEC1 curve parameters).
pub const CONTEXT_0: u8 = 0xa0;

/// Reads one element; `None` when the input is not well-formed DER.
pub fn read(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, after_tag) = input.split_first()?;
    let (&first_len, mut after_len) = after_tag.split_first()?;
    let len = if first_len < 0x80 {
        usize::from(first_len)
    } else {
        let count = usize::from(first_len & 0x7f);
        if count == 0 || count > 4 || after_len.len() < count {
            return None;
        }
        let (len_bytes, rest) = after_len.split_at(count);
        after_len = rest;
        len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if after_len.len() < len {
        return None;
    }
    let header_len = input.len() - after_len.len();
    let (content, rest) = after_len.split_at(len);
    Some(Tlv {
        tag,
        content,
        whole: &input[..header_len + len],
        rest,
    })
}

/// Reads one element that must carry `tag`.
pub fn expect(input: &[u8], tag: u8) -> Option<Tlv<'_>> {
    read(input).filter(|tlv| tlv.tag == tag)
}

/// Encodes one element.
pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Dotted form of an OID's content bytes, e.g. `1.2.840.10045.2.1`.
pub fn oid_to_string(content: &[u8]) -> Option<String> {
    let (&first, rest) = content.split_first()?;
    let mut arcs = vec![u64::from(first / 40).min(2), 0];
    arcs[1] = u64::from(first) - arcs[0] * 40;
    let mut value: u64 = 0;
    for &b in rest {
        value = value.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    Some(
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_short_and_long_lengths() {
        for len in [0usize, 5, 127, 128, 300, 70_000] {
            let content = vec![7u8; len];
            let der = encode(OCTET_STRING, &content);
            let tlv = read(&der).unwrap();
            assert_eq!(tlv.tag, OCTET_STRING);
            assert_eq!(tlv.content.len(), len);
            assert!(tlv.rest.is_empty());
            assert_eq!(tlv.whole.len(), der.len());
        }
    }

    #[test]
    fn rejects_truncated_input() {
        assert!(read(&[0x30, 0x05, 1, 2]).is_none());
        assert!(read(&[0x30, 0x82, 0x01]).is_none());
        assert!(read(&[]).is_none());
    }

    #[test]
    fn decodes_oids() {
        // id-ecPublicKey
        let oid = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        assert_eq!(oid_to_string(&oid).unwrap(), "1.2.840.10045.2.1");
        // Ed25519
        assert_eq!(oid_to_string(&[0x2b, 0x65, 0x70]).unwrap(), "1.3.101.112");
    }
}
