//! Where a RADIUS client's shared secret comes from, by the client's name rather than its
//! position in the list: the file (`secret`), a file of its own (`secret_file`), or the
//! environment variable `POORTWACHTER_CLIENT_SECRET_<NAME>`. An index override
//! (`POORTWACHTER_RADIUS__CLIENTS__<n>__SECRET`) is only applied when it names its entry
//! (`POORTWACHTER_RADIUS__CLIENTS__<n>__NAME`): an entry added above it would otherwise move
//! the secret to another client without a word.

use std::path::Path;

use super::{ClientConfig, ConfigError, Problem, ENV_PREFIX};
use crate::secret::Secret;

/// Prefix of the by-name secret variables: `POORTWACHTER_CLIENT_SECRET_AP_HAL` for `ap-hal`.
pub const CLIENT_SECRET_ENV_PREFIX: &str = "POORTWACHTER_CLIENT_SECRET_";

/// Where a client's shared secret came from, for `check-config` (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `secret` in the config file (or an index override).
    Inline,
    /// `secret_file`.
    File(std::path::PathBuf),
    /// `POORTWACHTER_CLIENT_SECRET_<NAME>`.
    Env(String),
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Inline => f.write_str("config file"),
            SecretSource::File(p) => write!(f, "file {}", p.display()),
            SecretSource::Env(v) => write!(f, "environment {v}"),
        }
    }
}

/// The variable that carries the secret of the client named `name`: upper-cased, every
/// character other than A-Z and 0-9 replaced by `_` (`ap-hal.2` → `..._AP_HAL_2`).
pub fn env_var_for(name: &str) -> String {
    let mut var = String::from(CLIENT_SECRET_ENV_PREFIX);
    var.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    var
}

/// Where the secret of `client` comes from, as [`resolve`] decided it.
pub fn source(client: &ClientConfig, env: &[(String, String)]) -> SecretSource {
    let var = env_var_for(&client.name);
    if env.iter().any(|(k, _)| *k == var) {
        SecretSource::Env(var)
    } else if let Some(file) = &client.secret_file {
        SecretSource::File(file.clone())
    } else {
        SecretSource::Inline
    }
}

/// Fills each client's `secret` (and `secret_next`) from its by-name variable or its file;
/// returns what is wrong, naming the key (never the secret).
pub(super) fn resolve(clients: &mut [ClientConfig], env: &[(String, String)]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        let at = |field: &str| format!("radius.clients[{i}].{field}");
        let var = env_var_for(&client.name);
        let by_env = env.iter().find(|(k, _)| *k == var).map(|(_, v)| v);
        match (by_env, &client.secret_file) {
            (Some(value), _) => {
                let value = value.trim_end_matches(['\n', '\r']);
                if value.is_empty() {
                    problems.push(Problem {
                        key: at("secret"),
                        message: format!("{var} is set but empty"),
                    });
                }
                client.secret = Secret::new(value);
            }
            (None, Some(file)) => {
                if !client.secret.is_empty() {
                    problems.push(Problem {
                        key: at("secret_file"),
                        message: "give `secret` or `secret_file`, not both".into(),
                    });
                }
                match read_secret_file(file) {
                    Ok(s) => client.secret = s,
                    Err(message) => problems.push(Problem {
                        key: at("secret_file"),
                        message,
                    }),
                }
            }
            (None, None) if client.secret.is_empty() => problems.push(Problem {
                key: at("secret"),
                message: format!(
                    "no shared secret: set `secret`, `secret_file`, or the environment variable {var}"
                ),
            }),
            (None, None) => {}
        }
        if let Some(file) = &client.secret_next_file {
            if client.secret_next.is_some() {
                problems.push(Problem {
                    key: at("secret_next_file"),
                    message: "give `secret_next` or `secret_next_file`, not both".into(),
                });
            }
            match read_secret_file(file) {
                Ok(s) => client.secret_next = Some(s),
                Err(message) => problems.push(Problem {
                    key: at("secret_next_file"),
                    message,
                }),
            }
        }
    }
    problems
}

/// Reads a secret file: one line, the trailing newline dropped; refused when others may read
/// or write it.
pub fn read_secret_file(path: &Path) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(format!(
            "{shown} is readable or writable by others (mode {mode:04o}); chmod o= it (0640 or 0600)"
        ));
    }
    let text = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let text = String::from_utf8(text).map_err(|_| format!("{shown} is not UTF-8 text"))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    if secret.contains('\n') {
        return Err(format!("{shown} holds more than one line"));
    }
    Ok(Secret::new(secret))
}

/// Refuses an override of `radius.clients[<n>]` unless `POORTWACHTER_RADIUS__CLIENTS__<n>__NAME`
/// names the entry the file has at `<n>`: the index alone silently moves to another client
/// when an entry is added above it. `vars` are ours, sorted.
pub(super) fn check_index_overrides(
    table: &toml::Table,
    vars: &[(String, String)],
) -> Result<(), ConfigError> {
    let prefix = format!("{ENV_PREFIX}RADIUS__CLIENTS__");
    let in_file = |n: usize| -> Option<String> {
        table
            .get("radius")?
            .get("clients")?
            .as_array()?
            .get(n)?
            .get("name")?
            .as_str()
            .map(str::to_string)
    };
    for (var, value) in vars {
        let upper = var.to_ascii_uppercase();
        let Some(rest) = upper.strip_prefix(&prefix) else {
            continue;
        };
        let Some((index, field)) = rest.split_once("__") else {
            continue;
        };
        let Ok(n) = index.parse::<usize>() else {
            continue;
        };
        let name_var = format!("{prefix}{n}__NAME");
        let named = vars
            .iter()
            .find(|(k, _)| k.to_ascii_uppercase() == name_var)
            .map(|(_, v)| v.as_str());
        let file_name = in_file(n);
        let refuse = |message: String| {
            Err(ConfigError::Env {
                var: var.clone(),
                message,
            })
        };
        if field == "NAME" {
            match &file_name {
                Some(f) if f != value => {
                    return refuse(format!(
                        "radius.clients[{n}] is `{f}` in the config file, not `{value}`: the entries moved; \
                         set the secret by name instead ({})",
                        env_var_for(value)
                    ))
                }
                _ => continue,
            }
        }
        match (named, &file_name) {
            (Some(_), _) => {}
            (None, Some(f)) => {
                return refuse(format!(
                    "an override by position must name its entry: set {name_var}={f} next to it \
                     (radius.clients[{n}] is `{f}` in the config file), or give the secret by name: {}",
                    env_var_for(f)
                ))
            }
            (None, None) => {
                return refuse(format!(
                    "radius.clients[{n}] is not in the config file; set {name_var} to add an entry, \
                     or give a client's secret by name ({CLIENT_SECRET_ENV_PREFIX}<NAME>)"
                ))
            }
        }
    }
    Ok(())
}

/// Secrets that are examples, defaults or well-known test values: never for production.
pub fn is_placeholder(secret: &str) -> bool {
    let s = secret.to_ascii_lowercase();
    const WORDS: [&str; 7] = [
        "change-me",
        "changeme",
        "change_me",
        "replace-with",
        "testing123",
        "dev-only",
        "example",
    ];
    WORDS.iter().any(|w| s.contains(w))
        || s == "secret"
        || s.chars().all(|c| c == s.chars().next().unwrap_or(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names() {
        assert_eq!(env_var_for("ap-hal"), "POORTWACHTER_CLIENT_SECRET_AP_HAL");
        assert_eq!(
            env_var_for("Wlc.2 gebouw"),
            "POORTWACHTER_CLIENT_SECRET_WLC_2_GEBOUW"
        );
    }

    #[test]
    fn placeholders() {
        for p in [
            "dev-only-secret-change-me",
            "replace-with-a-long-random-secret-1",
            "testing123testing123",
            "aaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(is_placeholder(p), "{p}");
        }
        assert!(!is_placeholder("Zq8v3Lr0-9hTkP2wX7mN"));
    }
}
