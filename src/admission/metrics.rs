//! Counters and the verification latency histogram, rendered in the Prometheus text
//! exposition format (version 0.0.4) for `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Which endpoint a review came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Validate,
    Mutate,
}

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Validate => "validate",
            Endpoint::Mutate => "mutate",
        }
    }
    fn index(self) -> usize {
        match self {
            Endpoint::Validate => 0,
            Endpoint::Mutate => 1,
        }
    }
}

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            let n = self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {n}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// How one model reference's verification ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyResult {
    /// Verified now (cache miss).
    Verified,
    /// Verified earlier; the digest was found in the cache.
    Cached,
    /// Refused (any failed check).
    Failed,
    /// The deadline passed first.
    Timeout,
}

/// Everything `/metrics` reports. Shared by the server and the verifier.
#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; 2],
    allowed: [AtomicU64; 2],
    denied: [AtomicU64; 2],
    invalid: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    shared: AtomicU64,
    results: [AtomicU64; 4],
    policy_reloads: [AtomicU64; 2],
    latency_hit: Histogram,
    latency_miss: Histogram,
}

impl Metrics {
    pub fn request(&self, e: Endpoint) {
        self.requests[e.index()].fetch_add(1, Ordering::Relaxed);
    }
    pub fn allowed(&self, e: Endpoint) {
        self.allowed[e.index()].fetch_add(1, Ordering::Relaxed);
    }
    pub fn denied(&self, e: Endpoint) {
        self.denied[e.index()].fetch_add(1, Ordering::Relaxed);
    }
    /// A request that was not a readable AdmissionReview (answered 400 or 413).
    pub fn invalid(&self) {
        self.invalid.fetch_add(1, Ordering::Relaxed);
    }
    /// One model reference verified (or refused) in `elapsed`.
    pub fn verification(&self, result: VerifyResult, elapsed: Duration) {
        let i = match result {
            VerifyResult::Verified => 0,
            VerifyResult::Cached => 1,
            VerifyResult::Failed => 2,
            VerifyResult::Timeout => 3,
        };
        self.results[i].fetch_add(1, Ordering::Relaxed);
        if result == VerifyResult::Cached {
            self.latency_hit.observe(elapsed);
        } else {
            self.latency_miss.observe(elapsed);
        }
    }
    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }
    pub fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
    }
    /// A reference whose digest was being verified for another request: it waited for that
    /// result instead of verifying again.
    pub fn shared_verification(&self) {
        self.shared.fetch_add(1, Ordering::Relaxed);
    }
    /// The policy file changed and was read again: `ok` when the new policy is in force,
    /// false when it did not load (the previous one stays).
    pub fn policy_reload(&self, ok: bool) {
        self.policy_reloads[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let endpoints = [Endpoint::Validate, Endpoint::Mutate];
        for (name, help, values) in [
            (
                "oci_model_admission_requests_total",
                "AdmissionReview requests received, by endpoint.",
                &self.requests,
            ),
            (
                "oci_model_admission_allowed_total",
                "Requests answered allowed, by endpoint.",
                &self.allowed,
            ),
            (
                "oci_model_admission_denied_total",
                "Requests answered denied, by endpoint.",
                &self.denied,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for e in endpoints {
                let _ = writeln!(
                    out,
                    "{name}{{endpoint=\"{}\"}} {}",
                    e.name(),
                    load(&values[e.index()])
                );
            }
        }
        for (name, help, value) in [
            (
                "oci_model_admission_invalid_requests_total",
                "Requests that were not a readable AdmissionReview v1 (400) or too large (413).",
                &self.invalid,
            ),
            (
                "oci_model_admission_cache_hits_total",
                "Model digests found verified in the cache.",
                &self.cache_hits,
            ),
            (
                "oci_model_admission_cache_misses_total",
                "Model digests verified against the registry.",
                &self.cache_misses,
            ),
            (
                "oci_model_admission_verifications_shared_total",
                "Model references that waited for the same digest's running verification instead of verifying it again.",
                &self.shared,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                load(value)
            );
        }
        let name = "oci_model_admission_verifications_total";
        let _ = writeln!(
            out,
            "# HELP {name} Model references checked, by result.\n# TYPE {name} counter"
        );
        for (i, result) in ["verified", "cached", "failed", "timeout"]
            .iter()
            .enumerate()
        {
            let _ = writeln!(
                out,
                "{name}{{result=\"{result}\"}} {}",
                load(&self.results[i])
            );
        }
        let name = "oci_model_admission_policy_reloads_total";
        let _ = writeln!(
            out,
            "# HELP {name} Times the policy file changed, by result (failed: the previous policy stays).\n# TYPE {name} counter"
        );
        for (i, result) in ["ok", "failed"].iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}{{result=\"{result}\"}} {}",
                load(&self.policy_reloads[i])
            );
        }
        let name = "oci_model_admission_verification_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to check one model reference (resolve, cache or verify).\n# TYPE {name} histogram"
        );
        self.latency_hit.render(&mut out, name, "cache=\"hit\"");
        self.latency_miss.render(&mut out, name, "cache=\"miss\"");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_buckets() {
        let m = Metrics::default();
        m.request(Endpoint::Validate);
        m.request(Endpoint::Mutate);
        m.denied(Endpoint::Mutate);
        m.cache_hit();
        m.verification(VerifyResult::Cached, Duration::from_millis(3));
        m.verification(VerifyResult::Verified, Duration::from_millis(300));
        m.policy_reload(false);
        m.shared_verification();
        let text = m.render();
        for line in [
            "oci_model_admission_requests_total{endpoint=\"validate\"} 1",
            "oci_model_admission_denied_total{endpoint=\"mutate\"} 1",
            "oci_model_admission_allowed_total{endpoint=\"mutate\"} 0",
            "oci_model_admission_cache_hits_total 1",
            "oci_model_admission_verifications_shared_total 1",
            "oci_model_admission_policy_reloads_total{result=\"ok\"} 0",
            "oci_model_admission_policy_reloads_total{result=\"failed\"} 1",
            "oci_model_admission_verifications_total{result=\"cached\"} 1",
            "oci_model_admission_verification_seconds_bucket{cache=\"hit\",le=\"0.005\"} 1",
            "oci_model_admission_verification_seconds_bucket{cache=\"miss\",le=\"0.25\"} 0",
            "oci_model_admission_verification_seconds_bucket{cache=\"miss\",le=\"0.5\"} 1",
            "oci_model_admission_verification_seconds_count{cache=\"miss\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
