//! The rules for changing owners: by hand (add, edit, disable, delete) and by a feed (the HR
//! CSV import, the directory sync, SCIM), each in one transaction with its audit entries.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;
use uuid::Uuid;

use crate::model::{validate_username, FieldError, NewOwner, Owner, OwnerSource, Role};

use super::{audit, unique_as, Change, ImportRow, Registry, RegistryError, RowProblem, Target};

/// Which optional columns an import file has. A known owner keeps the stored value of a
/// column the file does not have (an export without email addresses must not erase them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportColumns {
    /// `email`
    pub email: bool,
    /// `department`
    pub department: bool,
    /// `valid_from`
    pub valid_from: bool,
    /// `valid_until`
    pub valid_until: bool,
}

impl ImportColumns {
    /// Every column present.
    pub const ALL: ImportColumns = ImportColumns {
        email: true,
        department: true,
        valid_from: true,
        valid_until: true,
    };
}

/// How a feed applies its rows.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The columns the rows carry.
    pub columns: ImportColumns,
    /// Apply the good rows and report the bad ones, instead of applying nothing.
    pub skip_bad: bool,
    /// The feed: [`OwnerSource::Import`], [`OwnerSource::Directory`] or [`OwnerSource::Scim`].
    pub source: OwnerSource,
    /// The rows are everyone (a full export): the feed's enabled owners absent from them are
    /// disabled.
    pub disable_missing: bool,
    /// Why they are disabled, as the service desk reads it.
    pub missing_reason: String,
    /// Refuse, writing nothing, when more owners than this would be disabled (an empty or
    /// truncated export must not lock everyone out). `None`: no limit.
    pub max_disable: Option<u64>,
    /// Work out and report the changes, then write nothing.
    pub dry_run: bool,
}

impl ImportOptions {
    /// The HR CSV import as it was: add and update, nothing disabled.
    pub fn import(columns: ImportColumns, skip_bad: bool) -> Self {
        ImportOptions {
            columns,
            skip_bad,
            source: OwnerSource::Import,
            disable_missing: false,
            missing_reason: String::new(),
            max_disable: None,
            dry_run: false,
        }
    }
}

/// What a feed did (or, in a dry run, would do) to one owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new owner.
    Added,
    /// Fields changed.
    Updated,
    /// Disabled: absent from a full export.
    Disabled,
    /// Enabled again: back in the feed that had disabled them (fields may have changed too).
    Enabled,
    /// Named by the feed but managed by another source (added by hand): not touched.
    LeftAlone,
}

/// One owner's change in a feed's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerChange {
    /// Username.
    pub username: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The fields that changed (updated, enabled).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<&'static str>,
    /// What manages the owner the feed left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<OwnerSource>,
}

/// What an import or sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// New owners.
    pub added: u64,
    /// Owners whose fields changed.
    pub updated: u64,
    /// Owners already as in the file.
    pub unchanged: u64,
    /// Owners disabled because the full export no longer has them.
    pub disabled: u64,
    /// Owners enabled again because they are back.
    pub enabled: u64,
    /// Owners in the rows that another source manages (added by hand): not touched.
    pub left_alone: u64,
    /// Rows skipped (`--skip-bad`).
    pub skipped: Vec<RowProblem>,
    /// Every change, one per owner (not the unchanged ones).
    pub changes: Vec<OwnerChange>,
    /// Nothing was written (a dry run).
    pub dry_run: bool,
}

/// An edit of an owner: `None` keeps the field, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerEdit {
    /// Full name.
    pub display_name: Option<String>,
    /// Mail address.
    pub email: Option<Option<String>>,
    /// Role.
    pub role: Option<Role>,
    /// Department.
    pub department: Option<Option<String>>,
    /// First day of access.
    pub valid_from: Option<Option<NaiveDate>>,
    /// Last day of access (a contract extension).
    pub valid_until: Option<Option<NaiveDate>>,
    /// What manages the record (`manual` keeps a feed away from it).
    pub source: Option<OwnerSource>,
    /// The id in the managing feed.
    pub external_id: Option<Option<String>>,
}

/// Which owners to list.
#[derive(Debug, Clone, Default)]
pub struct OwnerQuery {
    /// Words that must each occur (any case) in the username, name or e-mail address.
    pub search: Option<String>,
    /// Only this role.
    pub role: Option<Role>,
    /// Only owners this source manages.
    pub source: Option<OwnerSource>,
    /// Only disabled (`true`) or only enabled (`false`) owners.
    pub disabled: Option<bool>,
}

impl OwnerQuery {
    /// Whether `o` is one of them.
    pub fn matches(&self, o: &Owner) -> bool {
        if self.role.is_some_and(|r| r != o.role)
            || self.source.is_some_and(|s| s != o.source)
            || self.disabled.is_some_and(|d| d != o.disabled)
        {
            return false;
        }
        let Some(search) = &self.search else {
            return true;
        };
        let haystack = format!(
            "{} {} {}",
            o.username,
            o.display_name,
            o.email.as_deref().unwrap_or("")
        )
        .to_lowercase();
        search
            .split_whitespace()
            .all(|word| haystack.contains(&word.to_lowercase()))
    }
}

/// The audit action of a feed's change: `owner.import.add`, `owner.sync.disable`, ...
fn feed_action(source: OwnerSource, what: &str) -> String {
    let feed = match source {
        OwnerSource::Manual => "manual",
        OwnerSource::Import => "import",
        OwnerSource::Directory => "sync",
        OwnerSource::Scim => "scim",
    };
    format!("owner.{feed}.{what}")
}

/// The names of the fields in which two records of one owner differ.
fn changed_fields(before: &Owner, after: &Owner) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs {
            fields.push(name);
        }
    };
    check("name", before.display_name != after.display_name);
    check("email", before.email != after.email);
    check("role", before.role != after.role);
    check("department", before.department != after.department);
    check("valid_from", before.valid_from != after.valid_from);
    check("valid_until", before.valid_until != after.valid_until);
    check("source", before.source != after.source);
    check("external_id", before.external_id != after.external_id);
    check("disabled", before.disabled != after.disabled);
    fields
}

impl Registry {
    /// Registers a person by hand. Refuses a username in use (in any case) and a contract
    /// that has already ended.
    pub async fn add_owner(&self, new: NewOwner, change: &Change) -> Result<Owner, RegistryError> {
        self.add_owner_from(new, OwnerSource::Manual, None, change)
            .await
    }

    /// Registers a person that `source` manages, with their id there (SCIM's create).
    pub async fn add_owner_from(
        &self,
        new: NewOwner,
        source: OwnerSource,
        external_id: Option<String>,
        change: &Change,
    ) -> Result<Owner, RegistryError> {
        let new = new.validate()?;
        let external_id = check_external_id(external_id)?;
        let owner = Owner {
            source,
            external_id,
            ..self.owner_from_new(new, change)?
        };
        let mut tx = self.store.begin().await?;
        if let Some(existing) = tx.owner_for_update(&owner.username).await? {
            return Err(RegistryError::OwnerExists(existing.username));
        }
        tx.insert_owner(&owner)
            .await
            .map_err(|e| unique_as(e, || RegistryError::OwnerExists(owner.username.clone())))?;
        let action = match source {
            OwnerSource::Manual => "owner.add".to_string(),
            other => feed_action(other, "add"),
        };
        tx.append_audit(&audit(
            change,
            &action,
            Target::Owner(&owner),
            None::<&Owner>,
            Some(&owner),
        ))
        .await?;
        tx.commit().await?;
        Ok(owner)
    }

    pub(super) fn owner_from_new(
        &self,
        new: NewOwner,
        change: &Change,
    ) -> Result<Owner, RegistryError> {
        let owner = Owner {
            id: Uuid::new_v4(),
            username: new.username,
            display_name: new.display_name,
            email: new.email,
            role: new.role,
            department: new.department,
            valid_from: new.valid_from,
            valid_until: new.valid_until,
            disabled: false,
            created_at: change.now,
            updated_at: change.now,
            source: OwnerSource::Manual,
            external_id: None,
            disabled_reason: None,
            disabled_at: None,
            disabled_by_source: None,
            erased_at: None,
        };
        self.check_not_expired(&owner, change)?;
        Ok(owner)
    }

    pub(super) fn check_not_expired(
        &self,
        owner: &Owner,
        change: &Change,
    ) -> Result<(), RegistryError> {
        match owner.valid_until {
            Some(last_day) if owner.has_expired(change.now, &self.rules.timezone) => {
                Err(RegistryError::OwnerExpired {
                    owner: owner.username.clone(),
                    last_day,
                })
            }
            _ => Ok(()),
        }
    }

    /// Owners as the query says, by username.
    pub async fn find_owners(&self, query: &OwnerQuery) -> Result<Vec<Owner>, RegistryError> {
        Ok(self
            .store
            .owners()
            .await?
            .into_iter()
            .filter(|o| query.matches(o))
            .collect())
    }

    /// Edits an owner's fields (the username is the identity and never changes). The result
    /// is checked as a new owner is; an edit that changes nothing writes nothing.
    pub async fn edit_owner(
        &self,
        username: &str,
        edit: OwnerEdit,
        change: &Change,
    ) -> Result<Owner, RegistryError> {
        let username = validate_username(username)?;
        let external_id = edit.external_id.map(check_external_id).transpose()?;
        let mut tx = self.store.begin().await?;
        let before = tx
            .owner_for_update(&username)
            .await?
            .ok_or_else(|| RegistryError::UnknownOwner(username.to_string()))?;
        let checked = NewOwner {
            username: before.username.clone(),
            display_name: edit
                .display_name
                .unwrap_or_else(|| before.display_name.clone()),
            email: edit.email.unwrap_or_else(|| before.email.clone()),
            role: edit.role.unwrap_or(before.role),
            department: edit.department.unwrap_or_else(|| before.department.clone()),
            valid_from: edit.valid_from.unwrap_or(before.valid_from),
            valid_until: edit.valid_until.unwrap_or(before.valid_until),
        }
        .validate()?;
        let after = Owner {
            display_name: checked.display_name,
            email: checked.email,
            role: checked.role,
            department: checked.department,
            valid_from: checked.valid_from,
            valid_until: checked.valid_until,
            source: edit.source.unwrap_or(before.source),
            external_id: external_id.unwrap_or_else(|| before.external_id.clone()),
            ..before.clone()
        };
        if after == before {
            return Ok(before);
        }
        let after = Owner {
            updated_at: change.now,
            ..after
        };
        tx.update_owner(&after).await?;
        tx.append_audit(&audit(
            change,
            "owner.edit",
            Target::Owner(&after),
            Some(&before),
            Some(&after),
        ))
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Disables an owner by hand, with the reason the service desk will read, or enables
    /// them again. Their devices are refused from the next request on, and the enforcer
    /// disconnects their sessions. Unchanged state writes nothing; a new reason for an owner
    /// disabled already replaces the old one (SCIM's delete of an owner it deactivated
    /// before), keeping since when they are disabled.
    pub async fn set_owner_disabled(
        &self,
        username: &str,
        disabled: bool,
        reason: Option<String>,
        change: &Change,
    ) -> Result<Owner, RegistryError> {
        let username = validate_username(username)?;
        let reason = check_reason(reason)?;
        let mut tx = self.store.begin().await?;
        let before = tx
            .owner_for_update(&username)
            .await?
            .ok_or_else(|| RegistryError::UnknownOwner(username.to_string()))?;
        let new_reason = disabled && reason.is_some() && reason != before.disabled_reason;
        if before.disabled == disabled && !new_reason {
            return Ok(before);
        }
        let after = if disabled {
            Owner {
                disabled: true,
                disabled_reason: reason,
                disabled_at: if before.disabled {
                    before.disabled_at
                } else {
                    Some(change.now)
                },
                disabled_by_source: None,
                erased_at: None,
                updated_at: change.now,
                ..before.clone()
            }
        } else {
            Owner {
                disabled: false,
                disabled_reason: None,
                disabled_at: None,
                disabled_by_source: None,
                erased_at: None,
                updated_at: change.now,
                ..before.clone()
            }
        };
        tx.update_owner(&after).await?;
        let action = if disabled {
            "owner.disable"
        } else {
            "owner.enable"
        };
        tx.append_audit(&audit(
            change,
            action,
            Target::Owner(&after),
            Some(&before),
            Some(&after),
        ))
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes an owner registered by mistake. Refused while they have devices (of any
    /// status): delete those first (`device delete`), or disable the owner instead, which
    /// keeps their history. The audit log keeps the owner's record.
    pub async fn delete_owner(
        &self,
        username: &str,
        change: &Change,
    ) -> Result<Owner, RegistryError> {
        let username = validate_username(username)?;
        let mut tx = self.store.begin().await?;
        let before = tx
            .owner_for_update(&username)
            .await?
            .ok_or_else(|| RegistryError::UnknownOwner(username.to_string()))?;
        let devices = tx.count_devices(before.id).await?;
        if devices > 0 {
            return Err(RegistryError::OwnerHasDevices {
                owner: before.username,
                devices,
            });
        }
        tx.delete_owner(before.id).await?;
        tx.append_audit(&audit(
            change,
            "owner.delete",
            Target::Owner(&before),
            Some(&before),
            None,
        ))
        .await?;
        tx.commit().await?;
        Ok(before)
    }

    /// Applies a feed (an HR export, a directory search, ...) in one transaction:
    /// - a row for a new username adds the owner, managed by the feed;
    /// - a row for an owner the feed claims ([`OwnerSource::claims`]) updates them (a column
    ///   the rows lack keeps the stored value), and enables them again if this feed had
    ///   disabled them;
    /// - a row for an owner another source manages (added by hand) leaves them alone;
    /// - with `disable_missing`, the feed's enabled owners absent from the rows are disabled.
    ///
    /// Any bad row rejects the whole feed unless `skip_bad`; more disabled owners than
    /// `max_disable` rejects it; a dry run reports and writes nothing.
    /// `progress(done, total)` is called as rows are written.
    pub async fn import_owners(
        &self,
        rows: Vec<ImportRow>,
        opts: &ImportOptions,
        change: &Change,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<ImportReport, RegistryError> {
        let total = rows.len() as u64;
        let columns = opts.columns;
        let mut report = ImportReport {
            dry_run: opts.dry_run,
            ..ImportReport::default()
        };
        let mut bad = Vec::new();
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut tx = self.store.begin().await?;
        for (done, row) in rows.into_iter().enumerate() {
            if done % 500 == 0 {
                progress(done as u64, total);
            }
            let line = row.line;
            let mut bad_row = |message: String| bad.push(RowProblem { line, message });
            let raw = match row.owner {
                Ok(raw) => raw,
                Err(message) => {
                    bad_row(message);
                    // skipped, not gone: a full export must not disable them for it
                    if let Some(Ok(username)) = row.named.as_deref().map(validate_username) {
                        seen.entry(username.to_ascii_lowercase()).or_insert(line);
                    }
                    continue;
                }
            };
            let username = match validate_username(&raw.username) {
                Ok(u) => u,
                Err(e) => {
                    bad_row(e.to_string());
                    continue;
                }
            };
            // a bad row of a known person still names them: they are not missing
            if let Some(first) = seen.insert(username.to_ascii_lowercase(), line) {
                bad_row(format!("{username} appears again (first on line {first})"));
                continue;
            }
            let external_id = match check_external_id(row.external_id) {
                Ok(id) => id,
                Err(e) => {
                    bad_row(e.to_string());
                    continue;
                }
            };
            let existing = tx.owner_for_update(&username).await?;
            if let Some(before) = &existing {
                if !opts.source.claims(before.source) {
                    report.left_alone += 1;
                    report.changes.push(OwnerChange {
                        username: before.username.clone(),
                        kind: ChangeKind::LeftAlone,
                        fields: Vec::new(),
                        managed_by: Some(before.source),
                    });
                    continue;
                }
            }
            // a column the rows do not have keeps what is stored
            let merged = match &existing {
                Some(before) => NewOwner {
                    email: if columns.email {
                        raw.email
                    } else {
                        before.email.clone()
                    },
                    department: if columns.department {
                        raw.department
                    } else {
                        before.department.clone()
                    },
                    valid_from: if columns.valid_from {
                        raw.valid_from
                    } else {
                        before.valid_from
                    },
                    valid_until: if columns.valid_until {
                        raw.valid_until
                    } else {
                        before.valid_until
                    },
                    ..raw
                },
                None => raw,
            };
            let new = match merged.validate() {
                Ok(new) => new,
                Err(e) => {
                    bad_row(e.to_string());
                    continue;
                }
            };
            match existing {
                None => {
                    let owner = match self.owner_from_new(new, change) {
                        Ok(o) => Owner {
                            source: opts.source,
                            external_id,
                            ..o
                        },
                        Err(e) => {
                            bad_row(e.to_string());
                            continue;
                        }
                    };
                    tx.insert_owner(&owner).await?;
                    tx.append_audit(&audit(
                        change,
                        &feed_action(opts.source, "add"),
                        Target::Owner(&owner),
                        None::<&Owner>,
                        Some(&owner),
                    ))
                    .await?;
                    report.added += 1;
                    report.changes.push(OwnerChange {
                        username: owner.username,
                        kind: ChangeKind::Added,
                        fields: Vec::new(),
                        managed_by: None,
                    });
                }
                Some(before) => {
                    let back = before.disabled && before.disabled_by_source == Some(opts.source);
                    let mut after = Owner {
                        display_name: new.display_name,
                        email: new.email,
                        role: new.role,
                        department: new.department,
                        valid_from: new.valid_from,
                        valid_until: new.valid_until,
                        source: opts.source,
                        external_id: external_id.or_else(|| before.external_id.clone()),
                        ..before.clone()
                    };
                    if back {
                        after.disabled = false;
                        after.disabled_reason = None;
                        after.disabled_at = None;
                        after.disabled_by_source = None;
                    }
                    let fields = changed_fields(&before, &after);
                    if fields.is_empty() {
                        report.unchanged += 1;
                        continue;
                    }
                    after.updated_at = change.now;
                    tx.update_owner(&after).await?;
                    let (what, kind) = if back {
                        report.enabled += 1;
                        ("enable", ChangeKind::Enabled)
                    } else {
                        report.updated += 1;
                        ("update", ChangeKind::Updated)
                    };
                    tx.append_audit(&audit(
                        change,
                        &feed_action(opts.source, what),
                        Target::Owner(&after),
                        Some(&before),
                        Some(&after),
                    ))
                    .await?;
                    report.changes.push(OwnerChange {
                        username: after.username,
                        kind,
                        fields,
                        managed_by: None,
                    });
                }
            }
        }
        if opts.disable_missing {
            let reason = check_reason(Some(opts.missing_reason.clone()))?;
            let missing: Vec<Owner> = tx
                .owners_of_source(opts.source)
                .await?
                .into_iter()
                .filter(|o| !o.disabled && !seen.contains_key(&o.username.to_ascii_lowercase()))
                .collect();
            if let Some(max) = opts.max_disable {
                if missing.len() as u64 > max {
                    return Err(RegistryError::TooManyMissing {
                        missing: missing.len() as u64,
                        max,
                        feed: opts.source,
                    });
                }
            }
            for listed in missing {
                // locked and read again: a concurrent change wins over the list
                let Some(before) = tx.owner_for_update(&listed.username).await? else {
                    continue;
                };
                if before.disabled || before.source != opts.source {
                    continue;
                }
                let after = Owner {
                    disabled: true,
                    disabled_reason: reason.clone(),
                    disabled_at: Some(change.now),
                    disabled_by_source: Some(opts.source),
                    updated_at: change.now,
                    ..before.clone()
                };
                tx.update_owner(&after).await?;
                tx.append_audit(&audit(
                    change,
                    &feed_action(opts.source, "disable"),
                    Target::Owner(&after),
                    Some(&before),
                    Some(&after),
                ))
                .await?;
                report.disabled += 1;
                report.changes.push(OwnerChange {
                    username: after.username,
                    kind: ChangeKind::Disabled,
                    fields: vec!["disabled"],
                    managed_by: None,
                });
            }
        }
        progress(total, total);
        if !bad.is_empty() {
            if !opts.skip_bad {
                // dropping the transaction rolls it back: nothing written
                return Err(RegistryError::ImportRejected(bad));
            }
            report.skipped = bad;
        }
        if opts.dry_run {
            // dropped: rolled back
            return Ok(report);
        }
        tx.commit().await?;
        Ok(report)
    }
}

/// A disable reason as the service desk reads it: trimmed, at most 500 characters.
fn check_reason(reason: Option<String>) -> Result<Option<String>, FieldError> {
    let reason = reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(FieldError::new("reason", "longer than 500 characters"));
    }
    Ok(reason)
}

/// A feed's id for a person: trimmed, printable, at most 256 characters.
fn check_external_id(id: Option<String>) -> Result<Option<String>, FieldError> {
    let id = id.map(|i| i.trim().to_string()).filter(|i| !i.is_empty());
    if let Some(i) = &id {
        if i.chars().count() > 256 || i.chars().any(char::is_control) {
            return Err(FieldError::new(
                "external_id",
                "at most 256 printable characters",
            ));
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OwnerSource::*;

    #[test]
    fn feeds_claim_what_they_may_take_over() {
        assert!(Import.claims(Manual));
        assert!(Import.claims(Import));
        assert!(!Import.claims(Directory));
        assert!(!Directory.claims(Manual));
        assert!(Directory.claims(Import));
        assert!(!Directory.claims(Scim));
        assert!(!Scim.claims(Manual));
        assert!(Scim.claims(Scim));
    }

    #[test]
    fn a_search_needs_every_word_in_some_field() {
        let o = Owner {
            id: Uuid::nil(),
            username: "jdevries".into(),
            display_name: "Jan de Vries".into(),
            email: Some("J.deVries@gemeente.example".into()),
            role: Role::Staff,
            department: None,
            valid_from: None,
            valid_until: None,
            disabled: false,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            source: Manual,
            external_id: None,
            disabled_reason: None,
            disabled_at: None,
            disabled_by_source: None,
            erased_at: None,
        };
        let q = |s: &str| OwnerQuery {
            search: Some(s.into()),
            ..OwnerQuery::default()
        };
        assert!(q("vries jan").matches(&o));
        assert!(q("GEMEENTE.example").matches(&o));
        assert!(!q("vries piet").matches(&o));
        assert!(!OwnerQuery {
            role: Some(Role::Intern),
            ..OwnerQuery::default()
        }
        .matches(&o));
    }
}
