//! RADIUS decoding: any datagram either parses into a checked packet whose attributes and
//! typed readers never panic, or is refused with a decode error. The MAB and accounting
//! readers, the authenticator checks and the CoA reply reader run on whatever parses.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use poortwachter::coa::packet::{build_request, read_response, Kind, SessionIdentity};
use poortwachter::radius::crypto::{check_accounting_authenticator, check_request_ma};
use poortwachter::radius::{dict, Packet};
use poortwachter::server::{acct, request};

const SECRET: &[u8] = b"sim-ap-secret-0123456789";

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::parse(data) else {
        return;
    };
    let _ = (p.code(), p.identifier(), p.authenticator(), p.raw().len());
    for (t, v) in p.attributes() {
        assert!(v.len() <= 253, "attribute {t} of {} bytes", v.len());
    }
    for t in [dict::USER_NAME, dict::STATE, dict::CLASS, dict::NAS_IDENTIFIER] {
        let _ = (p.attr(t), p.text(t), p.u32(t), p.ipv4(t), p.concat(t));
    }
    let _ = p.concat(dict::EAP_MESSAGE);
    let _ = p.vendor_attributes().count();
    let _ = p.message_authenticator_offset();
    let _ = check_request_ma(&p, SECRET);
    let _ = check_accounting_authenticator(&p, SECRET);
    let _ = request::calling_station_mac(&p);
    let _ = request::ssid(&p);
    let _ = request::mab(&p, SECRET);
    let _ = acct::read(&p, "ap", "127.0.0.1".into(), chrono::DateTime::UNIX_EPOCH);
    // the same bytes as the answer to a Disconnect-Request of ours
    let _ = read_response(disconnect_request(), data, SECRET);
});

fn disconnect_request() -> &'static [u8] {
    static REQUEST: OnceLock<Vec<u8>> = OnceLock::new();
    REQUEST.get_or_init(|| {
        let session = SessionIdentity {
            acct_session_id: "80000001".into(),
            calling_station_id: Some("02-00-00-00-00-01".into()),
            user_name: Some("host/sim".into()),
            nas_ip: Some(std::net::Ipv4Addr::LOCALHOST),
            nas_ipv6: None,
            nas_identifier: Some("ap".into()),
        };
        build_request(Kind::Disconnect, 7, &session, None, 1_800_000_000, SECRET)
            .expect("a Disconnect-Request fits")
    })
}
