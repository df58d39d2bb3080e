//! The AVG (GDPR) in the registry: everything held about a person in one document (art. 15),
//! retention of what the network records, erasure after leaving, and the audit log's proof
//! that it was only ever appended to.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::activity::{DecisionFilter, DecisionRecord, Session, SessionFilter};
use crate::model::{validate_username, AuditEntry, Device, Owner, OwnerSource};
use crate::posture::StoredReport;

use super::audit::{Verification, GENESIS};
use super::coa::CoaRecord;
use super::store::{AuditFilter, DeviceCertificate};
use super::{audit, Change, Registry, RegistryError, Target};

/// How much of each kind an export reads at most (far above what a person gathers).
const EXPORT_LIMIT: u32 = 100_000;

/// One device in an export, with what hangs off it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceExport {
    /// The device.
    pub device: Device,
    /// Every certificate issued to it.
    pub certificates: Vec<DeviceCertificate>,
    /// Its posture reports.
    pub posture_reports: Vec<StoredReport>,
}

/// Everything the registry holds about one person.
#[derive(Debug, Clone, Serialize)]
pub struct OwnerExport {
    /// What this is.
    pub about: &'static str,
    /// When it was made.
    pub generated_at: DateTime<Utc>,
    /// The person.
    pub owner: Owner,
    /// Their devices.
    pub devices: Vec<DeviceExport>,
    /// The network sessions of their devices (accounting).
    pub sessions: Vec<Session>,
    /// The access decisions about them and their devices.
    pub decisions: Vec<DecisionRecord>,
    /// The Disconnect/CoA requests sent for their sessions.
    pub disconnects: Vec<CoaRecord>,
    /// The audit log's entries about them and their devices.
    pub audit: Vec<AuditEntry>,
}

/// Retention and erasure, as configured (`[privacy]`, `log.decision_retention`).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Sessions that ended longer ago than this go.
    pub sessions: Duration,
    /// An owner who left (disabled, or their contract ended) longer ago than this is
    /// erased; `None`: never automatically.
    pub erase_after: Option<Duration>,
}

/// What a privacy sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sweep {
    /// Sessions deleted.
    pub sessions: u64,
    /// Personal parts of audit entries about nobody registered, deleted.
    pub orphan_audit: u64,
    /// Owners erased (their ids: the usernames are gone).
    pub erased: Vec<Uuid>,
}

impl Owner {
    /// When the person left: disabled, or the end of their contract; `None` while active.
    pub fn left_at<Tz: chrono::TimeZone>(
        &self,
        now: DateTime<Utc>,
        tz: &Tz,
    ) -> Option<DateTime<Utc>> {
        let ended = self.access_ends_at(tz).filter(|end| *end <= now);
        let disabled = self
            .disabled
            .then(|| self.disabled_at.unwrap_or(self.updated_at));
        match (ended, disabled) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Registry {
    /// Everything held about a person, as one document (AVG art. 15): the owner, their
    /// devices with certificates and posture reports, the sessions and decisions of those
    /// devices, the Disconnect/CoA requests sent for them, and the audit entries about them.
    pub async fn export_owner(
        &self,
        username: &str,
        now: DateTime<Utc>,
    ) -> Result<OwnerExport, RegistryError> {
        let username = validate_username(username)?;
        let owner = self
            .store
            .owner(&username)
            .await?
            .ok_or_else(|| RegistryError::UnknownOwner(username.clone()))?;
        let devices = self.store.devices(Some(&owner.username)).await?;
        let mut sessions: BTreeMap<i64, Session> = BTreeMap::new();
        let mut decisions: BTreeMap<i64, DecisionRecord> = BTreeMap::new();
        for d in self
            .store
            .decisions(&DecisionFilter {
                mac: None,
                username: Some(owner.username.clone()),
                limit: Some(EXPORT_LIMIT),
            })
            .await?
        {
            decisions.insert(d.id, d);
        }
        let mut exported = Vec::new();
        let mut targets = vec![owner.id.to_string()];
        for device in devices {
            for mac in &device.macs {
                for s in self
                    .store
                    .sessions(&SessionFilter {
                        active_only: false,
                        mac: Some(*mac),
                        limit: Some(EXPORT_LIMIT),
                    })
                    .await?
                {
                    sessions.insert(s.id, s);
                }
                for d in self
                    .store
                    .decisions(&DecisionFilter {
                        mac: Some(*mac),
                        username: None,
                        limit: Some(EXPORT_LIMIT),
                    })
                    .await?
                {
                    decisions.insert(d.id, d);
                }
            }
            targets.push(device.id.to_string());
            exported.push(DeviceExport {
                certificates: self.store.certificates(device.id).await?,
                posture_reports: self.store.posture_reports(device.id, EXPORT_LIMIT).await?,
                device,
            });
        }
        let mut disconnects = Vec::new();
        for id in sessions.keys() {
            disconnects.extend(self.store.coa_requests(Some(*id), EXPORT_LIMIT).await?);
        }
        let mut entries = Vec::new();
        for target in targets {
            let mut offset = 0;
            loop {
                let page = self
                    .store
                    .audit(&AuditFilter {
                        target_id: Some(target.clone()),
                        actor: None,
                        limit: Some(1000),
                        offset,
                    })
                    .await?;
                let n = page.len() as u64;
                entries.extend(page);
                if n < 1000 {
                    break;
                }
                offset += n;
            }
        }
        entries.sort_by_key(|e| e.id);
        Ok(OwnerExport {
            about: "Alle gegevens die poortwachter over deze persoon bewaart (AVG art. 15) / \
                    all data poortwachter holds about this person (GDPR art. 15)",
            generated_at: now,
            owner,
            devices: exported,
            sessions: sessions.into_values().rev().collect(),
            decisions: decisions.into_values().rev().collect(),
            disconnects,
            audit: entries,
        })
    }

    /// Erases a person who has left (disabled, or their contract ended): their MACs,
    /// sessions, decisions, Disconnect/CoA records and posture reports are deleted, their
    /// devices stay as anonymous revoked rows with their certificates (the CRL), the personal
    /// part of every audit entry about them is deleted, and the owner row keeps only its id,
    /// role and dates under the username `gewist-<id>`. The audit log itself is not changed:
    /// its entries stay, and its chain verifies. Audited as `owner.erase` without personal
    /// data. Erasing an erased owner changes nothing.
    pub async fn erase_owner(
        &self,
        username: &str,
        change: &Change,
    ) -> Result<Owner, RegistryError> {
        let username = validate_username(username)?;
        let mut tx = self.store.begin().await?;
        let before = tx
            .owner_for_update(&username)
            .await?
            .ok_or_else(|| RegistryError::UnknownOwner(username.clone()))?;
        if before.erased_at.is_some() {
            return Ok(before);
        }
        if before.left_at(change.now, &self.rules.timezone).is_none() {
            return Err(RegistryError::OwnerActive(before.username));
        }
        tx.erase_owner_data(&before, change.now).await?;
        let after = erased(&before, change.now);
        tx.update_owner(&after).await?;
        let id = after.id.to_string();
        tx.append_audit(&audit(
            change,
            "owner.erase",
            Target::Other("owner", &id),
            None::<&Owner>,
            None,
        ))
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Retention and erasure at `change.now`: sessions past their retention, the personal
    /// parts of old audit entries about nobody registered, and the owners who left longer
    /// ago than `erase_after`. Decisions, posture reports and Disconnect/CoA records have
    /// their own purge (`log.decision_retention`, in `serve`).
    pub async fn privacy_sweep(
        &self,
        retention: &Retention,
        change: &Change,
    ) -> Result<Sweep, RegistryError> {
        let mut sweep = Sweep {
            sessions: self
                .store
                .purge_sessions(change.now - retention.sessions)
                .await?,
            ..Sweep::default()
        };
        let Some(erase_after) = retention.erase_after else {
            return Ok(sweep);
        };
        sweep.orphan_audit = self
            .store
            .purge_orphan_audit_personal(change.now - erase_after)
            .await?;
        for owner in self.store.owners().await? {
            let due = owner.erased_at.is_none()
                && owner
                    .left_at(change.now, &self.rules.timezone)
                    .is_some_and(|left| left + erase_after <= change.now);
            if due {
                let erased = self.erase_owner(&owner.username, change).await?;
                sweep.erased.push(erased.id);
            }
        }
        Ok(sweep)
    }

    /// Checks the audit log's chain from its first linked entry to the head.
    pub async fn verify_audit(&self) -> Result<Verification, RegistryError> {
        let mut v = Verification::default();
        let mut prev = GENESIS.to_string();
        let mut after = 0;
        loop {
            let rows = self.store.audit_chain(after, 5000).await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = last.id;
            prev = super::audit::verify_rows(&prev, &rows, &mut v);
            if v.broken_at.is_some() {
                return Ok(v);
            }
        }
        v.head_matches = self.store.audit_head().await? == prev;
        Ok(v)
    }

    /// The owners due for erasure at `now` under `erase_after`, with when they left.
    pub async fn erasure_due(
        &self,
        erase_after: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Owner, DateTime<Utc>)>, RegistryError> {
        Ok(self
            .store
            .owners()
            .await?
            .into_iter()
            .filter(|o| o.erased_at.is_none())
            .filter_map(|o| {
                let left = o.left_at(now, &self.rules.timezone)?;
                (left + erase_after <= now).then_some((o, left))
            })
            .collect())
    }
}

/// The owner row after erasure: its id, role and dates, nothing that names the person.
fn erased(before: &Owner, now: DateTime<Utc>) -> Owner {
    Owner {
        username: format!("gewist-{}", &before.id.simple().to_string()[..12]),
        display_name: "gewist".into(),
        email: None,
        department: None,
        external_id: None,
        disabled: true,
        disabled_reason: None,
        disabled_at: before.disabled_at.or(Some(now)),
        disabled_by_source: None,
        source: OwnerSource::Manual,
        erased_at: Some(now),
        updated_at: now,
        ..before.clone()
    }
}
