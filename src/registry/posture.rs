//! Storage for compliance posture reports from MDMs and agents, and their evaluation, on both
//! stores; and [`Registry::submit_posture`], which records a report and the device's new
//! compliance in one transaction with its audit entry.

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Row, Type};
use uuid::Uuid;

use crate::config::ops::ComplianceConfig;
use crate::model::{Compliance, Device, DeviceStatus, FieldError};
use crate::posture::{self, PostureOutcome, PostureReport, RecordedCheck, StoredReport};

use super::postgres::PgStore;
use super::sql::Q;
use super::sqlite::SqliteStore;
use super::store::StoreError;
use super::{audit, Change, DeviceRef, Registry, RegistryError};

/// A posture report to record with its evaluation: a row of `posture_reports`.
#[derive(Debug, Clone)]
pub struct NewPostureReport {
    /// The device.
    pub device_id: Uuid,
    /// When the registry received it.
    pub received_at: DateTime<Utc>,
    /// When it was measured.
    pub collected_at: DateTime<Utc>,
    /// Who submitted it.
    pub submitted_by: String,
    /// `intune`, `agent`...
    pub source: Option<String>,
    /// Compliant or noncompliant.
    pub compliance: Compliance,
    /// The report, as JSON.
    pub report: serde_json::Value,
    /// The failed checks, as a JSON array of `{check, message}`.
    pub failed: serde_json::Value,
}

/// `INSERT INTO posture_reports ... RETURNING id`, bound by [`bind_posture_report`]
/// (`RETURNING` works in both PostgreSQL and SQLite 3.35+).
pub(crate) const INSERT_POSTURE_REPORT: &str = "INSERT INTO posture_reports (device_id, \
     received_at, collected_at, submitted_by, source, compliance, report, failed) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";

/// A device's reports, newest first: `$1` device id, `$2` limit.
const DEVICE_POSTURE_REPORTS: &str = "SELECT id, device_id, received_at, collected_at, \
     submitted_by, compliance, report, failed FROM posture_reports \
     WHERE device_id = $1 ORDER BY id DESC LIMIT $2";

/// Deletes the reports received before `$1`, except each device's latest (highest id), which
/// `why` and the API show.
const PURGE_POSTURE_REPORTS: &str = "DELETE FROM posture_reports WHERE received_at < $1 \
     AND id NOT IN (SELECT MAX(id) FROM posture_reports GROUP BY device_id)";

/// Binds a posture report as `$1..$8`.
pub(crate) fn bind_posture_report<'q, DB>(q: Q<'q, DB>, r: &'q NewPostureReport) -> Q<'q, DB>
where
    DB: Database,
    Uuid: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    Json<&'q serde_json::Value>: Encode<'q, DB> + Type<DB>,
{
    q.bind(r.device_id)
        .bind(r.received_at)
        .bind(r.collected_at)
        .bind(&r.submitted_by)
        .bind(&r.source)
        .bind(r.compliance.as_str())
        .bind(Json(&r.report))
        .bind(Json(&r.failed))
}

/// Decodes a row of [`DEVICE_POSTURE_REPORTS`].
fn stored_report<'r, R>(row: &'r R) -> Result<StoredReport, StoreError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    Json<serde_json::Value>: Decode<'r, R::Database> + Type<R::Database>,
{
    let corrupt = |column: &str, e: String| StoreError::Corrupt(format!("column {column}: {e}"));
    let compliance: String = row.try_get("compliance")?;
    let report: Json<serde_json::Value> = row.try_get("report")?;
    let failed: Json<serde_json::Value> = row.try_get("failed")?;
    Ok(StoredReport {
        id: row.try_get("id")?,
        device_id: row.try_get("device_id")?,
        received_at: row.try_get("received_at")?,
        collected_at: row.try_get("collected_at")?,
        submitted_by: row.try_get("submitted_by")?,
        compliance: compliance
            .parse()
            .map_err(|e: String| corrupt("compliance", e))?,
        failed: serde_json::from_value(failed.0).map_err(|e| corrupt("failed", e.to_string()))?,
        report: serde_json::from_value(report.0).map_err(|e| corrupt("report", e.to_string()))?,
    })
}

/// The posture part of a storage backend.
#[async_trait]
pub trait PostureStore: Send + Sync + 'static {
    /// A device's posture reports, newest first, at most `limit`.
    async fn posture_reports(
        &self,
        device_id: Uuid,
        limit: u32,
    ) -> Result<Vec<StoredReport>, StoreError>;

    /// The device's latest posture report.
    async fn latest_posture(&self, device_id: Uuid) -> Result<Option<StoredReport>, StoreError> {
        Ok(self.posture_reports(device_id, 1).await?.pop())
    }

    /// Deletes the posture reports received before `before` (`log.decision_retention` ago),
    /// keeping each device's latest report however old; returns how many were deleted.
    async fn purge_posture_reports(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

#[async_trait]
impl PostureStore for SqliteStore {
    async fn purge_posture_reports(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(PURGE_POSTURE_REPORTS)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn posture_reports(
        &self,
        device_id: Uuid,
        limit: u32,
    ) -> Result<Vec<StoredReport>, StoreError> {
        let found = sqlx::query(DEVICE_POSTURE_REPORTS)
            .bind(device_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(stored_report).collect()
    }
}

#[async_trait]
impl PostureStore for PgStore {
    async fn purge_posture_reports(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(PURGE_POSTURE_REPORTS)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn posture_reports(
        &self,
        device_id: Uuid,
        limit: u32,
    ) -> Result<Vec<StoredReport>, StoreError> {
        let found = sqlx::query(DEVICE_POSTURE_REPORTS)
            .bind(device_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(stored_report).collect()
    }
}

/// What the audit log shows of a posture change (`device.posture`).
#[derive(Debug, Serialize)]
struct PostureAudit<'a> {
    compliance: Compliance,
    compliance_checked_at: Option<DateTime<Utc>>,
    compliance_note: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    /// False when the report was older than the device's last check and left it alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<bool>,
}

impl<'a> PostureAudit<'a> {
    fn of(d: &'a Device) -> Self {
        PostureAudit {
            compliance: d.compliance,
            compliance_checked_at: d.compliance_checked_at,
            compliance_note: d.compliance_note.as_deref(),
            failed: None,
            report_id: None,
            source: None,
            applied: None,
        }
    }
}

impl Registry {
    /// Records a posture report from an MDM or agent: checks it
    /// ([`PostureReport::validate`], without a maximum age: see
    /// [`Registry::submit_posture_within`]), evaluates it against `rules`, and in one
    /// transaction stores it in `posture_reports`, sets the device's compliance (dated from
    /// when the report was collected, with a note summing up the failed checks) and appends a
    /// `device.posture` audit entry. Only an active device's report is accepted. A report
    /// collected before the device's `compliance_checked_at` is stored but leaves the device
    /// alone (`applied: false`): an older measurement does not overwrite a newer result.
    pub async fn submit_posture(
        &self,
        device: &DeviceRef,
        report: PostureReport,
        rules: &ComplianceConfig,
        change: &Change,
    ) -> Result<PostureOutcome, RegistryError> {
        self.submit_posture_within(device, report, rules, None, change)
            .await
    }

    /// [`Registry::submit_posture`], refusing (as a `collected_at` field error) a report
    /// collected more than `max_age` ago (`policy.compliance_max_age`): it would be stale at
    /// once.
    pub async fn submit_posture_within(
        &self,
        device: &DeviceRef,
        report: PostureReport,
        rules: &ComplianceConfig,
        max_age: Option<chrono::Duration>,
        change: &Change,
    ) -> Result<PostureOutcome, RegistryError> {
        let mut report = report.validate(change.now, max_age)?;
        // microseconds, as both stores keep them
        let collected_at = report.collected_at.unwrap_or(change.now).trunc_subsecs(6);
        report.collected_at = Some(collected_at);
        let evaluation = posture::evaluate(&report, rules, change.now);
        let compliance = evaluation.compliance();
        let note = posture::summary(&evaluation.failed);
        let recorded: Vec<RecordedCheck> = evaluation.failed.iter().map(Into::into).collect();
        let report_json = serde_json::to_value(&report)
            .map_err(|e| FieldError::new("report", format!("cannot be stored: {e}")))?;
        let failed_json = serde_json::to_value(&recorded)
            .map_err(|e| FieldError::new("report", format!("cannot be stored: {e}")))?;

        let id = self.find_device(device).await?.id;
        let mut tx = self.store.begin().await?;
        let before = tx
            .device_for_update(id)
            .await?
            .ok_or_else(|| RegistryError::UnknownDevice(id.to_string()))?;
        if before.status != DeviceStatus::Active {
            return Err(RegistryError::DeviceNotActive {
                device: id,
                status: before.status,
                what: "has its posture recorded",
            });
        }
        let report_id = tx
            .insert_posture_report(&NewPostureReport {
                device_id: id,
                received_at: change.now,
                collected_at,
                submitted_by: change.actor.clone(),
                source: report.source.clone(),
                compliance,
                report: report_json,
                failed: failed_json,
            })
            .await?;
        // a report measured before the device's last check is kept, but does not undo it
        let applied = before
            .compliance_checked_at
            .is_none_or(|checked| collected_at >= checked);
        let after = if applied {
            let after = Device {
                compliance,
                compliance_checked_at: Some(collected_at),
                compliance_note: Some(note),
                updated_at: change.now,
                ..before.clone()
            };
            tx.update_device(&after).await?;
            after
        } else {
            before.clone()
        };
        let after_audit = PostureAudit {
            failed: Some(evaluation.failed.iter().map(|f| f.check).collect()),
            report_id: Some(report_id),
            source: report.source.as_deref(),
            applied: Some(applied),
            ..PostureAudit::of(&after)
        };
        tx.append_audit(&audit(
            change,
            "device.posture",
            super::Target::Device(&before),
            Some(&PostureAudit::of(&before)),
            Some(&after_audit),
        ))
        .await?;
        tx.commit().await?;
        Ok(PostureOutcome {
            device_id: id,
            compliance: after.compliance,
            failed: evaluation.failed,
            report_id,
            previous: before.compliance,
            applied,
        })
    }
}
