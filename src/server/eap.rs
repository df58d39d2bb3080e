//! The RADIUS side of 802.1X: Access-Requests carrying EAP go to the EAP engine
//! (`crate::eap`) on the runtime; challenges go back with State, and a finished EAP-TLS
//! handshake is turned into a device (by its certificate) and a policy decision.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tracing::Instrument;
use zeroize::Zeroizing;

use super::{finish, lock, send, AuthRequest, InFlightGuard, Shared};
use crate::config::Config;
use crate::eap::eaptls::Established;
use crate::eap::tls::{Refusal, TlsServer, TlsSettings, TlsSetupError};
use crate::eap::{Answer, EapFailure, EapServer, EapSettings, Incoming};
use crate::policy::{Decision, Outcome, Reason};
use crate::radius::crypto::{sign_response, Key as SecretKey};
use crate::radius::dict::{self, code};
use crate::radius::Builder;
use crate::registry::{Store, StoreError};

use super::cache::{Lookup, Subject};
use super::stats::Stats;

/// What an Access-Accept of a successful EAP-TLS conversation adds.
#[derive(Clone)]
pub(super) struct EapSuccess {
    /// The identifier of the EAP-Success (or EAP-Failure if the policy refuses).
    pub id: u8,
    /// The MSK: MS-MPPE-Recv-Key is its first half, Send-Key the second.
    pub msk: Zeroizing<[u8; 64]>,
}

impl std::fmt::Debug for EapSuccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EapSuccess")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The EAP engine from `[eap]`, or `None` (with the reason logged) when EAP is off or the
/// server certificate has not been made yet. A certificate that exists but cannot be used is
/// an error: the operator meant EAP to run.
pub(super) fn build(config: &Config) -> Result<Option<Arc<EapServer>>, TlsSetupError> {
    let eap = &config.eap;
    if !eap.enabled {
        tracing::info!("802.1X EAP is disabled (eap.enabled = false)");
        return Ok(None);
    }
    if !eap.server_cert.exists() && !eap.server_key.exists() {
        tracing::warn!(
            server_cert = %eap.server_cert.display(),
            "802.1X EAP-TLS is off: no server certificate yet; run `poortwachter ca init`"
        );
        return Ok(None);
    }
    let mut cas = vec![config.pki.ca_cert.as_path()];
    cas.extend(eap.extra_trusted_cas.iter().map(|p| p.as_path()));
    let settings = TlsSettings::from_files(
        &eap.server_cert,
        &eap.server_key,
        &cas,
        eap.tls_min_version,
        eap.tls_max_version,
    )?;
    let tls = TlsServer::new(settings)?;
    tracing::info!(
        tls = format!(
            "{}-{}",
            eap.tls_min_version.as_str(),
            eap.tls_max_version.as_str()
        ),
        fragment_size = eap.fragment_size,
        "802.1X EAP-TLS enabled"
    );
    Ok(Some(Arc::new(EapServer::new(
        tls,
        EapSettings {
            fragment_size: usize::from(eap.fragment_size),
            max_conversations: eap.max_conversations,
            conversation_timeout: eap.conversation_timeout.0,
        },
    ))))
}

/// The EAP part of one Access-Request, owned for the trip to the runtime.
pub(super) struct EapRequest {
    /// The concatenated EAP-Message attributes.
    pub eap: Vec<u8>,
    /// The State attribute.
    pub state: Option<Vec<u8>>,
    /// The Framed-MTU attribute.
    pub framed_mtu: Option<u32>,
}

/// Answers an Access-Request with EAP. A TLS step costs CPU (signatures): when no other EAP
/// step is running it is done right here on the listener thread (no thread hand-off, the
/// cheapest path for a lone supplicant); otherwise on the blocking pool, at most
/// `EAP_BACKLOG` waiting, apart from the registry's own backlog, so an EAP flood neither
/// stalls the listener nor starves MAC authentication of registry slots.
pub(super) fn on_eap(
    shared: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    req: AuthRequest,
    input: EapRequest,
    guard: InFlightGuard,
    span: tracing::Span,
) {
    let Some(engine) = shared.eap.clone() else {
        // the caller checked; never panic on a peer's packet
        return;
    };
    let Ok(permit) = shared.eap_slots.clone().try_acquire_owned() else {
        Stats::inc(&shared.stats.dropped_overload);
        lock(&shared.dedup).forget(&req.key);
        return;
    };
    let idle = shared.eap_slots.available_permits() + 1 == super::EAP_BACKLOG;
    if idle {
        let _enter = span.enter();
        let answer = step(&engine, &req, &input);
        respond(shared, sock, req, answer, guard, &span);
        drop(permit);
        return;
    }
    let shared = shared.clone();
    let sock = sock.clone();
    let runtime = shared.runtime.clone();
    runtime.spawn_blocking(move || {
        let _enter = span.enter();
        let _permit = permit;
        let answer = step(&engine, &req, &input);
        respond(&shared, &sock, req, answer, guard, &span);
    });
}

fn step(engine: &EapServer, req: &AuthRequest, input: &EapRequest) -> Answer {
    let incoming = Incoming {
        peer: (req.client, req.src.ip()),
        state: input.state.as_deref(),
        eap: &input.eap,
        framed_mtu: input.framed_mtu,
    };
    engine.handle(incoming, Instant::now(), SystemTime::now())
}

/// Sends what the EAP engine decided. A certificate to judge (TLS 1.2, before the server's
/// Finished) or a finished handshake whose certificate is not in the cache goes to the
/// runtime for the registry lookup; the listener never waits for it.
fn respond(
    shared: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    mut req: AuthRequest,
    answer: Answer,
    guard: InFlightGuard,
    span: &tracing::Span,
) {
    let client = &shared.clients[req.client];
    match answer {
        Answer::Challenge { eap, state } => {
            let reply = match challenge(&req, &eap, &state, &client.key) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "could not encode the challenge; dropped");
                    lock(&shared.dedup).forget(&req.key);
                    return;
                }
            };
            lock(&shared.dedup).answered(&req.key, reply.clone());
            send(sock, &reply, req.src);
            Stats::inc(&shared.stats.challenges);
        }
        Answer::Discard(why) => {
            Stats::inc(&shared.stats.dropped_eap);
            lock(&shared.dedup).forget(&req.key);
            tracing::debug!("dropped: {why}");
        }
        Answer::Judge(suspended) => {
            if !suspended.identity().is_empty() {
                req.username = suspended.identity().to_string();
            }
            let fingerprint = crate::pki::fingerprint(suspended.certificate());
            let then = Then::Judge(suspended);
            match shared.cert_cache.get(fingerprint.as_str(), Instant::now()) {
                Lookup::Hit(subject) => {
                    then.run(shared, sock, req, subject, &fingerprint, guard, span)
                }
                Lookup::Miss(generation) => lookup_then(
                    shared,
                    sock,
                    req,
                    fingerprint,
                    generation,
                    then,
                    guard,
                    span,
                ),
            }
        }
        Answer::Failed {
            identity,
            eap_id,
            why,
        } => {
            req.eap_id = Some(eap_id);
            if !identity.is_empty() {
                req.username = identity;
            }
            let reason = match why {
                EapFailure::MethodRefused { .. } => Reason::EapMethodRefused,
                EapFailure::Tls(_) => Reason::TlsFailed,
                EapFailure::Protocol(_) => Reason::EapProtocol,
                EapFailure::Refused { certificate } => {
                    // the supplicant heard the refusal as a TLS alert; the decision row
                    // says why, as for any other refusal
                    let fingerprint = crate::pki::fingerprint(&certificate);
                    let then = Then::Refused;
                    match shared.cert_cache.get(fingerprint.as_str(), Instant::now()) {
                        Lookup::Hit(subject) => {
                            then.run(shared, sock, req, subject, &fingerprint, guard, span)
                        }
                        Lookup::Miss(generation) => lookup_then(
                            shared,
                            sock,
                            req,
                            fingerprint,
                            generation,
                            then,
                            guard,
                            span,
                        ),
                    }
                    return;
                }
            };
            finish(
                shared,
                sock,
                &req,
                None,
                Decision::reject(reason, format!("rejected: {why}")),
            );
        }
        Answer::Authenticated {
            identity,
            eap_id,
            tls,
        } => {
            if !identity.is_empty() {
                req.username = identity;
            }
            req.eap_id = Some(eap_id);
            let Established {
                peer_certificate,
                version,
                keys,
            } = *tls;
            let fingerprint = crate::pki::fingerprint(&peer_certificate);
            tracing::debug!(
                tls = version.as_str(),
                certificate = &fingerprint[..16],
                "EAP-TLS handshake complete"
            );
            req.eap_success = Some(EapSuccess {
                id: eap_id,
                msk: keys.msk,
            });
            let then = Then::Decide;
            match shared.cert_cache.get(fingerprint.as_str(), Instant::now()) {
                Lookup::Hit(subject) => {
                    then.run(shared, sock, req, subject, &fingerprint, guard, span)
                }
                Lookup::Miss(generation) => lookup_then(
                    shared,
                    sock,
                    req,
                    fingerprint,
                    generation,
                    then,
                    guard,
                    span,
                ),
            }
        }
    }
}

/// What to do once the device behind a client certificate is known.
enum Then {
    /// TLS 1.2, the handshake held before the server's Finished: judge the device and go on
    /// with the handshake (a refusal becomes a TLS alert the supplicant reports).
    Judge(Box<crate::eap::Suspended>),
    /// The handshake finished: decide and answer Access-Accept or Access-Reject.
    Decide,
    /// The device was refused inside the handshake: record and answer that refusal.
    Refused,
}

impl Then {
    /// Carries on with `subject` (`None`: no device holds the certificate).
    #[allow(clippy::too_many_arguments)]
    fn run(
        self,
        shared: &Arc<Shared>,
        sock: &Arc<UdpSocket>,
        req: AuthRequest,
        subject: Option<Subject>,
        fingerprint: &str,
        guard: InFlightGuard,
        span: &tracing::Span,
    ) {
        match self {
            Then::Judge(suspended) => {
                let refusal = judgement(shared, &req, subject.as_ref());
                if let Some(r) = refusal {
                    tracing::debug!(alert = ?r, "refusing the device inside the TLS handshake");
                }
                let Some(engine) = shared.eap.clone() else {
                    return;
                };
                let answer = engine.resume(suspended, refusal, Instant::now(), SystemTime::now());
                respond(shared, sock, req, answer, guard, span);
            }
            Then::Decide => decide(shared, sock, &req, subject, fingerprint, false),
            Then::Refused => decide(shared, sock, &req, subject, fingerprint, true),
        }
    }

    /// Whether carrying on runs a TLS step (CPU: off the async workers).
    fn is_tls(&self) -> bool {
        matches!(self, Then::Judge(_))
    }
}

/// The registry lookup of a certificate the cache did not know, on the runtime; a failed
/// lookup is tried once more. A judgement that cannot be read lets the handshake finish: the
/// decision after it reads the registry again (and drops the request if it still cannot).
#[allow(clippy::too_many_arguments)]
fn lookup_then(
    shared: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    req: AuthRequest,
    fingerprint: String,
    generation: u64,
    then: Then,
    guard: InFlightGuard,
    span: &tracing::Span,
) {
    let Ok(permit) = shared.backlog.clone().try_acquire_owned() else {
        Stats::inc(&shared.stats.dropped_overload);
        lock(&shared.dedup).forget(&req.key);
        return;
    };
    let shared = shared.clone();
    let sock = sock.clone();
    let runtime = shared.runtime.clone();
    let task_span = span.clone();
    let span = span.clone();
    runtime.spawn(
        async move {
            let _permit = permit;
            let mut found = load_by_certificate(&*shared.store, &fingerprint).await;
            if found.is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                found = load_by_certificate(&*shared.store, &fingerprint).await;
            }
            let subject = match found {
                Ok(subject) => {
                    shared.cert_cache.store(
                        fingerprint.clone(),
                        subject.clone(),
                        generation,
                        Instant::now(),
                    );
                    Some(subject)
                }
                Err(e) => {
                    tracing::error!(error = %e, "registry lookup failed");
                    None
                }
            };
            match (subject, then) {
                (Some(subject), then) if then.is_tls() => {
                    let _ = tokio::task::spawn_blocking(move || {
                        let _enter = span.enter();
                        then.run(&shared, &sock, req, subject, &fingerprint, guard, &span);
                    })
                    .await;
                }
                (Some(subject), then) => {
                    then.run(&shared, &sock, req, subject, &fingerprint, guard, &span)
                }
                (None, Then::Judge(suspended)) => {
                    let _ = tokio::task::spawn_blocking(move || {
                        let _enter = span.enter();
                        let Some(engine) = shared.eap.clone() else {
                            return;
                        };
                        let answer =
                            engine.resume(suspended, None, Instant::now(), SystemTime::now());
                        respond(&shared, &sock, req, answer, guard, &span);
                    })
                    .await;
                }
                (None, Then::Refused) => finish(
                    &shared,
                    &sock,
                    &req,
                    None,
                    Decision::reject(
                        Reason::TlsFailed,
                        "rejected: refused inside the TLS handshake; the registry could not be read again to record why".to_string(),
                    ),
                ),
                (None, Then::Decide) => {
                    Stats::inc(&shared.stats.dropped_backend);
                    lock(&shared.dedup).forget(&req.key);
                    tracing::error!("registry lookup failed; request dropped");
                }
            }
        }
        .instrument(task_span),
    );
}

/// The TLS alert, if any, that refuses the device behind a client certificate: the same
/// policy as after the handshake, asked before it may finish.
fn judgement(shared: &Shared, req: &AuthRequest, subject: Option<&Subject>) -> Option<Refusal> {
    let Some(subject) = subject else {
        return Some(Refusal::Denied);
    };
    let decision = super::policy_decision(shared, req, Some(subject));
    match (decision.outcome, decision.reason) {
        (Outcome::Accept, _) => None,
        (_, Reason::DeviceRevoked | Reason::DeviceLost) => Some(Refusal::Revoked),
        _ => Some(Refusal::Denied),
    }
}

/// The policy for the device the certificate names (a certificate no device holds is
/// refused). After a refusal inside the handshake there are no keys: should the registry
/// allow the device by now, it is still refused, and its next attempt decides anew.
fn decide(
    shared: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    req: &AuthRequest,
    subject: Option<Subject>,
    fingerprint: &str,
    refused_in_handshake: bool,
) {
    let decision = match &subject {
        None => Decision::reject(
            Reason::CertificateUnknown,
            format!(
                "rejected: the certificate (SHA-256 {}…) is valid but belongs to no registered device; it was replaced or never issued here",
                &fingerprint[..16.min(fingerprint.len())]
            ),
        ),
        Some(_) => super::policy_decision(shared, req, subject.as_ref()),
    };
    let decision = if refused_in_handshake && decision.outcome == Outcome::Accept {
        Decision::reject(
            Reason::TlsFailed,
            "rejected: refused inside the TLS handshake, but the registry allows the device by now; its next attempt is decided anew".to_string(),
        )
    } else {
        decision
    };
    finish(shared, sock, req, subject.as_ref(), decision);
}

async fn load_by_certificate(
    store: &dyn Store,
    fingerprint: &str,
) -> Result<Option<Subject>, StoreError> {
    let Some(device) = store.device_by_cert_fingerprint(fingerprint).await? else {
        return Ok(None);
    };
    let Some(owner) = store.owner(&device.owner).await? else {
        return Ok(None);
    };
    Ok(Some(Arc::new((device, owner))))
}

/// An Access-Challenge (RFC 3579 §2.6.4): the EAP-Request split over EAP-Message
/// attributes, the State, Proxy-State echoed, signed with a Message-Authenticator.
fn challenge(
    req: &AuthRequest,
    eap: &[u8],
    state: &[u8; 16],
    secret: &SecretKey,
) -> Result<Vec<u8>, crate::radius::EncodeError> {
    let mut b = Builder::with_message_authenticator(code::ACCESS_CHALLENGE, req.identifier);
    for ps in &req.proxy_state {
        b.add(dict::PROXY_STATE, ps)?;
    }
    b.add_split(dict::EAP_MESSAGE, eap)?;
    b.add(dict::STATE, state)?;
    let (mut buf, off) = b.into_unsigned();
    sign_response(&mut buf, off, &req.authenticator, secret);
    Ok(buf)
}

/// Adds the EAP-Success and the MS-MPPE keys (RFC 2548, salt-encrypted with the client's
/// secret and this request's authenticator) to an Access-Accept.
pub(super) fn add_success(
    b: &mut Builder,
    success: &EapSuccess,
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<(), crate::radius::EncodeError> {
    b.add(dict::EAP_MESSAGE, &crate::eap::packet::success(success.id))?;
    // two different salts (RFC 2548 §2.4.2: each salt unique within a packet)
    let salt: u16 = rand::random::<u16>() & 0x7ffe;
    let recv = crate::radius::crypto::salt_encrypt(&success.msk[..32], secret, authenticator, salt);
    let send =
        crate::radius::crypto::salt_encrypt(&success.msk[32..], secret, authenticator, salt | 1);
    b.add_vendor(dict::VENDOR_MICROSOFT, dict::MS_MPPE_RECV_KEY, &recv)?;
    b.add_vendor(dict::VENDOR_MICROSOFT, dict::MS_MPPE_SEND_KEY, &send)?;
    Ok(())
}
