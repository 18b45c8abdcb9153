//! One file per command; each only combines library calls.

pub mod admission;
pub mod attest;
pub mod completion;
pub mod copy;
pub mod discover;
pub mod inspect;
pub mod keys;
pub mod local;
pub mod login;
pub mod pull;
pub mod push;
pub mod sign;
pub mod signer;
pub mod trusted_root;
pub mod verify;
pub mod verify_bundle;

use super::args::RegistryOpts;
use super::exit::{Failure, InputError as _};
use anyhow::Context as _;
use oci_model::reference::Target;
use oci_model::secret::Secret;
use oci_model::store::{self, auth::Credentials, StoreOptions};
use std::sync::Arc;

/// Parse a TARGET argument (exit 2 with the reason when it is malformed).
pub fn parse_target(input: &str) -> anyhow::Result<Target> {
    Target::parse(input).input()
}

/// Registry options → store options (reads the password from stdin when asked).
pub fn store_options(opts: &RegistryOpts) -> anyhow::Result<StoreOptions> {
    let password = if opts.password_stdin {
        Some(read_password_stdin()?)
    } else {
        None
    };
    let credentials = credentials(opts.username.as_deref(), password)?;
    Ok(StoreOptions {
        plain_http: opts.plain_http,
        insecure: opts.insecure,
        ca_file: opts.ca_file.clone(),
        credentials,
        max_attempts: opts.retries.max(1),
        idle_timeout: Some(std::time::Duration::from_secs(opts.timeout)),
        ..Default::default()
    })
}

/// The credentials the command line gives for one registry: a user name with the password
/// read from standard input (else asked on the terminal), a token alone from standard input,
/// or none (the docker config and its credential helpers then decide).
pub fn credentials(
    username: Option<&str>,
    password: Option<Secret>,
) -> anyhow::Result<Option<Credentials>> {
    Ok(match (username, password) {
        (Some(user), Some(password)) => Some(Credentials::Basic {
            username: user.to_string(),
            password,
        }),
        (Some(user), None) => Some(Credentials::Basic {
            username: user.to_string(),
            password: prompt_password(user)?,
        }),
        (None, Some(token)) => Some(Credentials::Token(token)),
        (None, None) => None,
    })
}

/// One line of standard input: the password of `--password-stdin` (read once per command).
pub fn read_password_stdin() -> anyhow::Result<Secret> {
    let mut s = String::new();
    std::io::stdin()
        .read_line(&mut s)
        .context("read password from standard input")?;
    let s = s.trim_end_matches(['\r', '\n']).to_string();
    if s.is_empty() {
        return Err(Failure::input("--password-stdin: standard input was empty"));
    }
    Ok(Secret::new(s))
}

/// The password of `user`, asked on the terminal without echo. Without a terminal (a script, a
/// pipe) nobody can answer: refused, naming the ways to give it.
pub fn prompt_password(user: &str) -> anyhow::Result<Secret> {
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() {
        return Err(Failure::input(format!(
            "no password for user {user:?} and no terminal to ask for it: give it on standard \
             input with --password-stdin, or store it once with `oci-model login`"
        )));
    }
    let password = rpassword::prompt_password(format!("Password for {user}: "))
        .input_context(|| "cannot read the password from the terminal")?;
    if password.is_empty() {
        return Err(Failure::input(format!("empty password for user {user:?}")));
    }
    Ok(Secret::new(password))
}

/// Open the store for a target.
pub async fn open_store(
    target: &Target,
    opts: &RegistryOpts,
) -> anyhow::Result<Arc<dyn store::Store>> {
    let options = store_options(opts)?;
    Ok(store::open(target, &options).await?)
}

/// Read a local file of at most `limit` bytes (a signature, a bundle); `what` names it in errors.
pub fn read_limited(path: &std::path::Path, what: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
    let name = path.display();
    let size = std::fs::metadata(path)
        .input_context(|| format!("{what} {name}: cannot read"))?
        .len();
    if size > limit {
        return Err(Failure::input(format!(
            "{what} {name}: {size} bytes, larger than the {limit}-byte limit"
        )));
    }
    std::fs::read(path).input_context(|| format!("{what} {name}: cannot read"))
}

/// Refuse to replace an existing file (a key, a signature) unless `--force` was given: checked
/// before any work, so nothing is signed or generated for nothing.
pub fn refuse_existing(path: &std::path::Path, force: bool) -> anyhow::Result<()> {
    if !force && path.symlink_metadata().is_ok() {
        return Err(Failure::input(format!(
            "{} already exists: pass --force to replace it",
            path.display()
        )));
    }
    Ok(())
}

/// How [`write_atomically`] writes a file.
#[derive(Clone, Copy)]
pub struct WriteMode {
    /// Readable by all (0644); else by the owner only (0600: a private key).
    pub public: bool,
    /// Replace an existing file; else fail when one exists.
    pub replace: bool,
}

impl WriteMode {
    /// A file for everyone to read (a signature, a public key); `replace`: `--force` given.
    pub fn public(replace: bool) -> Self {
        WriteMode {
            public: true,
            replace,
        }
    }
}

/// Write `content` to `path` through a temporary file in the same directory, so a reader never
/// sees a partial file (signature bundles, keys).
pub fn write_atomically(
    path: &std::path::Path,
    content: &[u8],
    mode: WriteMode,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".oci-model-")
        .tempfile_in(&dir)
        .input_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(content)
        .and_then(|_| tmp.as_file().sync_all())
        .input_context(|| format!("cannot write {}", path.display()))?;
    if mode.public {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .input_context(|| format!("cannot set permissions of {}", path.display()))?;
    }
    let persisted = if mode.replace {
        tmp.persist(path).map(drop)
    } else {
        tmp.persist_noclobber(path).map(drop)
    };
    persisted
        .map_err(|e| e.error)
        .input_context(|| format!("cannot write {}", path.display()))
}
