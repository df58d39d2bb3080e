//! Disconnect-Request and CoA-Request (RFC 5176), sans-IO: building a signed request for one
//! session, and reading the NAS's ACK or NAK against it. No sockets, no clock (the caller
//! passes the Event-Timestamp).

use std::net::Ipv4Addr;

use crate::radius::crypto::{check_response, sign_request, SecretKey};
use crate::radius::dict::{self, code};
use crate::radius::{Builder, DecodeError, EncodeError, Packet};

/// Disconnect-ACK (RFC 5176 §2.1).
pub const DISCONNECT_ACK: u8 = 41;
/// Disconnect-NAK.
pub const DISCONNECT_NAK: u8 = 42;
/// CoA-ACK.
pub const COA_ACK: u8 = 44;
/// CoA-NAK.
pub const COA_NAK: u8 = 45;

/// Error-Cause 503: Session Context Not Found (RFC 5176 §3.5) — the NAS no longer has the
/// session, so it has ended.
pub const SESSION_CONTEXT_NOT_FOUND: u32 = 503;

/// Which request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Disconnect-Request: end the session.
    Disconnect,
    /// CoA-Request: change the session's authorization in place.
    Coa,
}

impl Kind {
    /// The request code.
    pub fn code(self) -> u8 {
        match self {
            Kind::Disconnect => code::DISCONNECT_REQUEST,
            Kind::Coa => code::COA_REQUEST,
        }
    }

    /// `disconnect` or `coa`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Disconnect => "disconnect",
            Kind::Coa => "coa",
        }
    }

    fn answers(self) -> (u8, u8) {
        match self {
            Kind::Disconnect => (DISCONNECT_ACK, DISCONNECT_NAK),
            Kind::Coa => (COA_ACK, COA_NAK),
        }
    }
}

/// The session a request is about, as the NAS identifies it (RFC 5176 §3: the NAS matches on
/// these; a NAS must find the session by Acct-Session-Id, others by Calling-Station-Id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdentity {
    /// Acct-Session-Id from accounting.
    pub acct_session_id: String,
    /// Calling-Station-Id, in the form the NAS sends (`AA-BB-CC-DD-EE-FF`).
    pub calling_station_id: Option<String>,
    /// User-Name.
    pub user_name: Option<String>,
    /// NAS-IP-Address of the NAS.
    pub nas_ip: Option<Ipv4Addr>,
    /// NAS-IPv6-Address of the NAS (RFC 3162).
    pub nas_ipv6: Option<std::net::Ipv6Addr>,
    /// NAS-Identifier of the NAS.
    pub nas_identifier: Option<String>,
}

/// What a CoA-Request changes: the VLAN (RFC 3580 tunnel attributes) and Session-Timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewAuthorization {
    /// VLAN id.
    pub vlan: u16,
    /// Seconds, if any.
    pub session_timeout: Option<u32>,
}

/// Builds a signed Disconnect-Request or CoA-Request. The Message-Authenticator comes first
/// (BlastRADIUS hardening; RFC 5176 §3.3 allows it), the Request Authenticator is the MD5 of
/// the packet with a zero authenticator and the secret (RFC 5176 §2.3). `event_time` is Unix
/// seconds (Event-Timestamp, RFC 5176 §3.4: replay protection).
pub fn build_request<K: SecretKey + ?Sized>(
    kind: Kind,
    identifier: u8,
    session: &SessionIdentity,
    change: Option<&NewAuthorization>,
    event_time: u32,
    secret: &K,
) -> Result<Vec<u8>, EncodeError> {
    let mut b = Builder::with_message_authenticator(kind.code(), identifier);
    if let Some(ip) = session.nas_ip {
        b.add(dict::NAS_IP_ADDRESS, &ip.octets())?;
    }
    if let Some(ip) = session.nas_ipv6 {
        b.add(dict::NAS_IPV6_ADDRESS, &ip.octets())?;
    }
    if let Some(id) = &session.nas_identifier {
        b.add_text(dict::NAS_IDENTIFIER, id)?;
    }
    b.add_text(dict::ACCT_SESSION_ID, &session.acct_session_id)?;
    if let Some(csi) = &session.calling_station_id {
        b.add_text(dict::CALLING_STATION_ID, csi)?;
    }
    if let Some(user) = &session.user_name {
        b.add_text(dict::USER_NAME, user)?;
    }
    b.add_u32(dict::EVENT_TIMESTAMP, event_time)?;
    if let (Kind::Coa, Some(c)) = (kind, change) {
        // RFC 3580 §3.31: untagged tunnel attributes
        b.add_tagged_u32(dict::TUNNEL_TYPE, 0, dict::TUNNEL_TYPE_VLAN)?;
        b.add_tagged_u32(dict::TUNNEL_MEDIUM_TYPE, 0, dict::TUNNEL_MEDIUM_IEEE_802)?;
        b.add_text(dict::TUNNEL_PRIVATE_GROUP_ID, &c.vlan.to_string())?;
        if let Some(t) = c.session_timeout {
            b.add_u32(dict::SESSION_TIMEOUT, t)?;
            b.add_u32(dict::TERMINATION_ACTION, 1)?;
        }
    }
    let (mut buf, off) = b.into_unsigned();
    sign_request(&mut buf, off, &[0; 16], secret);
    Ok(buf)
}

/// What the NAS answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// ACK: done.
    Ack,
    /// NAK, with the Error-Cause if the NAS gave one.
    Nak {
        /// Error-Cause (RFC 5176 §3.5).
        error_cause: Option<u32>,
    },
}

/// Why a datagram is not the answer to our request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// Not a RADIUS packet.
    #[error("malformed: {0}")]
    Malformed(#[from] DecodeError),
    /// The request we hold is not a request we built.
    #[error("the request is not a Disconnect-Request or CoA-Request")]
    NotARequest,
    /// Another identifier: an answer to some other request.
    #[error("identifier {got} does not match the request's {expected}")]
    Identifier {
        /// Ours.
        expected: u8,
        /// Theirs.
        got: u8,
    },
    /// Not an ACK or NAK for this kind of request.
    #[error("code {0} is not an answer to this request")]
    UnexpectedCode(u8),
    /// The Response Authenticator or Message-Authenticator does not verify (wrong secret,
    /// or forged).
    #[error("the response authenticator does not verify (wrong secret?)")]
    BadAuthenticator,
}

/// Reads a datagram as the answer to `request` (the bytes we sent): the identifier and code
/// must match, the Response Authenticator (RFC 5176 §2.3) and any Message-Authenticator must
/// verify.
pub fn read_response<K: SecretKey + ?Sized>(
    request: &[u8],
    datagram: &[u8],
    secret: &K,
) -> Result<Answer, ResponseError> {
    let req = Packet::parse(request)?;
    let kind = match req.code() {
        code::DISCONNECT_REQUEST => Kind::Disconnect,
        code::COA_REQUEST => Kind::Coa,
        _ => return Err(ResponseError::NotARequest),
    };
    let reply = Packet::parse(datagram)?;
    if reply.identifier() != req.identifier() {
        return Err(ResponseError::Identifier {
            expected: req.identifier(),
            got: reply.identifier(),
        });
    }
    let (ack, nak) = kind.answers();
    if reply.code() != ack && reply.code() != nak {
        return Err(ResponseError::UnexpectedCode(reply.code()));
    }
    if !check_response(&reply, &req.authenticator(), secret, false) {
        return Err(ResponseError::BadAuthenticator);
    }
    if reply.code() == ack {
        Ok(Answer::Ack)
    } else {
        Ok(Answer::Nak {
            error_cause: reply.u32(dict::ERROR_CAUSE),
        })
    }
}

/// The name of an Error-Cause value (RFC 5176 §3.5).
pub fn error_cause_name(v: u32) -> &'static str {
    match v {
        201 => "Residual Session Context Removed",
        202 => "Invalid EAP Packet (Ignored)",
        401 => "Unsupported Attribute",
        402 => "Missing Attribute",
        403 => "NAS Identification Mismatch",
        404 => "Invalid Request",
        405 => "Unsupported Service",
        406 => "Unsupported Extension",
        407 => "Invalid Attribute Value",
        501 => "Administratively Prohibited",
        502 => "Request Not Routable (Proxy)",
        503 => "Session Context Not Found",
        504 => "Session Context Not Removable",
        505 => "Other Proxy Processing Error",
        506 => "Resources Unavailable",
        507 => "Request Initiated",
        508 => "Multiple Session Selection Unsupported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::crypto::MaCheck;
    use crate::radius::crypto::{check_accounting_authenticator, check_request_ma, sign_response};

    const SECRET: &[u8] = b"coa-test-secret";

    fn session() -> SessionIdentity {
        SessionIdentity {
            acct_session_id: "sess-42".into(),
            calling_station_id: Some("02-00-00-00-00-01".into()),
            user_name: Some("02-00-00-00-00-01".into()),
            nas_ip: Some(Ipv4Addr::new(10, 1, 2, 3)),
            nas_ipv6: None,
            nas_identifier: Some("ap-hal-1".into()),
        }
    }

    fn answer(request: &[u8], code: u8, cause: Option<u32>, secret: &[u8]) -> Vec<u8> {
        let p = Packet::parse(request).expect("request parses");
        let mut b = Builder::with_message_authenticator(code, p.identifier());
        if let Some(c) = cause {
            b.add_u32(dict::ERROR_CAUSE, c).expect("fits");
        }
        let (mut buf, off) = b.into_unsigned();
        sign_response(&mut buf, off, &p.authenticator(), secret);
        buf
    }

    /// RFC 5176 §2.3: Request Authenticator = MD5(Code+Identifier+Length+16 zero octets+
    /// Attributes+Secret); §3.3 the Message-Authenticator over the packet with a zeroed
    /// authenticator.
    #[test]
    fn rfc5176_section_2_3_disconnect_request_is_signed() {
        let buf = build_request(Kind::Disconnect, 7, &session(), None, 1_700_000_000, SECRET)
            .expect("builds");
        let p = Packet::parse(&buf).expect("parses");
        assert_eq!(p.code(), code::DISCONNECT_REQUEST);
        assert_eq!(p.identifier(), 7);
        assert!(check_accounting_authenticator(&p, SECRET));
        assert!(!check_accounting_authenticator(&p, b"other-secret"));
        assert_eq!(check_request_ma(&p, SECRET), MaCheck::Valid);
        assert_eq!(p.text(dict::ACCT_SESSION_ID), Some("sess-42"));
        assert_eq!(p.text(dict::CALLING_STATION_ID), Some("02-00-00-00-00-01"));
        assert_eq!(p.text(dict::USER_NAME), Some("02-00-00-00-00-01"));
        assert_eq!(
            p.ipv4(dict::NAS_IP_ADDRESS),
            Some(Ipv4Addr::new(10, 1, 2, 3))
        );
        assert_eq!(p.text(dict::NAS_IDENTIFIER), Some("ap-hal-1"));
        assert_eq!(p.u32(dict::EVENT_TIMESTAMP), Some(1_700_000_000));
        // the first attribute is the Message-Authenticator
        assert_eq!(
            p.attributes().next().map(|(t, _)| t),
            Some(dict::MESSAGE_AUTHENTICATOR)
        );
        // a Disconnect-Request carries no authorization change
        assert!(p.attr(dict::TUNNEL_PRIVATE_GROUP_ID).is_none());
    }

    #[test]
    fn rfc5176_section_3_1_coa_request_carries_the_new_vlan() {
        let change = NewAuthorization {
            vlan: 666,
            session_timeout: Some(3600),
        };
        let buf =
            build_request(Kind::Coa, 1, &session(), Some(&change), 1, SECRET).expect("builds");
        let p = Packet::parse(&buf).expect("parses");
        assert_eq!(p.code(), code::COA_REQUEST);
        assert!(check_accounting_authenticator(&p, SECRET));
        assert_eq!(check_request_ma(&p, SECRET), MaCheck::Valid);
        assert_eq!(p.text(dict::TUNNEL_PRIVATE_GROUP_ID), Some("666"));
        assert_eq!(p.u32(dict::TUNNEL_TYPE), Some(dict::TUNNEL_TYPE_VLAN));
        assert_eq!(p.u32(dict::SESSION_TIMEOUT), Some(3600));
    }

    #[test]
    fn ack_and_nak_with_error_cause() {
        let req = build_request(Kind::Disconnect, 9, &session(), None, 1, SECRET).expect("builds");
        let ack = answer(&req, DISCONNECT_ACK, None, SECRET);
        assert_eq!(read_response(&req, &ack, SECRET), Ok(Answer::Ack));
        let nak = answer(&req, DISCONNECT_NAK, Some(503), SECRET);
        assert_eq!(
            read_response(&req, &nak, SECRET),
            Ok(Answer::Nak {
                error_cause: Some(SESSION_CONTEXT_NOT_FOUND)
            })
        );
        assert_eq!(error_cause_name(503), "Session Context Not Found");
        assert_eq!(error_cause_name(201), "Residual Session Context Removed");
        assert_eq!(error_cause_name(9), "Unknown");
    }

    #[test]
    fn answers_that_do_not_belong_are_refused() {
        let req = build_request(Kind::Disconnect, 9, &session(), None, 1, SECRET).expect("builds");
        // wrong secret
        let forged = answer(&req, DISCONNECT_ACK, None, b"wrong");
        assert_eq!(
            read_response(&req, &forged, SECRET),
            Err(ResponseError::BadAuthenticator)
        );
        // a CoA-ACK does not answer a Disconnect-Request
        let other = answer(&req, COA_ACK, None, SECRET);
        assert_eq!(
            read_response(&req, &other, SECRET),
            Err(ResponseError::UnexpectedCode(COA_ACK))
        );
        // another identifier
        let mut shifted = answer(&req, DISCONNECT_ACK, None, SECRET);
        shifted[1] = 10;
        assert!(matches!(
            read_response(&req, &shifted, SECRET),
            Err(ResponseError::Identifier {
                expected: 9,
                got: 10
            })
        ));
        // a tampered Message-Authenticator with a right Response Authenticator
        let p = Packet::parse(&req).expect("parses");
        let mut b = Builder::with_message_authenticator(DISCONNECT_ACK, 9);
        b.add_u32(dict::ERROR_CAUSE, 201).expect("fits");
        let (mut buf, off) = b.into_unsigned();
        sign_response(&mut buf, off, &p.authenticator(), SECRET);
        // corrupt the MA, then recompute only the Response Authenticator
        let ma = off.expect("has MA");
        buf[ma] ^= 1;
        let mut h = md5::Md5::new();
        use md5::Digest;
        h.update(&buf[..4]);
        h.update(p.authenticator());
        h.update(&buf[20..]);
        h.update(SECRET);
        let ra: [u8; 16] = h.finalize().into();
        buf[4..20].copy_from_slice(&ra);
        assert_eq!(
            read_response(&req, &buf, SECRET),
            Err(ResponseError::BadAuthenticator)
        );
        // garbage
        assert!(matches!(
            read_response(&req, &[1, 2, 3], SECRET),
            Err(ResponseError::Malformed(_))
        ));
    }
}
