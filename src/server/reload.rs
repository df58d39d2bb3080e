//! Reloading the configuration without a restart (SIGHUP, `systemctl reload`): the new
//! configuration is loaded and validated whole, the EAP server certificate, key and trusted
//! CAs are read again, and only then are the RADIUS clients (and their secrets), the policy,
//! the VLANs and the EAP certificate swapped in, at once. A configuration that fails any of
//! this changes nothing. The Disconnect/CoA enforcer reads the same clients and rules (a
//! client's `coa_port`, `coa_action` and secret included), so it follows the swap with no
//! list of its own. Settings a running process cannot change (listen addresses, the
//! database, `[coa]`, ...) are named as needing a restart and left as they are. Open EAP
//! conversations go on (the engine stays; new handshakes use the new certificate), and a
//! request in progress finishes with the client entry it came in with.

use std::sync::Arc;

use crate::config::{ClientConfig, Config};
use crate::policy;

use super::access::Client;
use super::{eap, Shared};

/// Why a validated configuration could not be put in force (the running one stays); a
/// file that does not load is refused before, by [`Config::load`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The EAP-TLS server certificate, key or trusted CAs cannot be used.
    #[error("802.1X EAP-TLS: {0}")]
    Eap(#[from] crate::eap::tls::TlsSetupError),
}

/// What a reload changed, for the log (names only, never a secret).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Clients that are new.
    pub clients_added: Vec<String>,
    /// Clients no longer configured.
    pub clients_removed: Vec<String>,
    /// Clients whose network, secret(s) or options (`coa_port` and `coa_action` included)
    /// changed.
    pub clients_changed: Vec<String>,
    /// Sections of the decision rules that changed (`policy`, `vlans`, `roles`, `radius`).
    pub rules_changed: Vec<&'static str>,
    /// What the EAP side did: `certificate reloaded`, `enabled`, `disabled`, `off`.
    pub eap: &'static str,
    /// Keys that differ from the running process but need a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Applies new configurations to a running server; made by [`super::Server::reloader`].
pub struct Reloader {
    shared: Arc<Shared>,
    /// What the process was started with: keys that need a restart are compared to it.
    started: Config,
    /// What is in force now; shared with what reads the configuration of the moment (the
    /// certificate expiry gauges and the daily expiry log).
    current: Arc<arc_swap::ArcSwap<Config>>,
}

impl super::Server {
    /// A handle that reloads this server's configuration; `config` is what it was started
    /// with.
    pub fn reloader(&self, config: &Config) -> Reloader {
        Reloader {
            shared: self.shared.clone(),
            started: config.clone(),
            current: Arc::new(arc_swap::ArcSwap::from_pointee(config.clone())),
        }
    }
}

impl Reloader {
    /// The configuration in force, updated by every reload that is applied.
    pub fn in_force(&self) -> Arc<arc_swap::ArcSwap<Config>> {
        self.current.clone()
    }

    /// Validates `new` (the EAP files read again) and puts what can change at run time in
    /// force; on an error nothing changes.
    pub fn apply(&self, new: Config) -> Result<Changes, ReloadError> {
        // everything that can fail first
        let tls = eap::tls_server(&new)?;
        let clients: Vec<Client> = new
            .radius
            .clients
            .iter()
            .map(|c| Client::from_config(c, &new.radius))
            .collect();
        let rules = policy::Rules::from_config(&new);

        // one reload at a time (the SIGHUP task): nothing stores between this load and the
        // store below
        let old = self.current.load_full();
        let mut changes = diff(&old, &new);
        changes.needs_restart = needs_restart(&self.started, &new);

        let engine = self.shared.access.eap();
        let eap = match (engine, tls) {
            (Some(engine), Some(tls)) => {
                engine.replace_tls(tls);
                if *engine.settings() != eap::settings(&new) {
                    changes.needs_restart.push(
                        "eap.fragment_size / eap.max_conversations / eap.conversation_timeout",
                    );
                }
                changes.eap = "certificate reloaded";
                Some(engine)
            }
            (None, Some(tls)) => {
                changes.eap = "enabled";
                Some(Arc::new(crate::eap::EapServer::new(
                    tls,
                    eap::settings(&new),
                )))
            }
            (Some(_), None) => {
                changes.eap = "disabled";
                None
            }
            (None, None) => {
                changes.eap = "off";
                None
            }
        };
        self.shared.access.replace(clients, rules, eap);
        self.current.store(Arc::new(new));
        if !changes.rules_changed.is_empty() {
            // sessions admitted under the old rules are decided again under the new ones
            // (and disconnected or moved where the answer changed), not at the next periodic
            // check
            self.shared.signals.recheck.notify_one();
        }
        Ok(changes)
    }
}

/// A client as compared between two configurations: everything that reaches the request
/// path and the Disconnect/CoA sender. The secrets are compared, never shown.
fn same_client(a: &ClientConfig, b: &ClientConfig, ar: &Config, br: &Config) -> bool {
    let (ca, cb) = (
        Client::from_config(a, &ar.radius),
        Client::from_config(b, &br.radius),
    );
    ca.network == cb.network
        && ca.secret == cb.secret
        && ca.next.as_ref().map(|n| &n.0) == cb.next.as_ref().map(|n| &n.0)
        && ca.require_ma == cb.require_ma
        && ca.mab == cb.mab
        && ca.mab_require_calling_station == cb.mab_require_calling_station
        && ca.coa.coa_port() == cb.coa.coa_port()
        && ca.coa.action() == cb.coa.action()
}

/// What differs between the configuration in force and the new one.
pub fn diff(old: &Config, new: &Config) -> Changes {
    let mut c = Changes::default();
    for n in &new.radius.clients {
        match old.radius.clients.iter().find(|o| o.name == n.name) {
            None => c.clients_added.push(n.name.clone()),
            Some(o) if !same_client(o, n, old, new) => c.clients_changed.push(n.name.clone()),
            Some(_) => {}
        }
    }
    for o in &old.radius.clients {
        if !new.radius.clients.iter().any(|n| n.name == o.name) {
            c.clients_removed.push(o.name.clone());
        }
    }
    // the Debug forms hold no secrets: these sections have none
    let changed = |a: String, b: String| a != b;
    if changed(format!("{:?}", old.policy), format!("{:?}", new.policy)) {
        c.rules_changed.push("policy");
    }
    if changed(format!("{:?}", old.vlans), format!("{:?}", new.vlans)) {
        c.rules_changed.push("vlans");
    }
    if changed(format!("{:?}", old.roles), format!("{:?}", new.roles)) {
        c.rules_changed.push("roles");
    }
    c
}

/// The keys that differ from what the process started with and that a running process does
/// not take over.
pub fn needs_restart(started: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |differs: bool, key: &'static str| {
        if differs {
            keys.push(key);
        }
    };
    let dbg = |v: &dyn std::fmt::Debug| format!("{v:?}");
    check(
        started.radius.auth_listen != new.radius.auth_listen,
        "radius.auth_listen",
    );
    check(
        started.radius.acct_listen != new.radius.acct_listen,
        "radius.acct_listen",
    );
    check(
        started.radius.duplicate_window != new.radius.duplicate_window,
        "radius.duplicate_window",
    );
    check(started.database.url != new.database.url, "database.url");
    check(
        started.database.max_connections != new.database.max_connections,
        "database.max_connections",
    );
    check(
        started.policy.max_devices_per_owner != new.policy.max_devices_per_owner
            || started.policy.timezone != new.policy.timezone,
        "policy.max_devices_per_owner / policy.timezone (for registrations by the API)",
    );
    check(dbg(&started.cache) != dbg(&new.cache), "[cache]");
    check(dbg(&started.log) != dbg(&new.log), "[log]");
    check(dbg(&started.node) != dbg(&new.node), "[node]");
    check(dbg(&started.api) != dbg(&new.api), "[api]");
    check(dbg(&started.coa) != dbg(&new.coa), "[coa]");
    check(
        dbg(&started.directory) != dbg(&new.directory),
        "[directory]",
    );
    check(dbg(&started.pki) != dbg(&new.pki), "[pki]");
    check(dbg(&started.wifi) != dbg(&new.wifi), "[wifi]");
    check(dbg(&started.privacy) != dbg(&new.privacy), "[privacy]");
    check(
        dbg(&started.compliance) != dbg(&new.compliance),
        "[compliance]",
    );
    keys
}

impl std::fmt::Display for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        write!(
            f,
            "clients added: {}; removed: {}; changed: {}; rules changed: {}; EAP: {}",
            list(&self.clients_added),
            list(&self.clients_removed),
            list(&self.clients_changed),
            if self.rules_changed.is_empty() {
                "none".to_string()
            } else {
                self.rules_changed.join(", ")
            },
            self.eap
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
[database]
url = "sqlite:var/test.db"

[radius]
auth_listen = "127.0.0.1:1812"

[[radius.clients]]
name = "ap-hal"
network = "10.20.0.0/16"
secret = "0123456789abcdef-long-enough"

[[radius.clients]]
name = "wlc"
network = "10.30.0.0/16"
secret = "another-secret-0123456"

[vlans]
workspace = 100
guest = 200
quarantine = 666
"#;

    fn load(text: &str) -> Config {
        Config::from_toml(text, Path::new("t.toml"), Vec::new()).unwrap()
    }

    #[test]
    fn names_clients_added_removed_changed_and_what_needs_a_restart() {
        let old = load(BASE);
        let new = load(
            &BASE
                .replace("name = \"wlc\"", "name = \"wlc-2\"")
                .replace(
                    "secret = \"0123456789abcdef-long-enough\"",
                    "secret = \"0123456789abcdef-long-enough\"\nsecret_next = \"the-next-one-0123456\"",
                )
                .replace("guest = 200", "guest = 201")
                .replace("127.0.0.1:1812", "127.0.0.1:11812"),
        );
        let c = diff(&old, &new);
        assert_eq!(c.clients_added, ["wlc-2"]);
        assert_eq!(c.clients_removed, ["wlc"]);
        assert_eq!(c.clients_changed, ["ap-hal"]);
        assert_eq!(c.rules_changed, ["vlans"]);
        // clients added, removed and with a second secret reach the CoA sender too: only
        // the listener needs a restart
        let restart = needs_restart(&old, &new);
        assert_eq!(restart, ["radius.auth_listen"]);
        // the summary names clients, never secrets
        let shown = c.to_string();
        assert!(
            !shown.contains("next-one") && !shown.contains("0123456789"),
            "{shown}"
        );
        assert!(diff(&old, &old) == Changes::default());
        assert!(needs_restart(&old, &old).is_empty());
    }

    /// A client's Disconnect/CoA port, action or secret is put in force by a reload: the
    /// client is named as changed, nothing as needing a restart; `[coa]` itself does.
    #[test]
    fn coa_targets_change_without_a_restart() {
        let old = load(BASE);
        let wlc = "secret = \"another-secret-0123456\"";
        for (what, with) in [
            ("coa_port", "coa_port = 4799"),
            ("coa_action", "coa_action = \"coa\""),
            ("secret", "secret = \"rotated-secret-0123456\""),
        ] {
            let text = BASE.replace(
                wlc,
                if what == "secret" {
                    with.to_string()
                } else {
                    format!("{wlc}\n{with}")
                }
                .as_str(),
            );
            let new = load(&text);
            let c = diff(&old, &new);
            assert_eq!(c.clients_changed, ["wlc"], "{what}");
            assert!(c.clients_added.is_empty() && c.clients_removed.is_empty());
            assert!(needs_restart(&old, &new).is_empty(), "{what}");
        }
        let new = load(&format!("{BASE}\n[coa]\nretries = 5\n"));
        assert_eq!(needs_restart(&old, &new), ["[coa]"]);
        assert!(diff(&old, &new) == Changes::default());
    }

    /// The client the request path uses carries its CoA target: one entry, swapped whole.
    #[test]
    fn a_live_client_carries_its_coa_target() {
        let config = load(&BASE.replace(
            "secret = \"another-secret-0123456\"",
            "secret = \"another-secret-0123456\"\ncoa_port = 4799\ncoa_action = \"coa\"",
        ));
        let clients: Vec<Client> = config
            .radius
            .clients
            .iter()
            .map(|c| Client::from_config(c, &config.radius))
            .collect();
        let wlc = clients.iter().find(|c| c.name == "wlc").unwrap();
        assert_eq!(wlc.coa.name, "wlc");
        assert_eq!(wlc.coa.coa_port(), 4799);
        assert_eq!(wlc.coa.action(), crate::config::ops::CoaAction::Coa);
        let hal = clients.iter().find(|c| c.name == "ap-hal").unwrap();
        assert_eq!(hal.coa.coa_port(), 3799);
        assert_eq!(hal.coa.action(), crate::config::ops::CoaAction::Disconnect);
    }
}
