//! Real 802.1X peers for the tests: hostapd (`driver=wired`) as the access point on one end of
//! a veth pair in the root namespace, wpa_supplicant (`driver=wired`, EAP-TLS) in a network
//! namespace of its own on the other end. What counts is what they conclude: wpa_supplicant's
//! `CTRL-EVENT-EAP-SUCCESS` / `-FAILURE` and `wpa_cli status`, the VLAN hostapd put the station
//! in (`hostapd_cli sta`). Needs root and Debian's hostapd, wpasupplicant and iproute2; without
//! them a test fails naming the package, never skips. Traffic stays on loopback and the veths.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A program the tests drive, or a failure that names its Debian package.
pub fn program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` not found: install the Debian package `{package}` (scripts/test does)")
        })
}

pub fn hostapd() -> PathBuf {
    program("hostapd", "hostapd")
}
pub fn hostapd_cli() -> PathBuf {
    program("hostapd_cli", "hostapd")
}
pub fn wpa_supplicant() -> PathBuf {
    program("wpa_supplicant", "wpasupplicant")
}
pub fn wpa_cli() -> PathBuf {
    program("wpa_cli", "wpasupplicant")
}
pub fn ip_program() -> PathBuf {
    program("ip", "iproute2")
}

/// `ip ARGS`; panics with what it printed unless it succeeds.
pub fn ip(args: &[&str]) {
    let out = std::process::Command::new(ip_program())
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {} failed (these tests need root): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ip ARGS`, whatever comes of it (clean-up).
pub fn ip_quiet(args: &[&str]) {
    let _ = std::process::Command::new(ip_program())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

static NEXT_LAN: AtomicU32 = AtomicU32::new(0);

/// The wire between the access point and the supplicant: a veth pair, the AP's end in the root
/// namespace (hostapd must reach our server on 127.0.0.1), the station's end in a namespace of
/// its own; and one veth per VLAN that hostapd's `vlan_file` names (hostapd's wired driver
/// cannot create interfaces, so they must exist). Names carry the process id and a counter, so
/// tests running in parallel, and other test binaries, never clash; all go on drop.
pub struct Lan {
    /// The common prefix of every name: `pw<pid hex>n<counter>`.
    pub tag: String,
    pub netns: String,
    pub ap_if: String,
    pub station_if: String,
}

impl Lan {
    pub fn new(vlans: &[u16]) -> Lan {
        let tag = format!(
            "pw{:x}n{}",
            std::process::id(),
            NEXT_LAN.fetch_add(1, Ordering::Relaxed)
        );
        let lan = Lan {
            netns: tag.clone(),
            ap_if: format!("{tag}a"),
            station_if: format!("{tag}s"),
            tag,
        };
        // a dead process of the same id may have left these
        lan.remove();
        ip(&["netns", "add", &lan.netns]);
        ip(&[
            "link",
            "add",
            &lan.ap_if,
            "type",
            "veth",
            "peer",
            "name",
            &lan.station_if,
            "netns",
            &lan.netns,
        ]);
        ip(&["link", "set", &lan.ap_if, "up"]);
        ip(&["-n", &lan.netns, "link", "set", &lan.station_if, "up"]);
        for vlan in vlans {
            let name = lan.vlan_if(*vlan);
            let peer = format!("{}p{vlan}", lan.tag);
            ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer]);
        }
        lan
    }

    pub fn vlan_if(&self, vlan: u16) -> String {
        format!("{}v{vlan}", self.tag)
    }

    /// The station's MAC: the address of its end of the wire.
    pub fn set_station_mac(&self, mac: &str) {
        ip(&[
            "-n",
            &self.netns,
            "link",
            "set",
            "dev",
            &self.station_if,
            "address",
            mac,
        ]);
    }

    /// Deletes the namespace (and with it the station's end of the wire) and every link whose
    /// name starts with the tag: the VLAN veths, and the bridges hostapd makes for them should it
    /// not have removed them itself.
    pub fn remove(&self) {
        ip_quiet(&["netns", "del", &self.netns]);
        let links: Vec<String> = std::fs::read_dir("/sys/class/net")
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&self.tag))
                    .collect()
            })
            .unwrap_or_default();
        for link in links {
            ip_quiet(&["link", "del", &link]);
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A process this test started: on drop it gets SIGTERM (so hostapd sends Accounting-Off and
/// removes its bridges), then SIGKILL if it has not gone within 3 s. Only by its own PID.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `program` with its stdout and stderr into `log`.
    pub fn spawn(mut cmd: std::process::Command, log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).expect("create log");
        let err = file.try_clone().expect("clone log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        Daemon { child, log }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (asynchronously: the server shares this runtime) for the first line containing
    /// one of `patterns`; the line and how long after `since` it was seen, or `None` at `limit`.
    pub async fn wait_for(
        &self,
        patterns: &[&str],
        since: Instant,
        limit: Duration,
    ) -> Option<(String, Duration)> {
        self.wait_for_after(0, patterns, since, limit).await
    }

    /// As [`Daemon::wait_for`], in what the log holds beyond its first `mark` bytes.
    pub async fn wait_for_after(
        &self,
        mark: usize,
        patterns: &[&str],
        since: Instant,
        limit: Duration,
    ) -> Option<(String, Duration)> {
        loop {
            let text = self.output();
            if let Some(line) = text
                .get(mark..)
                .unwrap_or_default()
                .lines()
                .find(|l| patterns.iter().any(|p| l.contains(p)))
            {
                return Some((line.to_string(), since.elapsed()));
            }
            if since.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The lines of a log that tell the story, for failure messages (`-dd` logs are long).
pub fn gist(log: &str) -> String {
    let keep: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("round trip time"))
        .filter(|l| {
            [
                "CTRL-EVENT",
                ": AP-",
                "RADIUS:",
                "RADIUS DAS",
                "DAS:",
                "RADIUS message: code",
                "VLAN ID",
                "Invalid VLAN",
                "vlan=",
                "EAP: Received",
                "decision=",
                "state DISCARD",
                "EAP-TLS",
                "SSL: Using",
                "TLS: ",
                "alert",
                "error",
                "fail",
            ]
            .iter()
            .any(|p| l.contains(p))
        })
        .collect();
    keep[keep.len().saturating_sub(60)..].join("\n")
}

/// hostapd on the AP's end of the wire, with our server for authentication and accounting,
/// and a Dynamic Authorization Server (RFC 5176) on `das_port` that takes requests signed with
/// the client's secret from 127.0.0.1.
#[derive(Clone, Copy)]
pub struct ApSettings<'a> {
    /// Our server's authentication and accounting addresses.
    pub auth: SocketAddr,
    pub acct: SocketAddr,
    /// hostapd's Dynamic Authorization Server port (RFC 5176), taking requests from 127.0.0.1.
    pub das_port: u16,
    /// The RADIUS shared secret, also the DAS's.
    pub secret: &'a str,
    /// The loopback address hostapd sends RADIUS from; `None`: 127.0.0.1.
    pub source: Option<&'a str>,
    /// The SSID in Called-Station-Id; `None`: none.
    pub ssid: Option<&'a str>,
    /// The VLANs hostapd can put a station in.
    pub vlans: &'a [u16],
}

pub struct AccessPoint {
    // dropped first: hostapd goes before its interfaces do
    pub daemon: Daemon,
    pub ctrl: PathBuf,
    pub nas_identifier: String,
    pub lan: Lan,
}

impl AccessPoint {
    /// hostapd with the test's defaults: RADIUS from 127.0.0.1, VLANs 100, 200 and 666.
    pub async fn start(
        dir: &Path,
        auth: SocketAddr,
        acct: SocketAddr,
        das_port: u16,
        secret: &str,
    ) -> AccessPoint {
        AccessPoint::start_with(
            dir,
            &ApSettings {
                auth,
                acct,
                das_port,
                secret,
                source: None,
                ssid: None,
                vlans: &[100, 200, 666],
            },
        )
        .await
    }

    /// hostapd as `settings` say; its files (config, control socket, log) in `dir`.
    pub async fn start_with(dir: &Path, settings: &ApSettings<'_>) -> AccessPoint {
        let ApSettings {
            auth,
            acct,
            das_port,
            secret,
            source,
            ssid,
            vlans,
        } = *settings;
        let lan = Lan::new(vlans);
        let ctrl = dir.join("hostapd-ctrl");
        let vlan_file = dir.join("hostapd.vlan");
        // the address hostapd sends RADIUS from (its `radius_client_addr`), which names the
        // RADIUS client group it belongs to
        let source_lines = match source {
            Some(addr) => format!("radius_client_addr={addr}\nown_ip_addr={addr}\n"),
            None => "own_ip_addr=127.0.0.1\n".to_string(),
        };
        // Called-Station-Id carries the SSID (RFC 3580 3.20), as on a Wi-Fi access point
        let ssid_line = ssid.map(|s| format!("ssid={s}\n")).unwrap_or_default();
        let lines: String = vlans
            .iter()
            .map(|v| format!("{v} {}\n", lan.vlan_if(*v)))
            .collect();
        std::fs::write(&vlan_file, lines).expect("write vlan file");
        let nas_identifier = format!("ap-{}", lan.tag);
        let conf = dir.join("hostapd.conf");
        std::fs::write(
            &conf,
            format!(
                "interface={ap_if}\n\
                 driver=wired\n\
                 ctrl_interface={ctrl}\n\
                 logger_stdout=-1\n\
                 logger_stdout_level=1\n\
                 ieee8021x=1\n\
                 eapol_version=2\n\
                 eap_reauth_period=0\n\
                 use_pae_group_addr=1\n\
                 {source_lines}\
                 {ssid_line}\
                 nas_identifier={nas_identifier}\n\
                 auth_server_addr=127.0.0.1\n\
                 auth_server_port={auth_port}\n\
                 auth_server_shared_secret={secret}\n\
                 acct_server_addr=127.0.0.1\n\
                 acct_server_port={acct_port}\n\
                 acct_server_shared_secret={secret}\n\
                 # the VLAN of the Access-Accept (RFC 3580); the wired driver cannot create\n\
                 # interfaces, so each VLAN is one that exists, and hostapd bridges it\n\
                 dynamic_vlan=1\n\
                 vlan_file={vlan_file}\n\
                 vlan_bridge={tag}b\n\
                 radius_das_port={das_port}\n\
                 radius_das_client=127.0.0.1 {secret}\n\
                 radius_das_require_event_timestamp=1\n\
                 radius_das_require_message_authenticator=1\n",
                ap_if = lan.ap_if,
                ctrl = ctrl.display(),
                auth_port = auth.port(),
                acct_port = acct.port(),
                vlan_file = vlan_file.display(),
                tag = lan.tag,
            ),
        )
        .expect("write hostapd.conf");
        let mut cmd = std::process::Command::new(hostapd());
        cmd.args(["-t", "-dd"]).arg(&conf);
        let daemon = Daemon::spawn(cmd, dir.join("hostapd.log"));
        let up = daemon
            .wait_for(
                &["AP-ENABLED", "AP-DISABLED"],
                Instant::now(),
                Duration::from_secs(10),
            )
            .await;
        assert!(
            up.as_ref().is_some_and(|(l, _)| l.contains("AP-ENABLED")),
            "hostapd did not start:\n{}",
            daemon.output()
        );
        AccessPoint {
            daemon,
            ctrl,
            nas_identifier,
            lan,
        }
    }

    /// `hostapd_cli sta MAC`: what hostapd holds about the station (`FAIL` when it has none).
    pub async fn sta(&self, mac: &str) -> String {
        let out = tokio::process::Command::new(hostapd_cli())
            .arg("-p")
            .arg(&self.ctrl)
            .args(["-i", &self.lan.ap_if, "sta", mac])
            .output()
            .await
            .expect("run hostapd_cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The VLAN hostapd put the station in, from `hostapd_cli sta`.
    pub async fn vlan_of(&self, mac: &str) -> Option<u16> {
        self.sta(mac)
            .await
            .lines()
            .find_map(|l| l.strip_prefix("vlan_id="))
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn log(&self) -> String {
        self.daemon.output()
    }
}

/// wpa_supplicant on the station's end of the wire (in its namespace), EAP-TLS with `cert`.
pub struct Station {
    pub daemon: Daemon,
    pub ctrl: PathBuf,
    pub interface: String,
    pub started: Instant,
}

impl Station {
    /// Gives the station's end of the wire the address `mac`, then starts wpa_supplicant.
    pub fn start(
        ap: &AccessPoint,
        dir: &Path,
        cert: &Issued,
        tls13: bool,
        mac: &str,
        server_name: &str,
    ) -> Station {
        let dir = dir.join(format!("station-{}", mac.replace(':', "")));
        std::fs::create_dir_all(&dir).expect("station dir");
        let ctrl = dir.join("ctrl");
        let conf = dir.join("wpa_supplicant.conf");
        std::fs::write(
            &conf,
            format!(
                "ctrl_interface={ctrl}\nap_scan=0\neapol_version=2\n\
                 network={{\n  key_mgmt=IEEE8021X\n  eapol_flags=0\n  eap=TLS\n  \
                 identity=\"host/{label}\"\n  ca_cert=\"{ca}\"\n  private_key=\"{p12}\"\n  \
                 private_key_passwd=\"{password}\"\n  domain_match=\"{server_name}\"\n  \
                 phase1=\"tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1 tls_disable_tlsv1_2={no12} \
                 tls_disable_tlsv1_3={no13}\"\n}}\n",
                ctrl = ctrl.display(),
                label = cert.label,
                ca = cert.ca.display(),
                p12 = cert.p12.display(),
                password = cert.password,
                no12 = u8::from(tls13),
                no13 = u8::from(!tls13),
            ),
        )
        .expect("write wpa_supplicant.conf");
        ap.lan.set_station_mac(mac);
        let mut cmd = std::process::Command::new(ip_program());
        // `ip netns exec` execs the program: the child's PID is wpa_supplicant's
        cmd.args(["netns", "exec", &ap.lan.netns])
            .arg(wpa_supplicant())
            .args(["-t", "-dd", "-D", "wired", "-i", &ap.lan.station_if, "-c"])
            .arg(&conf);
        let started = Instant::now();
        let daemon = Daemon::spawn(cmd, dir.join("wpa_supplicant.log"));
        Station {
            daemon,
            ctrl,
            interface: ap.lan.station_if.clone(),
            started,
        }
    }

    /// The supplicant's own verdict: `CTRL-EVENT-EAP-SUCCESS` or `-FAILURE`, and how long
    /// after the start it came; `None` if neither came within `limit`.
    pub async fn outcome(&self, limit: Duration) -> Option<(Outcome, Duration)> {
        self.outcome_after(0, self.started, limit).await
    }

    /// The verdict logged beyond the log's first `mark` bytes.
    pub async fn outcome_after(
        &self,
        mark: usize,
        since: Instant,
        limit: Duration,
    ) -> Option<(Outcome, Duration)> {
        let (line, took) = self
            .daemon
            .wait_for_after(
                mark,
                &["CTRL-EVENT-EAP-SUCCESS", "CTRL-EVENT-EAP-FAILURE"],
                since,
                limit,
            )
            .await?;
        let outcome = if line.contains("CTRL-EVENT-EAP-SUCCESS") {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        Some((outcome, took))
    }

    /// `wpa_cli status`: `suppPortStatus=Authorized`, `EAP state=SUCCESS`, `eap_tls_version=`...
    pub async fn status(&self) -> String {
        let out = tokio::process::Command::new(wpa_cli())
            .arg("-p")
            .arg(&self.ctrl)
            .args(["-i", &self.interface, "status"])
            .output()
            .await
            .expect("run wpa_cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn log(&self) -> String {
        self.daemon.output()
    }

    /// The station authenticates again (`wpa_cli reauthenticate`: EAPOL-Start), as a device
    /// does when its port goes down and up; its verdict.
    pub async fn reauthenticate(&self) -> Option<(Outcome, Duration)> {
        let mark = self.log().len();
        let out = tokio::process::Command::new(wpa_cli())
            .arg("-p")
            .arg(&self.ctrl)
            .args(["-i", &self.interface, "reauthenticate"])
            .output()
            .await
            .expect("run wpa_cli");
        assert!(out.status.success(), "{out:?}");
        self.outcome_after(mark, Instant::now(), Duration::from_secs(15))
            .await
    }

    /// The station logs off (`wpa_cli logoff`: EAPOL-Logoff) and hostapd takes it off the
    /// port; then wpa_supplicant ends. (Ending it alone says nothing to a wired AP.)
    pub async fn leave(self, ap: &AccessPoint, mac: &str) {
        let out = tokio::process::Command::new(wpa_cli())
            .arg("-p")
            .arg(&self.ctrl)
            .args(["-i", &self.interface, "logoff"])
            .output()
            .await
            .expect("run wpa_cli");
        assert!(out.status.success(), "{out:?}");
        let gone = ap
            .daemon
            .wait_for(
                &[&format!("AP-STA-DISCONNECTED {mac}")],
                Instant::now(),
                Duration::from_secs(5),
            )
            .await;
        assert!(
            gone.is_some(),
            "hostapd kept {mac} after EAPOL-Logoff:\n{}",
            gist(&ap.log())
        );
        self.stop();
    }

    pub fn stop(mut self) {
        self.daemon.stop();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// A certificate our CLI or API issued, as the owner receives it.
pub struct Issued {
    /// The device label: the supplicant's identity is `host/<label>`.
    pub label: String,
    pub p12: PathBuf,
    pub password: String,
    pub ca: PathBuf,
}
