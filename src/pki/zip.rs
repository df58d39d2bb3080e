//! A ZIP archive of a bundle's files, for one download: stored (not compressed: the
//! certificate files are small and the PKCS#12 is encrypted, so deflate would gain nothing),
//! UTF-8 names flagged (accents survive in Windows' Explorer, macOS and Linux), CRC-32 from
//! the `crc` crate. Pure: bytes in, bytes out.

use super::bundle::BundleFile;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// General purpose flag bit 11: the name is UTF-8.
const UTF8: u16 = 1 << 11;
/// 1980-01-01 00:00 in DOS time (the archive carries no timestamps of its own).
const DOS_DATE: u16 = (1 << 5) | 1;

/// Why an archive could not be made.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZipError {
    /// A file or the archive is past what a ZIP without its 64-bit extension holds.
    #[error("too large for a ZIP archive")]
    TooLarge,
}

/// The files as one ZIP archive, in their order.
pub fn zip(files: &[BundleFile]) -> Result<Vec<u8>, ZipError> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for f in files {
        let offset = u32::try_from(out.len()).map_err(|_| ZipError::TooLarge)?;
        let size = u32::try_from(f.bytes.len()).map_err(|_| ZipError::TooLarge)?;
        let name = f.name.as_bytes();
        let name_len = u16::try_from(name.len()).map_err(|_| ZipError::TooLarge)?;
        let crc = CRC32.checksum(&f.bytes);
        // local file header
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&UTF8.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&0u16.to_le_bytes()); // time
        out.extend_from_slice(&DOS_DATE.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // extra
        out.extend_from_slice(name);
        out.extend_from_slice(&f.bytes);
        // its central directory entry
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&0x031eu16.to_le_bytes()); // made by: Unix, 3.0
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&UTF8.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&DOS_DATE.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes()); // extra
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
                                                        // external attributes: a regular file, 0600 for what holds the key, else 0644
        let mode: u32 = if f.private { 0o100_600 } else { 0o100_644 };
        central.extend_from_slice(&(mode << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
    }
    let count = u16::try_from(files.len()).map_err(|_| ZipError::TooLarge)?;
    let central_offset = u32::try_from(out.len()).map_err(|_| ZipError::TooLarge)?;
    let central_size = u32::try_from(central.len()).map_err(|_| ZipError::TooLarge)?;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, bytes: &[u8], private: bool) -> BundleFile {
        BundleFile {
            name: name.into(),
            media_type: "application/octet-stream",
            private,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn the_system_unzip_reads_it_back_with_accents_and_modes() {
        let files = vec![
            file("thinkpad-privé.p12", b"secret bytes", true),
            file("LEESMIJ.txt", b"Stap 1\r\n", false),
            file("leeg.txt", b"", false),
        ];
        let bytes = zip(&files).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("bundel.zip");
        std::fs::write(&archive, &bytes).unwrap();
        // Python's zipfile: an independent reader, checks every CRC
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; \
                 z.extractall(sys.argv[2]); print('\\n'.join(f'{i.filename} {i.external_attr>>16:o}' for i in z.infolist()))",
            ])
            .arg(&archive)
            .arg(dir.path().join("x"))
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            listing.trim(),
            "thinkpad-privé.p12 100600\nLEESMIJ.txt 100644\nleeg.txt 100644"
        );
        assert_eq!(
            std::fs::read(dir.path().join("x/thinkpad-privé.p12")).unwrap(),
            b"secret bytes"
        );
        assert_eq!(
            std::fs::read(dir.path().join("x/LEESMIJ.txt")).unwrap(),
            b"Stap 1\r\n"
        );
    }
}
