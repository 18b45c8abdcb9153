//! The store's error type and the small helpers every layer of it shares (error chains,
//! server-text snippets, URLs for messages). Leaf module: the registry, its transport, auth and
//! the referrers code all use it, and it uses none of them.

use crate::digest::Digest;
use crate::error::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found in {location}")]
    NotFound { what: String, location: String },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{what} is {size} bytes, over the {limit}-byte limit")]
    TooLarge { what: String, size: u64, limit: u64 },
    /// A registry answer past one of the caps in [`super::limits`] (pages, entries).
    #[error("{what} goes past the limit of {limit}; refusing to read more")]
    OverLimit { what: String, limit: String },
    /// Connection refused on the first request: no registry there at all (not retried).
    #[error("nothing is listening on {addr}{hint}")]
    NotListening { addr: String, hint: String },
    /// TLS could not be agreed on (wrong scheme, untrusted certificate): not retried.
    #[error("cannot talk to {url}: {reason}")]
    Tls { url: String, reason: String },
    #[error("authentication to {registry} failed: {reason}")]
    Unauthorized { registry: String, reason: String },
    #[error("access to {what} denied by {registry}: {reason}")]
    Denied {
        registry: String,
        what: String,
        reason: String,
    },
    #[error("{method} {url} failed: HTTP {status}{body}")]
    Http {
        method: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("cannot reach {url}: {reason}")]
    Network { url: String, reason: String },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            what: what.into(),
            source,
        }
    }
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
    /// Errors worth retrying: connection problems, 5xx, 429.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Network { .. } => true,
            StoreError::Http { status, .. } => *status >= 500 || *status == 429,
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::TimedOut
            ),
            _ => false,
        }
    }
    /// Integrity failures (content does not match its digest or size).
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            StoreError::DigestMismatch { .. } | StoreError::SizeMismatch { .. }
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// What kind of failure this is (the CLI maps kinds to exit codes).
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::DigestMismatch { .. }
            | StoreError::SizeMismatch { .. }
            | StoreError::Invalid { .. }
            | StoreError::TooLarge { .. }
            | StoreError::OverLimit { .. } => ErrorKind::Integrity,
            StoreError::Io { .. } => ErrorKind::Input,
            StoreError::NotFound { .. } => ErrorKind::NotFound,
            StoreError::Unauthorized { .. }
            | StoreError::Denied { .. }
            | StoreError::Http { .. }
            | StoreError::Network { .. }
            | StoreError::NotListening { .. }
            | StoreError::Tls { .. }
            | StoreError::Other(_) => ErrorKind::Remote,
        }
    }
}

/// The error chain of `e` on one line (reqwest hides the cause in `source()`).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

/// The first few hundred characters of a server's answer, on one line.
pub fn snippet(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    one_line.trim().to_string()
}

/// `text` (anything a registry or token service sent back, on its way into an error or a log)
/// with every credential removed: each of `secrets` (the caller knows every form it sent: the
/// password, base64 of `user:password`, identity and bearer tokens), and whatever follows
/// `Basic ` or `Bearer ` (a credential we may not know, e.g. a token issued to another
/// client). The one redaction of the store: every path from registry text to a message uses it.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| s.len() >= 3).collect();
    // Longest first, so a secret that contains another is removed whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets {
        out = out.replace(s.as_str(), "<redacted>");
    }
    redact_schemes(&out)
}

/// Replace the credential after each `Basic ` / `Bearer ` (any case) with `<redacted>`.
fn redact_schemes(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &lower[i..];
        let scheme = ["basic ", "bearer "]
            .into_iter()
            .find(|p| rest.starts_with(p));
        let at_word = i == 0 || !lower.as_bytes()[i - 1].is_ascii_alphanumeric();
        if let (Some(p), true) = (scheme, at_word) {
            let start = i + p.len();
            let mut end = start;
            while end < text.len() && text.as_bytes()[end] == b' ' {
                end += 1;
            }
            let cred_start = end;
            while end < text.len() {
                let b = text.as_bytes()[end];
                if b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b) {
                    end += 1;
                } else {
                    break;
                }
            }
            out.push_str(&text[i..cred_start]);
            if end > cred_start && &text[cred_start..end] != "<redacted>" {
                out.push_str("<redacted>");
                i = end;
            } else {
                i = cred_start;
            }
            continue;
        }
        let ch = text[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// A URL for messages: without its query (upload state, tokens) nor user and password.
pub(crate) fn shown(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_what_failed() {
        let io = StoreError::io("read f", std::io::Error::other("x"));
        assert_eq!(io.kind(), ErrorKind::Input);
        let nf = StoreError::NotFound {
            what: "tag".into(),
            location: "l".into(),
        };
        assert_eq!(nf.kind(), ErrorKind::NotFound);
        let big = StoreError::TooLarge {
            what: "m".into(),
            size: 2,
            limit: 1,
        };
        assert_eq!(big.kind(), ErrorKind::Integrity);
        assert_eq!(StoreError::invalid("m", "r").kind(), ErrorKind::Integrity);
        let net = StoreError::Network {
            url: "u".into(),
            reason: "r".into(),
        };
        assert_eq!(net.kind(), ErrorKind::Remote);
        assert_eq!(StoreError::Other("x".into()).kind(), ErrorKind::Remote);
    }

    #[test]
    fn shown_urls_carry_no_query_nor_user() {
        let u = url::Url::parse("https://bob:pw@h:5000/v2/m?_state=s&token=t").unwrap();
        assert_eq!(shown(&u), "https://h:5000/v2/m");
    }

    #[test]
    fn redaction_removes_every_credential_form() {
        let secrets = vec!["pa55word".to_string(), "YWxpY2U6cGE1NXdvcmQ=".to_string()];
        let text = "you sent {\"authorization\": \"Basic YWxpY2U6cGE1NXdvcmQ=\"} pa55word; \
                    BEARER tok.en-1/2+3= and bearer: x, Bearer";
        let out = redact(text, &secrets);
        assert!(!out.contains("pa55word") && !out.contains("YWxp"), "{out}");
        assert!(!out.contains("tok.en"), "{out}");
        assert!(
            out.contains("Basic <redacted>") && out.contains("BEARER <redacted>"),
            "{out}"
        );
        assert!(out.ends_with("Bearer"), "{out}");
        // Non-ASCII text around it survives.
        assert_eq!(redact("é Bearer x ü", &[]), "é Bearer <redacted> ü");
        assert_eq!(redact("nothing here", &secrets), "nothing here");
    }
}
