//! A look into a client's TLS 1.2 flight before rustls reads it: the leaf certificate of its
//! Certificate message (RFC 5246 §7.4.6), sent in the clear before ChangeCipherSpec, so that
//! the registry can judge the device while the handshake waits (see `tls::Refusal`). Pure and
//! bounded: it reads at most the bytes given and allocates only the certificate it returns.

/// TLS record content types (RFC 5246 §6.2.1).
const CHANGE_CIPHER_SPEC: u8 = 20;
const HANDSHAKE: u8 = 22;
/// Handshake message type Certificate (RFC 5246 §7.4).
const CERTIFICATE: u8 = 11;

fn u24(b: &[u8]) -> Option<usize> {
    match b {
        [a, b, c, ..] => Some(usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c)),
        _ => None,
    }
}

/// The leaf certificate (DER) of the first Certificate handshake message in `flight`, read
/// from the plaintext handshake records before any ChangeCipherSpec. `None` when there is no
/// such message, it is empty, or the records are cut short (rustls then says why).
pub fn client_certificate(flight: &[u8]) -> Option<Vec<u8>> {
    client_chain(flight)?.into_iter().next()
}

/// The whole chain of that Certificate message, leaf first (at most 16 certificates).
pub fn client_chain(flight: &[u8]) -> Option<Vec<Vec<u8>>> {
    // the handshake layer may span records: gather the plaintext handshake bytes first
    let mut handshake = Vec::new();
    let mut rest = flight;
    while rest.len() >= 5 {
        let typ = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let body = rest.get(5..5 + len)?;
        match typ {
            HANDSHAKE => handshake.extend_from_slice(body),
            // everything after it is encrypted
            CHANGE_CIPHER_SPEC => break,
            _ => {}
        }
        rest = &rest[5 + len..];
    }
    let mut msgs = &handshake[..];
    while msgs.len() >= 4 {
        let typ = msgs[0];
        let len = u24(&msgs[1..])?;
        let body = msgs.get(4..4 + len)?;
        if typ == CERTIFICATE {
            // certificate_list<0..2^24-1>, each ASN.1Cert<1..2^24-1>
            let list_len = u24(body)?;
            let mut list = body.get(3..3 + list_len)?;
            let mut chain = Vec::new();
            while !list.is_empty() && chain.len() < 16 {
                let cert_len = u24(list)?;
                let cert = list.get(3..3 + cert_len)?;
                if cert.is_empty() {
                    return None;
                }
                chain.push(cert.to_vec());
                list = &list[3 + cert_len..];
            }
            return (!chain.is_empty()).then_some(chain);
        }
        msgs = &msgs[4 + len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(typ: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![typ, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn msg(typ: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![typ];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(body);
        m
    }

    fn certificate(certs: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for c in certs {
            list.extend_from_slice(&(c.len() as u32).to_be_bytes()[1..]);
            list.extend_from_slice(c);
        }
        let mut body = (list.len() as u32).to_be_bytes()[1..].to_vec();
        body.extend_from_slice(&list);
        msg(CERTIFICATE, &body)
    }

    #[test]
    fn finds_the_leaf_across_records_and_stops_at_change_cipher_spec() {
        let hs = [
            certificate(&[b"leaf-der", b"intermediate"]),
            msg(16, b"kx"),
            msg(15, b"sig"),
        ]
        .concat();
        // split the handshake layer over two records, then CCS and an "encrypted" record
        let (a, b) = hs.split_at(7);
        let flight = [
            record(HANDSHAKE, a),
            record(HANDSHAKE, b),
            record(CHANGE_CIPHER_SPEC, &[1]),
            record(HANDSHAKE, &certificate(&[b"not-this"])),
        ]
        .concat();
        assert_eq!(
            client_certificate(&flight).as_deref(),
            Some(&b"leaf-der"[..])
        );
    }

    #[test]
    fn nothing_without_a_plaintext_certificate() {
        // an empty list (the client has no certificate), a TLS 1.3 flight (application data
        // records), a certificate only after CCS, truncations
        assert_eq!(
            client_certificate(&record(HANDSHAKE, &certificate(&[]))),
            None
        );
        assert_eq!(client_certificate(&record(23, &certificate(&[b"x"]))), None);
        let after = [
            record(CHANGE_CIPHER_SPEC, &[1]),
            record(HANDSHAKE, &certificate(&[b"x"])),
        ]
        .concat();
        assert_eq!(client_certificate(&after), None);
        let whole = record(HANDSHAKE, &certificate(&[b"leaf"]));
        for cut in 0..whole.len() {
            assert_eq!(client_certificate(&whole[..cut]), None, "cut at {cut}");
        }
        assert_eq!(client_certificate(&whole).as_deref(), Some(&b"leaf"[..]));
        // lengths that point past the end
        assert_eq!(
            client_certificate(&record(HANDSHAKE, &[CERTIFICATE, 0xff, 0xff, 0xff])),
            None
        );
    }
}
