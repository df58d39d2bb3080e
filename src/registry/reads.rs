//! What the edges (the CLI, the admin API) read from the registry: thin reads over the store,
//! so that an edge asks the registry and never holds the store itself.

use uuid::Uuid;

use crate::activity::{DecisionAggregate, DecisionFilter, DecisionRecord, Session, SessionFilter};
use crate::mac::MacAddr;
use crate::model::{AuditEntry, Device, Owner};
use crate::posture::StoredReport;

use super::coa::CoaRecord;
use super::store::{AuditFilter, DeviceCertificate};
use super::{Registry, RegistryError};

impl Registry {
    /// All owners by username.
    pub async fn owners(&self) -> Result<Vec<Owner>, RegistryError> {
        Ok(self.store.owners().await?)
    }

    /// A device by id.
    pub async fn device(&self, id: Uuid) -> Result<Option<Device>, RegistryError> {
        Ok(self.store.device(id).await?)
    }

    /// The device that holds a MAC, if one does.
    pub async fn device_by_mac(&self, mac: MacAddr) -> Result<Option<Device>, RegistryError> {
        Ok(self.store.device_by_mac(mac).await?)
    }

    /// The device whose current certificate has this SHA-256 fingerprint (hex, any case).
    pub async fn device_by_cert_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Device>, RegistryError> {
        Ok(self.store.device_by_cert_fingerprint(fingerprint).await?)
    }

    /// Every certificate issued to a device, newest first.
    pub async fn certificates(
        &self,
        device_id: Uuid,
    ) -> Result<Vec<DeviceCertificate>, RegistryError> {
        Ok(self.store.certificates(device_id).await?)
    }

    /// Audit entries, newest first, a page as the filter says (`limit` default 50).
    /// A target given as a username finds the owner's entries (named by the owner's id).
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, RegistryError> {
        let mut filter = filter.clone();
        if let Some(target) = &filter.target_id {
            if let Ok(username) = crate::model::validate_username(target) {
                if let Some(owner) = self.store.owner(&username).await? {
                    filter.target_id = Some(owner.id.to_string());
                }
            }
        }
        Ok(self.store.audit(&filter).await?)
    }

    /// The RADIUS server's decisions, newest first.
    pub async fn decisions(
        &self,
        filter: &DecisionFilter,
    ) -> Result<Vec<DecisionRecord>, RegistryError> {
        Ok(self.store.decisions(filter).await?)
    }

    /// The minute counts of requests from unregistered devices whose MAC sample holds `mac`,
    /// newest first.
    pub async fn decision_aggregates(
        &self,
        mac: MacAddr,
        limit: u32,
    ) -> Result<Vec<DecisionAggregate>, RegistryError> {
        Ok(self.store.decision_aggregates(mac, limit).await?)
    }

    /// The newest open session of the device at `framed_ip`.
    pub async fn open_session_by_ip(
        &self,
        framed_ip: &str,
    ) -> Result<Option<Session>, RegistryError> {
        Ok(self.store.open_session_by_ip(framed_ip).await?)
    }

    /// Sessions that overlap `from`..`to`, at most `limit`, oldest first.
    pub async fn sessions_between(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<Session>, RegistryError> {
        Ok(self.store.sessions_between(from, to, limit).await?)
    }

    /// Refusals, newest first.
    pub async fn refusals(
        &self,
        filter: &crate::activity::RefusalFilter,
    ) -> Result<Vec<DecisionRecord>, RegistryError> {
        Ok(self.store.refusals(filter).await?)
    }

    /// The minute counts of refused unregistered devices since `since`, newest first.
    pub async fn refused_aggregates(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<DecisionAggregate>, RegistryError> {
        Ok(self.store.refused_aggregates(since, limit).await?)
    }

    /// Accounting sessions, newest first.
    pub async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<Session>, RegistryError> {
        Ok(self.store.sessions(filter).await?)
    }

    /// An accounting session by row id.
    pub async fn session_by_id(&self, id: i64) -> Result<Option<Session>, RegistryError> {
        Ok(self.store.session_by_id(id).await?)
    }

    /// Sessions with this Acct-Session-Id, open ones first, then newest first.
    pub async fn sessions_by_acct_id(
        &self,
        acct_session_id: &str,
    ) -> Result<Vec<Session>, RegistryError> {
        Ok(self.store.sessions_by_acct_id(acct_session_id).await?)
    }

    /// Disconnect and CoA requests sent, newest first: of one session, or all.
    pub async fn coa_requests(
        &self,
        session_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CoaRecord>, RegistryError> {
        Ok(self.store.coa_requests(session_id, limit).await?)
    }

    /// A device's posture reports, newest first, at most `limit`.
    pub async fn posture_reports(
        &self,
        device_id: Uuid,
        limit: u32,
    ) -> Result<Vec<StoredReport>, RegistryError> {
        Ok(self.store.posture_reports(device_id, limit).await?)
    }

    /// A device's latest posture report.
    pub async fn latest_posture(
        &self,
        device_id: Uuid,
    ) -> Result<Option<StoredReport>, RegistryError> {
        Ok(self.store.latest_posture(device_id).await?)
    }

    /// A consistent copy of the whole registry into the new file `to`, while it is in use
    /// (`poortwachter backup`); only the embedded store can.
    pub async fn copy_into(&self, to: &std::path::Path) -> Result<(), RegistryError> {
        Ok(self.store.copy_into(to).await?)
    }
}
