//! The EAP packet (RFC 3748 §4): header parsing and building, nothing else.

/// EAP codes (RFC 3748 §4).
pub mod code {
    /// Request (server to peer).
    pub const REQUEST: u8 = 1;
    /// Response (peer to server).
    pub const RESPONSE: u8 = 2;
    /// Success.
    pub const SUCCESS: u8 = 3;
    /// Failure.
    pub const FAILURE: u8 = 4;
}

/// EAP method types that this server reads or writes.
pub mod typ {
    /// Identity (RFC 3748 §5.1).
    pub const IDENTITY: u8 = 1;
    /// Notification (RFC 3748 §5.2).
    pub const NOTIFICATION: u8 = 2;
    /// Legacy Nak (RFC 3748 §5.3.1): the peer wants another method.
    pub const NAK: u8 = 3;
    /// EAP-TLS (RFC 5216).
    pub const TLS: u8 = 13;
    /// Expanded types (RFC 3748 §5.7), including the Expanded Nak.
    pub const EXPANDED: u8 = 254;
}

/// Why an EAP packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EapError {
    /// Fewer than four bytes, or a Request/Response without a type.
    #[error("EAP packet too short")]
    TooShort,
    /// The length field disagrees with the bytes carried.
    #[error("EAP length field {field} but {actual} bytes carried")]
    Length {
        /// The header's length.
        field: usize,
        /// The bytes carried.
        actual: usize,
    },
    /// A code other than 1-4.
    #[error("unknown EAP code {0}")]
    Code(u8),
}

/// A borrowed view of one EAP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EapPacket<'a> {
    /// Request, Response, Success or Failure.
    pub code: u8,
    /// The identifier that pairs a response with its request.
    pub id: u8,
    /// The method type (Request and Response only).
    pub typ: Option<u8>,
    /// The type data after the type byte.
    pub data: &'a [u8],
}

impl<'a> EapPacket<'a> {
    /// Reads the EAP packet that the EAP-Message attributes of one RADIUS packet carry,
    /// concatenated. Bytes after the length field are refused, not ignored: RFC 3579 sends
    /// exactly one EAP packet.
    pub fn parse(buf: &'a [u8]) -> Result<Self, EapError> {
        if buf.len() < 4 {
            return Err(EapError::TooShort);
        }
        let field = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if field != buf.len() {
            return Err(EapError::Length {
                field,
                actual: buf.len(),
            });
        }
        let code = buf[0];
        match code {
            code::REQUEST | code::RESPONSE => {
                if buf.len() < 5 {
                    return Err(EapError::TooShort);
                }
                Ok(EapPacket {
                    code,
                    id: buf[1],
                    typ: Some(buf[4]),
                    data: &buf[5..],
                })
            }
            code::SUCCESS | code::FAILURE => Ok(EapPacket {
                code,
                id: buf[1],
                typ: None,
                data: &buf[4..],
            }),
            other => Err(EapError::Code(other)),
        }
    }
}

/// Builds an EAP-Request of `typ` carrying `data`.
pub fn request(id: u8, typ: u8, data: &[u8]) -> Vec<u8> {
    let len = 5 + data.len();
    let mut out = Vec::with_capacity(len);
    out.push(code::REQUEST);
    out.push(id);
    // callers keep data within a RADIUS packet (fragment_size is at most 3000)
    out.extend_from_slice(&(len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
    out.push(typ);
    out.extend_from_slice(data);
    out
}

/// Builds an EAP-Success.
pub fn success(id: u8) -> [u8; 4] {
    [code::SUCCESS, id, 0, 4]
}

/// Builds an EAP-Failure.
pub fn failure(id: u8) -> [u8; 4] {
    [code::FAILURE, id, 0, 4]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_identity_response() {
        let buf = [2, 7, 0, 9, 1, b'a', b'n', b'n', b'a'];
        let p = EapPacket::parse(&buf).unwrap();
        assert_eq!(p.code, code::RESPONSE);
        assert_eq!(p.id, 7);
        assert_eq!(p.typ, Some(typ::IDENTITY));
        assert_eq!(p.data, b"anna");
    }

    #[test]
    fn refuses_bad_lengths_and_codes() {
        assert_eq!(EapPacket::parse(&[2, 1, 0]), Err(EapError::TooShort));
        assert_eq!(EapPacket::parse(&[2, 1, 0, 4]), Err(EapError::TooShort));
        assert_eq!(
            EapPacket::parse(&[2, 1, 0, 9, 1, 0]),
            Err(EapError::Length {
                field: 9,
                actual: 6
            })
        );
        assert_eq!(
            EapPacket::parse(&[2, 1, 0, 5, 1, 0]),
            Err(EapError::Length {
                field: 5,
                actual: 6
            })
        );
        assert_eq!(EapPacket::parse(&[9, 1, 0, 4]), Err(EapError::Code(9)));
    }

    #[test]
    fn builds_packets() {
        let r = request(3, typ::TLS, &[0x20]);
        assert_eq!(r, vec![1, 3, 0, 6, 13, 0x20]);
        let p = EapPacket::parse(&r).unwrap();
        assert_eq!((p.code, p.id, p.typ, p.data), (1, 3, Some(13), &[0x20][..]));
        assert_eq!(success(9), [3, 9, 0, 4]);
        assert_eq!(failure(9), [4, 9, 0, 4]);
    }
}
