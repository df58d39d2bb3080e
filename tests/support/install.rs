//! The Debian package, built from the test binary and installed for real with `dpkg -i`, then
//! purged on drop. Only as root (CI is), and never where poortwachter is installed already.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::serving::run_ok;

/// `scripts/package-deb` with `BIN=bin` (no release build), uncompressed; the .deb in a temp dir.
pub struct Package {
    pub deb: PathBuf,
    _dir: tempfile::TempDir,
}

impl Package {
    pub fn build(bin: &str) -> Package {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().expect("temp dir");
        let deb = run_ok(
            Command::new(root.join("scripts/package-deb"))
                .env("BIN", bin)
                .env("OUT", dir.path())
                .env("COMPRESS", "none"),
        );
        Package {
            deb: PathBuf::from(deb.trim()),
            _dir: dir,
        }
    }
}

/// Fails unless this runs as root and poortwachter is not installed.
pub fn require_root_and_no_install() {
    let uid = run_ok(Command::new("id").arg("-u"));
    assert_eq!(
        uid.trim(),
        "0",
        "this test installs a package: run it as root (CI does)"
    );
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "poortwachter"])
        .output()
        .expect("dpkg-query");
    assert!(
        !String::from_utf8_lossy(&installed.stdout).contains("installed"),
        "poortwachter is installed on this machine; the test would remove it"
    );
}

/// The package installed: `dpkg --purge` on drop, and what the test left in
/// /var/lib/poortwachter and /etc/poortwachter removed if those did not exist before.
pub struct Installed {
    state_dir_was_there: bool,
    etc_was_there: bool,
}

impl Installed {
    /// `dpkg -i deb`.
    pub fn install(package: &Package) -> Installed {
        require_root_and_no_install();
        let guard = Installed {
            state_dir_was_there: Path::new("/var/lib/poortwachter").exists(),
            etc_was_there: Path::new("/etc/poortwachter").exists(),
        };
        run_ok(Command::new("dpkg").arg("-i").arg(&package.deb));
        guard
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "poortwachter"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !self.state_dir_was_there {
            let _ = std::fs::remove_dir_all("/var/lib/poortwachter");
        }
        if !self.etc_was_there {
            let _ = std::fs::remove_dir_all("/etc/poortwachter");
        }
    }
}
