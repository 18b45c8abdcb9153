//! What was verified, how, and the verdict: one type for text and JSON output.

use super::bundle::{BoundBundle, Subject};
use super::evaluate::PolicyOutcome;
use super::types::{BundleKind, Check, Signer};
use crate::untrusted::Untrusted;
use serde::Serialize;

/// One bundle's result.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleReport {
    /// Where the bundle came from (a file, a referrer manifest digest).
    pub source: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<BundleKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<Subject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<Signer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_time: Option<String>,
    pub checks: Vec<Check>,
}

impl BundleReport {
    /// A verified bundle; add the caller's own checks to `checks` (resources, referrer subject).
    pub fn verified(source: impl Into<String>, b: &BoundBundle) -> Self {
        BundleReport {
            source: source.into(),
            ok: true,
            error: None,
            media_type: Some(b.media_type().to_string()),
            kind: Some(b.kind()),
            predicate_type: b.predicate_type().map(str::to_string),
            subjects: b.statement().map(|s| s.subject.clone()).unwrap_or_default(),
            signer: Some(b.signer().clone()),
            signing_time: b.signing_time().map(|t| t.to_rfc3339()),
            checks: b.checks().to_vec(),
        }
    }

    /// A bundle that failed, with the reason.
    pub fn failed(source: impl Into<String>, error: impl std::fmt::Display) -> Self {
        BundleReport {
            source: source.into(),
            error: Some(error.to_string()),
            ..Default::default()
        }
    }
}

/// The whole verification.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub ok: bool,
    /// What was verified (artifact file, digest, model reference).
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
    /// Checks about the target itself (e.g. resolved manifest digest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    pub bundles: Vec<BundleReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyOutcome>,
}

impl Report {
    pub fn new(target: impl Into<String>) -> Self {
        Report {
            target: target.into(),
            ..Default::default()
        }
    }

    /// `ok` = the policy passed (or, without a policy, every bundle verified and there is one).
    pub fn finish(&mut self) {
        self.ok = match &self.policy {
            Some(p) => p.passed,
            None => !self.bundles.is_empty() && self.bundles.iter().all(|b| b.ok),
        };
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The report for a person. A manifest digest is called verified only when a trusted
    /// signature binds it; every string from a bundle or a registry is escaped.
    pub fn to_text(&self) -> String {
        let scope = self.policy.as_ref().and_then(|p| p.scope_note());
        let target = Untrusted(&self.target);
        let mut out = match (self.ok, scope) {
            (true, Some(note)) => format!("Partly verified {target}: {note}\n"),
            (true, None) => format!("Verified {target}\n"),
            (false, _) => format!("NOT verified: {target}\n"),
        };
        if let Some(root) = &self.trusted_root {
            out.push_str(&format!("Trusted root: {}\n", Untrusted(root)));
        }
        for c in &self.checks {
            out.push_str(&format!("  {c}\n"));
        }
        for b in &self.bundles {
            let what = b.predicate_type.as_deref().unwrap_or("message signature");
            out.push_str(&format!(
                "Bundle {} — {}\n",
                Untrusted(&b.source),
                if b.ok {
                    Untrusted(what).to_string()
                } else {
                    "FAILED".to_string()
                }
            ));
            if let Some(s) = &b.signer {
                out.push_str(&format!("  signer: {s}\n"));
            }
            if let Some(t) = &b.signing_time {
                out.push_str(&format!("  signed at: {}\n", Untrusted(t)));
            }
            for c in &b.checks {
                out.push_str(&format!("  {c}\n"));
            }
            if let Some(e) = &b.error {
                out.push_str(&format!("  ✗ {}\n", Untrusted(e)));
            }
        }
        if let Some(p) = &self.policy {
            out.push_str(&p.to_text());
        }
        out
    }
}
