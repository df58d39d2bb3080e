//! Schema versions across binaries: which migrations this binary knows, which the database
//! has, and whether the two can work together. Pure: the stores read the facts
//! ([`SchemaState`]), [`SchemaState::verdict`] decides.
//!
//! Upgrades are expand, then contract. A migration that only adds (a table, a nullable column,
//! an index) leaves the schema usable by the binaries before it: an older binary works on it
//! and says so. A migration that breaks older binaries (drops or renames what they read,
//! adds a NOT NULL column they do not fill) inserts a row into `schema_compat`:
//! `(migration, min_binary_migration)`, the oldest migration a binary must know to work on
//! the schema. A binary whose newest migration is older than the largest
//! `min_binary_migration` refuses, naming it.
//!
//! Only `migrate` and `serve` (`database.migrate_on_start`) apply migrations; every other
//! command checks and refuses a database older than the binary.

use std::fmt;

/// One migration: version and description, as sqlx's `_sqlx_migrations` keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationId {
    /// The timestamp version (`20261128000001`).
    pub version: i64,
    /// The file name's description (`registry`).
    pub description: String,
}

impl fmt::Display for MigrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.version, self.description)
    }
}

/// What a store found: the binary's migrations, the database's, and the compatibility mark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaState {
    /// The migrations this binary carries, in order.
    pub known: Vec<MigrationId>,
    /// The migrations applied (successfully) in the database, in order.
    pub applied: Vec<MigrationId>,
    /// The largest `schema_compat.min_binary_migration`, if any migration set one.
    pub min_binary_migration: Option<i64>,
}

/// Whether this binary can work on the database's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaVerdict {
    /// The database has exactly the binary's migrations.
    Current,
    /// The binary has migrations the database lacks: `poortwachter migrate` applies them.
    Behind {
        /// Not yet applied, in order.
        pending: Vec<MigrationId>,
    },
    /// The database has migrations this binary does not know, none of which breaks it.
    NewerCompatible {
        /// Applied but unknown to this binary.
        newer: Vec<MigrationId>,
    },
    /// The database has a migration that breaks this binary.
    NewerIncompatible {
        /// Applied but unknown to this binary.
        newer: Vec<MigrationId>,
        /// The oldest migration a binary must know to work on this schema.
        needs: i64,
        /// This binary's newest migration.
        have: i64,
    },
}

impl SchemaState {
    /// Compares the two histories. Pending migrations of the binary count first: a database
    /// that lacks one of ours is older whatever else it has.
    pub fn verdict(&self) -> SchemaVerdict {
        let have = self.known.iter().map(|m| m.version).max().unwrap_or(0);
        let pending: Vec<MigrationId> = self
            .known
            .iter()
            .filter(|k| !self.applied.iter().any(|a| a.version == k.version))
            .cloned()
            .collect();
        let newer: Vec<MigrationId> = self
            .applied
            .iter()
            .filter(|a| !self.known.iter().any(|k| k.version == a.version))
            .cloned()
            .collect();
        if let Some(needs) = self.min_binary_migration.filter(|n| *n > have) {
            return SchemaVerdict::NewerIncompatible { newer, needs, have };
        }
        if !pending.is_empty() {
            return SchemaVerdict::Behind { pending };
        }
        if !newer.is_empty() {
            return SchemaVerdict::NewerCompatible { newer };
        }
        SchemaVerdict::Current
    }
}

impl SchemaVerdict {
    /// The error for a command that must not work on this schema: `Behind` unless `may_migrate`
    /// (it is about to apply them), and always `NewerIncompatible`.
    pub fn refusal(&self, may_migrate: bool) -> Option<SchemaError> {
        match self {
            SchemaVerdict::Behind { pending } if !may_migrate => Some(SchemaError::Behind {
                pending: pending.clone(),
            }),
            SchemaVerdict::NewerIncompatible { newer, needs, have } => {
                Some(SchemaError::Incompatible {
                    newer: newer.clone(),
                    needs: *needs,
                    have: *have,
                })
            }
            _ => None,
        }
    }

    /// The warning to print or log for a newer but compatible schema.
    pub fn warning(&self) -> Option<String> {
        match self {
            SchemaVerdict::NewerCompatible { newer } => Some(format!(
                "the registry schema is newer than this binary ({}); it is compatible, so this \
                 binary works on it: upgrade the binary soon",
                list(newer)
            )),
            _ => None,
        }
    }
}

/// Why the registry's schema cannot be used by this binary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The database lacks migrations of this binary.
    #[error("the registry schema is older than this binary ({} pending: {}): run `poortwachter migrate`", .pending.len(), list(.pending))]
    Behind {
        /// Not yet applied.
        pending: Vec<MigrationId>,
    },
    /// A newer migration broke compatibility with this binary.
    #[error("the registry schema is newer than this binary and not compatible with it ({}; it needs a binary with migration {needs} or later, this one ends at {have}): install the newer poortwachter", list(.newer))]
    Incompatible {
        /// Applied but unknown to this binary.
        newer: Vec<MigrationId>,
        /// The oldest migration a binary must know.
        needs: i64,
        /// This binary's newest migration.
        have: i64,
    },
}

fn list(ids: &[MigrationId]) -> String {
    ids.iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The migrations a migrator carries (up migrations only).
pub(super) fn known(migrator: &sqlx::migrate::Migrator) -> Vec<MigrationId> {
    migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| MigrationId {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect()
}

/// Rows of `_sqlx_migrations` as ids.
pub(super) fn ids(rows: Vec<(i64, String)>) -> Vec<MigrationId> {
    rows.into_iter()
        .map(|(version, description)| MigrationId {
            version,
            description,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[i64]) -> Vec<MigrationId> {
        v.iter()
            .map(|v| MigrationId {
                version: *v,
                description: format!("m{v}"),
            })
            .collect()
    }

    fn state(known: &[i64], applied: &[i64], min: Option<i64>) -> SchemaState {
        SchemaState {
            known: ids(known),
            applied: ids(applied),
            min_binary_migration: min,
        }
    }

    #[test]
    fn same_history_is_current() {
        assert_eq!(
            state(&[1, 2], &[1, 2], Some(2)).verdict(),
            SchemaVerdict::Current
        );
        assert_eq!(state(&[1, 2], &[1, 2], None).verdict().refusal(false), None);
    }

    #[test]
    fn an_older_database_asks_for_migrate() {
        let v = state(&[1, 2, 3], &[1], None).verdict();
        assert_eq!(
            v,
            SchemaVerdict::Behind {
                pending: ids(&[2, 3])
            }
        );
        assert_eq!(v.refusal(true), None, "migrate and serve apply them");
        let e = v.refusal(false).expect("others refuse");
        assert!(e.to_string().contains("run `poortwachter migrate`"), "{e}");
        assert!(e.to_string().contains("2 pending: 2 m2, 3 m3"), "{e}");
        // an empty database is older too
        assert!(matches!(
            state(&[1], &[], None).verdict(),
            SchemaVerdict::Behind { .. }
        ));
    }

    #[test]
    fn a_newer_compatible_database_works_with_a_warning() {
        let v = state(&[1, 2], &[1, 2, 3], Some(2)).verdict();
        assert_eq!(v, SchemaVerdict::NewerCompatible { newer: ids(&[3]) });
        assert_eq!(v.refusal(false), None);
        assert!(v.warning().expect("warns").contains("3 m3"));
    }

    #[test]
    fn a_newer_incompatible_database_is_refused_even_by_migrate() {
        let v = state(&[1, 2], &[1, 2, 3, 4], Some(4)).verdict();
        let e = v.refusal(true).expect("refused");
        assert!(
            e.to_string()
                .contains("needs a binary with migration 4 or later, this one ends at 2"),
            "{e}"
        );
        assert!(e.to_string().contains("3 m3, 4 m4"), "{e}");
        // a contract step that still admits binaries from the expand step on
        let v = state(&[1, 2], &[1, 2, 3, 4], Some(2)).verdict();
        assert!(matches!(v, SchemaVerdict::NewerCompatible { .. }));
    }
}
