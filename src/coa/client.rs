//! Sending one Disconnect/CoA-Request to a NAS and waiting for its answer: an ephemeral UDP
//! socket per exchange, retransmissions of the identical datagram (same identifier and
//! authenticator, RFC 5176 §2.3 / RFC 5080 §2.2.1) with the wait doubled each time.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::packet::{read_response, Answer};
use crate::radius::crypto::SecretKey;
use crate::radius::MAX_PACKET_LEN;

/// The most retransmissions we make, whatever the config says (bounds every exchange).
pub const MAX_RETRIES: u32 = 10;
/// The longest wait for an answer to one datagram (the doubling stops here).
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// The longest one exchange lasts, retransmissions included.
pub const MAX_EXCHANGE: Duration = Duration::from_secs(30);

/// How long and how often to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    /// The wait for the first answer; doubled for each retransmission.
    pub first_wait: Duration,
    /// Retransmissions after the first send.
    pub retries: u32,
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The NAS answered.
    Answered(Answer),
    /// No valid answer after every retransmission.
    Timeout,
}

impl Outcome {
    /// `ack`, `nak` or `timeout`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered(Answer::Ack) => "ack",
            Outcome::Answered(Answer::Nak { .. }) => "nak",
            Outcome::Timeout => "timeout",
        }
    }

    /// The Error-Cause of a NAK.
    pub fn error_cause(self) -> Option<u32> {
        match self {
            Outcome::Answered(Answer::Nak { error_cause }) => error_cause,
            _ => None,
        }
    }
}

/// One finished exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// What came back.
    pub outcome: Outcome,
    /// Datagrams sent (1 + retransmissions).
    pub attempts: u32,
    /// From the first send to the answer (or giving up).
    pub elapsed: Duration,
}

/// Why nothing could be sent at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No local socket.
    #[error("cannot open a UDP socket: {0}")]
    Bind(std::io::Error),
    /// The first datagram could not be sent.
    #[error("cannot send to {to}: {source}")]
    Send {
        /// Where to.
        to: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Sends `request` (built by [`super::packet::build_request`]) to `to`, retransmitting per
/// `retransmit`, and returns the first answer that verifies against it. Datagrams from
/// elsewhere, with another identifier or a bad authenticator are ignored (and logged). No wait
/// exceeds [`MAX_WAIT`], and the exchange ends after [`MAX_EXCHANGE`] whatever the retries.
pub async fn exchange<K: SecretKey + ?Sized + Sync>(
    to: SocketAddr,
    request: &[u8],
    secret: &K,
    retransmit: Retransmit,
) -> Result<Exchange, ClientError> {
    exchange_within(to, request, secret, retransmit, MAX_EXCHANGE).await
}

/// The wait after `wait`: doubled, at most [`MAX_WAIT`].
fn next_wait(wait: Duration) -> Duration {
    wait.saturating_mul(2).min(MAX_WAIT)
}

/// [`exchange`] with its overall deadline `max_exchange` after the first send.
async fn exchange_within<K: SecretKey + ?Sized + Sync>(
    to: SocketAddr,
    request: &[u8],
    secret: &K,
    retransmit: Retransmit,
    max_exchange: Duration,
) -> Result<Exchange, ClientError> {
    let local: SocketAddr = match to {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).await.map_err(ClientError::Bind)?;
    let started = Instant::now();
    let overall = tokio::time::Instant::now() + max_exchange;
    let mut wait = retransmit.first_wait.min(MAX_WAIT);
    let mut sent = 0;
    let mut buf = vec![0u8; MAX_PACKET_LEN + 1];
    let tries = retransmit.retries.min(MAX_RETRIES) + 1;
    for attempt in 1..=tries {
        if tokio::time::Instant::now() >= overall {
            break;
        }
        sent = attempt;
        if let Err(source) = sock.send_to(request, to).await {
            if attempt == 1 {
                return Err(ClientError::Send { to, source });
            }
            tracing::debug!(%to, error = %source, "retransmission failed");
        }
        let deadline = (tokio::time::Instant::now() + wait).min(overall);
        // bounded: each pass either returns or consumes a datagram before the deadline
        loop {
            let received = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await;
            let (n, from) = match received {
                Err(_) => break,
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    // ICMP port unreachable surfaces here on Linux: wait out the timeout
                    tracing::debug!(%to, error = %e, "receive failed");
                    tokio::time::sleep_until(deadline).await;
                    break;
                }
            };
            if from.ip() != to.ip() || from.port() != to.port() {
                tracing::debug!(%from, %to, "dropped: answer from another address");
                continue;
            }
            match read_response(request, &buf[..n], secret) {
                Ok(answer) => {
                    return Ok(Exchange {
                        outcome: Outcome::Answered(answer),
                        attempts: attempt,
                        elapsed: started.elapsed(),
                    })
                }
                Err(e) => tracing::debug!(%from, error = %e, "dropped: not the answer"),
            }
        }
        wait = next_wait(wait);
    }
    Ok(Exchange {
        outcome: Outcome::Timeout,
        attempts: sent,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coa::packet::{
        build_request, Kind, SessionIdentity, DISCONNECT_ACK, DISCONNECT_NAK,
    };
    use crate::radius::crypto::sign_response;
    use crate::radius::dict;
    use crate::radius::{Builder, Packet};

    const SECRET: &[u8] = b"client-test-secret";

    fn request(id: u8) -> Vec<u8> {
        let s = SessionIdentity {
            acct_session_id: "s1".into(),
            calling_station_id: Some("02-00-00-00-00-09".into()),
            user_name: None,
            nas_ip: Some(Ipv4Addr::LOCALHOST),
            nas_ipv6: None,
            nas_identifier: None,
        };
        build_request(Kind::Disconnect, id, &s, None, 1, SECRET).expect("builds")
    }

    fn reply(req: &[u8], code: u8, cause: Option<u32>) -> Vec<u8> {
        let p = Packet::parse(req).expect("parses");
        let mut b = Builder::with_message_authenticator(code, p.identifier());
        if let Some(c) = cause {
            b.add_u32(dict::ERROR_CAUSE, c).expect("fits");
        }
        let (mut buf, off) = b.into_unsigned();
        sign_response(&mut buf, off, &p.authenticator(), SECRET);
        buf
    }

    const FAST: Retransmit = Retransmit {
        first_wait: Duration::from_millis(100),
        retries: 2,
    };

    #[tokio::test]
    async fn answered_on_the_second_try() {
        let nas = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let to = nas.local_addr().expect("addr");
        let req = request(5);
        let nas_task = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            // ignore the first, answer the retransmission (identical bytes)
            let (n1, _) = nas.recv_from(&mut buf).await.expect("first");
            let first = buf[..n1].to_vec();
            let (n2, from) = nas.recv_from(&mut buf).await.expect("second");
            assert_eq!(
                &buf[..n2],
                &first[..],
                "a retransmission repeats the datagram"
            );
            // a forged answer first: ignored
            let mut forged = reply(&first, DISCONNECT_ACK, None);
            forged[5] ^= 1;
            nas.send_to(&forged, from).await.expect("send");
            nas.send_to(&reply(&first, DISCONNECT_NAK, Some(503)), from)
                .await
                .expect("send");
        });
        let ex = exchange(to, &req, SECRET, FAST).await.expect("exchange");
        nas_task.await.expect("nas");
        assert_eq!(ex.attempts, 2);
        assert_eq!(ex.outcome.as_str(), "nak");
        assert_eq!(ex.outcome.error_cause(), Some(503));
    }

    #[tokio::test]
    async fn silence_is_a_timeout_after_every_retransmission() {
        let nas = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let to = nas.local_addr().expect("addr");
        let ex = exchange(to, &request(1), SECRET, FAST)
            .await
            .expect("exchange");
        assert_eq!(ex.outcome, Outcome::Timeout);
        assert_eq!(ex.attempts, 3);
        // 100 + 200 + 400 ms
        assert!(ex.elapsed >= Duration::from_millis(700), "{:?}", ex.elapsed);
        let mut buf = [0u8; 4096];
        let mut seen = 0;
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(50), nas.recv_from(&mut buf)).await
        {
            assert_eq!(Packet::parse(&buf[..n]).expect("parses").identifier(), 1);
            seen += 1;
        }
        assert_eq!(seen, 3);
    }

    /// Each wait is capped at 10 s; the exchange ends at its deadline, retries or not.
    #[tokio::test]
    async fn waits_are_capped_and_the_exchange_has_a_deadline() {
        assert_eq!(next_wait(Duration::from_secs(4)), Duration::from_secs(8));
        assert_eq!(next_wait(Duration::from_secs(8)), MAX_WAIT);
        assert_eq!(next_wait(MAX_WAIT), MAX_WAIT);
        let nas = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let to = nas.local_addr().expect("addr");
        let many = Retransmit {
            first_wait: Duration::from_millis(100),
            retries: 10,
        };
        // sends at 0 and 100 ms; the next would be at 300 ms, after the 250 ms deadline
        let ex = exchange_within(to, &request(3), SECRET, many, Duration::from_millis(250))
            .await
            .expect("exchange");
        assert_eq!(ex.outcome, Outcome::Timeout);
        assert_eq!(ex.attempts, 2);
        assert!(
            ex.elapsed >= Duration::from_millis(250) && ex.elapsed < Duration::from_millis(600),
            "{:?}",
            ex.elapsed
        );
    }
}
