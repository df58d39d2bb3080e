//! A real OpenLDAP server for the directory sync tests: Debian's `slapd`, started on a temp
//! dir with a `slapd.conf` (mdb backend, the core, cosine, inetorgperson, nis and msuser
//! schemas plus a one-attribute test schema for a contract end date), a root DN, plain LDAP
//! (StartTLS offered) and LDAPS on free loopback ports, with a server certificate from a test
//! CA made with rcgen. Entries are loaded and changed with `ldapadd`, `ldapmodify` and
//! `ldapdelete` (ldap-utils). It runs as the user the tests run as: slapd serves as root
//! (CI) without dropping privileges, and its files are in a temp dir that user owns. Stopped
//! by its PID when dropped. Without the packages a test fails naming them, never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::peers::program;
use super::serving::free_tcp_port;

/// The directory's suffix.
pub const SUFFIX: &str = "dc=gemeente,dc=test";
/// The root DN that loads entries.
pub const ROOT_DN: &str = "cn=admin,dc=gemeente,dc=test";
const ROOT_PW: &str = "root-pw-for-tests";
/// The read-only service account the sync binds as.
pub const SERVICE_DN: &str = "cn=svc-poortwachter,ou=Service,dc=gemeente,dc=test";
/// Its password.
pub const SERVICE_PW: &str = "svc-pw 0123456789";

/// A test schema: a date attribute for the contract end, as many municipalities add one.
const TEST_SCHEMA: &str = "\
attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'employeeEndDate'
  DESC 'last day of the contract, YYYY-MM-DD'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.99999.2.1 NAME 'gemeentePerson' AUXILIARY
  MAY ( employeeEndDate ) )
";

/// A running slapd.
pub struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Plain LDAP (and StartTLS) on 127.0.0.1.
    pub port: u16,
    /// LDAPS on 127.0.0.1.
    pub tls_port: u16,
}

impl Slapd {
    /// Starts slapd and loads the base entries (the suffix, `ou=Mensen`, `ou=Groepen`, the
    /// service account); waits (up to 15 s) until it answers.
    pub fn start() -> Slapd {
        let slapd = program("slapd", "slapd");
        program("ldapadd", "ldap-utils");
        let dir = tempfile::Builder::new()
            .prefix("pw-slapd")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        std::fs::create_dir(d.join("db")).expect("db dir");
        write_tls_files(d);
        std::fs::write(d.join("test.schema"), TEST_SCHEMA).expect("schema");
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include /etc/ldap/schema/msuser.schema\n\
             include {d}/test.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             pidfile {d}/slapd.pid\n\
             TLSCACertificateFile {d}/ca.pem\n\
             TLSCertificateFile {d}/server.pem\n\
             TLSCertificateKeyFile {d}/server.key\n\
             database mdb\n\
             maxsize 10485760\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PW}\n\
             directory {d}/db\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to * by dn.exact=\"{SERVICE_DN}\" read by * none\n",
            d = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).expect("slapd.conf");
        let (port, tls_port) = (free_tcp_port(), free_tcp_port());
        let log = std::fs::File::create(d.join("slapd.log")).expect("log");
        // `-d 0`: in the foreground (its PID is ours to stop), logging nothing but errors
        let child = Command::new(slapd)
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"
            ))
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start slapd");
        let mut s = Slapd {
            child: Some(child),
            dir,
            port,
            tls_port,
        };
        s.wait_ready();
        s.add(&format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Gemeente\ndc: gemeente\n\n\
             dn: ou=Mensen,{SUFFIX}\nobjectClass: organizationalUnit\nou: Mensen\n\n\
             dn: ou=Groepen,{SUFFIX}\nobjectClass: organizationalUnit\nou: Groepen\n\n\
             dn: ou=Service,{SUFFIX}\nobjectClass: organizationalUnit\nou: Service\n\n\
             dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
             cn: svc-poortwachter\nuserPassword: {SERVICE_PW}\n"
        ));
        s
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("slapd ended ({status}): {}", self.log());
            }
            let out = Command::new(program("ldapsearch", "ldap-utils"))
                .args([
                    "-x",
                    "-H",
                    &self.url(),
                    "-b",
                    "",
                    "-s",
                    "base",
                    "-o",
                    "nettimeout=1",
                ])
                .output()
                .expect("ldapsearch");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not answer within 15 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ldap://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://localhost:PORT` (the certificate names localhost and 127.0.0.1).
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://localhost:{}", self.tls_port)
    }

    /// The test CA (PEM) that signed the server certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA that signed nothing here (PEM).
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// The temp dir (for files a test writes next to it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What slapd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    fn tool(&self, name: &str, args: &[&str], stdin: &str) {
        use std::io::Write;
        let mut child = Command::new(program(name, "ldap-utils"))
            .args(["-x", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PW])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect(name);
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write LDIF");
        let out = child.wait_with_output().expect(name);
        assert!(
            out.status.success(),
            "{name} failed: {}{}\n{stdin}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `ldapadd` of these entries (LDIF).
    pub fn add(&self, ldif: &str) {
        self.tool("ldapadd", &[], ldif);
    }

    /// `ldapmodify` with these changes (LDIF).
    pub fn modify(&self, ldif: &str) {
        self.tool("ldapmodify", &[], ldif);
    }

    /// `ldapdelete` of this entry.
    pub fn delete(&self, dn: &str) {
        self.tool("ldapdelete", &[dn], "");
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A test CA, the server certificate it signs for localhost and 127.0.0.1 (with its key),
/// and a second CA that signed nothing, as PEM files in `dir`.
fn write_tls_files(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca = |name: &str| {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("CA");
        (cert.pem(), Issuer::new(params, key))
    };
    let (ca_pem, issuer) = ca("poortwachter test directory CA");
    let (other_pem, _) = ca("some other CA");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    std::fs::write(dir.join("ca.pem"), ca_pem).expect("ca.pem");
    std::fs::write(dir.join("other-ca.pem"), other_pem).expect("other-ca.pem");
    std::fs::write(dir.join("server.pem"), cert.pem()).expect("server.pem");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("server.key");
}
