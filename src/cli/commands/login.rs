//! `login` / `logout`: check credentials against the registry, then keep them in the docker
//! config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, `auths`), where every
//! command (and docker, podman, oras…) finds them.

use super::{prompt_password, read_password_stdin};
use crate::cli::args::{LoginArgs, LogoutArgs};
use crate::cli::ctx::Ctx;
use crate::cli::exit::Failure;
use anyhow::Context as _;
use base64::Engine as _;
use oci_model::store::auth::{docker_config_key, Credentials};
use oci_model::store::registry::RegistryStore;
use oci_model::store::StoreOptions;
use serde::Serialize;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub async fn login(args: LoginArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let host = normalize_host(&args.registry)?;
    if args.username.is_empty() {
        return Err(Failure::input("--username must not be empty"));
    }
    let password = if args.password_stdin {
        read_password_stdin()?
    } else {
        prompt_password(&args.username)?
    };
    let options = StoreOptions {
        plain_http: args.plain_http,
        insecure: args.insecure,
        ca_file: args.ca_file.clone(),
        credentials: Some(Credentials::Basic {
            username: args.username.clone(),
            password: password.clone(),
        }),
        max_attempts: 0,
        idle_timeout: None,
        ..Default::default()
    };
    RegistryStore::check_login(&host, &options)
        .await
        .with_context(|| format!("login to {host} as {:?}", args.username))?;

    let path = config_path(ctx)?;
    let mut config = read_config(&path)?;
    let key = docker_config_key(&host);
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        args.username,
        password.expose()
    ));
    let obj = config
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("{} is not a JSON object", path.display()))?;
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    let auths = auths.as_object_mut().expect("made an object");
    // Other spellings of the same registry would shadow (or be shadowed by) the new entry.
    let stale: Vec<String> = auths
        .keys()
        .filter(|k| *k != &key && same_registry(k, &host))
        .cloned()
        .collect();
    for k in stale {
        auths.remove(&k);
    }
    auths.insert(key.clone(), serde_json::json!({ "auth": auth }));

    if let Some(helper) = obj
        .get("credHelpers")
        .and_then(|h| h.get(&key))
        .and_then(|h| h.as_str())
    {
        ctx.printer.note(&format!(
            "note: credHelpers names docker-credential-{helper} for {host}; it takes precedence \
             over the credentials stored in {}",
            path.display()
        ));
    } else if let Some(store) = obj.get("credsStore").and_then(|s| s.as_str()) {
        ctx.printer.note(&format!(
            "note: credsStore {store:?} is configured; oci-model keeps the credentials for {host} \
             in {} (auths) instead",
            path.display()
        ));
    }
    write_config(&path, &config)?;
    ctx.printer.result(&LoggedIn {
        ok: true,
        registry: host,
        username: args.username,
        config_file: path.display().to_string(),
    });
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoggedIn {
    ok: bool,
    registry: String,
    username: String,
    config_file: String,
}

impl fmt::Display for LoggedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Login succeeded: {} (credentials stored in {})",
            self.registry, self.config_file
        )
    }
}

pub async fn logout(args: LogoutArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let host = normalize_host(&args.registry)?;
    let path = config_path(ctx)?;
    let mut removed = false;
    if path.exists() {
        let mut config = read_config(&path)?;
        if let Some(auths) = config.get_mut("auths").and_then(|a| a.as_object_mut()) {
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| same_registry(k, &host))
                .cloned()
                .collect();
            for k in keys {
                auths.remove(&k);
                removed = true;
            }
        }
        if removed {
            write_config(&path, &config)?;
        }
    }
    ctx.printer.result(&LoggedOut {
        ok: true,
        registry: host,
        removed,
        config_file: path.display().to_string(),
    });
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoggedOut {
    ok: bool,
    registry: String,
    removed: bool,
    config_file: String,
}

impl fmt::Display for LoggedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (registry, file) = (&self.registry, &self.config_file);
        if self.removed {
            write!(f, "Removed the credentials for {registry} from {file}")
        } else {
            write!(f, "Not logged in to {registry} ({file} has no entry)")
        }
    }
}

/// `host[:port]` from what the user typed (a scheme and path are tolerated, as docker does).
fn normalize_host(input: &str) -> anyhow::Result<String> {
    let s = input.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("");
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
    if !valid {
        return Err(Failure::input(format!(
            "invalid registry {input:?}: expected host[:port], e.g. ghcr.io or localhost:5000"
        )));
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_ascii_lowercase(),
    })
}

/// Does a docker config `auths` key name `host`? (`host`, `https://host`, `https://host/v1/`…)
fn same_registry(key: &str, host: &str) -> bool {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or("").to_ascii_lowercase();
    let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    k == host || (hub(&k) && hub(host))
}

fn config_path(ctx: &Ctx) -> anyhow::Result<PathBuf> {
    ctx.settings
        .docker_config_dir()
        .map(|d| d.join("config.json"))
        .ok_or_else(|| {
            Failure::input("neither DOCKER_CONFIG nor HOME is set: no place for the docker config")
        })
}

fn read_config(path: &Path) -> anyhow::Result<serde_json::Value> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
        Ok(bytes) => {
            let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                Failure::input(format!(
                    "{} is not valid JSON ({e}); fix or remove it",
                    path.display()
                ))
            })?;
            if !v.is_object() {
                return Err(Failure::input(format!(
                    "{} is not a JSON object; fix or remove it",
                    path.display()
                )));
            }
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(anyhow::Error::new(e).context(format!("read {}", path.display()))),
    }
}

/// Replace the config atomically (temp file + rename), readable by the owner only.
fn write_config(path: &Path, config: &serde_json::Value) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no parent directory", path.display()))?;
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            b.mode(0o700);
        }
        b.create(dir)
            .with_context(|| format!("create {}", dir.display()))?;
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("create a temporary file in {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restrict permissions in {}", dir.display()))?;
    }
    let mut text = serde_json::to_vec_pretty(config).expect("config serializes");
    text.push(b'\n');
    tmp.write_all(&text)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| anyhow::Error::new(e.error).context(format!("replace {}", path.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_registry_names() {
        assert_eq!(normalize_host("localhost:5000").unwrap(), "localhost:5000");
        assert_eq!(normalize_host("https://GHCR.io/").unwrap(), "ghcr.io");
        assert_eq!(
            normalize_host("https://index.docker.io/v1/").unwrap(),
            "docker.io"
        );
        assert!(normalize_host("").is_err());
        assert!(normalize_host("bad host").is_err());
    }

    #[test]
    fn matches_config_keys_for_a_registry() {
        assert!(same_registry("localhost:5000", "localhost:5000"));
        assert!(same_registry("https://localhost:5000", "localhost:5000"));
        assert!(same_registry("https://index.docker.io/v1/", "docker.io"));
        assert!(!same_registry("localhost:5001", "localhost:5000"));
    }

    #[test]
    fn writes_the_config_atomically_keeping_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        let mut cfg = read_config(&path).unwrap();
        cfg["credsStore"] = serde_json::json!("desktop");
        write_config(&path, &cfg).unwrap();
        let back = read_config(&path).unwrap();
        assert_eq!(back["credsStore"], "desktop");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"{not json").unwrap();
        assert!(read_config(&path).is_err());
    }
}
