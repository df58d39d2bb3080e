//! The RADIUS cryptography: Message-Authenticator (HMAC-MD5, RFC 3579 §3.2), request and
//! response authenticators (RFC 2865 §3, RFC 2866 §3), User-Password hiding (RFC 2865 §5.2),
//! CHAP (RFC 1994), and the MS-MPPE key salt encryption (RFC 2548 §2.4.2). Every comparison of
//! a secret-derived value is constant-time.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::dict::{code, MESSAGE_AUTHENTICATOR};
use super::packet::{Packet, HEADER_LEN, MAX_PACKET_LEN};

/// HMAC-MD5 (RFC 2104).
pub type HmacMd5 = Hmac<Md5>;

/// What a request's Message-Authenticator shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaCheck {
    /// None in the packet.
    Absent,
    /// Present and right.
    Valid,
    /// Present and wrong (wrong secret, or tampered).
    Invalid,
}

/// Constant-time equality of two byte strings of equal length.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A shared secret, as the signing functions take it: raw bytes, or a [`Key`] that keeps the
/// HMAC state after the key blocks so that each Message-Authenticator costs two MD5 blocks
/// less (the hot path signs and checks one per request).
pub trait SecretKey {
    /// The secret's bytes.
    fn secret(&self) -> &[u8];
    /// A fresh HMAC-MD5 keyed with it.
    fn hmac(&self) -> HmacMd5;
}

fn new_hmac(secret: &[u8]) -> HmacMd5 {
    // RFC 2104 §2: a key longer than the 64-byte block is hashed first, a shorter one padded
    // with zeros; building that block here makes the keyed constructor infallible
    let mut block = Zeroizing::new([0u8; 64]);
    if secret.len() > 64 {
        block[..16].copy_from_slice(&md5(&[secret]));
    } else {
        block[..secret.len()].copy_from_slice(secret);
    }
    <HmacMd5 as hmac::digest::KeyInit>::new(&(*block).into())
}

impl SecretKey for [u8] {
    fn secret(&self) -> &[u8] {
        self
    }
    fn hmac(&self) -> HmacMd5 {
        new_hmac(self)
    }
}

impl<const N: usize> SecretKey for [u8; N] {
    fn secret(&self) -> &[u8] {
        self
    }
    fn hmac(&self) -> HmacMd5 {
        new_hmac(self)
    }
}

/// A shared secret with its HMAC key schedule done once.
#[derive(Clone)]
pub struct Key {
    secret: Zeroizing<Vec<u8>>,
    hmac: HmacMd5,
}

impl Key {
    /// Prepares a secret.
    pub fn new(secret: &[u8]) -> Key {
        Key {
            secret: Zeroizing::new(secret.to_vec()),
            hmac: new_hmac(secret),
        }
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl SecretKey for Key {
    fn secret(&self) -> &[u8] {
        &self.secret
    }
    fn hmac(&self) -> HmacMd5 {
        self.hmac.clone()
    }
}

fn hmac_md5<K: SecretKey + ?Sized>(key: &K, parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = key.hmac();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Whether the authenticator field takes part in the Message-Authenticator as sent (Access-
/// Request, Status-Server) or zeroed (Accounting-Request, Disconnect-/CoA-Request).
fn zero_authenticator_for_ma(c: u8) -> bool {
    matches!(
        c,
        code::ACCOUNTING_REQUEST | code::DISCONNECT_REQUEST | code::COA_REQUEST
    )
}

/// Checks a request's Message-Authenticator: HMAC-MD5 keyed with the shared secret over the
/// packet with the attribute's value zeroed (and the authenticator zeroed for accounting and
/// dynamic-authorization requests).
pub fn check_request_ma<K: SecretKey + ?Sized>(p: &Packet<'_>, secret: &K) -> MaCheck {
    let Some(off) = p.message_authenticator_offset() else {
        return MaCheck::Absent;
    };
    let raw = p.raw();
    let mut copy = [0u8; MAX_PACKET_LEN];
    let copy = &mut copy[..raw.len()];
    copy.copy_from_slice(raw);
    copy[off..off + 16].fill(0);
    if zero_authenticator_for_ma(p.code()) {
        copy[4..HEADER_LEN].fill(0);
    }
    let expect = hmac_md5(secret, &[copy]);
    if ct_eq(&expect, &raw[off..off + 16]) {
        MaCheck::Valid
    } else {
        MaCheck::Invalid
    }
}

/// Checks the Request Authenticator of an Accounting-Request (or Disconnect-/CoA-Request):
/// MD5 over the packet with a zeroed authenticator, then the secret.
pub fn check_accounting_authenticator<K: SecretKey + ?Sized>(p: &Packet<'_>, secret: &K) -> bool {
    let raw = p.raw();
    let expect = md5(&[&raw[..4], &[0u8; 16], &raw[HEADER_LEN..], secret.secret()]);
    ct_eq(&expect, &raw[4..HEADER_LEN])
}

/// Signs a reply in place: fills the Message-Authenticator (if reserved at `ma_offset`),
/// computed with the request's authenticator in the header, then the Response Authenticator
/// MD5(Code+ID+Length+RequestAuth+Attributes+Secret).
pub fn sign_response<K: SecretKey + ?Sized>(
    buf: &mut [u8],
    ma_offset: Option<usize>,
    request_authenticator: &[u8; 16],
    secret: &K,
) {
    buf[4..HEADER_LEN].copy_from_slice(request_authenticator);
    if let Some(off) = ma_offset {
        buf[off..off + 16].fill(0);
        let ma = hmac_md5(secret, &[buf]);
        buf[off..off + 16].copy_from_slice(&ma);
    }
    let auth = md5(&[buf, secret.secret()]);
    buf[4..HEADER_LEN].copy_from_slice(&auth);
}

/// Signs a request we originate. Access-Request/Status-Server: `authenticator` is the random
/// Request Authenticator. Accounting, Disconnect and CoA: the authenticator is computed
/// (RFC 2866 §3, RFC 5176 §2.3) and `authenticator` is ignored.
pub fn sign_request<K: SecretKey + ?Sized>(
    buf: &mut [u8],
    ma_offset: Option<usize>,
    authenticator: &[u8; 16],
    secret: &K,
) {
    let computed = zero_authenticator_for_ma(buf[0]);
    if computed {
        buf[4..HEADER_LEN].fill(0);
    } else {
        buf[4..HEADER_LEN].copy_from_slice(authenticator);
    }
    if let Some(off) = ma_offset {
        buf[off..off + 16].fill(0);
        let ma = hmac_md5(secret, &[buf]);
        buf[off..off + 16].copy_from_slice(&ma);
    }
    if computed {
        let auth = md5(&[buf, secret.secret()]);
        buf[4..HEADER_LEN].copy_from_slice(&auth);
    }
}

/// Checks a reply to a request we sent: the Response Authenticator, and the
/// Message-Authenticator if the reply carries one (or must: `require_ma`).
pub fn check_response<K: SecretKey + ?Sized>(
    reply: &Packet<'_>,
    request_authenticator: &[u8; 16],
    secret: &K,
    require_ma: bool,
) -> bool {
    let raw = reply.raw();
    let expect = md5(&[
        &raw[..4],
        request_authenticator,
        &raw[HEADER_LEN..],
        secret.secret(),
    ]);
    if !ct_eq(&expect, &raw[4..HEADER_LEN]) {
        return false;
    }
    match reply.message_authenticator_offset() {
        None => !require_ma,
        Some(off) => {
            let mut copy = raw.to_vec();
            copy[4..HEADER_LEN].copy_from_slice(request_authenticator);
            copy[off..off + 16].fill(0);
            ct_eq(&hmac_md5(secret, &[&copy]), &raw[off..off + 16])
        }
    }
}

/// Why a hidden User-Password could not be recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Not a multiple of 16 bytes between 16 and 128.
    #[error("User-Password length {0} is not a multiple of 16 in 16..=128")]
    BadLength(usize),
}

/// Recovers a User-Password (RFC 2865 §5.2); trailing NUL padding removed.
pub fn decode_user_password(
    hidden: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Zeroizing<Vec<u8>>, PasswordError> {
    if hidden.is_empty() || hidden.len() % 16 != 0 || hidden.len() > 128 {
        return Err(PasswordError::BadLength(hidden.len()));
    }
    let mut out = Zeroizing::new(Vec::with_capacity(hidden.len()));
    let mut prev: &[u8] = request_authenticator;
    for chunk in hidden.chunks(16) {
        let b = md5(&[secret, prev]);
        out.extend(chunk.iter().zip(b.iter()).map(|(c, k)| c ^ k));
        prev = chunk;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Ok(out)
}

/// Hides a User-Password (RFC 2865 §5.2), for our own clients and tests.
pub fn encode_user_password(
    password: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Vec<u8> {
    let padded_len = password.len().div_ceil(16).clamp(1, 8) * 16;
    let mut p = password[..password.len().min(128)].to_vec();
    p.resize(padded_len, 0);
    let mut out = Vec::with_capacity(padded_len);
    let mut prev = request_authenticator.to_vec();
    for chunk in p.chunks(16) {
        let b = md5(&[secret, &prev]);
        let c: Vec<u8> = chunk.iter().zip(b.iter()).map(|(x, k)| x ^ k).collect();
        out.extend_from_slice(&c);
        prev = c;
    }
    out
}

/// Checks a CHAP-Password (ident + 16-byte response) against a known password: the response
/// must be MD5(ident + password + challenge), the challenge being CHAP-Challenge or else the
/// Request Authenticator (RFC 2865 §2.2).
pub fn check_chap(chap_password: &[u8], challenge: &[u8], password: &[u8]) -> bool {
    if chap_password.len() != 17 {
        return false;
    }
    let expect = md5(&[&chap_password[..1], password, challenge]);
    ct_eq(&expect, &chap_password[1..])
}

/// Encrypts an MS-MPPE-Send/Recv-Key (RFC 2548 §2.4.2): salt (high bit set) followed by the
/// key, its length prefixed and padded to 16, XORed with MD5(secret + request authenticator +
/// salt), then MD5(secret + previous block).
pub fn salt_encrypt(
    key: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
    salt: u16,
) -> Vec<u8> {
    let salt = (salt | 0x8000).to_be_bytes();
    let key = &key[..key.len().min(239)];
    let mut plain = Zeroizing::new(Vec::with_capacity(key.len() + 16));
    plain.push(key.len() as u8);
    plain.extend_from_slice(key);
    let padded = plain.len().div_ceil(16) * 16;
    plain.resize(padded, 0);
    let mut out = Vec::with_capacity(2 + padded);
    out.extend_from_slice(&salt);
    let mut b = md5(&[secret, request_authenticator, &salt]);
    for chunk in plain.chunks(16) {
        let start = out.len();
        out.extend(chunk.iter().zip(b.iter()).map(|(p, k)| p ^ k));
        b = md5(&[secret, &out[start..]]);
    }
    out
}

/// Why a salt-encrypted value could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaltError {
    /// Too short, not block-aligned, salt high bit clear, or an inner length that does not fit.
    #[error("malformed salt-encrypted attribute")]
    Malformed,
}

/// Decrypts [`salt_encrypt`]'s output (used to cross-check, and by our CoA/test clients).
pub fn salt_decrypt(
    value: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Zeroizing<Vec<u8>>, SaltError> {
    if value.len() < 18 || (value.len() - 2) % 16 != 0 || value[0] & 0x80 == 0 {
        return Err(SaltError::Malformed);
    }
    let (salt, cipher) = value.split_at(2);
    let mut plain = Zeroizing::new(Vec::with_capacity(cipher.len()));
    let mut b = md5(&[secret, request_authenticator, salt]);
    for chunk in cipher.chunks(16) {
        plain.extend(chunk.iter().zip(b.iter()).map(|(c, k)| c ^ k));
        b = md5(&[secret, chunk]);
    }
    let n = usize::from(plain[0]);
    if n + 1 > plain.len() {
        return Err(SaltError::Malformed);
    }
    Ok(Zeroizing::new(plain[1..=n].to_vec()))
}

/// A fresh random Request Authenticator.
pub fn random_authenticator() -> [u8; 16] {
    rand::random()
}

/// The Message-Authenticator attribute type, re-exported for callers building requests.
pub const MA: u8 = MESSAGE_AUTHENTICATOR;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::dict;
    use crate::radius::packet::Builder;

    const SECRET: &[u8] = b"testing123-long-enough";

    fn signed_request(with_ma: bool) -> (Vec<u8>, [u8; 16]) {
        let ra = [7u8; 16];
        let mut b = if with_ma {
            Builder::with_message_authenticator(code::ACCESS_REQUEST, 3)
        } else {
            Builder::new(code::ACCESS_REQUEST, 3)
        };
        b.add_text(dict::USER_NAME, "aa-bb-cc-dd-ee-ff")
            .expect("fits");
        let (mut buf, off) = b.into_unsigned();
        sign_request(&mut buf, off, &ra, SECRET);
        (buf, ra)
    }

    #[test]
    fn request_ma_valid_absent_invalid() {
        let (buf, _) = signed_request(true);
        let p = Packet::parse(&buf).expect("parses");
        assert_eq!(check_request_ma(&p, SECRET), MaCheck::Valid);
        assert_eq!(
            check_request_ma(&p, b"wrong-secret-xxxxxx"),
            MaCheck::Invalid
        );
        let mut tampered = buf.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let p = Packet::parse(&tampered).expect("parses");
        assert_eq!(check_request_ma(&p, SECRET), MaCheck::Invalid);
        let (buf, _) = signed_request(false);
        let p = Packet::parse(&buf).expect("parses");
        assert_eq!(check_request_ma(&p, SECRET), MaCheck::Absent);
    }

    #[test]
    fn response_signature_verifies_with_radius_rs() {
        let ra = [9u8; 16];
        let mut b = Builder::with_message_authenticator(code::ACCESS_ACCEPT, 3);
        b.add_tagged_u32(dict::TUNNEL_TYPE, 0, dict::TUNNEL_TYPE_VLAN)
            .expect("fits");
        let (mut buf, off) = b.into_unsigned();
        sign_response(&mut buf, off, &ra, SECRET);
        let p = Packet::parse(&buf).expect("parses");
        assert!(check_response(&p, &ra, SECRET, true));
        assert!(!check_response(&p, &[8u8; 16], SECRET, true));
        // radius-rs computes the response authenticator independently
        let mut req = vec![code::ACCESS_REQUEST, 3, 0, 20];
        req.extend_from_slice(&ra);
        assert!(radius::core::packet::Packet::is_authentic_response(
            &buf, &req, SECRET
        ));
    }

    #[test]
    fn accounting_request_authenticator() {
        let mut b = Builder::new(code::ACCOUNTING_REQUEST, 1);
        b.add_u32(dict::ACCT_STATUS_TYPE, dict::acct_status::START)
            .expect("fits");
        let (mut buf, off) = b.into_unsigned();
        sign_request(&mut buf, off, &[0; 16], SECRET);
        let p = Packet::parse(&buf).expect("parses");
        assert!(check_accounting_authenticator(&p, SECRET));
        assert!(!check_accounting_authenticator(&p, b"another-secret-123"));
        assert!(radius::core::packet::Packet::is_authentic_request(
            &buf, SECRET
        ));
    }

    #[test]
    fn user_password_round_trip_and_radius_rs() {
        let ra = [5u8; 16];
        for pw in [&b"x"[..], b"aa-bb-cc-dd-ee-ff", &[b'p'; 16], &[b'q'; 40]] {
            let hidden = encode_user_password(pw, SECRET, &ra);
            assert_eq!(hidden.len() % 16, 0);
            let back = decode_user_password(&hidden, SECRET, &ra).expect("decodes");
            assert_eq!(&back[..], pw);
            let theirs =
                radius::core::avp::AVP::from_user_password(2, pw, SECRET, &ra).expect("encodes");
            assert_eq!(theirs.encode_bytes(), hidden);
        }
        assert_eq!(
            decode_user_password(&[0; 15], SECRET, &ra).unwrap_err(),
            PasswordError::BadLength(15)
        );
        assert!(decode_user_password(&[], SECRET, &ra).is_err());
        assert!(decode_user_password(&[0; 144], SECRET, &ra).is_err());
    }

    #[test]
    fn chap() {
        let challenge = [1u8; 16];
        let mut cp = vec![42u8];
        cp.extend_from_slice(&md5(&[&[42u8], b"secretpw", &challenge]));
        assert!(check_chap(&cp, &challenge, b"secretpw"));
        assert!(!check_chap(&cp, &challenge, b"otherpw"));
        assert!(!check_chap(&cp[..10], &challenge, b"secretpw"));
    }

    #[test]
    fn salt_round_trip_and_rfc2548_layout() {
        let ra = [3u8; 16];
        let key = [0x11u8; 32];
        let enc = salt_encrypt(&key, SECRET, &ra, 0x0123);
        assert_eq!(enc[0] & 0x80, 0x80, "salt high bit set");
        // 1 length byte + 32 key bytes padded to 48, plus 2 salt bytes
        assert_eq!(enc.len(), 50);
        // first block by hand: MD5(secret + RA + salt) xor (len || key[..15])
        let b1 = md5(&[SECRET, &ra, &enc[..2]]);
        assert_eq!(enc[2] ^ b1[0], 32);
        let dec = salt_decrypt(&enc, SECRET, &ra).expect("decrypts");
        assert_eq!(&dec[..], &key);
        assert!(salt_decrypt(&enc[..17], SECRET, &ra).is_err());
        let mut low = enc.clone();
        low[0] &= 0x7f;
        assert!(salt_decrypt(&low, SECRET, &ra).is_err());
    }

    #[test]
    fn hmac_key_block_matches_the_variable_length_constructor() {
        for len in [0usize, 1, 16, 23, 64, 65, 200] {
            let key = vec![0x5cu8; len];
            let mut ours = new_hmac(&key);
            let mut theirs = HmacMd5::new_from_slice(&key).expect("any length");
            ours.update(b"message");
            theirs.update(b"message");
            assert_eq!(
                ours.finalize().into_bytes(),
                theirs.finalize().into_bytes(),
                "{len}"
            );
        }
    }

    #[test]
    fn ct_eq_lengths() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
