//! What an owner installs on a device, per operating system, made in one place for the CLI,
//! the API and the web: the PKCS#12 (certificate, key, CA) under a one-time password, the CA,
//! the operating system's profile (a signed `.mobileconfig` for macOS and iOS; the WLAN profile
//! with a one-step installer for Windows; a NetworkManager script for Linux) and the
//! instructions in Dutch and English with the network's name, the server's name and the CA's
//! fingerprint filled in. Pure: the files are returned, the caller writes or sends them.

use std::fmt;

use uuid::Uuid;

use super::cms::ProfileSigner;
use super::instructions::{self, Facts};
use super::{apple_mobileconfig, pem_encode, sha1_thumbprint, windows_wlan_profile};
use super::{PkiError, ProfileSettings};
use crate::lang::Lang;

/// An operating system we make a bundle for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Windows 10 and 11.
    Windows,
    /// macOS, iOS and iPadOS.
    Apple,
    /// Android 11 and later.
    Android,
    /// Linux with NetworkManager.
    Linux,
}

impl Platform {
    /// Every platform, in the order the files and instructions list them.
    pub const ALL: [Platform; 4] = [
        Platform::Windows,
        Platform::Apple,
        Platform::Android,
        Platform::Linux,
    ];

    /// `windows`, `apple` (also `macos`, `ios`, `ipados`), `android` or `linux`, any case.
    pub fn parse(s: &str) -> Option<Platform> {
        match s.trim().to_ascii_lowercase().as_str() {
            "windows" | "win" => Some(Platform::Windows),
            "apple" | "macos" | "mac" | "ios" | "ipados" => Some(Platform::Apple),
            "android" => Some(Platform::Android),
            "linux" => Some(Platform::Linux),
            _ => None,
        }
    }

    /// The platform's name in the API and on the command line.
    pub fn code(self) -> &'static str {
        match self {
            Platform::Windows => "windows",
            Platform::Apple => "apple",
            Platform::Android => "android",
            Platform::Linux => "linux",
        }
    }

    /// What a person calls it.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Windows => "Windows",
            Platform::Apple => "macOS / iOS / iPadOS",
            Platform::Android => "Android",
            Platform::Linux => "Linux (NetworkManager)",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s).ok_or_else(|| format!("{s:?}: windows, apple, android or linux"))
    }
}

/// One file of a bundle.
#[derive(Clone)]
pub struct BundleFile {
    /// Its name (the device's label kept readable, accents and all).
    pub name: String,
    /// Its media type, for a download.
    pub media_type: &'static str,
    /// Whether it holds the device's key (the PKCS#12, or a profile embedding it): written
    /// 0600, sent only to who may have it.
    pub private: bool,
    /// The content.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for BundleFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleFile")
            .field("name", &self.name)
            .field("media_type", &self.media_type)
            .field("private", &self.private)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// What a bundle is made from, besides the certificate.
pub struct BundleInput<'a> {
    /// The network and its trust anchors.
    pub profile: ProfileSettings<'a>,
    /// The device's id (its certificate's CN, the identity a supplicant sends).
    pub device_id: Uuid,
    /// The device's label.
    pub device_label: &'a str,
    /// The owner's username.
    pub owner: &'a str,
    /// The PKCS#12, encrypted with the one-time password.
    pub pkcs12: &'a [u8],
    /// The certificate's end, as the owner reads it (local time, formatted).
    pub valid_until: String,
    /// Who signs the Apple profile; `None` leaves it unsigned (and says so).
    pub signer: Option<&'a ProfileSigner>,
    /// For which systems.
    pub platforms: &'a [Platform],
}

/// The files of a bundle, and what could not be done (e.g. the profile left unsigned).
#[derive(Debug)]
pub struct BundleFiles {
    /// The files, the PKCS#12 first.
    pub files: Vec<BundleFile>,
    /// Warnings for the operator.
    pub warnings: Vec<String>,
}

/// A file name from a device's label: letters and digits kept (accents too: "privé" stays
/// "privé"), lower case, anything else one `-`, at most 40 characters; the device id when
/// nothing is left.
pub fn file_stem(label: &str, device_id: Uuid) -> String {
    let mut stem = String::new();
    for c in label.chars() {
        if c.is_alphanumeric() {
            stem.extend(c.to_lowercase());
        } else if !stem.is_empty() && !stem.ends_with('-') {
            stem.push('-');
        }
        if stem.chars().count() >= 40 {
            break;
        }
    }
    let stem = stem.trim_end_matches('-');
    if stem.is_empty() {
        device_id.to_string()
    } else {
        stem.to_string()
    }
}

/// The bundle's files for `input.platforms` (all of them when empty).
pub fn bundle_files(input: &BundleInput<'_>) -> Result<BundleFiles, PkiError> {
    let platforms: &[Platform] = if input.platforms.is_empty() {
        &Platform::ALL
    } else {
        input.platforms
    };
    let stem = file_stem(input.device_label, input.device_id);
    let p12_name = format!("{stem}.p12");
    let mut warnings = Vec::new();
    let mut anchors = vec![input.profile.ca_der];
    anchors.extend(input.profile.previous_ca_der);
    let ca_pem: String = anchors
        .iter()
        .map(|der| pem_encode("CERTIFICATE", der))
        .collect();
    let mut files = vec![
        BundleFile {
            name: p12_name.clone(),
            media_type: "application/x-pkcs12",
            private: true,
            bytes: input.pkcs12.to_vec(),
        },
        BundleFile {
            name: "ca.pem".into(),
            media_type: "application/x-pem-file",
            private: false,
            bytes: ca_pem.into_bytes(),
        },
    ];
    let mut names = instructions::FileNames {
        p12: p12_name.clone(),
        ca: "ca.pem".into(),
        ..Default::default()
    };
    let mut signed = None;
    for platform in platforms {
        match platform {
            Platform::Windows => {
                let wlan = format!("{stem}-wlan.xml");
                let installer = format!("{stem}-installeren.cmd");
                files.push(BundleFile {
                    name: wlan.clone(),
                    media_type: "application/xml",
                    private: false,
                    bytes: windows_wlan_profile(&input.profile).into_bytes(),
                });
                files.push(BundleFile {
                    name: installer.clone(),
                    media_type: "application/x-bat",
                    private: false,
                    bytes: windows_installer(&input.profile, &p12_name, &wlan).into_bytes(),
                });
                names.windows_profile = wlan;
                names.windows_installer = installer;
            }
            Platform::Apple => {
                let xml = apple_mobileconfig(
                    &input.profile,
                    input.device_id,
                    input.device_label,
                    &p12_name,
                    input.pkcs12,
                );
                let bytes = match input.signer {
                    Some(signer) => {
                        signed = Some(true);
                        signer.sign(xml.as_bytes())?
                    }
                    None => {
                        signed = Some(false);
                        warnings.push(
                            "the .mobileconfig is not signed (no profile signer): macOS and iOS \
                             show it as unverified"
                                .to_string(),
                        );
                        xml.into_bytes()
                    }
                };
                let name = format!("{stem}.mobileconfig");
                files.push(BundleFile {
                    name: name.clone(),
                    media_type: "application/x-apple-aspen-config",
                    // the profile embeds the PKCS#12: as private as the bundle
                    private: true,
                    bytes,
                });
                names.apple_profile = name;
            }
            Platform::Android => {}
            Platform::Linux => {
                let name = format!("{stem}-networkmanager.sh");
                files.push(BundleFile {
                    name: name.clone(),
                    media_type: "application/x-sh",
                    private: false,
                    bytes: networkmanager_script(
                        &input.profile,
                        &input.device_id.to_string(),
                        &p12_name,
                    )
                    .into_bytes(),
                });
                names.linux_script = name;
            }
        }
    }
    let facts = Facts {
        ssid: input.profile.ssid,
        server_name: input.profile.server_name,
        organization: input.profile.organization,
        ca_name: input.profile.ca_name,
        ca_sha256: colon_hex(&super::fingerprint(input.profile.ca_der)),
        ca_sha1: sha1_thumbprint(input.profile.ca_der),
        identity: input.device_id.to_string(),
        device_label: input.device_label,
        owner: input.owner,
        valid_until: &input.valid_until,
        files: &names,
        apple_signed: signed.unwrap_or(false),
    };
    for lang in Lang::ALL {
        files.push(BundleFile {
            name: instructions::file_name(lang).into(),
            media_type: "text/plain; charset=utf-8",
            private: false,
            bytes: instructions::text(lang, &facts, platforms).into_bytes(),
        });
    }
    Ok(BundleFiles { files, warnings })
}

/// `AB:CD:...` from lowercase hex: how devices show a fingerprint.
fn colon_hex(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

/// A value for a `cmd.exe` double-quoted argument: `"` and `%` cannot be escaped there, so
/// they are dropped (SSIDs and file names from [`file_stem`] do not hold them).
fn cmd_quoted(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '"' | '%' | '\r' | '\n'))
        .collect()
}

/// A value in POSIX shell single quotes.
fn sh_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The Windows one-step installer: double-click it in the unpacked folder. It trusts the CA
/// for the current user (Windows asks to confirm), imports the device certificate (certutil
/// asks for the one-time password), adds the WLAN profile and connects. CRLF, UTF-8 with
/// `chcp 65001` so that a label with accents keeps its file names.
fn windows_installer(s: &ProfileSettings<'_>, p12: &str, wlan: &str) -> String {
    let ssid = cmd_quoted(s.ssid);
    let lines = [
        "@echo off".to_string(),
        "chcp 65001 >nul".to_string(),
        format!("rem Wi-Fi {ssid}: certificaat en profiel installeren / install certificate and profile"),
        "cd /d \"%~dp0\"".to_string(),
        "echo.".to_string(),
        format!("echo Wi-Fi {ssid} wordt ingesteld. / Setting up Wi-Fi {ssid}."),
        "echo.".to_string(),
        "echo 1/3 De certificeringsinstantie vertrouwen (Windows vraagt om bevestiging: kies Ja).".to_string(),
        "echo     Trusting the certificate authority (Windows asks to confirm: choose Yes).".to_string(),
        "certutil -user -addstore Root \"ca.pem\" || goto failed".to_string(),
        "echo.".to_string(),
        "echo 2/3 Het certificaat van dit apparaat importeren: typ het eenmalige wachtwoord.".to_string(),
        "echo     Importing this device's certificate: type the one-time password.".to_string(),
        format!("certutil -user -f -importPFX \"{}\" NoRoot || goto failed", cmd_quoted(p12)),
        "echo.".to_string(),
        "echo 3/3 Het Wi-Fi-profiel toevoegen. / Adding the Wi-Fi profile.".to_string(),
        format!("netsh wlan add profile filename=\"{}\" user=current || goto failed", cmd_quoted(wlan)),
        format!("netsh wlan connect name=\"{ssid}\""),
        "echo.".to_string(),
        "echo Klaar. / Done.".to_string(),
        "pause".to_string(),
        "exit /b 0".to_string(),
        ":failed".to_string(),
        "echo.".to_string(),
        "echo Niet gelukt: zie de melding hierboven en LEESMIJ.txt. / Failed: see the message above and README.txt.".to_string(),
        "pause".to_string(),
        "exit /b 1".to_string(),
    ];
    let mut out = lines.join("\r\n");
    out.push_str("\r\n");
    out
}

/// The NetworkManager script for Linux: copies the CA and the PKCS#12 to a directory only the
/// user reads and adds the connection (WPA-EAP, EAP-TLS, the CA, the server's name, the
/// device's identity); NetworkManager asks for the one-time password when it connects.
fn networkmanager_script(s: &ProfileSettings<'_>, identity: &str, p12: &str) -> String {
    format!(
        r#"#!/bin/sh
# Wi-Fi {ssid_comment}: EAP-TLS with this device's certificate (NetworkManager).
# Run it from the unpacked folder: sh ./<this file>
set -eu
src=$(cd "$(dirname "$0")" && pwd)
dest="${{XDG_DATA_HOME:-$HOME/.local/share}}/poortwachter"
mkdir -p "$dest"
chmod 700 "$dest"
install -m 600 "$src"/{p12} "$dest"/{p12}
install -m 644 "$src"/ca.pem "$dest"/ca.pem
nmcli connection delete id {ssid} >/dev/null 2>&1 || true
nmcli connection add type wifi con-name {ssid} ifname '*' ssid {ssid} -- \
  wifi-sec.key-mgmt wpa-eap \
  802-1x.eap tls \
  802-1x.identity {identity} \
  802-1x.ca-cert "$dest"/ca.pem \
  802-1x.domain-suffix-match {server} \
  802-1x.client-cert "$dest"/{p12} \
  802-1x.private-key "$dest"/{p12} \
  802-1x.private-key-password-flags 2
echo "Klaar: verbind met {ssid_comment} en typ het eenmalige wachtwoord. / Done: connect to {ssid_comment} and type the one-time password."
"#,
        ssid_comment = s.ssid.replace(['\n', '\r', '"', '\\', '$', '`'], ""),
        ssid = sh_quoted(s.ssid),
        p12 = sh_quoted(p12),
        identity = sh_quoted(identity),
        server = sh_quoted(s.server_name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(platforms: &'a [Platform], ca: &'a [u8]) -> BundleInput<'a> {
        BundleInput {
            profile: ProfileSettings {
                ssid: "Gemeente-Werkplek",
                server_name: "radius.gemeente.example",
                organization: "Gemeente",
                ca_name: "Gemeente Onboarding CA",
                ca_der: ca,
                previous_ca_der: None,
            },
            device_id: Uuid::nil(),
            device_label: "ThinkPad X1 (privé)",
            owner: "tim",
            pkcs12: b"p12 bytes",
            valid_until: "2027-12-01 10:00".into(),
            signer: None,
            platforms,
        }
    }

    #[test]
    fn stems_keep_accents_and_drop_the_rest() {
        let id = Uuid::nil();
        assert_eq!(file_stem("ThinkPad X1 (privé)", id), "thinkpad-x1-privé");
        assert_eq!(file_stem("Ölçü/../../etc", id), "ölçü-etc");
        assert_eq!(file_stem("\"%&", id), id.to_string());
        assert_eq!(file_stem(&"a".repeat(100), id).chars().count(), 40);
    }

    #[test]
    fn every_platform_gets_its_files_and_both_languages() {
        let b = bundle_files(&input(&[], b"ca")).unwrap();
        let names: Vec<&str> = b.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "thinkpad-x1-privé.p12",
                "ca.pem",
                "thinkpad-x1-privé-wlan.xml",
                "thinkpad-x1-privé-installeren.cmd",
                "thinkpad-x1-privé.mobileconfig",
                "thinkpad-x1-privé-networkmanager.sh",
                "LEESMIJ.txt",
                "README.txt",
            ]
        );
        assert!(b.warnings[0].contains("not signed"));
        let private: Vec<&str> = b
            .files
            .iter()
            .filter(|f| f.private)
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(
            private,
            ["thinkpad-x1-privé.p12", "thinkpad-x1-privé.mobileconfig"]
        );
    }

    #[test]
    fn one_platform_gets_only_its_own() {
        let b = bundle_files(&input(&[Platform::Android], b"ca")).unwrap();
        let names: Vec<&str> = b.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "thinkpad-x1-privé.p12",
                "ca.pem",
                "LEESMIJ.txt",
                "README.txt"
            ]
        );
        assert!(b.warnings.is_empty());
        let nl = String::from_utf8(b.files[2].bytes.clone()).unwrap();
        assert!(nl.contains("Android"));
        assert!(!nl.contains("Windows"));
    }

    #[test]
    fn the_windows_installer_is_crlf_and_names_its_files() {
        let b = bundle_files(&input(&[Platform::Windows], b"ca")).unwrap();
        let cmd = String::from_utf8(b.files[3].bytes.clone()).unwrap();
        assert!(cmd.split('\n').all(|l| l.ends_with('\r') || l.is_empty()));
        assert!(cmd.contains("-importPFX \"thinkpad-x1-privé.p12\" NoRoot"));
        assert!(cmd.contains("filename=\"thinkpad-x1-privé-wlan.xml\""));
        assert!(cmd.contains("chcp 65001"));
    }

    #[test]
    fn shell_values_are_quoted() {
        assert_eq!(sh_quoted("it's"), r"'it'\''s'");
        let s = networkmanager_script(
            &ProfileSettings {
                ssid: "W'$(reboot)",
                server_name: "r.example",
                organization: "o",
                ca_name: "c",
                ca_der: b"",
                previous_ca_der: None,
            },
            "id",
            "x.p12",
        );
        assert!(s.contains(r"ssid 'W'\''$(reboot)'"), "{s}");
        assert!(s.contains("802-1x.domain-suffix-match 'r.example'"));
    }

    #[test]
    fn fingerprints_as_devices_show_them() {
        assert_eq!(colon_hex("ab01ff"), "AB:01:FF");
    }
}
