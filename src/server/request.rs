//! Reading an authenticated Access-Request or Accounting-Request into what the policy and
//! the session store need: the MAC, the SSID, the MAB credentials. Pure.

use crate::mac::MacAddr;
use crate::radius::crypto::{check_chap, decode_user_password};
use crate::radius::{dict, Packet};

/// The device MAC from Calling-Station-Id, in any vendor spelling.
pub fn calling_station_mac(p: &Packet<'_>) -> Option<MacAddr> {
    p.text(dict::CALLING_STATION_ID)
        .and_then(|s| MacAddr::parse_any(s).ok())
}

/// The SSID from Called-Station-Id (`AA-BB-CC-DD-EE-FF:SSID`, RFC 3580 §3.20), whatever
/// MAC spelling the AP uses before the colon.
pub fn ssid(p: &Packet<'_>) -> Option<String> {
    let called = p.text(dict::CALLED_STATION_ID)?;
    for mac_len in [17, 14, 12] {
        if called.len() > mac_len + 1
            && called.is_char_boundary(mac_len)
            && called.as_bytes()[mac_len] == b':'
            && MacAddr::parse_any(&called[..mac_len]).is_ok()
        {
            let s = &called[mac_len + 1..];
            return (!s.is_empty()).then(|| s.to_string());
        }
    }
    None
}

/// Why a request is not a MAC authentication we can accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MabProblem {
    /// No User-Name, or one that is not a MAC: not a MAB request.
    NotMab,
    /// Neither User-Password nor CHAP-Password.
    NoPassword,
    /// A CHAP-Challenge of fewer than 5 octets (its attribute Length under 7, RFC 2865 §5.40).
    ShortChapChallenge(usize),
    /// The password is not the MAC in the User-Name.
    PasswordMismatch,
    /// Calling-Station-Id names another MAC than the User-Name.
    MacMismatch {
        /// From User-Name.
        user_name: MacAddr,
        /// From Calling-Station-Id.
        calling_station: MacAddr,
    },
}

/// Checks a MAB request: User-Name is a MAC, the password (PAP or CHAP) is that MAC in any
/// spelling, and Calling-Station-Id, when present, is the same MAC. Returns the MAC.
pub fn mab(p: &Packet<'_>, secret: &[u8]) -> Result<MacAddr, MabProblem> {
    let user = p.text(dict::USER_NAME).ok_or(MabProblem::NotMab)?;
    let mac = MacAddr::parse_any(user).map_err(|_| MabProblem::NotMab)?;
    if let Some(hidden) = p.attr(dict::USER_PASSWORD) {
        let pw = decode_user_password(hidden, secret, &p.authenticator())
            .map_err(|_| MabProblem::PasswordMismatch)?;
        let pw = std::str::from_utf8(&pw).map_err(|_| MabProblem::PasswordMismatch)?;
        if MacAddr::parse_any(pw).ok() != Some(mac) {
            return Err(MabProblem::PasswordMismatch);
        }
    } else if let Some(chap) = p.attr(dict::CHAP_PASSWORD) {
        let auth = p.authenticator();
        let challenge = p.attr(dict::CHAP_CHALLENGE).unwrap_or(&auth);
        if challenge.len() < 5 {
            return Err(MabProblem::ShortChapChallenge(challenge.len()));
        }
        if !check_chap(chap, challenge, user.as_bytes()) {
            return Err(MabProblem::PasswordMismatch);
        }
    } else {
        return Err(MabProblem::NoPassword);
    }
    if let Some(cs) = calling_station_mac(p) {
        if cs != mac {
            return Err(MabProblem::MacMismatch {
                user_name: mac,
                calling_station: cs,
            });
        }
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::crypto::{encode_user_password, sign_request};
    use crate::radius::dict::code;
    use crate::radius::Builder;

    const SECRET: &[u8] = b"a-test-secret-of-length";

    fn request(attrs: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut b = Builder::with_message_authenticator(code::ACCESS_REQUEST, 1);
        for (t, v) in attrs {
            b.add(*t, v).expect("fits");
        }
        let (mut buf, off) = b.into_unsigned();
        sign_request(&mut buf, off, &[4u8; 16], SECRET);
        buf
    }

    fn pap(user: &str, pw: &str) -> Vec<(u8, Vec<u8>)> {
        vec![
            (dict::USER_NAME, user.as_bytes().to_vec()),
            (
                dict::USER_PASSWORD,
                encode_user_password(pw.as_bytes(), SECRET, &[4u8; 16]),
            ),
        ]
    }

    #[test]
    fn pap_in_any_spelling() {
        for (user, pw) in [
            ("aabbccddeeff", "aabbccddeeff"),
            ("AA-BB-CC-DD-EE-FF", "AA-BB-CC-DD-EE-FF"),
            ("aa:bb:cc:dd:ee:ff", "aabbccddeeff"),
        ] {
            let buf = request(&pap(user, pw));
            let p = Packet::parse(&buf).expect("parses");
            assert_eq!(
                mab(&p, SECRET).map(|m| m.to_string()),
                Ok("aa:bb:cc:dd:ee:ff".to_string())
            );
        }
    }

    #[test]
    fn refusals() {
        let buf = request(&pap("j.devries", "secret"));
        let p = Packet::parse(&buf).expect("parses");
        assert_eq!(mab(&p, SECRET), Err(MabProblem::NotMab));

        let buf = request(&pap("aabbccddeeff", "001122334455"));
        let p = Packet::parse(&buf).expect("parses");
        assert_eq!(mab(&p, SECRET), Err(MabProblem::PasswordMismatch));

        let buf = request(&[(dict::USER_NAME, b"aabbccddeeff".to_vec())]);
        let p = Packet::parse(&buf).expect("parses");
        assert_eq!(mab(&p, SECRET), Err(MabProblem::NoPassword));

        let mut attrs = pap("aabbccddeeff", "aabbccddeeff");
        attrs.push((dict::CALLING_STATION_ID, b"00-11-22-33-44-55".to_vec()));
        let buf = request(&attrs);
        let p = Packet::parse(&buf).expect("parses");
        assert!(matches!(
            mab(&p, SECRET),
            Err(MabProblem::MacMismatch { .. })
        ));
    }

    #[test]
    fn chap_with_and_without_challenge() {
        use md5::{Digest, Md5};
        let user = "aa-bb-cc-dd-ee-ff";
        let challenge = [9u8; 16];
        let mut h = Md5::new();
        h.update([7u8]);
        h.update(user.as_bytes());
        h.update(challenge);
        let mut chap = vec![7u8];
        chap.extend_from_slice(&h.finalize());
        let buf = request(&[
            (dict::USER_NAME, user.as_bytes().to_vec()),
            (dict::CHAP_PASSWORD, chap.clone()),
            (dict::CHAP_CHALLENGE, challenge.to_vec()),
        ]);
        let p = Packet::parse(&buf).expect("parses");
        assert!(mab(&p, SECRET).is_ok());
        let buf = request(&[
            (dict::USER_NAME, user.as_bytes().to_vec()),
            (dict::CHAP_PASSWORD, chap),
        ]);
        let p = Packet::parse(&buf).expect("parses");
        assert_eq!(mab(&p, SECRET), Err(MabProblem::PasswordMismatch));
    }

    #[test]
    fn ssid_from_called_station_id() {
        for (called, want) in [
            (
                "00-11-22-33-44-55:Gemeente-Werkplek",
                Some("Gemeente-Werkplek"),
            ),
            ("00:11:22:33:44:55:Werk:plek", Some("Werk:plek")),
            ("001122334455:Werkplek", Some("Werkplek")),
            ("0011.2233.4455:Werkplek", Some("Werkplek")),
            ("00-11-22-33-44-55", None),
            ("00-11-22-33-44-55:", None),
            ("not-a-mac:ssid", None),
        ] {
            let buf = request(&[(dict::CALLED_STATION_ID, called.as_bytes().to_vec())]);
            let p = Packet::parse(&buf).expect("parses");
            assert_eq!(ssid(&p).as_deref(), want, "{called}");
        }
    }
}
