//! The Kubernetes admission webhook (`oci-model admission`): verify the models a workload
//! names before the API server accepts it.
//!
//! - [`refs`]: where an object names models (image volumes of pod specs and pod templates,
//!   KServe `storageUri: oci://…`, the `oci-model.dev/models` annotation).
//! - [`review`]: AdmissionReview v1 in and out (kube-core's types), the body cap.
//! - [`verifier`]: one reference → verified digest or the failed check, through the same
//!   path as `verify --policy`; [`cache`]: positive results by digest, bounded, with a TTL.
//! - [`metrics`]: counters and the latency histogram for `/metrics`.
//! - [`server`]: HTTPS (rustls, certificate reloaded when its files change) and the routes;
//!   [`watch`]: noticing that a mounted file (certificate, key, policy) changed.
//!
//! [`Admission::review`] decides: no model referenced → allowed untouched; every reference
//! verified within the deadline → allowed (on `/mutate` with a JSONPatch pinning each tag to
//! the verified digest); anything else → denied, naming each refused reference, its field and
//! the failed check. A deadline that passes denies (fail closed).

pub mod cache;
pub mod metrics;
pub mod refs;
pub mod review;
pub mod server;
pub mod verifier;
pub mod watch;

use kube_core::admission::Operation;
use metrics::{Endpoint, Metrics, VerifyResult};
use refs::{ModelRef, Source};
use std::sync::Arc;
use std::time::{Duration, Instant};
use verifier::{Checked, Denial, FailedCheck, Verifier};

/// An HTTP answer: status, content type, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Answer {
    fn json(body: Vec<u8>) -> Self {
        Answer {
            status: 200,
            content_type: "application/json",
            body,
        }
    }
    fn text(status: u16, message: String) -> Self {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{message}\n").into_bytes(),
        }
    }
}

/// The webhook's decisions: verifier, deadline and metrics.
pub struct Admission {
    verifier: Verifier,
    metrics: Arc<Metrics>,
    deadline: Duration,
}

impl Admission {
    /// `metrics` must be the one the verifier counts cache hits in.
    pub fn new(verifier: Verifier, metrics: Arc<Metrics>, deadline: Duration) -> Self {
        Admission {
            verifier,
            metrics,
            deadline,
        }
    }

    /// Read the policy file again if it changed (see [`Verifier::reload_policy_if_changed`]).
    pub fn reload_policy_if_changed(&self) -> bool {
        self.verifier.reload_policy_if_changed()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// A body larger than [`review::MAX_REVIEW_BYTES`] (answered 413).
    pub fn oversized(&self) -> Answer {
        self.metrics.invalid();
        Answer::text(
            413,
            format!(
                "the request body is larger than the {} MiB an AdmissionReview may take",
                review::MAX_REVIEW_BYTES >> 20
            ),
        )
    }

    /// Decide one AdmissionReview request body.
    pub async fn review(&self, endpoint: Endpoint, body: &[u8]) -> Answer {
        let request = match review::parse(body) {
            Ok(r) => r,
            Err(e) => {
                self.metrics.invalid();
                return Answer::text(400, e.to_string());
            }
        };
        self.metrics.request(endpoint);
        let allow = |m: &Metrics| {
            m.allowed(endpoint);
            Answer::json(review::allow(&request))
        };
        let deny = |m: &Metrics, message: &str| {
            m.denied(endpoint);
            tracing::info!(uid = %request.uid, kind = %request.kind.kind, name = %request.name, "denied: {message}");
            Answer::json(review::deny(&request, message))
        };
        // Deletes and connects carry no new object; subresources (status, scale) no new pod spec.
        let creates = matches!(request.operation, Operation::Create | Operation::Update);
        let object = match review::object(&request) {
            Some(o) if creates && request.sub_resource.is_none() => o,
            _ => return allow(&self.metrics),
        };
        let models = match refs::find(&request.kind, &object) {
            Ok(m) => m,
            Err(e) => return deny(&self.metrics, &format!("oci-model: {e}")),
        };
        if models.is_empty() {
            return allow(&self.metrics);
        }
        let results = self.check_all(&models).await;
        let denials: Vec<String> = models
            .iter()
            .zip(&results)
            .filter_map(|(m, r)| r.as_ref().err().map(|d| denial_line(m, d)))
            .collect();
        if !denials.is_empty() {
            let message = format!(
                "oci-model denied {} of {} model reference(s): {}",
                denials.len(),
                models.len(),
                denials.join("; ")
            );
            return deny(&self.metrics, &message);
        }
        let checked: Vec<&Checked> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        tracing::info!(uid = %request.uid, kind = %request.kind.kind, name = %request.name, "allowed: {} model reference(s) verified", checked.len());
        self.metrics.allowed(endpoint);
        match endpoint {
            Endpoint::Validate => Answer::json(review::allow(&request)),
            Endpoint::Mutate => Answer::json(review::patch(
                &request,
                &pinning(&object, &models, &checked),
            )),
        }
    }

    /// Check every reference at once, each bounded by the deadline (a late one is a denial
    /// that says so; the others keep their own results).
    async fn check_all(&self, models: &[ModelRef]) -> Vec<Result<Checked, Denial>> {
        let deadline = self.deadline;
        let checks = models.iter().map(|m| async move {
            let started = Instant::now();
            let result = tokio::time::timeout(deadline, self.verifier.check(&m.reference)).await;
            let elapsed = started.elapsed();
            match result {
                Ok(Ok(c)) => {
                    let r = if c.cached {
                        VerifyResult::Cached
                    } else {
                        VerifyResult::Verified
                    };
                    self.metrics.verification(r, elapsed);
                    Ok(c)
                }
                Ok(Err(d)) => {
                    self.metrics.verification(VerifyResult::Failed, elapsed);
                    Err(d)
                }
                Err(_) => {
                    self.metrics.verification(VerifyResult::Timeout, elapsed);
                    Err(Denial {
                        check: FailedCheck::Deadline,
                        reason: format!(
                            "verification did not finish within the {} s deadline (failing closed)",
                            deadline.as_secs_f64()
                        ),
                    })
                }
            }
        });
        futures::future::join_all(checks).await
    }
}

fn denial_line(m: &ModelRef, d: &Denial) -> String {
    format!(
        "{} ({}): {d}",
        crate::untrusted::Untrusted(&m.reference),
        m.field()
    )
}

/// The replacements that pin every verified tag reference to its digest: one per field (an
/// annotation's list is rewritten whole). References already by digest stay as written.
fn pinning(
    object: &serde_json::Value,
    models: &[ModelRef],
    checked: &[&Checked],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (m, c) in models.iter().zip(checked) {
        if c.target.digest.is_some() {
            continue;
        }
        match m.source {
            Source::ImageVolume => out.push((m.pointer.clone(), c.pinned())),
            Source::StorageUri => out.push((
                m.pointer.clone(),
                format!("{}{}", refs::OCI_SCHEME, c.pinned()),
            )),
            Source::Annotation => {
                if out.iter().any(|(p, _)| p == &m.pointer) {
                    continue;
                }
                let Some(list) = object.pointer(&m.pointer).and_then(|v| v.as_str()) else {
                    continue;
                };
                // Every entry of this annotation, pinned where verified by tag.
                let rewritten: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(|entry| {
                        models
                            .iter()
                            .zip(checked)
                            .find(|(mm, cc)| {
                                mm.pointer == m.pointer
                                    && mm.reference == entry
                                    && cc.target.digest.is_none()
                            })
                            .map(|(_, cc)| cc.pinned())
                            .unwrap_or_else(|| entry.to_string())
                    })
                    .collect();
                out.push((m.pointer.clone(), rewritten.join(",")));
            }
        }
    }
    out
}
