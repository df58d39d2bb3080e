//! The one rule for times in human output, whatever command prints them: the local time of
//! `policy.timezone` with its zone shown (`2026-12-02 08:30 CET`). `--json` output keeps the
//! stored instant as RFC 3339 in UTC (`2026-12-02T07:30:00Z`), for scripts.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// To the minute: `2026-12-02 08:30 CET`.
pub fn minute(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// To the second: `2026-12-02 08:30:15 CET`.
pub fn second(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_with_its_zone() {
        let winter: DateTime<Utc> = "2026-12-02T07:30:15Z".parse().unwrap();
        let summer: DateTime<Utc> = "2026-07-01T07:30:15Z".parse().unwrap();
        let ams: Tz = "Europe/Amsterdam".parse().unwrap();
        assert_eq!(minute(winter, ams), "2026-12-02 08:30 CET");
        assert_eq!(second(summer, ams), "2026-07-01 09:30:15 CEST");
        assert_eq!(minute(winter, Tz::UTC), "2026-12-02 07:30 UTC");
    }
}
