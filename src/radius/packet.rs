//! Packet framing: a checked, borrowed view of a received packet, and a builder for the
//! packets we send. Knows lengths and attribute layout, nothing about secrets (see
//! [`super::crypto`]).

use std::net::Ipv4Addr;

use super::dict;

/// The largest packet RFC 2865 allows (and we accept).
pub const MAX_PACKET_LEN: usize = 4096;
/// Code, identifier, length, authenticator.
pub const HEADER_LEN: usize = 20;
/// The largest attribute value.
pub const MAX_ATTR_VALUE: usize = 253;

/// Why a datagram is not a RADIUS packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than a header.
    #[error("datagram of {0} bytes is shorter than a RADIUS header")]
    Truncated(usize),
    /// The length field is below 20 or above 4096.
    #[error("length field {0} is outside 20..=4096")]
    BadLength(usize),
    /// The length field says more than arrived.
    #[error("length field {header} exceeds the {received} bytes received")]
    ShortDatagram {
        /// Length field.
        header: usize,
        /// Bytes received.
        received: usize,
    },
    /// An attribute header is cut off, or has a length below 2.
    #[error("attribute at offset {0} has a bad length")]
    BadAttribute(usize),
    /// An attribute runs past the end of the packet.
    #[error("attribute at offset {0} overflows the packet")]
    AttributeOverflow(usize),
    /// More than one Message-Authenticator, or one whose length is not 18.
    #[error("malformed Message-Authenticator")]
    BadMessageAuthenticator,
}

/// Why a packet could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// An attribute value over 253 bytes.
    #[error("attribute {0} value is longer than 253 bytes")]
    ValueTooLong(u8),
    /// The packet would exceed 4096 bytes.
    #[error("packet would exceed 4096 bytes")]
    PacketTooLong,
}

/// A received packet whose framing has been checked: every attribute lies within the length
/// field, and there is at most one well-formed Message-Authenticator.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    raw: &'a [u8],
    ma_offset: Option<usize>,
}

impl<'a> Packet<'a> {
    /// Checks the framing of a datagram. Bytes past the length field are ignored
    /// (RFC 2865 §3: padding).
    pub fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::Truncated(buf.len()));
        }
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&len) {
            return Err(DecodeError::BadLength(len));
        }
        if buf.len() < len {
            return Err(DecodeError::ShortDatagram {
                header: len,
                received: buf.len(),
            });
        }
        let raw = &buf[..len];
        let mut ma_offset = None;
        let mut at = HEADER_LEN;
        while at < len {
            if at + 2 > len {
                return Err(DecodeError::BadAttribute(at));
            }
            let alen = usize::from(raw[at + 1]);
            if alen < 2 {
                return Err(DecodeError::BadAttribute(at));
            }
            if at + alen > len {
                return Err(DecodeError::AttributeOverflow(at));
            }
            if raw[at] == dict::MESSAGE_AUTHENTICATOR {
                if alen != 18 || ma_offset.is_some() {
                    return Err(DecodeError::BadMessageAuthenticator);
                }
                ma_offset = Some(at + 2);
            }
            at += alen;
        }
        Ok(Packet { raw, ma_offset })
    }

    /// The packet's bytes, up to its length field.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Code.
    pub fn code(&self) -> u8 {
        self.raw[0]
    }

    /// Identifier.
    pub fn identifier(&self) -> u8 {
        self.raw[1]
    }

    /// Request (or response) authenticator.
    pub fn authenticator(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.raw[4..HEADER_LEN]);
        a
    }

    /// Offset of the Message-Authenticator's 16-byte value, if present.
    pub fn message_authenticator_offset(&self) -> Option<usize> {
        self.ma_offset
    }

    /// All attributes in order, as (type, value).
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            rest: &self.raw[HEADER_LEN..],
        }
    }

    /// The first attribute of a type.
    pub fn attr(&self, typ: u8) -> Option<&'a [u8]> {
        self.attributes().find(|(t, _)| *t == typ).map(|(_, v)| v)
    }

    /// The first attribute of a type as UTF-8 text (lossy replacements are refused: `None`).
    pub fn text(&self, typ: u8) -> Option<&'a str> {
        self.attr(typ).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first attribute of a type as a 32-bit integer (`None` unless 4 bytes).
    pub fn u32(&self, typ: u8) -> Option<u32> {
        self.attr(typ)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(u32::from_be_bytes)
    }

    /// The first attribute of a type as an IPv4 address.
    pub fn ipv4(&self, typ: u8) -> Option<Ipv4Addr> {
        self.attr(typ)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(Ipv4Addr::from)
    }

    /// All values of one attribute type, concatenated (EAP-Message, RFC 3579 §3.1).
    pub fn concat(&self, typ: u8) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        for (t, v) in self.attributes() {
            if t == typ {
                out.get_or_insert_with(Vec::new).extend_from_slice(v);
            }
        }
        out
    }

    /// Vendor-Specific sub-attributes, as (vendor, vendor type, value). VSAs that do not follow
    /// the RFC 2865 §5.26 suggested layout are skipped.
    pub fn vendor_attributes(&self) -> impl Iterator<Item = (u32, u8, &'a [u8])> + 'a {
        self.attributes()
            .filter(|(t, _)| *t == dict::VENDOR_SPECIFIC)
            .flat_map(|(_, v)| VendorAttributes::new(v))
    }

    /// The first Vendor-Specific sub-attribute of (vendor, type).
    pub fn vendor_attr(&self, vendor: u32, typ: u8) -> Option<&'a [u8]> {
        self.vendor_attributes()
            .find(|(v, t, _)| *v == vendor && *t == typ)
            .map(|(_, _, val)| val)
    }
}

/// Iterator over a checked packet's attributes.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // `Packet::parse` has checked the layout; stay defensive anyway.
        if self.rest.len() < 2 {
            return None;
        }
        let len = usize::from(self.rest[1]);
        if len < 2 || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let item = (self.rest[0], &self.rest[2..len]);
        self.rest = &self.rest[len..];
        Some(item)
    }
}

/// Iterator over the sub-attributes of one Vendor-Specific value.
#[derive(Debug, Clone)]
struct VendorAttributes<'a> {
    vendor: u32,
    rest: &'a [u8],
}

impl<'a> VendorAttributes<'a> {
    fn new(value: &'a [u8]) -> Self {
        match value {
            [a, b, c, d, rest @ ..] => VendorAttributes {
                vendor: u32::from_be_bytes([*a, *b, *c, *d]),
                rest,
            },
            _ => VendorAttributes {
                vendor: 0,
                rest: &[],
            },
        }
    }
}

impl<'a> Iterator for VendorAttributes<'a> {
    type Item = (u32, u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 2 {
            return None;
        }
        let len = usize::from(self.rest[1]);
        if len < 2 || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let item = (self.vendor, self.rest[0], &self.rest[2..len]);
        self.rest = &self.rest[len..];
        Some(item)
    }
}

/// Builds a packet; [`super::crypto`] signs it. Starts with a zeroed Message-Authenticator
/// as the first attribute when asked, so that signing fills it in place.
#[derive(Debug, Clone)]
pub struct Builder {
    buf: Vec<u8>,
    ma_offset: Option<usize>,
}

impl Builder {
    /// A packet with this code and identifier, authenticator zeroed for now.
    pub fn new(code: u8, identifier: u8) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&[code, identifier, 0, HEADER_LEN as u8]);
        buf.extend_from_slice(&[0u8; 16]);
        Builder {
            buf,
            ma_offset: None,
        }
    }

    /// Same, with a Message-Authenticator placeholder as the first attribute.
    pub fn with_message_authenticator(code: u8, identifier: u8) -> Self {
        let mut b = Builder::new(code, identifier);
        b.buf.extend_from_slice(&[dict::MESSAGE_AUTHENTICATOR, 18]);
        b.ma_offset = Some(b.buf.len());
        b.buf.extend_from_slice(&[0u8; 16]);
        b
    }

    /// Sets the authenticator field (a request's Request Authenticator).
    pub fn set_authenticator(&mut self, auth: &[u8; 16]) {
        self.buf[4..HEADER_LEN].copy_from_slice(auth);
    }

    /// Appends an attribute.
    pub fn add(&mut self, typ: u8, value: &[u8]) -> Result<&mut Self, EncodeError> {
        if value.len() > MAX_ATTR_VALUE {
            return Err(EncodeError::ValueTooLong(typ));
        }
        if self.buf.len() + 2 + value.len() > MAX_PACKET_LEN {
            return Err(EncodeError::PacketTooLong);
        }
        self.buf.push(typ);
        self.buf.push((2 + value.len()) as u8);
        self.buf.extend_from_slice(value);
        Ok(self)
    }

    /// Appends text.
    pub fn add_text(&mut self, typ: u8, value: &str) -> Result<&mut Self, EncodeError> {
        self.add(typ, value.as_bytes())
    }

    /// Appends a 32-bit integer.
    pub fn add_u32(&mut self, typ: u8, value: u32) -> Result<&mut Self, EncodeError> {
        self.add(typ, &value.to_be_bytes())
    }

    /// Appends a tagged integer (RFC 2868 §3: tag byte, then the low 24 bits).
    pub fn add_tagged_u32(
        &mut self,
        typ: u8,
        tag: u8,
        value: u32,
    ) -> Result<&mut Self, EncodeError> {
        let b = value.to_be_bytes();
        self.add(typ, &[tag, b[1], b[2], b[3]])
    }

    /// Appends tagged text (RFC 2868 §3.6: a tag byte 0x01..=0x1F before the text).
    pub fn add_tagged_text(
        &mut self,
        typ: u8,
        tag: u8,
        value: &str,
    ) -> Result<&mut Self, EncodeError> {
        let mut v = Vec::with_capacity(value.len() + 1);
        v.push(tag);
        v.extend_from_slice(value.as_bytes());
        self.add(typ, &v)
    }

    /// Appends a Vendor-Specific attribute holding one sub-attribute (RFC 2865 §5.26 layout).
    pub fn add_vendor(
        &mut self,
        vendor: u32,
        vtype: u8,
        value: &[u8],
    ) -> Result<&mut Self, EncodeError> {
        if value.len() > MAX_ATTR_VALUE - 6 {
            return Err(EncodeError::ValueTooLong(dict::VENDOR_SPECIFIC));
        }
        let mut v = Vec::with_capacity(value.len() + 6);
        v.extend_from_slice(&vendor.to_be_bytes());
        v.push(vtype);
        v.push((value.len() + 2) as u8);
        v.extend_from_slice(value);
        self.add(dict::VENDOR_SPECIFIC, &v)
    }

    /// Appends a long value split over as many attributes as it needs (EAP-Message).
    pub fn add_split(&mut self, typ: u8, value: &[u8]) -> Result<&mut Self, EncodeError> {
        for chunk in value.chunks(MAX_ATTR_VALUE) {
            self.add(typ, chunk)?;
        }
        Ok(self)
    }

    /// Offset of the Message-Authenticator value, if one was reserved.
    pub fn message_authenticator_offset(&self) -> Option<usize> {
        self.ma_offset
    }

    /// The bytes with the length field set, unsigned. Use [`super::crypto`] to sign.
    pub fn into_unsigned(mut self) -> (Vec<u8>, Option<usize>) {
        let len = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        (self.buf, self.ma_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(attrs: &[u8]) -> Vec<u8> {
        let mut p = vec![1, 7, 0, 0];
        p.extend_from_slice(&[0xAB; 16]);
        p.extend_from_slice(attrs);
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p
    }

    #[test]
    fn parses_attributes_in_order() {
        let p = packet(&[1, 5, b'b', b'o', b'b', 4, 6, 10, 0, 0, 1]);
        let pk = Packet::parse(&p).expect("parses");
        assert_eq!(pk.code(), 1);
        assert_eq!(pk.identifier(), 7);
        assert_eq!(pk.text(dict::USER_NAME), Some("bob"));
        assert_eq!(
            pk.ipv4(dict::NAS_IP_ADDRESS),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(pk.attributes().count(), 2);
        assert_eq!(pk.message_authenticator_offset(), None);
    }

    #[test]
    fn truncated_header() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::parse(&vec![1u8; n]).unwrap_err(),
                DecodeError::Truncated(n)
            );
        }
    }

    #[test]
    fn length_field_out_of_range_or_beyond_datagram() {
        let mut p = packet(&[]);
        p[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Packet::parse(&p).unwrap_err(), DecodeError::BadLength(19));
        p[2..4].copy_from_slice(&4097u16.to_be_bytes());
        assert_eq!(Packet::parse(&p).unwrap_err(), DecodeError::BadLength(4097));
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(
            Packet::parse(&p).unwrap_err(),
            DecodeError::ShortDatagram {
                header: 40,
                received: 20
            }
        );
    }

    #[test]
    fn trailing_padding_ignored() {
        let mut p = packet(&[1, 3, b'x']);
        p.extend_from_slice(&[0, 0, 0]);
        let pk = Packet::parse(&p).expect("parses");
        assert_eq!(pk.raw().len(), 23);
        assert_eq!(pk.text(dict::USER_NAME), Some("x"));
    }

    #[test]
    fn bad_attribute_lengths() {
        // length 0 and 1 would loop or underflow
        assert_eq!(
            Packet::parse(&packet(&[1, 0])).unwrap_err(),
            DecodeError::BadAttribute(20)
        );
        assert_eq!(
            Packet::parse(&packet(&[1, 1])).unwrap_err(),
            DecodeError::BadAttribute(20)
        );
        // a lone type byte
        assert_eq!(
            Packet::parse(&packet(&[1, 3, b'x', 4])).unwrap_err(),
            DecodeError::BadAttribute(23)
        );
        // runs past the end
        assert_eq!(
            Packet::parse(&packet(&[1, 9, b'x'])).unwrap_err(),
            DecodeError::AttributeOverflow(20)
        );
    }

    #[test]
    fn message_authenticator_must_be_single_and_18_bytes() {
        let mut one = vec![80, 18];
        one.extend_from_slice(&[0; 16]);
        let bytes = packet(&one);
        let pk = Packet::parse(&bytes).expect("parses");
        assert_eq!(pk.message_authenticator_offset(), Some(22));
        let mut two = one.clone();
        two.extend_from_slice(&one);
        assert_eq!(
            Packet::parse(&packet(&two)).unwrap_err(),
            DecodeError::BadMessageAuthenticator
        );
        assert_eq!(
            Packet::parse(&packet(&[80, 6, 0, 0, 0, 0])).unwrap_err(),
            DecodeError::BadMessageAuthenticator
        );
    }

    #[test]
    fn builder_limits() {
        let mut b = Builder::new(2, 1);
        assert_eq!(
            b.add(1, &[0; 254]).unwrap_err(),
            EncodeError::ValueTooLong(1)
        );
        for _ in 0..15 {
            b.add(18, &[b'a'; 253]).expect("fits");
        }
        // 20 + 15 * 255 = 3845; one more full attribute would pass 4096
        assert_eq!(
            b.add(18, &[b'a'; 253]).unwrap_err(),
            EncodeError::PacketTooLong
        );
        let (bytes, _) = b.into_unsigned();
        assert_eq!(bytes.len(), 3845);
        assert!(Packet::parse(&bytes).is_ok());
    }

    #[test]
    fn vendor_attributes_round_trip_and_split() {
        let mut b = Builder::new(2, 1);
        b.add_vendor(dict::VENDOR_MICROSOFT, dict::MS_MPPE_SEND_KEY, &[1, 2, 3])
            .expect("fits");
        b.add_split(dict::EAP_MESSAGE, &[9u8; 600]).expect("fits");
        b.add_tagged_u32(dict::TUNNEL_TYPE, 0, dict::TUNNEL_TYPE_VLAN)
            .expect("fits");
        let (bytes, _) = b.into_unsigned();
        let pk = Packet::parse(&bytes).expect("parses");
        assert_eq!(
            pk.vendor_attr(dict::VENDOR_MICROSOFT, dict::MS_MPPE_SEND_KEY),
            Some(&[1u8, 2, 3][..])
        );
        assert_eq!(pk.concat(dict::EAP_MESSAGE).map(|v| v.len()), Some(600));
        assert_eq!(pk.attr(dict::TUNNEL_TYPE), Some(&[0u8, 0, 0, 13][..]));
        // a VSA too short for a vendor id is skipped, not a panic
        let p = packet(&[26, 4, 0, 0]);
        let pk = Packet::parse(&p).expect("parses");
        assert_eq!(pk.vendor_attributes().count(), 0);
        // a sub-attribute that overflows its VSA ends the walk
        let p = packet(&[26, 9, 0, 0, 1, 55, 16, 9, 1]);
        let pk = Packet::parse(&p).expect("parses");
        assert_eq!(pk.vendor_attributes().count(), 0);
    }
}
