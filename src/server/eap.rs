//! Setting up 802.1X EAP-TLS from `[eap]`: the TLS server over the onboarding CA and the
//! engine (`crate::eap`) that the request path (`super::access`) drives.

use std::sync::Arc;

use crate::config::Config;
use crate::eap::tls::{TlsServer, TlsSetupError};
use crate::eap::{EapServer, EapSettings};
use crate::pki::EapTls;

/// The EAP engine from `[eap]`, or `None` (with the reason logged) when EAP is off or, with
/// `eap.enabled` unset, the server certificate has not been made yet. A certificate that
/// cannot be served (missing when required, unreadable, expired, not its key's) is an error:
/// `serve` refuses to start. The files are read by [`crate::pki::load_eap_tls`].
pub(super) fn build(config: &Config) -> Result<Option<Arc<EapServer>>, TlsSetupError> {
    let Some(tls) = tls_server(config)? else {
        return Ok(None);
    };
    let eap = &config.eap;
    tracing::info!(
        tls = format!(
            "{}-{}",
            eap.tls_min_version.as_str(),
            eap.tls_max_version.as_str()
        ),
        fragment_size = eap.fragment_size,
        "802.1X EAP-TLS enabled"
    );
    Ok(Some(Arc::new(EapServer::new(tls, settings(config)))))
}

/// The engine's settings from `[eap]`.
pub(super) fn settings(config: &Config) -> EapSettings {
    EapSettings {
        fragment_size: usize::from(config.eap.fragment_size),
        max_conversations: config.eap.max_conversations,
        conversation_timeout: config.eap.conversation_timeout.0,
    }
}

/// The TLS server over the server certificate, its key and the trusted CAs, read from their
/// files now (at start and at every reload), or `None` (logged) when EAP is off or there is
/// no server certificate yet.
pub(super) fn tls_server(config: &Config) -> Result<Option<TlsServer>, TlsSetupError> {
    let eap = &config.eap;
    match crate::pki::load_eap_tls(config, chrono::Utc::now())? {
        EapTls::Off(why) => {
            if eap.enabled == Some(false) {
                tracing::info!("{why}");
            } else {
                tracing::warn!(server_cert = %eap.server_cert.display(), "{why}");
            }
            Ok(None)
        }
        EapTls::Ready { tls, .. } => Ok(Some(tls)),
    }
}
