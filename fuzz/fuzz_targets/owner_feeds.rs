//! What the owner feeds read from outside: an HR export (any bytes, as a spreadsheet or a
//! stranger writes them) and an identity provider's SCIM filters and PatchOps. Reading never
//! panics; every row of a CSV has a line within the file; a PatchOp that parses applies to a
//! User or is refused, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poortwachter::api::scim::fuzzing::{apply, parse_filter, parse_patch, parse_patch_path};
use poortwachter::import::read_owner_csv;

fuzz_target!(|data: &[u8]| {
    if let Ok(csv) = read_owner_csv(data) {
        let lines = data.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        for row in &csv.rows {
            assert!(row.line <= lines, "line {} of {lines}", row.line);
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(filter) = parse_filter(text) {
        let user = serde_json::json!({"userName": "a.b", "emails": [{"value": "a@b.nl"}]});
        let _ = filter.matches(&user);
    }
    let _ = parse_patch_path(text);
    if let Ok(body) = serde_json::from_str::<serde_json::Value>(text) {
        if let Ok(ops) = parse_patch(&body) {
            let mut user = serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "a.b", "active": true,
                "name": {"formatted": "A B"},
                "emails": [{"value": "a@b.nl", "primary": true, "type": "work"}]
            });
            let _ = apply(&mut user, &ops);
        }
    }
});
