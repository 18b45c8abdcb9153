//! The Sigstore trusted root: which Fulcio CAs, Rekor logs, CT logs and timestamp authorities
//! are trusted. Loaded from a `trusted_root.json` file or, by default, the public-good
//! production root embedded in the binary. Never fetched here: `crate::trust_update` fetches
//! newer roots through TUF (only when the user asks) and hands them over as JSON.

use super::error::VerifyError;
use serde::Serialize;
use sigstore_trust_root::trusted_root::PublicKey as LogPublicKey;
use sigstore_types::LogId;
use std::path::Path;
use std::sync::Arc;

/// The public-good production trusted root (see `assets/README.md` for its source).
pub const PRODUCTION_TRUSTED_ROOT_JSON: &str =
    include_str!("../../assets/trusted_root.production.json");

/// Largest trusted_root.json we read (from a file or a TUF repository).
pub const MAX_TRUSTED_ROOT_SIZE: u64 = 4 * 1024 * 1024;

/// A parsed trusted root, ready to verify with (the verifier's key rings are built once).
#[derive(Clone)]
pub struct TrustedRoot {
    inner: Arc<Inner>,
}

struct Inner {
    root: sigstore_trust_root::TrustedRoot,
    verifier: sigstore_verify::Verifier,
    source: String,
}

impl std::fmt::Debug for TrustedRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedRoot")
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

impl TrustedRoot {
    /// The embedded public-good production root.
    pub fn production() -> Result<Self, VerifyError> {
        Self::from_json(
            PRODUCTION_TRUSTED_ROOT_JSON,
            "embedded Sigstore public-good production root",
        )
    }

    /// Parse `json`; `source` names it in messages (a file path, "embedded …").
    pub fn from_json(json: &str, source: &str) -> Result<Self, VerifyError> {
        let invalid = |reason: String| VerifyError::InvalidTrustedRoot {
            source_name: source.to_string(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let media_type = value
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or_default();
        if !media_type.starts_with("application/vnd.dev.sigstore.trustedroot") {
            return Err(invalid(format!(
                "mediaType is {media_type:?}, expected application/vnd.dev.sigstore.trustedroot+json;version=0.1"
            )));
        }
        let root = sigstore_trust_root::TrustedRoot::from_json(json)
            .map_err(|e| invalid(e.to_string()))?;
        let verifier = sigstore_verify::Verifier::new(&root).map_err(|e| invalid(e.to_string()))?;
        Ok(TrustedRoot {
            inner: Arc::new(Inner {
                root,
                verifier,
                source: source.to_string(),
            }),
        })
    }

    /// Read and parse a `trusted_root.json` file.
    pub fn from_file(path: &Path) -> Result<Self, VerifyError> {
        let name = path.display().to_string();
        let invalid = |reason: String| VerifyError::InvalidTrustedRoot {
            source_name: name.clone(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| invalid(format!("cannot read: {e}")))?;
        if meta.len() > MAX_TRUSTED_ROOT_SIZE {
            return Err(invalid(format!(
                "{} bytes, larger than the {MAX_TRUSTED_ROOT_SIZE}-byte limit",
                meta.len()
            )));
        }
        let json =
            std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot read: {e}")))?;
        Self::from_json(&json, &name)
    }

    /// `path` when given, else the embedded production root.
    pub fn load(path: Option<&Path>) -> Result<Self, VerifyError> {
        match path {
            Some(p) => Self::from_file(p),
            None => Self::production(),
        }
    }

    /// The latest start of any validity window in this root (Fulcio CAs, Rekor and CT log
    /// keys, TSAs): how recent its newest key is. A root that Sigstore rotated adds keys that
    /// start later, so of two roots of one instance the one with the later value is newer.
    pub fn newest_key_start(&self) -> Option<jiff::Timestamp> {
        let root = &self.inner.root;
        let starts =
            (root.certificate_authorities.iter()).filter_map(|c| c.valid_for.map(|v| v.start));
        let tlogs = (root.tlogs.iter()).map(|t| &t.public_key);
        let logs = (tlogs.chain(root.ctlogs.iter().map(|t| &t.public_key)))
            .filter_map(|k| k.valid_for.map(|v| v.start));
        let tsas = (root.timestamp_authorities.iter()).filter_map(|t| t.valid_for.map(|v| v.start));
        starts.chain(logs).chain(tsas).max()
    }

    /// Where this root came from.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    pub(crate) fn verifier(&self) -> &sigstore_verify::Verifier {
        &self.inner.verifier
    }

    /// The base URL of the transparency log with this log id (base64), if trusted.
    pub(crate) fn tlog_url(&self, log_id_b64: &str) -> Option<&str> {
        self.inner
            .root
            .tlogs
            .iter()
            .find(|t| t.log_id.key_id.to_string() == log_id_b64)
            .map(|t| t.base_url.as_str())
    }

    /// What is trusted, for `oci-model trusted-root show` and reports.
    pub fn summary(&self) -> TrustedRootSummary {
        let root = &self.inner.root;
        let validity = |v: &Option<sigstore_types::TimeRange>| Validity {
            start: v.map(|r| r.start.to_string()),
            end: v.and_then(|r| r.end.map(|e| e.to_string())),
        };
        let subject = |org: &Option<String>, cn: &Option<String>| {
            let mut parts = Vec::new();
            if let Some(o) = org {
                parts.push(format!("O={o}"));
            }
            if let Some(c) = cn {
                parts.push(format!("CN={c}"));
            }
            parts.join(", ")
        };
        // Transparency logs and certificate transparency logs alike.
        let log = |base_url: &str, id: &LogId, key: &LogPublicKey| LogSummary {
            base_url: base_url.to_string(),
            log_id: id.key_id.to_string(),
            key_details: key.key_details.to_string(),
            valid_for: validity(&key.valid_for),
        };
        TrustedRootSummary {
            source: self.inner.source.clone(),
            media_type: root.media_type.clone(),
            certificate_authorities: root
                .certificate_authorities
                .iter()
                .map(|ca| AuthoritySummary {
                    subject: subject(&ca.subject.organization, &ca.subject.common_name),
                    uri: Some(ca.uri.clone()),
                    certificates: ca.cert_chain.certificates.len(),
                    valid_for: validity(&ca.valid_for),
                })
                .collect(),
            tlogs: (root.tlogs.iter())
                .map(|t| log(&t.base_url, &t.log_id, &t.public_key))
                .collect(),
            ctlogs: (root.ctlogs.iter())
                .map(|t| log(&t.base_url, &t.log_id, &t.public_key))
                .collect(),
            timestamp_authorities: root
                .timestamp_authorities
                .iter()
                .map(|tsa| AuthoritySummary {
                    subject: subject(&tsa.subject.organization, &tsa.subject.common_name),
                    uri: tsa.uri.clone(),
                    certificates: tsa.cert_chain.certificates.len(),
                    valid_for: validity(&tsa.valid_for),
                })
                .collect(),
        }
    }
}

/// A validity window (RFC 3339); `end: None` means still valid.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Validity {
    pub start: Option<String>,
    pub end: Option<String>,
}

impl std::fmt::Display for Validity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.start, &self.end) {
            (None, None) => f.write_str("no validity window"),
            (Some(s), None) => write!(f, "valid from {s}"),
            (Some(s), Some(e)) => write!(f, "valid {s} to {e}"),
            (None, Some(e)) => write!(f, "valid until {e}"),
        }
    }
}

/// A Fulcio CA or a timestamp authority.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthoritySummary {
    pub subject: String,
    pub uri: Option<String>,
    /// Certificates in the chain.
    pub certificates: usize,
    pub valid_for: Validity,
}

/// A Rekor or CT log.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogSummary {
    pub base_url: String,
    /// Base64 log id (sha256 of the log's public key).
    pub log_id: String,
    pub key_details: String,
    pub valid_for: Validity,
}

/// Everything a trusted root trusts.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustedRootSummary {
    pub source: String,
    pub media_type: String,
    pub certificate_authorities: Vec<AuthoritySummary>,
    pub tlogs: Vec<LogSummary>,
    pub ctlogs: Vec<LogSummary>,
    pub timestamp_authorities: Vec<AuthoritySummary>,
}

impl TrustedRootSummary {
    /// Human-readable listing.
    pub fn to_text(&self) -> String {
        let authority = |a: &AuthoritySummary| {
            format!(
                "  - {} ({})\n    {}; chain of {} certificate(s)\n",
                if a.subject.is_empty() {
                    "(no subject)"
                } else {
                    &a.subject
                },
                a.uri.as_deref().unwrap_or("no URI"),
                a.valid_for,
                a.certificates
            )
        };
        let log = |l: &LogSummary| {
            format!(
                "  - {}\n    logId {} ({}); {}\n",
                l.base_url, l.log_id, l.key_details, l.valid_for
            )
        };
        /// A heading with the count, then one entry per item.
        fn section<T>(out: &mut String, title: &str, items: &[T], entry: impl Fn(&T) -> String) {
            out.push_str(&format!("{title}: {}\n", items.len()));
            out.extend(items.iter().map(entry));
        }
        let mut out = format!("Trusted root: {}\n", self.source);
        let authorities = &self.certificate_authorities;
        section(
            &mut out,
            "Certificate authorities (Fulcio)",
            authorities,
            authority,
        );
        section(&mut out, "Transparency logs (Rekor)", &self.tlogs, log);
        section(&mut out, "Certificate transparency logs", &self.ctlogs, log);
        let tsas = &self.timestamp_authorities;
        section(&mut out, "Timestamp authorities", tsas, authority);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_production_root_lists_public_good_services() {
        let root = TrustedRoot::production().unwrap();
        let s = root.summary();
        assert_eq!(s.certificate_authorities.len(), 2);
        assert!(s
            .tlogs
            .iter()
            .any(|t| t.base_url == "https://rekor.sigstore.dev"
                && t.log_id == "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="));
        assert!(s
            .tlogs
            .iter()
            .any(|t| t.base_url.contains("log2025-1.rekor.sigstore.dev")));
        assert_eq!(s.ctlogs.len(), 2);
        assert_eq!(s.timestamp_authorities.len(), 1);
        let text = s.to_text();
        assert!(text.contains("O=sigstore.dev, CN=sigstore"), "{text}");
        assert!(text.contains("https://rekor.sigstore.dev"), "{text}");
    }

    #[test]
    fn rejects_what_is_not_a_trusted_root() {
        for bad in ["", "{}", "[1]", r#"{"mediaType":"application/json"}"#] {
            let err = TrustedRoot::from_json(bad, "test.json").unwrap_err();
            assert!(
                matches!(err, VerifyError::InvalidTrustedRoot { .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains("test.json"), "{err}");
        }
    }

    #[test]
    fn newest_key_start_is_the_latest_validity_start() {
        let root = TrustedRoot::production().unwrap();
        // The embedded root's newest key: Rekor v2 log2025-1 (2025-09-23).
        let newest = root.newest_key_start().unwrap();
        assert!(
            newest >= "2025-09-23T00:00:00Z".parse().unwrap(),
            "{newest}"
        );
        assert!(newest < "2026-01-01T00:00:00Z".parse().unwrap(), "{newest}");
        let later = PRODUCTION_TRUSTED_ROOT_JSON.replacen(
            "\"start\": \"2025-09-23T00:00:00Z\"",
            "\"start\": \"2030-01-01T00:00:00.000Z\"",
            1,
        );
        assert_ne!(
            later, PRODUCTION_TRUSTED_ROOT_JSON,
            "the test edits a start date"
        );
        let later = TrustedRoot::from_json(&later, "later").unwrap();
        assert_eq!(
            later.newest_key_start().unwrap(),
            "2030-01-01T00:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
    }

    #[test]
    fn missing_file_is_named() {
        let err = TrustedRoot::from_file(Path::new("/nonexistent/root.json")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/root.json"), "{err}");
    }

    #[test]
    fn trusted_root_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TrustedRoot>();
    }
}
