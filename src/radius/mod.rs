//! The RADIUS wire format, sans-IO: packet parsing and building, the authenticators and
//! attribute hiding. No sockets here; the server in `crate::server` feeds bytes in and out.
//!
//! radius-rs (`radius` crate) gives us the RFC dictionaries ([`dict`]) and serves as an
//! independent encoder in tests. Its `Packet` is not used on the wire: it accepts any
//! Access-Request and Status-Server as authentic, cannot sign a Message-Authenticator (let
//! alone put it first), knows no vendor attributes or MS-MPPE salt encryption, and allocates a
//! vector per attribute on every packet. [`packet`] parses borrowed views instead and
//! [`crypto`] owns every check, in constant time.

pub mod crypto;
pub mod dict;
pub mod packet;

pub use packet::{Builder, DecodeError, EncodeError, Packet, MAX_PACKET_LEN};
