//! Writing what the CA makes: every file gets its mode when it is created (a key is never
//! readable by others, not even for a moment), replaces the old one by a rename, and the
//! files of one device land together or not at all ([`Staging`]).

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::PkiError;

/// Mode of private material: keys, PKCS#12 bundles, profiles that embed one.
pub const PRIVATE: u32 = 0o600;
/// Mode of public material: certificates, CRLs, profiles without keys.
pub const PUBLIC: u32 = 0o644;

/// Creates `dir` and its missing parents (0750: the key directory is not for everyone).
fn create_dirs(dir: &Path) -> Result<(), PkiError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(PkiError::io(dir))
}

/// A sibling name for the file being written, unique enough for one writer at a time.
fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `bytes` to a new file created with `mode`, synced.
fn create_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(PkiError::io(path))?;
    file.write_all(bytes).map_err(PkiError::io(path))?;
    file.sync_all().map_err(PkiError::io(path))
}

/// Writes `bytes` to `path` with `mode`, creating parent directories: first to a new
/// sibling created with that mode, then renamed over `path`, so that a reader never sees a
/// half-written file and an existing file never keeps a wider mode.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    if let Some(dir) = path.parent() {
        create_dirs(dir)?;
    }
    let temp = temp_sibling(path);
    // a leftover from a crashed run of ours
    let _ = std::fs::remove_file(&temp);
    if let Err(e) = create_with_mode(&temp, bytes, mode) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    std::fs::rename(&temp, path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        PkiError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    })
}

/// Files written to a hidden directory inside the destination first, and moved into it only
/// by [`Staging::publish`]; dropped unpublished, the directory and its files are removed.
/// Everything is on one file system, so publishing is a rename per file.
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    dir: PathBuf,
    /// Whether `out` was created for this staging (removed again if nothing is published).
    created_out: bool,
    names: Vec<String>,
    published: bool,
}

impl Staging {
    /// A staging directory (0700) inside `out`, creating `out` if missing.
    pub fn new(out: &Path) -> Result<Staging, PkiError> {
        let created_out = !out.is_dir();
        create_dirs(out)?;
        let mut suffix = [0u8; 6];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix)
            .map_err(|_| PkiError::Key("the system random number generator failed".into()))?;
        let dir = out.join(format!(".poortwachter-staging-{}", super::hex(&suffix)));
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(PkiError::io(&dir))?;
        Ok(Staging {
            out: out.to_path_buf(),
            dir,
            created_out,
            names: Vec::new(),
            published: false,
        })
    }

    /// Writes one file (a plain name, no directories) into the staging directory.
    pub fn add(&mut self, name: &str, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(PkiError::Invalid(format!("`{name}` is not a file name")));
        }
        create_with_mode(&self.dir.join(name), bytes, mode)?;
        self.names.push(name.to_string());
        Ok(())
    }

    /// Where the files will be, in the order they were added.
    pub fn destinations(&self) -> Vec<PathBuf> {
        self.names.iter().map(|n| self.out.join(n)).collect()
    }

    /// Moves every file into the destination (replacing files of the same name) and removes
    /// the staging directory. On failure the files not yet moved stay in the staging
    /// directory, which the error names, so that nothing is lost.
    pub fn publish(mut self) -> Result<Vec<PathBuf>, PkiError> {
        self.published = true;
        let mut moved = Vec::new();
        for name in &self.names {
            let (from, to) = (self.dir.join(name), self.out.join(name));
            std::fs::rename(&from, &to).map_err(|e| PkiError::Io {
                path: self.dir.clone(),
                source: std::io::Error::new(
                    e.kind(),
                    format!("cannot move {name} into {}: {e}", self.out.display()),
                ),
            })?;
            moved.push(to);
        }
        let _ = std::fs::remove_dir(&self.dir);
        Ok(moved)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.published {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.created_out {
            // only if empty: never anything that was there before
            let _ = std::fs::remove_dir(&self.out);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_get_their_mode_and_replace_wider_ones() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("a/b/key.pem");
        write_file(&key, b"secret", PRIVATE).unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(std::fs::read(&key).unwrap(), b"secret");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).unwrap();
        write_file(&key, b"new", PRIVATE).unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(std::fs::read(&key).unwrap(), b"new");
        let leftovers: Vec<_> = std::fs::read_dir(key.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("key.pem")]);
    }

    #[test]
    fn staging_publishes_all_or_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut staging = Staging::new(&out).unwrap();
        staging.add("x.p12", b"p12", PRIVATE).unwrap();
        staging.add("ca.pem", b"ca", PUBLIC).unwrap();
        assert!(staging.add("../evil", b"", PUBLIC).is_err());
        drop(staging);
        assert!(!out.exists(), "created for nothing, removed again");

        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("keep.txt"), b"mine").unwrap();
        let mut staging = Staging::new(&out).unwrap();
        staging.add("x.p12", b"p12", PRIVATE).unwrap();
        drop(staging);
        let names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("keep.txt")]);

        let mut staging = Staging::new(&out).unwrap();
        staging.add("x.p12", b"p12", PRIVATE).unwrap();
        staging.add("ca.pem", b"ca", PUBLIC).unwrap();
        let moved = staging.publish().unwrap();
        assert_eq!(moved, vec![out.join("x.p12"), out.join("ca.pem")]);
        assert_eq!(mode(&out.join("x.p12")), 0o600);
        assert_eq!(mode(&out.join("ca.pem")), 0o644);
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 3);
    }
}
