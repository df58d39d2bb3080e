//! Output for people (aligned tables, key-value blocks) and for scripts (`--json`).

use anyhow::Result;
use poortwachter::text::escape;
use serde::Serialize;

/// Prints rows under headers, columns padded to their widest cell. Control characters in a
/// cell (a User-Name or a reason from outside) are shown escaped, never sent to the terminal.
pub fn print(headers: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        outln!("(none)");
        return;
    }
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| r.into_iter().map(|c| escape(&c).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                out.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
        }
        outln!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints `key  value` lines, keys aligned.
pub fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in fields {
        outln!("{k:width$}  {}", escape(v));
    }
}

/// Pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Audit entries as a table, newest first; with the target column unless all share one.
pub fn print_audit(
    entries: &[poortwachter::model::AuditEntry],
    with_target: bool,
    tz: chrono_tz::Tz,
) {
    let rows = entries
        .iter()
        .map(|e| {
            let mut row = vec![
                super::when::second(e.at, tz),
                e.actor.clone(),
                e.action.clone(),
            ];
            if with_target {
                row.push(e.target_id.clone());
            }
            row.push(if e.erased {
                "(gewist / erased)".to_string()
            } else {
                summarize_change(e.before.as_ref(), e.after.as_ref())
            });
            row
        })
        .collect();
    if with_target {
        print(&["TIME", "ACTOR", "ACTION", "TARGET", "CHANGE"], rows);
    } else {
        print(&["TIME", "ACTOR", "ACTION", "CHANGE"], rows);
    }
}

/// `-` for nothing.
pub fn or_dash(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".to_string())
}

/// The fields an audit entry changed, as `status: active -> revoked`.
pub fn summarize_change(
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> String {
    const NOISE: &[&str] = &[
        "updated_at",
        "created_at",
        "status_changed_at",
        "compliance_checked_at",
        "id",
    ];
    match (before, after) {
        (None, Some(_)) => "created".to_string(),
        (Some(_), None) => "removed".to_string(),
        (Some(serde_json::Value::Object(b)), Some(serde_json::Value::Object(a))) => {
            let changes: Vec<String> = a
                .iter()
                .filter(|(k, _)| !NOISE.contains(&k.as_str()))
                .filter(|(k, v)| b.get(*k) != Some(v))
                .map(|(k, v)| format!("{k}: {} -> {}", short(b.get(k)), short(Some(v))))
                .collect();
            if changes.is_empty() {
                "no field changed".to_string()
            } else {
                changes.join("; ")
            }
        }
        _ => "-".to_string(),
    }
}

fn short(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "-".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
