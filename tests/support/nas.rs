//! A fake access point's dynamic-authorization port (RFC 5176): a UDP socket on loopback that
//! receives the server's Disconnect-Requests, checks them and acknowledges them as a NAS does.

use std::net::SocketAddr;
use std::time::Duration;

/// A UDP socket standing in for an access point's dynamic-authorization port (RFC 5176).
pub struct FakeNas(tokio::net::UdpSocket);

impl FakeNas {
    pub async fn bind() -> FakeNas {
        FakeNas(
            tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind the NAS socket"),
        )
    }

    pub fn port(&self) -> u16 {
        self.0.local_addr().expect("addr").port()
    }

    /// The next datagram, within `limit`.
    pub async fn receive(&self, limit: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(limit, self.0.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => Some((buf[..n].to_vec(), from)),
            _ => None,
        }
    }

    /// A Disconnect-Request for `acct_session_id` must arrive within 10 s, signed with
    /// `secret` (RFC 5176 §2.3, and its Message-Authenticator) and not with `not_with`; it is
    /// answered with a Disconnect-ACK signed with `secret`, as the NAS does.
    pub async fn acknowledge_disconnect(
        &self,
        acct_session_id: &str,
        secret: &str,
        not_with: &str,
    ) {
        use poortwachter::radius::crypto::{
            check_accounting_authenticator, check_request_ma, sign_response, MaCheck,
        };
        use poortwachter::radius::dict::{self, code};
        use poortwachter::radius::{Builder, Packet};
        let (req, from) = self
            .receive(Duration::from_secs(10))
            .await
            .expect("a Disconnect-Request at the NAS within 10 s");
        let p = Packet::parse(&req).expect("the request parses");
        assert_eq!(p.code(), code::DISCONNECT_REQUEST);
        assert!(check_accounting_authenticator(&p, secret.as_bytes()));
        assert!(!check_accounting_authenticator(&p, not_with.as_bytes()));
        assert_eq!(check_request_ma(&p, secret.as_bytes()), MaCheck::Valid);
        assert_eq!(p.text(dict::ACCT_SESSION_ID), Some(acct_session_id));
        let (mut ack, off) = Builder::with_message_authenticator(
            poortwachter::coa::packet::DISCONNECT_ACK,
            p.identifier(),
        )
        .into_unsigned();
        sign_response(&mut ack, off, &p.authenticator(), secret.as_bytes());
        self.0.send_to(&ack, from).await.expect("answer");
    }
}
