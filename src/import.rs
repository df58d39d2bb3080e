//! The HR export of owners as spreadsheets write it: reading a CSV file into import rows.
//! Pure: bytes in, rows (bad ones with their reason and line) and warnings out.
//!
//! What Excel and HR systems write, read as they mean it: UTF-8 with or without a BOM, or
//! Windows-1252 (Excel's "CSV (gescheiden door lijstscheidingsteken)" on a Dutch Windows), `;`
//! or `,` between fields, CRLF or LF line ends, Dutch or English headers, dates as
//! `2026-12-31` or `31-12-2026`, roles in Dutch or English.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::model::{parse_date, NewOwner, Role};
use crate::registry::{ImportColumns, ImportRow};

/// How the file's bytes were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 (a BOM, if any, skipped).
    Utf8,
    /// Windows-1252, as Excel's plain "CSV" export writes on a Western Windows.
    Windows1252,
}

/// A file read into rows.
#[derive(Debug, Clone)]
pub struct OwnerCsv {
    /// The rows, in file order; a bad row carries its reason.
    pub rows: Vec<ImportRow>,
    /// Which optional columns the file has.
    pub columns: ImportColumns,
    /// What the operator should know: columns ignored, the encoding guessed.
    pub warnings: Vec<String>,
    /// How the bytes were read.
    pub encoding: Encoding,
}

/// The file cannot be read at all (no row is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CsvError(pub String);

/// Columns by their canonical name, with the headers that mean them (compared without case,
/// spaces, `-` and `_`), and whether a file must have them.
const COLUMNS: &[(&str, &[&str], bool)] = &[
    (
        "username",
        &[
            "username",
            "user",
            "uid",
            "login",
            "account",
            "samaccountname",
            "gebruikersnaam",
            "gebruiker",
            "inlognaam",
            "accountnaam",
        ],
        true,
    ),
    (
        "name",
        &[
            "name",
            "displayname",
            "fullname",
            "naam",
            "volledigenaam",
            "weergavenaam",
        ],
        true,
    ),
    (
        "email",
        &["email", "mail", "emailaddress", "mailadres", "emailadres"],
        false,
    ),
    (
        "role",
        &["role", "rol", "soortmedewerker", "dienstverband"],
        true,
    ),
    ("department", &["department", "afdeling", "team"], false),
    (
        "valid_from",
        &[
            "validfrom",
            "start",
            "from",
            "startdate",
            "begindate",
            "begindatum",
            "startdatum",
            "ingangsdatum",
            "indienst",
            "datumindienst",
        ],
        false,
    ),
    (
        "valid_until",
        &[
            "validuntil",
            "end",
            "until",
            "enddate",
            "einddatum",
            "eindecontract",
            "einddatumcontract",
            "uitdienst",
            "datumuitdienst",
        ],
        false,
    ),
];

/// A header as compared: lowercase, without spaces, `-`, `_` and `.`.
fn normal(header: &str) -> String {
    header
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The characters Windows-1252 puts at 0x80..=0x9F (`None`: undefined there); the rest of the
/// code page is Latin-1.
const CP1252_HIGH: [Option<char>; 32] = [
    Some('€'),
    None,
    Some('‚'),
    Some('ƒ'),
    Some('„'),
    Some('…'),
    Some('†'),
    Some('‡'),
    Some('ˆ'),
    Some('‰'),
    Some('Š'),
    Some('‹'),
    Some('Œ'),
    None,
    Some('Ž'),
    None,
    None,
    Some('‘'),
    Some('’'),
    Some('“'),
    Some('”'),
    Some('•'),
    Some('–'),
    Some('—'),
    Some('˜'),
    Some('™'),
    Some('š'),
    Some('›'),
    Some('œ'),
    None,
    Some('ž'),
    Some('Ÿ'),
];

/// Reads bytes as Windows-1252; `None` if a byte is undefined there (not such a file).
pub fn decode_windows_1252(bytes: &[u8]) -> Option<String> {
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => CP1252_HIGH[usize::from(b - 0x80)],
            0 => None,
            _ => Some(char::from(b)),
        })
        .collect()
}

const SAVE_AS_UTF8: &str = "save it from Excel as \"CSV UTF-8 (door komma's gescheiden)\" / \
     \"CSV UTF-8 (Comma delimited)\" and import that file";

/// The file's text, and how it was read.
fn decode(bytes: &[u8]) -> Result<(String, Encoding), CsvError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(CsvError(format!(
            "the file is UTF-16 (Excel's \"Unicode text\"), which is not read; {SAVE_AS_UTF8}"
        )));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok((
            text.strip_prefix('\u{feff}').unwrap_or(text).to_string(),
            Encoding::Utf8,
        )),
        Err(e) => match decode_windows_1252(bytes) {
            Some(text) => Ok((text, Encoding::Windows1252)),
            None => {
                let at = e.valid_up_to();
                let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
                Err(CsvError(format!(
                    "the file is neither UTF-8 nor Windows-1252 (line {line}, byte {at}); \
                     {SAVE_AS_UTF8}"
                )))
            }
        },
    }
}

/// The 1-based line of the record that starts at byte `offset` of `text`. The reader's
/// offset may point at the line end before the record (the `\n` of a CRLF, blank lines):
/// those are skipped.
fn line_at(text: &str, offset: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
        start += 1;
    }
    bytes[..start].iter().filter(|b| **b == b'\n').count() as u64 + 1
}

/// A role as HR writes it, in Dutch or English.
fn role(text: &str) -> Result<Role, String> {
    let dutch = match normal(text).as_str() {
        "medewerker" | "personeel" | "vast" | "ambtenaar" | "werknemer" => Some(Role::Staff),
        "stagiair" | "stagiaire" | "stagiar" | "stage" => Some(Role::Intern),
        "uitzendkracht" | "tijdelijk" | "flexkracht" | "oproepkracht" => Some(Role::Temp),
        "inhuur" | "extern" | "externe" | "zzp" | "zzper" | "ingehuurd" => Some(Role::Contractor),
        _ => None,
    };
    match dutch {
        Some(r) => Ok(r),
        None => text.parse().map_err(|e: String| {
            format!("{e} (or in Dutch: medewerker, uitzendkracht, stagiair, inhuur)")
        }),
    }
}

/// A date as `2026-12-31`, or as a Dutch spreadsheet writes it: `31-12-2026`, `31/12/2026`.
fn date(field: &'static str, text: &str) -> Result<NaiveDate, String> {
    parse_date(field, text).or_else(|iso| {
        ["%d-%m-%Y", "%d/%m/%Y", "%d.%m.%Y"]
            .iter()
            .find_map(|f| {
                let t = text.trim();
                // four digits of year at the end: 31-12-26 stays ambiguous
                // (bytes: a multi-byte character there is not a digit, and slicing the str
                // inside it would panic)
                (t.len() >= 8 && t.as_bytes()[t.len() - 4..].iter().all(u8::is_ascii_digit))
                    .then(|| NaiveDate::parse_from_str(t, f).ok())
                    .flatten()
            })
            .ok_or_else(|| format!("{iso} or DD-MM-YYYY"))
    })
}

/// Reads an HR export. A row that cannot be read carries its reason and 1-based line; a file
/// that cannot be read at all (encoding, header) is an error.
pub fn read_owner_csv(bytes: &[u8]) -> Result<OwnerCsv, CsvError> {
    let (text, encoding) = decode(bytes)?;
    let mut warnings = Vec::new();
    if encoding == Encoding::Windows1252 {
        warnings.push(format!(
            "the file is not UTF-8: read as Windows-1252 (Excel's plain CSV); check the \
             accented names, or {SAVE_AS_UTF8}"
        ));
    }
    let first_line = text.lines().next().unwrap_or_default();
    // Dutch spreadsheet exports use ';'
    let delimiter = if first_line.contains(';') && !first_line.contains(',') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| CsvError(format!("cannot read the header row: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut used = vec![false; headers.len()];
    for (name, aliases, required) in COLUMNS {
        let found = headers
            .iter()
            .enumerate()
            .find(|(i, h)| !used[*i] && aliases.contains(&normal(h).as_str()));
        match found {
            Some((i, _)) => {
                used[i] = true;
                index.insert(*name, i);
            }
            None if *required => {
                return Err(CsvError(format!(
                    "the header row has no `{name}` column (found: {}; `{name}` may also be \
                     called: {})",
                    headers.join(", "),
                    aliases.join(", ")
                )))
            }
            None => {}
        }
    }
    for (i, header) in headers.iter().enumerate() {
        if !used[i] && !header.is_empty() {
            warnings.push(format!(
                "column `{}` is not known and is ignored (known: username, name, email, role, \
                 department, valid_from, valid_until, or their Dutch names)",
                crate::text::escape(header)
            ));
        }
    }
    let columns = ImportColumns {
        email: index.contains_key("email"),
        department: index.contains_key("department"),
        valid_from: index.contains_key("valid_from"),
        valid_until: index.contains_key("valid_until"),
    };
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| line_at(&text, p.byte())).unwrap_or(0);
                rows.push(ImportRow {
                    line,
                    owner: Err(format!("not readable as CSV: {e}")),
                    external_id: None,
                    named: None,
                });
                continue;
            }
        };
        let line = record
            .position()
            .map(|p| line_at(&text, p.byte()))
            .unwrap_or(0);
        if record.iter().all(str::is_empty) {
            continue;
        }
        let field = |name: &str| -> Option<String> {
            index
                .get(name)
                .and_then(|&i| record.get(i))
                .map(str::to_string)
                .filter(|s| !s.is_empty())
        };
        rows.push(ImportRow {
            line,
            owner: row_owner(&field),
            external_id: None,
            named: field("username"),
        });
    }
    Ok(OwnerCsv {
        rows,
        columns,
        warnings,
        encoding,
    })
}

fn row_owner(field: &dyn Fn(&str) -> Option<String>) -> Result<NewOwner, String> {
    let role_text = field("role").ok_or("role: empty")?;
    let role = role(&role_text).map_err(|e| format!("role: {e}"))?;
    let date = |name: &'static str| -> Result<Option<NaiveDate>, String> {
        field(name).map(|d| date(name, &d)).transpose()
    };
    Ok(NewOwner {
        username: field("username").unwrap_or_default(),
        display_name: field("name").unwrap_or_default(),
        email: field("email"),
        role,
        department: field("department"),
        valid_from: date("valid_from")?,
        valid_until: date("valid_until")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(csv: &OwnerCsv) -> Vec<(u64, bool)> {
        csv.rows.iter().map(|r| (r.line, r.owner.is_ok())).collect()
    }

    #[test]
    fn a_date_ending_in_a_multibyte_character_is_refused_not_a_panic() {
        // found by the owner_feeds fuzzer: "62-12-2\u{f7}027" (0xF7 read as Windows-1252)
        assert!(date("valid_until", "62-12-2\u{f7}027").is_err());
        assert!(date("valid_until", "31-12-202\u{e9}").is_err());
        let csv = b"Gebruikersnaam;Naam;Rol;Einddatum\r\nanneba;A.na;medewerker;62-12-2\xf7027\r\n";
        let read = read_owner_csv(csv).unwrap();
        assert_eq!(read.rows.len(), 1);
        assert!(read.rows[0].owner.is_err());
    }

    #[test]
    fn line_numbers_are_the_files_with_crlf_and_lf() {
        let lf = "username;naam;rol;einddatum\nanna;Anna;medewerker;\n\nbob;Bob;stagiair;\ncees;Cees;bogus;\n";
        let crlf = lf.replace('\n', "\r\n");
        for text in [lf.to_string(), crlf] {
            let csv = read_owner_csv(text.as_bytes()).unwrap();
            assert_eq!(
                lines(&csv),
                vec![(2, true), (4, true), (5, false)],
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_quoted_field_over_lines_keeps_the_next_rows_line() {
        let text = "username,name,role\r\nanna,\"Anna\r\nde Vries\",staff\r\nbob,Bob,bogus\r\n";
        let csv = read_owner_csv(text.as_bytes()).unwrap();
        assert_eq!(lines(&csv), vec![(2, true), (4, false)]);
    }

    #[test]
    fn windows_1252_is_read_with_a_warning() {
        // "Jos\xe9 M\xfcller" in Windows-1252, "\x80" is the euro sign
        let mut bytes = b"gebruikersnaam;naam;rol;afdeling\r\njose;Jos".to_vec();
        bytes.extend_from_slice(&[0xE9, b' ', b'M', 0xFC, b'l', b'l', b'e', b'r']);
        bytes.extend_from_slice(b";medewerker;Financi");
        bytes.extend_from_slice(&[0xEB, 0x80, b'\r', b'\n']);
        let csv = read_owner_csv(&bytes).unwrap();
        assert_eq!(csv.encoding, Encoding::Windows1252);
        let owner = csv.rows[0].owner.clone().unwrap();
        assert_eq!(owner.display_name, "José Müller");
        assert_eq!(owner.department.as_deref(), Some("Financië€"));
        assert!(csv.warnings[0].contains("CSV UTF-8"), "{:?}", csv.warnings);
    }

    #[test]
    fn utf16_and_undefined_bytes_are_refused_with_the_hint() {
        let e = read_owner_csv(&[0xFF, 0xFE, b'u', 0]).unwrap_err();
        assert!(e.0.contains("CSV UTF-8"), "{e}");
        let e = read_owner_csv(b"username,name,role\nab\x81c,x,staff\n").unwrap_err();
        assert!(e.0.contains("line 2"), "{e}");
    }

    #[test]
    fn dutch_headers_unknown_columns_and_dates() {
        let text = "\u{feff}Gebruikersnaam;Volledige naam;E-mailadres;Rol;Afdeling;Begindatum;Einddatum;Kostenplaats;Emial\n\
                    piet;Piet Jansen;p.jansen@gemeente.example;stagiair;Burgerzaken;01-02-2026;31-07-2026;4100;x\n";
        let csv = read_owner_csv(text.as_bytes()).unwrap();
        assert_eq!(csv.columns, ImportColumns::ALL);
        let owner = csv.rows[0].owner.clone().unwrap();
        assert_eq!(owner.role, Role::Intern);
        assert_eq!(owner.email.as_deref(), Some("p.jansen@gemeente.example"));
        assert_eq!(owner.valid_from, NaiveDate::from_ymd_opt(2026, 2, 1));
        assert_eq!(owner.valid_until, NaiveDate::from_ymd_opt(2026, 7, 31));
        assert_eq!(csv.warnings.len(), 2, "{:?}", csv.warnings);
        assert!(csv.warnings[0].contains("`Kostenplaats`"));
        assert!(csv.warnings[1].contains("`Emial`"));
    }

    #[test]
    fn a_missing_required_column_names_its_other_names() {
        let e = read_owner_csv(b"login,naam\nanna,Anna\n").unwrap_err();
        assert!(e.0.contains("no `role` column"), "{e}");
        assert!(e.0.contains("rol"), "{e}");
    }

    #[test]
    fn windows_1252_round_trips_latin1() {
        let all: Vec<u8> = (0x20..=0xFFu8)
            .filter(|b| !(0x7F..=0x9F).contains(b))
            .collect();
        let text = decode_windows_1252(&all).unwrap();
        assert_eq!(text.chars().count(), all.len());
        assert!(decode_windows_1252(&[0x8D]).is_none());
    }
}
