//! The node's last-known-good snapshot: every device with its owner, as the decision needs
//! them, in `<node.state_dir>/snapshot.json`. Written every `node.snapshot_interval` and at
//! shutdown while the registry answers (to a temporary file, fsync'ed, renamed over the old
//! one: a crash leaves the old or the new snapshot, never half of one), mode 0600 (it names
//! people). `serve` starts from it when the database does not answer, for at most
//! `cache.stale_grace` after it was written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Device, Owner};

/// The file name in the state directory.
pub const FILE: &str = "snapshot.json";
/// The format written.
const VERSION: u32 = 1;

/// A snapshot as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version.
    pub version: u32,
    /// When the registry was read for it.
    pub written_at: DateTime<Utc>,
    /// Every device with its owner.
    pub subjects: Vec<(Device, Owner)>,
}

/// Why a snapshot cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// There is none (or it cannot be read).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a snapshot this version reads.
    #[error("{path} is not a readable snapshot: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// It is older than the bound.
    #[error("the snapshot in {path} was written at {written_at}, {age} ago: older than cache.stale_grace ({grace})")]
    TooOld {
        /// The file.
        path: PathBuf,
        /// When it was written.
        written_at: DateTime<Utc>,
        /// Its age.
        age: crate::config::HumanDuration,
        /// The bound.
        grace: crate::config::HumanDuration,
    },
}

/// The snapshot's path in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Creates the state directory (0700) if needed.
pub fn ensure_dir(state_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
}

/// Writes a snapshot atomically (temporary file, fsync, rename, fsync of the directory).
pub fn write(
    state_dir: &Path,
    subjects: Vec<(Device, Owner)>,
    at: DateTime<Utc>,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    ensure_dir(state_dir)?;
    let snapshot = Snapshot {
        version: VERSION,
        written_at: at,
        subjects,
    };
    let bytes = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
    let tmp = state_dir.join(format!("{FILE}.tmp"));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path(state_dir))?;
    std::fs::File::open(state_dir)?.sync_all()
}

/// Reads the snapshot if it is at most `grace` old at `now`.
pub fn read(
    state_dir: &Path,
    now: DateTime<Utc>,
    grace: Duration,
) -> Result<Snapshot, SnapshotError> {
    let path = path(state_dir);
    let bytes = std::fs::read(&path).map_err(|source| SnapshotError::Read {
        path: path.clone(),
        source,
    })?;
    let snapshot: Snapshot = serde_json::from_slice(&bytes).map_err(|e| SnapshotError::Format {
        path: path.clone(),
        why: e.to_string(),
    })?;
    if snapshot.version != VERSION {
        return Err(SnapshotError::Format {
            path,
            why: format!(
                "format version {} (this version reads {VERSION})",
                snapshot.version
            ),
        });
    }
    let age = (now - snapshot.written_at).to_std().unwrap_or_default();
    if age > grace {
        return Err(SnapshotError::TooOld {
            path,
            written_at: snapshot.written_at,
            age: crate::config::HumanDuration(Duration::from_secs(age.as_secs())),
            grace: crate::config::HumanDuration(grace),
        });
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_atomically_0600_and_read_back_within_the_grace_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("state");
        let t = Utc::now();
        write(&state, Vec::new(), t).expect("write");
        let mode = std::fs::metadata(path(&state))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(&state)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        assert!(!state.join("snapshot.json.tmp").exists());
        let h = Duration::from_secs(3600);
        let s = read(&state, t + chrono::Duration::minutes(30), h).expect("fresh enough");
        assert_eq!(s.written_at, t);
        let old = read(&state, t + chrono::Duration::hours(2), h);
        assert!(matches!(old, Err(SnapshotError::TooOld { .. })), "{old:?}");
        std::fs::write(path(&state), b"{\"version\":").expect("corrupt");
        assert!(matches!(
            read(&state, t, h),
            Err(SnapshotError::Format { .. })
        ));
        assert!(matches!(
            read(&dir.path().join("none"), t, h),
            Err(SnapshotError::Read { .. })
        ));
    }
}
