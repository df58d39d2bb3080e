//! Occupancy, the question behind the BYOD policy ("on average 30% of the workplaces are
//! unused each day"): how many devices were connected per hour and per location, from the
//! accounting sessions. A location is a set of access points (by the client's name or the
//! access point's own, `*` as a wildcard) with its number of workplaces. Pure: sessions and
//! the clock in, counts out.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use crate::activity::Session;

/// A floor or building: its access points and workplaces.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// What people call it ("Stadhuis, 2e verdieping").
    pub name: String,
    /// Client names (`[[radius.clients]] name`) or access point names as the NAS reports them
    /// in accounting (NAS-Identifier, or the access point key the session is kept under), `*`
    /// matching any run of characters.
    pub access_points: Vec<String>,
    /// Workplaces there (for the percentage); 0: not counted.
    #[serde(default)]
    pub workplaces: u32,
}

/// `[occupancy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OccupancyConfig {
    /// The locations, in the order the console shows them.
    #[serde(default)]
    pub locations: Vec<Location>,
}

/// Whether `name` matches `pattern` (`*` any run of characters, case-insensitive).
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    // iterative wildcard match: the last star and where it resumed
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The location of a session: the first whose patterns match its client or access point;
/// `None` when none does.
pub fn location_of<'a>(locations: &'a [Location], s: &Session) -> Option<&'a Location> {
    let names = [
        Some(s.nas.as_str()),
        Some(s.nas_key.as_str()).filter(|k| !k.is_empty()),
        s.raw.nas_identifier.as_deref(),
    ];
    locations.iter().find(|l| {
        l.access_points
            .iter()
            .any(|p| names.iter().flatten().any(|n| glob(p, n)))
    })
}

/// Devices connected per hour and location over `hours` hours from `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupancy {
    /// The first hour's start.
    pub start: DateTime<Utc>,
    /// The locations' names, then the "other" row for sessions of no location.
    pub locations: Vec<String>,
    /// Workplaces per location (0 for "other").
    pub workplaces: Vec<u32>,
    /// `counts[location][hour]`: distinct devices with a session during that hour.
    pub counts: Vec<Vec<u32>>,
}

impl Occupancy {
    /// The largest hourly count of `location` among hours `from..to`.
    pub fn peak(&self, location: usize, from: usize, to: usize) -> u32 {
        self.counts
            .get(location)
            .map(|c| {
                c[from.min(c.len())..to.min(c.len())]
                    .iter()
                    .copied()
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }
}

/// Counts `sessions` into hours: a device counts in every hour its session overlaps; an open
/// session lasts until `now`. The last row is "other" (`other` names it).
pub fn count(
    sessions: &[Session],
    locations: &[Location],
    start: DateTime<Utc>,
    hours: usize,
    now: DateTime<Utc>,
    other: &str,
) -> Occupancy {
    let rows = locations.len() + 1;
    let mut seen: Vec<Vec<BTreeSet<String>>> = vec![vec![BTreeSet::new(); hours]; rows];
    let index: HashMap<&str, usize> = locations
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.as_str(), i))
        .collect();
    let end_of_range = start + Duration::hours(hours as i64);
    for s in sessions {
        let row = location_of(locations, s)
            .and_then(|l| index.get(l.name.as_str()).copied())
            .unwrap_or(locations.len());
        let device = s
            .device_id
            .map(|d| d.to_string())
            .or_else(|| s.mac.map(|m| m.to_string()))
            .unwrap_or_else(|| format!("session-{}", s.id));
        let begin = s.started_at.max(start);
        let end = s.stopped_at.unwrap_or(now).min(end_of_range);
        if end <= begin {
            // a session shorter than a tick still counts in its hour
            if s.started_at >= start && s.started_at < end_of_range {
                let h = ((s.started_at - start).num_hours()) as usize;
                if let Some(cell) = seen[row].get_mut(h) {
                    cell.insert(device);
                }
            }
            continue;
        }
        let first = (begin - start).num_hours().max(0) as usize;
        let last = ((end - start - Duration::nanoseconds(1)).num_hours().max(0) as usize)
            .min(hours.saturating_sub(1));
        for cell in seen[row].iter_mut().take(last + 1).skip(first) {
            cell.insert(device.clone());
        }
    }
    let mut names: Vec<String> = locations.iter().map(|l| l.name.clone()).collect();
    names.push(other.to_string());
    let mut workplaces: Vec<u32> = locations.iter().map(|l| l.workplaces).collect();
    workplaces.push(0);
    Occupancy {
        start,
        locations: names,
        workplaces,
        counts: seen
            .into_iter()
            .map(|r| r.into_iter().map(|c| c.len() as u32).collect())
            .collect(),
    }
}

/// The hourly counts as CSV (`start,location,devices,workplaces,occupancy_percent`), times in
/// `tz` as ISO 8601 with offset; a location without workplaces has an empty percentage.
pub fn csv(o: &Occupancy, tz: &chrono_tz::Tz) -> String {
    let mut out = String::from("start,location,devices,workplaces,occupancy_percent\n");
    for (l, row) in o.counts.iter().enumerate() {
        for (h, n) in row.iter().enumerate() {
            let at = (o.start + Duration::hours(h as i64)).with_timezone(tz);
            let places = o.workplaces[l];
            let pct = if places > 0 {
                format!("{:.1}", f64::from(*n) * 100.0 / f64::from(places))
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{},{},{},{},{}\n",
                at.to_rfc3339(),
                csv_field(&o.locations[l]),
                n,
                if places > 0 {
                    places.to_string()
                } else {
                    String::new()
                },
                pct
            ));
        }
    }
    out
}

/// A CSV field, quoted when it must be; a leading `=`, `+`, `-` or `@` is defused so that a
/// spreadsheet does not run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64, m: i64) -> DateTime<Utc> {
        "2026-12-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
            + Duration::hours(h)
            + Duration::minutes(m)
    }

    fn session(
        id: i64,
        nas: &str,
        mac: &str,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
    ) -> Session {
        Session {
            id,
            nas: nas.into(),
            nas_key: String::new(),
            acct_session_id: format!("s{id}"),
            nas_ip: None,
            nas_port: None,
            username: None,
            mac: Some(crate::mac::MacAddr::parse_any(mac).unwrap()),
            ssid: None,
            device_id: None,
            owner: None,
            framed_ip: None,
            class: None,
            started_at: from,
            updated_at: from,
            stopped_at: to,
            session_time: 0,
            input_octets: 0,
            output_octets: 0,
            input_packets: 0,
            output_packets: 0,
            terminate_cause: None,
            raw: Default::default(),
        }
    }

    fn floors() -> Vec<Location> {
        vec![
            Location {
                name: "Stadhuis 1".into(),
                access_points: vec!["ap-sth-1-*".into()],
                workplaces: 4,
            },
            Location {
                name: "Stadhuis 2".into(),
                access_points: vec!["ap-sth-2-*".into(), "bieb".into()],
                workplaces: 0,
            },
        ]
    }

    #[test]
    fn globs() {
        assert!(glob("ap-sth-1-*", "AP-STH-1-noord"));
        assert!(glob("*noord", "ap-sth-1-noord"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("bieb", "bieb"));
        assert!(!glob("bieb", "bieb2"));
        assert!(glob("*", ""));
    }

    #[test]
    fn devices_count_in_every_hour_they_were_there_once_each() {
        let s = vec![
            // 08:30-10:15 on floor 1: hours 8, 9, 10
            session(
                1,
                "ap-sth-1-noord",
                "02:00:00:00:00:01",
                t(8, 30),
                Some(t(10, 15)),
            ),
            // the same device again at 09:40 on another AP of the floor: still one in hour 9
            session(
                2,
                "ap-sth-1-zuid",
                "02:00:00:00:00:01",
                t(9, 40),
                Some(t(9, 50)),
            ),
            // open since 09:00, now 11:30: hours 9, 10, 11
            session(3, "bieb", "02:00:00:00:00:02", t(9, 0), None),
            // no location
            session(
                4,
                "ap-elders",
                "02:00:00:00:00:03",
                t(23, 0),
                Some(t(23, 0)),
            ),
            // ended exactly at 10:00: not in hour 10
            session(
                5,
                "ap-sth-1-oost",
                "02:00:00:00:00:04",
                t(9, 10),
                Some(t(10, 0)),
            ),
        ];
        let o = count(&s, &floors(), t(0, 0), 24, t(11, 30), "overig");
        assert_eq!(o.locations, ["Stadhuis 1", "Stadhuis 2", "overig"]);
        assert_eq!(&o.counts[0][7..12], &[0, 1, 2, 1, 0]);
        assert_eq!(&o.counts[1][8..13], &[0, 1, 1, 1, 0]);
        assert_eq!(o.counts[2][23], 1);
        assert_eq!(o.peak(0, 0, 24), 2);
        let csv = csv(&o, &chrono_tz::Europe::Amsterdam);
        assert!(csv.starts_with("start,location,devices,workplaces,occupancy_percent\n"));
        // 09:00 UTC is 10:00 in Amsterdam: 2 of 4 workplaces
        assert!(
            csv.contains("2026-12-01T10:00:00+01:00,Stadhuis 1,2,4,50.0\n"),
            "{csv}"
        );
        assert!(csv.contains("2026-12-01T10:00:00+01:00,Stadhuis 2,1,,\n"));
        assert_eq!(csv.lines().count(), 1 + 3 * 24);
    }

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("x\"y,z"), "\"x\"\"y,z\"");
    }
}
