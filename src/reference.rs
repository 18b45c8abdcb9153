//! Targets: registry references (`host[:port]/repo[:tag|@digest]`) and OCI image layout
//! directories (`oci:<dir>[:tag|@digest]`).

use crate::digest::Digest;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference {input:?}: {reason}")]
    Invalid { input: String, reason: String },
}

/// Where an artifact lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Registry(RegistryRef),
    Layout(LayoutRef),
}

/// `host[:port]/repository[:tag][@digest]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRef {
    /// Host as written by the user (`docker.io` for Docker Hub), with port if any.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// `oci:<dir>[:tag][@digest]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutRef {
    pub path: PathBuf,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

fn invalid(input: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError::Invalid {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// Tag grammar from the distribution spec: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Repository path component grammar: lowercase alphanumerics separated by `.`, `_`, `__`, `-`+.
fn valid_repository(repo: &str) -> bool {
    !repo.is_empty()
        && repo.len() <= 255
        && repo.split('/').all(|comp| {
            let b = comp.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
                && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
                && b.iter().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
                })
        })
}

/// A reference's first component names a registry host only when it has a `.` or a `:port`,
/// or is `localhost`: Docker Hub is used only when written (`docker.io/...`), never implied.
fn is_registry_host(first: &str) -> bool {
    // host[:port] or [IPv6][:port]; a port is 1-5 digits, so `oci:` (an empty port) or `a:b`
    // is not a registry host.
    let port_ok = |p: &str| (1..=5).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit());
    if let Some(rest) = first.strip_prefix('[') {
        let Some((v6, tail)) = rest.split_once(']') else {
            return false;
        };
        let v6_ok = !v6.is_empty()
            && v6.contains(':')
            && v6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'));
        return v6_ok && (tail.is_empty() || tail.strip_prefix(':').is_some_and(port_ok));
    }
    let (host, port) = match first.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (first, None),
    };
    (host.contains('.') || port.is_some() || host == "localhost")
        && port.is_none_or(port_ok)
        && !host.is_empty()
        && !host.starts_with('.')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
}

/// `.`, `..`, `./x`, `../x`, `/x`, `~/x`: a path on this machine, not a reference.
fn looks_like_path(input: &str) -> bool {
    input == "."
        || input == ".."
        || input.starts_with("./")
        || input.starts_with("../")
        || input.starts_with('/')
        || input.starts_with('~')
}

/// What to write instead of a reference without a registry host.
fn missing_host_hint(input: &str, name: &str) -> String {
    if !name.contains('/') && is_registry_host(input.split('@').next().unwrap_or(input)) {
        // `localhost:5000`, `ghcr.io`: a registry without a repository.
        let host = input.split('@').next().unwrap_or(input);
        return format!("{host} names a registry but no repository: add one, e.g. {host}/NAME:TAG");
    }
    format!(
        "no registry host: write HOST[:PORT]/REPOSITORY[:TAG] (e.g. localhost:5000/{input}), \
         docker.io/{input} for Docker Hub, or oci:{input} for an OCI layout directory"
    )
}

/// Splits `name[:tag][@digest]` where the tag colon is after the last `/`.
fn split_tag_digest(
    input: &str,
    s: &str,
) -> Result<(String, Option<String>, Option<Digest>), ReferenceError> {
    let (rest, digest) = match s.rsplit_once('@') {
        Some((rest, d)) => (
            rest,
            Some(
                d.parse::<Digest>()
                    .map_err(|e| invalid(input, e.to_string()))?,
            ),
        ),
        None => (s, None),
    };
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let tag = &rest[last_slash + i + 1..];
            if !valid_tag(tag) {
                return Err(invalid(input, format!("tag {tag:?} is not a valid tag")));
            }
            (rest[..last_slash + i].to_string(), Some(tag.to_string()))
        }
        None => (rest.to_string(), None),
    };
    Ok((name, tag, digest))
}

impl Target {
    pub fn parse(input: &str) -> Result<Target, ReferenceError> {
        if let Some(rest) = input.strip_prefix("oci:") {
            return LayoutRef::parse(input, rest).map(Target::Layout);
        }
        RegistryRef::parse(input).map(Target::Registry)
    }

    pub fn tag(&self) -> Option<&str> {
        match self {
            Target::Registry(r) => r.tag.as_deref(),
            Target::Layout(l) => l.tag.as_deref(),
        }
    }
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Target::Registry(r) => r.digest.as_ref(),
            Target::Layout(l) => l.digest.as_ref(),
        }
    }
    /// The manifest reference to resolve: the digest when given, else the tag, else `latest`.
    pub fn reference(&self) -> String {
        match (self.digest(), self.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        }
    }
    /// The repository name used as the in-toto subject name.
    pub fn repository_name(&self) -> String {
        match self {
            Target::Registry(r) => format!("{}/{}", r.registry, r.repository),
            Target::Layout(l) => l.path.display().to_string(),
        }
    }
    /// The same target pinned to `digest` (tag kept for display).
    pub fn with_digest(&self, digest: Digest) -> Target {
        let mut t = self.clone();
        match &mut t {
            Target::Registry(r) => r.digest = Some(digest),
            Target::Layout(l) => l.digest = Some(digest),
        }
        t
    }
}

impl RegistryRef {
    pub fn parse(input: &str) -> Result<RegistryRef, ReferenceError> {
        if input.is_empty() {
            return Err(invalid(input, "empty reference"));
        }
        if input.contains("://") {
            return Err(invalid(
                input,
                "write the reference without a scheme (host[:port]/repo[:tag]); use --plain-http for http",
            ));
        }
        if looks_like_path(input) {
            return Err(invalid(
                input,
                format!(
                    "this looks like a local path, not a registry reference: write oci:{input} for an OCI \
                     layout directory (sign-local / verify-local take a model directory)"
                ),
            ));
        }
        let (name, tag, digest) = split_tag_digest(input, input)?;
        let Some((registry, repository)) = name
            .split_once('/')
            .filter(|(first, _)| is_registry_host(first))
        else {
            return Err(invalid(input, missing_host_hint(input, &name)));
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        let registry = registry.to_string();
        if !valid_repository(&repository) {
            return Err(invalid(
                input,
                format!("repository {repository:?} must be lowercase letters, digits and separators . _ - /"),
            ));
        }
        Ok(RegistryRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Host to connect to (Docker Hub's API host for `docker.io`).
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// Loopback hosts default to plain http, like ORAS.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => self.registry.split(':').next().unwrap_or(""),
        };
        host == "localhost" || host == "::1" || host.starts_with("127.")
    }
}

impl LayoutRef {
    fn parse(input: &str, rest: &str) -> Result<LayoutRef, ReferenceError> {
        if rest.is_empty() {
            return Err(invalid(input, "missing directory after oci:"));
        }
        // A tag or digest follows the last ':' or '@' after the last path separator.
        let last_sep = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let tail = &rest[last_sep..];
        let (path, tag, digest) = if let Some(at) = tail.find('@') {
            let d = tail[at + 1..]
                .parse::<Digest>()
                .map_err(|e| invalid(input, e.to_string()))?;
            let before = &rest[..last_sep + at];
            let (p, t) = split_layout_tag(input, before, last_sep)?;
            (p, t, Some(d))
        } else {
            let (p, t) = split_layout_tag(input, rest, last_sep)?;
            (p, t, None)
        };
        if path.is_empty() {
            return Err(invalid(input, "missing directory after oci:"));
        }
        Ok(LayoutRef {
            path: PathBuf::from(path),
            tag,
            digest,
        })
    }
}

fn split_layout_tag(
    input: &str,
    s: &str,
    last_sep: usize,
) -> Result<(String, Option<String>), ReferenceError> {
    match s[last_sep.min(s.len())..].rfind(':') {
        Some(i) => {
            let tag = &s[last_sep + i + 1..];
            if !valid_tag(tag) {
                return Err(invalid(input, format!("tag {tag:?} is not a valid tag")));
            }
            Ok((s[..last_sep + i].to_string(), Some(tag.to_string())))
        }
        None => Ok((s.to_string(), None)),
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (base, tag, digest) = match self {
            Target::Registry(r) => (
                format!("{}/{}", r.registry, r.repository),
                &r.tag,
                &r.digest,
            ),
            Target::Layout(l) => (format!("oci:{}", l.path.display()), &l.tag, &l.digest),
        };
        f.write_str(&base)?;
        if let Some(t) = tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_registry_host_has_a_numeric_port_if_any() {
        for host in [
            "localhost",
            "localhost:5000",
            "ghcr.io",
            "a.b:443",
            "[::1]",
            "[::1]:5000",
            "my-reg.local:1",
        ] {
            assert!(super::is_registry_host(host), "{host} should be a host");
        }
        for not in [
            "oci:", "oci", "a:b", "x:123456", "[::1", "[]:5000", "[::1]x", ":5000", ".a.b",
            "a_b.c", "a.b:",
        ] {
            assert!(!super::is_registry_host(not), "{not} should not be a host");
        }
        assert!(super::RegistryRef::parse("oci:/etc").is_err());
    }

    use super::*;

    fn reg(s: &str) -> RegistryRef {
        match Target::parse(s).unwrap() {
            Target::Registry(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_registry_with_port_tag_and_digest() {
        let r = reg("localhost:5000/team/bert:v1");
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "team/bert");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert!(r.is_loopback());
        let d = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let r = reg(&format!("ghcr.io/org/m@{d}"));
        assert_eq!(r.digest.unwrap().as_str(), d);
        assert!(r.tag.is_none());
        assert!(!reg("ghcr.io/org/m").is_loopback());
        assert!(reg("127.0.0.1:5000/m").is_loopback());
        assert!(reg("[::1]:5000/m").is_loopback());
    }

    #[test]
    fn docker_hub_only_when_written() {
        let r = reg("docker.io/bert");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/bert")
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = reg("docker.io/team/bert:v2");
        assert_eq!(r.repository, "team/bert");
        // A short name is refused, never sent to Docker Hub.
        let msg = Target::parse("team/bert:v2").unwrap_err().to_string();
        assert!(msg.contains("no registry host"), "{msg}");
        assert!(msg.contains("docker.io/team/bert:v2"), "{msg}");
        assert!(msg.contains("oci:team/bert:v2"), "{msg}");
        let msg = Target::parse("out-dir").unwrap_err().to_string();
        assert!(msg.contains("localhost:5000/out-dir"), "{msg}");
    }

    #[test]
    fn a_registry_without_repository_is_refused_with_a_hint() {
        for input in ["localhost:5000", "localhost", "ghcr.io", "127.0.0.1:5000"] {
            let msg = Target::parse(input).unwrap_err().to_string();
            assert!(
                msg.contains("names a registry but no repository")
                    && msg.contains(&format!("{input}/NAME:TAG")),
                "{input}: {msg}"
            );
        }
    }

    #[test]
    fn a_path_is_refused_with_the_layout_hint() {
        for input in [
            "./out",
            ".",
            "../models/bert",
            "/tmp/out",
            "~/bert",
            "./bert:v1",
        ] {
            let msg = Target::parse(input).unwrap_err().to_string();
            assert!(
                msg.contains("looks like a local path") && msg.contains(&format!("oci:{input}")),
                "{input}: {msg}"
            );
        }
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "http://x/y",
            "localhost:5000/Team/Bert",
            "localhost:5000/m:bad tag",
            "localhost:5000/m@sha256:zz",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parses_layouts() {
        let t = Target::parse("oci:./out/layout:v1").unwrap();
        assert_eq!(
            t,
            Target::Layout(LayoutRef {
                path: "./out/layout".into(),
                tag: Some("v1".into()),
                digest: None
            })
        );
        let t = Target::parse("oci:/tmp/l").unwrap();
        assert_eq!(t.reference(), "latest");
        assert_eq!(t.to_string(), "oci:/tmp/l");
        assert!(Target::parse("oci:").is_err());
    }
}
