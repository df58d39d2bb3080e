//! The RADIUS server end to end, on both stores: our server on real UDP sockets, FreeRADIUS's
//! `radclient` (Debian `freeradius-utils`) as the access point, assertions on the packets it
//! prints and on the rows stored. Raw sockets only where radclient cannot do the thing
//! (a retransmission, a malformed packet).

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, SubsecRound, Utc};
use poortwachter::activity::{DecisionFilter, SessionFilter};
use poortwachter::config::Config;
use poortwachter::mac::MacAddr;
use poortwachter::model::{Compliance, DeviceKind, NewDevice, NewOwner, Role};
use poortwachter::radius::crypto::{check_response, encode_user_password, sign_request};
use poortwachter::radius::dict::{self, code};
use poortwachter::radius::{Builder, Packet};
use poortwachter::registry::{Change, DeviceRef, Registry, Rules};
use poortwachter::server::stats::Stats;
use poortwachter::server::Server;
use support::{radclient, Backend, Reply, TestDb};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const SECRET: &str = "radclient-test-secret-0123";

fn config(url: &str, clients: &str, extra: &str) -> Config {
    let text = format!(
        r#"
[database]
url = "{url}"

[radius]
auth_listen = "127.0.0.1:0"
acct_listen = "127.0.0.1:0"
{clients}

[vlans]
workspace = 100
guest = 200
quarantine = 666

[policy]
compliance_max_age = "30d"
session_timeout = "8h"
{extra}
"#
    );
    Config::from_toml(&text, Path::new("test.toml"), Vec::new()).expect("test config")
}

fn local_client() -> String {
    format!(
        "[[radius.clients]]\nname = \"ap-test\"\nnetwork = \"127.0.0.1/32\"\nsecret = \"{SECRET}\"\n"
    )
}

/// A server on ephemeral ports over a fresh registry.
struct Rig {
    db: TestDb,
    registry: Registry,
    auth: SocketAddr,
    acct: SocketAddr,
    stats: Arc<Stats>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Arc<Stats>>>,
}

impl Rig {
    async fn start(backend: Backend, clients: &str, extra: &str) -> Rig {
        let db = TestDb::new(backend).await;
        let cfg = config(&db.url, clients, extra);
        let registry = Registry::connect(
            &cfg.database.url,
            4,
            Rules {
                max_devices_per_owner: 5,
                timezone: cfg.policy.timezone,
            },
        )
        .await
        .expect("connect");
        registry.migrate().await.expect("migrate");
        let server = Server::bind(&cfg, registry.store_arc())
            .await
            .expect("bind");
        let auth = server.auth_addr().expect("auth addr");
        let acct = server.acct_addr().expect("acct addr");
        let stats = server.stats();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Rig {
            db,
            registry,
            auth,
            acct,
            stats,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server (flushing the decision log).
    async fn stop(&mut self) -> Arc<Stats> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => t.await.expect("server task"),
            None => self.stats.clone(),
        }
    }

    fn counter(&self, f: impl Fn(&Stats) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.stats).load(Ordering::Relaxed)
    }
}

/// Sessions not yet stopped, newest first.
async fn active_sessions(rig: &Rig) -> Vec<poortwachter::activity::Session> {
    rig.registry
        .sessions(&SessionFilter {
            active_only: true,
            mac: None,
            limit: None,
        })
        .await
        .expect("sessions")
}

/// Every stored decision about one MAC, newest first.
async fn decisions_for(rig: &Rig, mac: &str) -> Vec<poortwachter::activity::DecisionRecord> {
    rig.registry
        .decisions(&DecisionFilter {
            mac: Some(MacAddr::parse_any(mac).expect("mac")),
            username: None,
            limit: None,
        })
        .await
        .expect("decisions")
}

/// Asks again every 50 ms until `done` or the deadline; returns the last answer.
async fn until_within<F, Fut>(limit: Duration, mut ask: F, done: impl Fn(&Reply) -> bool) -> Reply
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let start = std::time::Instant::now();
    loop {
        let reply = ask().await;
        if done(&reply) || start.elapsed() >= limit {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// radclient prints octets as `0x...`: the text inside.
fn text_of(v: &str) -> String {
    match v.strip_prefix("0x") {
        Some(hex) => {
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        None => v.to_string(),
    }
}

fn mab_attrs(mac: &str) -> String {
    format!(
        "User-Name = \"{mac}\"\nUser-Password = \"{mac}\"\nCalling-Station-Id = \"{}\"\n\
         Called-Station-Id = \"00-11-22-33-44-55:Gemeente-Werkplek\"\nNAS-IP-Address = 127.0.0.1\n\
         NAS-Port-Type = Wireless-802.11\nService-Type = Call-Check\nMessage-Authenticator = 0x00\n",
        mac.to_uppercase()
    )
}

fn owner(username: &str, role: Role, until: Option<chrono::NaiveDate>) -> NewOwner {
    NewOwner {
        username: username.into(),
        display_name: format!("Test {username}"),
        email: None,
        role,
        department: None,
        valid_from: None,
        valid_until: until,
    }
}

async fn device(reg: &Registry, owner: &str, mac: &str, change: &Change) -> uuid::Uuid {
    let new = NewDevice {
        owner: owner.into(),
        macs: vec![MacAddr::parse_any(mac).expect("mac")],
        label: format!("laptop {mac}"),
        kind: DeviceKind::Laptop,
    };
    reg.register_device(new, change).await.expect("register").id
}

async fn compliance(reg: &Registry, id: uuid::Uuid, c: Compliance, change: &Change) {
    reg.set_compliance(&DeviceRef::Id(id), c, Some("test".into()), change)
        .await
        .expect("compliance");
}

fn ict() -> Change {
    Change::by("ict.test")
}

fn days_ago(n: u64) -> Change {
    Change {
        actor: "ict.test".into(),
        now: (Utc::now() - Days::new(n)).trunc_subsecs(6),
    }
}

fn today() -> chrono::NaiveDate {
    Utc::now()
        .with_timezone(&chrono_tz::Europe::Amsterdam)
        .date_naive()
}

/// The registry the decision table runs against.
async fn seed(reg: &Registry) {
    let now = ict();
    let month_ago = days_ago(40);
    let later = today() + Days::new(60);
    let ended = today() - Days::new(3);
    reg.add_owner(owner("s.staff", Role::Staff, None), &month_ago)
        .await
        .expect("owner");
    reg.add_owner(owner("t.temp", Role::Temp, Some(later)), &now)
        .await
        .expect("owner");
    reg.add_owner(owner("i.intern", Role::Intern, Some(later)), &now)
        .await
        .expect("owner");
    reg.add_owner(owner("o.oud", Role::Temp, Some(ended)), &month_ago)
        .await
        .expect("owner");
    reg.add_owner(owner("d.dicht", Role::Staff, None), &now)
        .await
        .expect("owner");

    let a = device(reg, "s.staff", "02-00-00-00-00-01", &month_ago).await;
    compliance(reg, a, Compliance::Compliant, &now).await;
    let b = device(reg, "t.temp", "02-00-00-00-00-02", &now).await;
    compliance(reg, b, Compliance::Compliant, &now).await;
    let c = device(reg, "s.staff", "02-00-00-00-00-03", &month_ago).await;
    compliance(reg, c, Compliance::Noncompliant, &now).await;
    let d = device(reg, "s.staff", "02-00-00-00-00-04", &month_ago).await;
    compliance(reg, d, Compliance::Compliant, &month_ago).await; // 40 days old: stale
    let e = device(reg, "s.staff", "02-00-00-00-00-05", &month_ago).await;
    compliance(reg, e, Compliance::Compliant, &now).await;
    reg.set_device_status(
        &DeviceRef::Id(e),
        poortwachter::model::DeviceStatus::Revoked,
        Some("left the municipality".into()),
        &now,
    )
    .await
    .expect("revoke");
    let f = device(reg, "o.oud", "02-00-00-00-00-06", &month_ago).await;
    compliance(reg, f, Compliance::Compliant, &now).await;
    let g = device(reg, "d.dicht", "02-00-00-00-00-07", &now).await;
    compliance(reg, g, Compliance::Compliant, &now).await;
    reg.set_owner_disabled("d.dicht", true, None, &now)
        .await
        .expect("disable");
    let h = device(reg, "i.intern", "02-00-00-00-00-08", &now).await;
    compliance(reg, h, Compliance::Unknown, &now).await;
}

both_stores!(mab_decision_table, |backend| async move {
    let mut rig = Rig::start(backend, &local_client(), "").await;
    seed(&rig.registry).await;
    let cases: &[(&str, &str, Option<&str>, &str)] = &[
        (
            "02-00-00-00-00-01",
            "Access-Accept",
            Some("100"),
            "compliant",
        ),
        (
            "02-00-00-00-00-02",
            "Access-Accept",
            Some("200"),
            "compliant",
        ),
        (
            "02-00-00-00-00-03",
            "Access-Accept",
            Some("666"),
            "noncompliant",
        ),
        (
            "02-00-00-00-00-04",
            "Access-Accept",
            Some("666"),
            "compliance_stale",
        ),
        (
            "02-00-00-00-00-08",
            "Access-Accept",
            Some("666"),
            "compliance_unknown",
        ),
        ("02-00-00-00-00-05", "Access-Reject", None, "device_revoked"),
        ("02-00-00-00-00-06", "Access-Reject", None, "owner_expired"),
        ("02-00-00-00-00-07", "Access-Reject", None, "owner_disabled"),
        ("02-00-00-00-00-99", "Access-Reject", None, "unknown_device"),
    ];
    for (mac, want, vlan, reason) in cases {
        let reply = radclient(rig.auth, "auth", SECRET, &mab_attrs(mac)).await;
        assert_eq!(
            reply.code.as_deref(),
            Some(*want),
            "{mac}: {}",
            reply.output
        );
        // every reply is signed, Message-Authenticator included (radclient checks it)
        assert!(
            reply.attr("Message-Authenticator").is_some(),
            "{mac}: no Message-Authenticator in {}",
            reply.output
        );
        match vlan {
            Some(v) => {
                assert_eq!(reply.attr("Tunnel-Type"), Some("VLAN"), "{}", reply.output);
                assert_eq!(
                    reply.attr("Tunnel-Medium-Type"),
                    Some("IEEE-802"),
                    "{}",
                    reply.output
                );
                assert_eq!(
                    reply.attr("Tunnel-Private-Group-Id"),
                    Some(*v),
                    "{}",
                    reply.output
                );
                let timeout: u32 = reply
                    .attr("Session-Timeout")
                    .expect("Session-Timeout")
                    .parse()
                    .expect("number");
                assert!(timeout > 0 && timeout <= 8 * 3600, "{timeout}");
                let class = reply.attr("Class").map(text_of).unwrap_or_default();
                assert!(
                    class.starts_with("pw1;device=")
                        && class.ends_with(&format!("reason={reason}")),
                    "{class}: {}",
                    reply.output
                );
            }
            None => {
                assert!(
                    reply.attr("Tunnel-Private-Group-Id").is_none(),
                    "{}",
                    reply.output
                );
            }
        }
    }
    // the temp's Session-Timeout never reaches past the contract end
    let reply = radclient(rig.auth, "auth", SECRET, &mab_attrs("02-00-00-00-00-02")).await;
    let timeout: i64 = reply
        .attr("Session-Timeout")
        .expect("Session-Timeout")
        .parse()
        .expect("number");
    assert!(timeout <= 8 * 3600);

    rig.stop().await;
    assert_eq!(rig.counter(|s| &s.accepts), 6);
    assert_eq!(rig.counter(|s| &s.rejects), 4);
    // every decision stored, with its reason; the unknown device's counted in its minute
    let unknown = MacAddr::parse_any("02-00-00-00-00-99").expect("mac");
    let counted = rig
        .registry
        .decision_aggregates(unknown, 5)
        .await
        .expect("counts");
    assert_eq!(counted.len(), 1);
    assert_eq!(
        (
            counted[0].reason.as_str(),
            counted[0].count,
            counted[0].nas.as_str()
        ),
        ("unknown_device", 1, "ap-test")
    );
    assert_eq!(counted[0].macs, vec![unknown]);
    assert_eq!(rig.db.count("decision_aggregates").await, 1);
    for (mac, want, vlan, reason) in cases.iter().filter(|c| c.3 != "unknown_device") {
        let found = rig
            .registry
            .decisions(&DecisionFilter {
                mac: Some(MacAddr::parse_any(mac).expect("mac")),
                username: None,
                limit: Some(5),
            })
            .await
            .expect("decisions");
        let latest = found
            .first()
            .unwrap_or_else(|| panic!("no decision for {mac}"));
        assert_eq!(latest.reason, *reason, "{mac}");
        assert_eq!(
            latest.outcome,
            if *want == "Access-Accept" {
                "accept"
            } else {
                "reject"
            }
        );
        assert_eq!(latest.vlan.map(|v| v.to_string()).as_deref(), *vlan);
        assert_eq!(latest.nas, "ap-test");
        assert_eq!(latest.ssid.as_deref(), Some("Gemeente-Werkplek"));
    }
    let expired = rig
        .registry
        .decisions(&DecisionFilter {
            mac: None,
            username: Some("O.OUD".into()),
            limit: Some(1),
        })
        .await
        .expect("decisions");
    let ended = (today() - Days::new(3)).to_string();
    assert!(
        expired[0].message.contains("o.oud") && expired[0].message.contains(&ended),
        "{}",
        expired[0].message
    );
    // an accepted device is marked last seen
    let seen = rig
        .registry
        .device_by_mac(MacAddr::parse_any("02-00-00-00-00-01").expect("mac"))
        .await
        .expect("read")
        .expect("device");
    assert_eq!(seen.last_seen_nas.as_deref(), Some("ap-test"));
    assert_eq!(seen.last_seen_ssid.as_deref(), Some("Gemeente-Werkplek"));
    assert_eq!(rig.db.count("decisions").await, 9);
});

both_stores!(
    refused_requests_get_no_answer_and_are_counted,
    |backend| async move {
        let mut rig = Rig::start(backend, &local_client(), "").await;
        seed(&rig.registry).await;

        // wrong secret: the Message-Authenticator fails
        let reply = radclient(
            rig.auth,
            "auth",
            "not-the-right-secret-xx",
            &mab_attrs("02-00-00-00-00-01"),
        )
        .await;
        assert_eq!(reply.code, None, "{}", reply.output);
        assert_eq!(rig.counter(|s| &s.dropped_bad_authenticator), 1);

        // no Message-Authenticator (BlastRADIUS): dropped
        let attrs = mab_attrs("02-00-00-00-00-01").replace("Message-Authenticator = 0x00\n", "");
        let reply = radclient(rig.auth, "auth", SECRET, &attrs).await;
        assert_eq!(reply.code, None, "{}", reply.output);
        assert_eq!(rig.counter(|s| &s.dropped_missing_message_authenticator), 1);

        // malformed packets over a raw socket: truncated, bad length, attribute overflow, oversize
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let mut overflow = vec![1u8, 9, 0, 24];
        overflow.extend_from_slice(&[0; 16]);
        overflow.extend_from_slice(&[1, 40, b'a', b'b']);
        let mut zero_len_attr = vec![1u8, 10, 0, 22];
        zero_len_attr.extend_from_slice(&[0; 16]);
        zero_len_attr.extend_from_slice(&[1, 0]);
        let bad: Vec<Vec<u8>> = vec![
            vec![1, 2, 3],
            {
                let mut p = vec![1u8, 5, 0x10, 0x01];
                p.extend_from_slice(&[0; 16]);
                p
            },
            overflow,
            zero_len_attr,
            vec![1u8; 5000],
        ];
        for b in &bad {
            sock.send_to(b, rig.auth).await.expect("send");
        }
        let mut buf = [0u8; 4096];
        let got = tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await;
        assert!(got.is_err(), "a malformed packet was answered");
        assert_eq!(rig.counter(|s| &s.dropped_malformed), bad.len() as u64);

        // the server still answers afterwards
        let reply = radclient(rig.auth, "auth", SECRET, &mab_attrs("02-00-00-00-00-01")).await;
        assert_eq!(
            reply.code.as_deref(),
            Some("Access-Accept"),
            "{}",
            reply.output
        );

        // Status-Server (RFC 5997) is answered, with a Message-Authenticator
        let reply = radclient(rig.auth, "status", SECRET, "Message-Authenticator = 0x00\n").await;
        assert_eq!(
            reply.code.as_deref(),
            Some("Access-Accept"),
            "{}",
            reply.output
        );
        assert_eq!(rig.counter(|s| &s.status), 1);

        let stats = rig.stop().await;
        assert_eq!(stats.accepts.load(Ordering::Relaxed), 1);
        // nothing stored for the dropped requests
        assert_eq!(rig.db.count("decisions").await, 1);
    }
);

both_stores!(unknown_client_is_ignored, |backend| async move {
    let clients = format!(
        "[[radius.clients]]\nname = \"elsewhere\"\nnetwork = \"10.1.0.0/16\"\nsecret = \"{SECRET}\"\n"
    );
    let mut rig = Rig::start(backend, &clients, "").await;
    seed(&rig.registry).await;
    let reply = radclient(rig.auth, "auth", SECRET, &mab_attrs("02-00-00-00-00-01")).await;
    assert_eq!(reply.code, None, "{}", reply.output);
    rig.stop().await;
    assert_eq!(rig.counter(|s| &s.dropped_unknown_client), 1);
    assert_eq!(rig.db.count("decisions").await, 0);
});

/// An Access-Request for `mac` signed with our codec: identifier and authenticator fixed.
fn raw_mab(mac: &str, id: u8, authenticator: [u8; 16]) -> Vec<u8> {
    let mut b = Builder::with_message_authenticator(code::ACCESS_REQUEST, id);
    b.add_text(dict::USER_NAME, mac).expect("fits");
    b.add(
        dict::USER_PASSWORD,
        &encode_user_password(mac.as_bytes(), SECRET.as_bytes(), &authenticator),
    )
    .expect("fits");
    b.add_text(dict::CALLING_STATION_ID, mac).expect("fits");
    let (mut buf, off) = b.into_unsigned();
    sign_request(&mut buf, off, &authenticator, SECRET.as_bytes());
    buf
}

both_stores!(
    retransmission_gets_the_identical_reply,
    |backend| async move {
        let mut rig = Rig::start(backend, &local_client(), "").await;
        seed(&rig.registry).await;
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let auth = [0x5a; 16];
        let request = raw_mab("02-00-00-00-00-01", 77, auth);
        let mut replies = Vec::new();
        for _ in 0..3 {
            sock.send_to(&request, rig.auth).await.expect("send");
            let mut buf = [0u8; 4096];
            let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
                .await
                .expect("an answer")
                .expect("recv");
            replies.push(buf[..n].to_vec());
        }
        assert_eq!(replies[0], replies[1]);
        assert_eq!(replies[0], replies[2]);
        let p = Packet::parse(&replies[0]).expect("reply parses");
        assert_eq!(p.code(), code::ACCESS_ACCEPT);
        assert!(check_response(&p, &auth, SECRET.as_bytes(), true));
        // a new request (new authenticator, same id) is a new decision
        sock.send_to(&raw_mab("02-00-00-00-00-01", 77, [0x6b; 16]), rig.auth)
            .await
            .expect("send");
        let mut buf = [0u8; 4096];
        tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
            .await
            .expect("an answer")
            .expect("recv");
        rig.stop().await;
        assert_eq!(rig.counter(|s| &s.duplicates), 2);
        assert_eq!(rig.counter(|s| &s.accepts), 2);
        assert_eq!(rig.db.count("decisions").await, 2);
    }
);

both_stores!(accounting_start_interim_stop, |backend| async move {
    let mut rig = Rig::start(backend, &local_client(), "").await;
    seed(&rig.registry).await;
    let base = "Acct-Session-Id = \"sess-0001\"\nUser-Name = \"02-00-00-00-00-01\"\n\
                Calling-Station-Id = \"02-00-00-00-00-01\"\n\
                Called-Station-Id = \"00-11-22-33-44-55:Gemeente-Werkplek\"\n\
                NAS-IP-Address = 127.0.0.1\nNAS-Port = 7\nFramed-IP-Address = 10.20.0.5\n";
    let start = format!("{base}Acct-Status-Type = Start\n");
    let reply = radclient(rig.acct, "acct", SECRET, &start).await;
    assert_eq!(
        reply.code.as_deref(),
        Some("Accounting-Response"),
        "{}",
        reply.output
    );
    let active = active_sessions(&rig).await;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].acct_session_id, "sess-0001");
    assert_eq!(active[0].owner.as_deref(), Some("s.staff"));
    assert_eq!(active[0].framed_ip.as_deref(), Some("10.20.0.5"));
    assert_eq!(active[0].ssid.as_deref(), Some("Gemeente-Werkplek"));
    assert_eq!(active[0].nas_port, Some(7));

    let interim = format!(
        "{base}Acct-Status-Type = Interim-Update\nAcct-Session-Time = 60\nAcct-Input-Octets = 1000\nAcct-Output-Octets = 2000\n"
    );
    let reply = radclient(rig.acct, "acct", SECRET, &interim).await;
    assert_eq!(
        reply.code.as_deref(),
        Some("Accounting-Response"),
        "{}",
        reply.output
    );
    let stop = format!(
        "{base}Acct-Status-Type = Stop\nAcct-Session-Time = 120\nAcct-Input-Octets = 5000\n\
         Acct-Input-Gigawords = 1\nAcct-Output-Octets = 7000\nAcct-Terminate-Cause = User-Request\n"
    );
    let reply = radclient(rig.acct, "acct", SECRET, &stop).await;
    assert_eq!(
        reply.code.as_deref(),
        Some("Accounting-Response"),
        "{}",
        reply.output
    );
    let all = rig
        .registry
        .sessions(&SessionFilter::default())
        .await
        .expect("sessions");
    assert_eq!(all.len(), 1, "{all:?}");
    let s = &all[0];
    assert!(s.stopped_at.is_some());
    assert_eq!(s.session_time, 120);
    assert_eq!(s.input_octets, (1i64 << 32) + 5000);
    assert_eq!(s.output_octets, 7000);
    assert_eq!(s.terminate_cause.as_deref(), Some("User-Request"));

    // Accounting-On closes what the NAS had open
    let reply = radclient(
        rig.acct,
        "acct",
        SECRET,
        &start.replace("sess-0001", "sess-0002"),
    )
    .await;
    assert_eq!(
        reply.code.as_deref(),
        Some("Accounting-Response"),
        "{}",
        reply.output
    );
    let reply = radclient(
        rig.acct,
        "acct",
        SECRET,
        "Acct-Status-Type = Accounting-On\nNAS-IP-Address = 127.0.0.1\nAcct-Session-Id = \"x\"\n",
    )
    .await;
    assert_eq!(
        reply.code.as_deref(),
        Some("Accounting-Response"),
        "{}",
        reply.output
    );
    let active = active_sessions(&rig).await;
    assert!(active.is_empty(), "{active:?}");

    // a wrong secret is not answered and not stored
    let reply = radclient(
        rig.acct,
        "acct",
        "not-the-right-secret-xx",
        &start.replace("sess-0001", "sess-0003"),
    )
    .await;
    assert_eq!(reply.code, None, "{}", reply.output);
    rig.stop().await;
    assert_eq!(rig.counter(|s| &s.dropped_bad_authenticator), 1);
    assert_eq!(rig.db.count("sessions").await, 2);
});

both_stores!(
    revoke_in_another_process_applies_to_the_next_login,
    |backend| async move {
        let mut rig = Rig::start(backend, &local_client(), "").await;
        seed(&rig.registry).await;
        let reply = radclient(rig.auth, "auth", SECRET, &mab_attrs("02-00-00-00-00-01")).await;
        assert_eq!(
            reply.code.as_deref(),
            Some("Access-Accept"),
            "{}",
            reply.output
        );
        // a second registry connection plays the CLI in another process
        let other = Registry::connect(
            &rig.db.url,
            1,
            Rules {
                max_devices_per_owner: 5,
                timezone: chrono_tz::Europe::Amsterdam,
            },
        )
        .await
        .expect("connect");
        let mac = MacAddr::parse_any("02-00-00-00-00-01").expect("mac");
        other
            .set_device_status(
                &DeviceRef::Mac(mac),
                poortwachter::model::DeviceStatus::Lost,
                Some("stolen".into()),
                &ict(),
            )
            .await
            .expect("lost");
        // PostgreSQL notifies at commit; SQLite is polled every 100 ms
        // within a second, always (asked again every 50 ms)
        let reply = until_within(
            Duration::from_secs(1),
            || {
                let auth = rig.auth;
                async move { radclient(auth, "auth", SECRET, &mab_attrs("02-00-00-00-00-01")).await }
            },
            |r| r.code.as_deref() == Some("Access-Reject"),
        )
        .await;
        assert_eq!(
            reply.code.as_deref(),
            Some("Access-Reject"),
            "{}",
            reply.output
        );
        // and a compliance change the same way
        other
            .set_compliance(
                &DeviceRef::Mac(MacAddr::parse_any("02-00-00-00-00-02").expect("mac")),
                Compliance::Noncompliant,
                Some("antivirus off".into()),
                &ict(),
            )
            .await
            .expect("compliance");
        // within a second, always (asked again every 50 ms)
        let reply = until_within(
            Duration::from_secs(1),
            || {
                let auth = rig.auth;
                async move { radclient(auth, "auth", SECRET, &mab_attrs("02-00-00-00-00-02")).await }
            },
            |r| r.attr("Tunnel-Private-Group-Id") == Some("666"),
        )
        .await;
        assert_eq!(
            reply.attr("Tunnel-Private-Group-Id"),
            Some("666"),
            "{}",
            reply.output
        );
        rig.stop().await;
        let found = rig
            .registry
            .decisions(&DecisionFilter {
                mac: Some(mac),
                username: None,
                limit: None,
            })
            .await
            .expect("decisions");
        assert_eq!(found[0].reason, "device_lost");
        assert!(found[0].message.contains("stolen"), "{}", found[0].message);
    }
);

both_stores!(ipv6_listener_and_client, |backend| async move {
    let clients = format!(
        "[[radius.clients]]\nname = \"ap-v6\"\nnetwork = \"::1/128\"\nsecret = \"{SECRET}\"\n"
    );
    let db = TestDb::new(backend).await;
    let text = format!(
        "[database]\nurl = \"{}\"\n[radius]\nauth_listen = \"[::1]:0\"\nacct_listen = \"[::1]:0\"\n{clients}\n\
         [vlans]\nworkspace = 100\nguest = 200\nquarantine = 666\n",
        db.url
    );
    let cfg = Config::from_toml(&text, Path::new("v6.toml"), Vec::new()).expect("config");
    let registry = Registry::connect(
        &db.url,
        2,
        Rules {
            max_devices_per_owner: 5,
            timezone: cfg.policy.timezone,
        },
    )
    .await
    .expect("connect");
    registry.migrate().await.expect("migrate");
    seed(&registry).await;
    let server = Server::bind(&cfg, registry.store_arc())
        .await
        .expect("bind");
    let auth = server.auth_addr().expect("addr");
    assert!(auth.is_ipv6());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let reply = radclient(auth, "auth", SECRET, &mab_attrs("02-00-00-00-00-02")).await;
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    assert_eq!(
        reply.attr("Tunnel-Private-Group-Id"),
        Some("200"),
        "{}",
        reply.output
    );
    let _ = tx.send(());
    let stats = task.await.expect("server");
    assert_eq!(stats.accepts.load(Ordering::Relaxed), 1);
    let found = registry
        .decisions(&DecisionFilter {
            mac: None,
            username: Some("t.temp".into()),
            limit: None,
        })
        .await
        .expect("decisions");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].nas, "ap-v6");
    assert_eq!(found[0].nas_ip.as_deref(), Some("127.0.0.1"));
});

both_stores!(
    repeated_identical_decisions_are_folded_not_lost,
    |backend| async move {
        let mut rig = Rig::start(backend, &local_client(), "").await;
        seed(&rig.registry).await;
        for _ in 0..5 {
            let reply = radclient(rig.auth, "auth", SECRET, &mab_attrs("02-00-00-00-00-01")).await;
            assert_eq!(
                reply.code.as_deref(),
                Some("Access-Accept"),
                "{}",
                reply.output
            );
        }
        let reply = radclient(rig.auth, "auth", SECRET, &mab_attrs("02-00-00-00-00-99")).await;
        assert_eq!(
            reply.code.as_deref(),
            Some("Access-Reject"),
            "{}",
            reply.output
        );
        rig.stop().await;
        let rows = decisions_for(&rig, "02-00-00-00-00-01").await;
        // the first is stored at once; the other four are folded and written at shutdown as one
        // row that stands for itself and three more
        assert_eq!(rows.len(), 2, "{rows:?}");
        let represented: u32 = rows.iter().map(|r| 1 + r.repeats).sum();
        assert_eq!(represented, 5);
        assert_eq!(rows[0].repeats, 3);
        assert_eq!(rig.counter(|s| &s.accepts), 5);
        // the unknown device is not a row of its own: it is counted in its minute
        assert_eq!(rig.db.count("decisions").await, 2);
        let unknown = MacAddr::parse_any("02-00-00-00-00-99").expect("mac");
        let counted = rig
            .registry
            .decision_aggregates(unknown, 5)
            .await
            .expect("counts");
        assert_eq!(counted.len(), 1, "{counted:?}");
        assert_eq!(
            (counted[0].reason.as_str(), counted[0].count),
            ("unknown_device", 1)
        );
    }
);

both_stores!(
    chap_mab_disabled_clients_and_ssid_rules,
    |backend| async move {
        // two clients: MAB off for the 127.0.0.2 one; only the closed SSID is served
        let clients = format!(
        "{}[[radius.clients]]\nname = \"no-mab\"\nnetwork = \"127.0.0.2/32\"\nsecret = \"{SECRET}\"\nmab = false\n",
        local_client()
    );
        let mut rig = Rig::start(backend, &clients, "ssids = [\"Gemeente-Werkplek\"]").await;
        seed(&rig.registry).await;

        // CHAP (radclient computes CHAP-Password from the cleartext) is MAB too
        // (through a proxy: its Proxy-States come back unchanged, in order; RFC 2865 §5.33)
        let chap = mab_attrs("02-00-00-00-00-01").replace("User-Password", "CHAP-Password")
            + "Proxy-State = 0x0a0b0c\nProxy-State = 0x0d\n";
        let reply = radclient(rig.auth, "auth", SECRET, &chap).await;
        let echoed: Vec<&str> = reply
            .attrs
            .iter()
            .filter(|(k, _)| k == "Proxy-State")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(echoed, ["0x0a0b0c", "0x0d"], "{}", reply.output);
        assert_eq!(
            reply.code.as_deref(),
            Some("Access-Accept"),
            "{}",
            reply.output
        );
        assert_eq!(
            reply.attr("Tunnel-Private-Group-Id"),
            Some("100"),
            "{}",
            reply.output
        );

        // a wrong MAB password
        let wrong = mab_attrs("02-00-00-00-00-01").replace(
            "User-Password = \"02-00-00-00-00-01\"",
            "User-Password = \"not-the-mac\"",
        );
        let reply = radclient(rig.auth, "auth", SECRET, &wrong).await;
        assert_eq!(
            reply.code.as_deref(),
            Some("Access-Reject"),
            "{}",
            reply.output
        );

        // another SSID is refused even for a compliant staff device
        let open = mab_attrs("02-00-00-00-00-02").replace(":Gemeente-Werkplek", ":Gasten");
        let reply = radclient(rig.auth, "auth", SECRET, &open).await;
        assert_eq!(
            reply.code.as_deref(),
            Some("Access-Reject"),
            "{}",
            reply.output
        );

        // from the client with MAB disabled (radclient sends from 127.0.0.1, so use a raw socket
        // bound to 127.0.0.2)
        let sock = UdpSocket::bind("127.0.0.2:0")
            .await
            .expect("bind 127.0.0.2");
        sock.send_to(&raw_mab("02-00-00-00-00-01", 9, [0x33; 16]), rig.auth)
            .await
            .expect("send");
        let mut buf = [0u8; 4096];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
            .await
            .expect("an answer")
            .expect("recv");
        let p = Packet::parse(&buf[..n]).expect("reply parses");
        assert_eq!(p.code(), code::ACCESS_REJECT);
        assert!(check_response(&p, &[0x33; 16], SECRET.as_bytes(), true));

        rig.stop().await;
        let reasons: Vec<String> = rig
            .registry
            .decisions(&DecisionFilter {
                mac: None,
                username: Some("s.staff".into()),
                limit: None,
            })
            .await
            .expect("decisions")
            .into_iter()
            .map(|d| d.reason)
            .collect();
        assert!(reasons.contains(&"compliant".to_string()), "{reasons:?}");
        let all = decisions_for(&rig, "02-00-00-00-00-01").await;
        let codes: Vec<&str> = all.iter().map(|d| d.reason.as_str()).collect();
        assert!(codes.contains(&"mab_bad_password"), "{codes:?}");
        assert!(codes.contains(&"mab_disabled"), "{codes:?}");
        let temp = decisions_for(&rig, "02-00-00-00-00-02").await;
        assert_eq!(temp[0].reason, "ssid_not_served");
        assert_eq!(temp[0].ssid.as_deref(), Some("Gasten"));
    }
);
