//! Setting up 802.1X EAP-TLS from `[eap]`: the TLS server over the onboarding CA and the
//! engine (`crate::eap`) that the request path (`super::access`) drives.

use std::sync::Arc;

use crate::config::Config;
use crate::eap::tls::TlsSetupError;
use crate::eap::{EapServer, EapSettings};
use crate::pki::EapTls;

/// The EAP engine from `[eap]`, or `None` (with the reason logged) when EAP is off or, with
/// `eap.enabled` unset, the server certificate has not been made yet. A certificate that
/// cannot be served (missing when required, unreadable, expired, not its key's) is an error:
/// `serve` refuses to start. The files are read by [`crate::pki::load_eap_tls`].
pub(super) fn build(config: &Config) -> Result<Option<Arc<EapServer>>, TlsSetupError> {
    let eap = &config.eap;
    let tls = match crate::pki::load_eap_tls(config, chrono::Utc::now())? {
        EapTls::Off(why) => {
            if eap.enabled == Some(false) {
                tracing::info!("{why}");
            } else {
                tracing::warn!(server_cert = %eap.server_cert.display(), "{why}");
            }
            return Ok(None);
        }
        EapTls::Ready { tls, .. } => tls,
    };
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
