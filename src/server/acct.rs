//! Reading an Accounting-Request (RFC 2866) into a session update. Pure.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::activity::{AccountingUpdate, AcctKind, NasIdentity};
use crate::radius::{dict, Packet};

use super::request::{calling_station_mac, ssid};

/// What an Accounting-Request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum AcctAction {
    /// Update one session.
    Session(Box<AccountingUpdate>),
    /// Accounting-On or -Off: close every open session of this access point, with this cause.
    NasRestart {
        /// The access point (see [`nas_key`]).
        nas_key: String,
        /// Terminate cause recorded.
        cause: &'static str,
    },
    /// No usable Acct-Status-Type or Acct-Session-Id: answered, not stored.
    Ignore(&'static str),
}

/// The device id from a Class we handed out (`pw1;device=<uuid>;...`).
pub fn device_from_class(class: &str) -> Option<Uuid> {
    class
        .strip_prefix("pw1;")?
        .split(';')
        .find_map(|kv| kv.strip_prefix("device="))
        .and_then(|v| Uuid::parse_str(v).ok())
}

fn counter(p: &Packet<'_>, low: u8, giga: u8) -> i64 {
    let low = i64::from(p.u32(low).unwrap_or(0));
    let high = i64::from(p.u32(giga).unwrap_or(0));
    (high << 32) | low
}

/// The owner's username from a Class we handed out.
pub fn owner_from_class(class: &str) -> Option<String> {
    class
        .strip_prefix("pw1;")?
        .split(';')
        .find_map(|kv| kv.strip_prefix("owner="))
        .filter(|v| !v.is_empty() && *v != "none")
        .map(str::to_string)
}

/// Which access point of a client sent the packet: NAS-Identifier, else NAS-IP-Address, else
/// the source address. One `[[radius.clients]]` entry usually covers many APs, and each has
/// its own session ids and reboots.
pub fn nas_key(p: &Packet<'_>, source_ip: &str) -> String {
    p.text(dict::NAS_IDENTIFIER)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(253).collect())
        .or_else(|| p.ipv4(dict::NAS_IP_ADDRESS).map(|ip| ip.to_string()))
        .unwrap_or_else(|| source_ip.to_string())
}

/// Reads an authenticated Accounting-Request received at `now` from client `nas`.
pub fn read(p: &Packet<'_>, nas: &str, source_ip: String, now: DateTime<Utc>) -> AcctAction {
    let Some(status) = p.u32(dict::ACCT_STATUS_TYPE) else {
        return AcctAction::Ignore("no Acct-Status-Type");
    };
    let kind = match status {
        dict::acct_status::START => AcctKind::Start,
        dict::acct_status::INTERIM_UPDATE => AcctKind::InterimUpdate,
        dict::acct_status::STOP => AcctKind::Stop,
        dict::acct_status::ACCOUNTING_ON => {
            return AcctAction::NasRestart {
                nas_key: nas_key(p, &source_ip),
                cause: "NAS-Reboot",
            }
        }
        dict::acct_status::ACCOUNTING_OFF => {
            return AcctAction::NasRestart {
                nas_key: nas_key(p, &source_ip),
                cause: "NAS-Request",
            }
        }
        _ => return AcctAction::Ignore("unsupported Acct-Status-Type"),
    };
    let Some(sid) = p
        .text(dict::ACCT_SESSION_ID)
        .map(str::trim)
        .filter(|s| !s.is_empty())
    else {
        return AcctAction::Ignore("no Acct-Session-Id");
    };
    let delay = i64::from(p.u32(dict::ACCT_DELAY_TIME).unwrap_or(0)).min(86_400);
    let class = p
        .attr(dict::CLASS)
        .map(|c| String::from_utf8_lossy(c).into_owned());
    AcctAction::Session(Box::new(AccountingUpdate {
        kind,
        at: now - chrono::Duration::seconds(delay),
        nas: nas.to_string(),
        nas_key: nas_key(p, &source_ip),
        acct_session_id: sid.to_string(),
        nas_ip: p
            .ipv4(dict::NAS_IP_ADDRESS)
            .map(|ip| ip.to_string())
            .or(Some(source_ip.clone())),
        nas_port: p.u32(dict::NAS_PORT).map(i64::from),
        username: p.text(dict::USER_NAME).map(str::to_string),
        mac: calling_station_mac(p),
        ssid: ssid(p),
        device_id: class.as_deref().and_then(device_from_class),
        owner: class.as_deref().and_then(owner_from_class),
        framed_ip: p.ipv4(dict::FRAMED_IP_ADDRESS).map(|ip| ip.to_string()),
        class,
        session_time: i64::from(p.u32(dict::ACCT_SESSION_TIME).unwrap_or(0)),
        input_octets: counter(p, dict::ACCT_INPUT_OCTETS, dict::ACCT_INPUT_GIGAWORDS),
        output_octets: counter(p, dict::ACCT_OUTPUT_OCTETS, dict::ACCT_OUTPUT_GIGAWORDS),
        input_packets: i64::from(p.u32(dict::ACCT_INPUT_PACKETS).unwrap_or(0)),
        output_packets: i64::from(p.u32(dict::ACCT_OUTPUT_PACKETS).unwrap_or(0)),
        terminate_cause: p
            .u32(dict::ACCT_TERMINATE_CAUSE)
            .map(|c| dict::terminate_cause_name(c).to_string()),
        raw: NasIdentity {
            calling_station_id: p.text(dict::CALLING_STATION_ID).map(str::to_string),
            nas_identifier: p.text(dict::NAS_IDENTIFIER).map(str::to_string),
            nas_ip_address: p.ipv4(dict::NAS_IP_ADDRESS).map(|ip| ip.to_string()),
            nas_ipv6_address: p
                .attr(dict::NAS_IPV6_ADDRESS)
                .and_then(|v| <[u8; 16]>::try_from(v).ok())
                .map(|o| std::net::Ipv6Addr::from(o).to_string()),
            source_ip: Some(source_ip),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::crypto::sign_request;
    use crate::radius::dict::code;
    use crate::radius::Builder;

    fn packet(f: impl FnOnce(&mut Builder)) -> Vec<u8> {
        let mut b = Builder::new(code::ACCOUNTING_REQUEST, 1);
        f(&mut b);
        let (mut buf, off) = b.into_unsigned();
        sign_request(&mut buf, off, &[0; 16], b"s3cret-s3cret-s3cret");
        buf
    }

    #[test]
    fn stop_with_counters_and_class() {
        let id = Uuid::new_v4();
        let buf = packet(|b| {
            b.add_u32(dict::ACCT_STATUS_TYPE, dict::acct_status::STOP)
                .and_then(|b| b.add_text(dict::ACCT_SESSION_ID, "S1"))
                .and_then(|b| b.add_u32(dict::ACCT_INPUT_OCTETS, 10))
                .and_then(|b| b.add_u32(dict::ACCT_INPUT_GIGAWORDS, 1))
                .and_then(|b| b.add_u32(dict::ACCT_SESSION_TIME, 60))
                .and_then(|b| b.add_u32(dict::ACCT_DELAY_TIME, 5))
                .and_then(|b| b.add_u32(dict::ACCT_TERMINATE_CAUSE, 1))
                .and_then(|b| b.add_text(dict::CALLING_STATION_ID, "AA-BB-CC-DD-EE-FF"))
                .and_then(|b| b.add_text(dict::CLASS, &format!("pw1;device={id};owner=x")))
                .map(|_| ())
                .expect("fits");
        });
        let p = Packet::parse(&buf).expect("parses");
        let now = Utc::now();
        let AcctAction::Session(u) = read(&p, "ap1", "127.0.0.1".into(), now) else {
            panic!("expected a session update")
        };
        assert_eq!(u.kind, AcctKind::Stop);
        assert_eq!(u.input_octets, (1 << 32) + 10);
        assert_eq!(u.at, now - chrono::Duration::seconds(5));
        assert_eq!(u.terminate_cause.as_deref(), Some("User-Request"));
        assert_eq!(u.device_id, Some(id));
        assert_eq!(
            u.mac.map(|m| m.to_string()).as_deref(),
            Some("aa:bb:cc:dd:ee:ff")
        );
        assert_eq!(u.nas_ip.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn on_off_and_ignored() {
        let buf = packet(|b| {
            b.add_u32(dict::ACCT_STATUS_TYPE, dict::acct_status::ACCOUNTING_ON)
                .map(|_| ())
                .expect("fits");
        });
        let p = Packet::parse(&buf).expect("parses");
        assert_eq!(
            read(&p, "ap1", "10.0.0.9".into(), Utc::now()),
            AcctAction::NasRestart {
                nas_key: "10.0.0.9".into(),
                cause: "NAS-Reboot"
            }
        );
        let buf = packet(|b| {
            b.add_u32(dict::ACCT_STATUS_TYPE, dict::acct_status::START)
                .map(|_| ())
                .expect("fits");
        });
        let p = Packet::parse(&buf).expect("parses");
        assert_eq!(
            read(&p, "ap1", "x".into(), Utc::now()),
            AcctAction::Ignore("no Acct-Session-Id")
        );
        assert_eq!(device_from_class("other"), None);
    }
}
