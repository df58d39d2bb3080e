//! MAC addresses: parsing the forms vendors and people write, one normal form, and the checks
//! that decide whether an address can identify a device at all.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A 48-bit IEEE 802 MAC address. Displayed (and stored) as lowercase `aa:bb:cc:dd:ee:ff`.
///
/// ```
/// use poortwachter::mac::{MacAddr, MacError};
///
/// // the spellings vendors use all give one normal form
/// let cisco: MacAddr = "001b.210a.bc01".parse().unwrap();
/// assert_eq!(cisco.to_string(), "00:1b:21:0a:bc:01");
/// assert_eq!(cisco, "00-1B-21-0A-BC-01".parse().unwrap());
///
/// // a device address is never a group address
/// assert!(matches!("ff:ff:ff:ff:ff:ff".parse::<MacAddr>(), Err(MacError::Multicast(_))));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr([u8; 6]);

/// Why a string is not a MAC address that can identify a device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MacError {
    /// Not one of the accepted spellings.
    #[error(
        "`{0}` is not a MAC address (expected aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff or aabbccddeeff)"
    )]
    Syntax(String),
    /// The group bit is set: multicast (or broadcast) addresses never belong to one device.
    #[error("{0} is a multicast or broadcast address, not a device")]
    Multicast(MacAddr),
    /// 00:00:00:00:00:00.
    #[error("00:00:00:00:00:00 is not a device address")]
    Zero,
}

impl MacAddr {
    /// The six octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Builds an address from octets without checks (for tests and decoders).
    pub const fn from_octets(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }

    /// Parses any accepted spelling without judging the address itself. Allocates nothing
    /// unless it fails (it runs on every RADIUS request).
    pub fn parse_any(input: &str) -> Result<Self, MacError> {
        let s = input.trim().as_bytes();
        let syntax = || MacError::Syntax(input.to_string());
        // positions of the 12 hex digits, and where separators must be
        let (digits, sep, sep_at): (&[usize], u8, &[usize]) = match s.len() {
            // aa:bb:cc:dd:ee:ff or aa-bb-cc-dd-ee-ff (one separator throughout)
            17 => {
                let sep = s[2];
                if sep != b':' && sep != b'-' {
                    return Err(syntax());
                }
                (
                    &[0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16],
                    sep,
                    &[2, 5, 8, 11, 14],
                )
            }
            // aabb.ccdd.eeff (Cisco)
            14 => (&[0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13], b'.', &[4, 9]),
            12 => (&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 0, &[]),
            _ => return Err(syntax()),
        };
        if sep_at.iter().any(|&i| s[i] != sep) {
            return Err(syntax());
        }
        let nibble = |b: u8| -> Option<u8> {
            match b {
                b'0'..=b'9' => Some(b - b'0'),
                b'a'..=b'f' => Some(b - b'a' + 10),
                b'A'..=b'F' => Some(b - b'A' + 10),
                _ => None,
            }
        };
        let mut octets = [0u8; 6];
        for (i, octet) in octets.iter_mut().enumerate() {
            let hi = nibble(s[digits[2 * i]]).ok_or_else(syntax)?;
            let lo = nibble(s[digits[2 * i + 1]]).ok_or_else(syntax)?;
            *octet = hi << 4 | lo;
        }
        Ok(MacAddr(octets))
    }

    /// Parses an address that is to identify a device: refuses multicast, broadcast and zero.
    pub fn parse_device(input: &str) -> Result<Self, MacError> {
        Self::parse_any(input)?.check_device()
    }

    /// Refuses multicast, broadcast and zero: addresses that never identify one device.
    pub fn check_device(self) -> Result<Self, MacError> {
        if self.0 == [0; 6] {
            return Err(MacError::Zero);
        }
        if self.is_multicast() {
            return Err(MacError::Multicast(self));
        }
        Ok(self)
    }

    /// The I/G bit: a group (multicast) address. Broadcast is one too.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// The U/L bit: a locally administered address, as the "private" or randomized addresses
    /// that phones and laptops use per network.
    pub fn is_locally_administered(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// `aa-bb-cc-dd-ee-ff`, the RFC 3580 §3.21 Calling-Station-Id form.
    pub fn to_dashed_upper(&self) -> String {
        let o = self.0;
        format!(
            "{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl FromStr for MacAddr {
    type Err = MacError;
    /// Same as [`MacAddr::parse_device`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_device(s)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MacAddr::parse_any(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_spellings_into_one_normal_form() {
        for s in [
            "aa:bb:cc:dd:ee:f0",
            "AA:BB:CC:DD:EE:F0",
            "AA-BB-CC-DD-EE-F0",
            "aabb.ccdd.eef0",
            "AABBCCDDEEF0",
            " aabbccddeef0 ",
        ] {
            let mac = MacAddr::parse_any(s).unwrap();
            assert_eq!(mac.to_string(), "aa:bb:cc:dd:ee:f0", "input {s:?}");
        }
    }

    #[test]
    fn refuses_malformed_spellings() {
        for s in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:fg",
            "aa:bb-cc:dd:ee:ff",
            "aabb.ccdd.ee.ff",
            "aab.bccdd.eeff",
            "aabbccddeeff00",
            "a:abb:cc:dd:ee:ff",
            "+a:bb:cc:dd:ee:ff",
            "ａａ:bb:cc:dd:ee:ff",
        ] {
            assert!(
                matches!(MacAddr::parse_any(s), Err(MacError::Syntax(_))),
                "input {s:?}"
            );
        }
    }

    #[test]
    fn refuses_group_and_zero_addresses_for_devices() {
        assert_eq!(
            MacAddr::parse_device("00:00:00:00:00:00"),
            Err(MacError::Zero)
        );
        assert!(matches!(
            MacAddr::parse_device("ff:ff:ff:ff:ff:ff"),
            Err(MacError::Multicast(_))
        ));
        assert!(matches!(
            MacAddr::parse_device("01:00:5e:00:00:01"),
            Err(MacError::Multicast(_))
        ));
        assert!(MacAddr::parse_device("00:1b:21:00:00:01").is_ok());
    }

    #[test]
    fn recognises_locally_administered_addresses() {
        let private = MacAddr::parse_device("da:a1:19:00:00:01").unwrap();
        assert!(private.is_locally_administered());
        let burned_in = MacAddr::parse_device("00:1b:21:00:00:01").unwrap();
        assert!(!burned_in.is_locally_administered());
    }

    #[test]
    fn calling_station_id_form() {
        let mac = MacAddr::parse_device("00:1b:21:0a:bc:01").unwrap();
        assert_eq!(mac.to_dashed_upper(), "00-1B-21-0A-BC-01");
    }
}
