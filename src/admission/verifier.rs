//! One model reference → verified digest, or the check that refused it. The same path as
//! `verify --policy`: the policy file's rule for the repository, the model's manifest, its
//! referrers verified by `sigstore_ops::verify_target`, the policy evaluated. Positive results
//! are cached by digest ([`VerifiedCache`]); the tag is resolved on every request. The
//! policy file is read again when it changes (a ConfigMap update), and every cached result
//! goes with the policy it was checked against. Requests for a digest whose verification is
//! running wait for it rather than verify it again.

use super::cache::{Verified, VerifiedCache};
use super::metrics::Metrics;
use super::watch::{stamp, Stamp};
use crate::digest::Digest;
use crate::error::ErrorKind;
use crate::reference::{RegistryRef, Target};
use crate::sigstore_ops::{fetch_target, verify_target};
use crate::store::{self, Store, StoreOptions};
use crate::untrusted::Untrusted;
use crate::verify::{PolicyError, PolicyFile, Report, TrustedRoot};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A repository's store is rebuilt after this long, so rotated registry credentials (a
/// remounted pull secret) are read again.
const STORE_LIFETIME: Duration = Duration::from_secs(600);
/// Repositories whose store (connection pool, tokens) is kept at once.
const STORES_KEPT: usize = 256;

/// Running verifications kept in the map before those nobody waits for are dropped.
const RUNNING_KEPT: usize = 1024;

/// A repository's store and when it was made.
type KeptStore = (Instant, Arc<dyn Store>);

/// The check that refused a model reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailedCheck {
    /// Not a registry reference oci-model can verify.
    Reference,
    /// No rule of the policy file applies to the repository (fail closed).
    Policy,
    /// The registry could not be reached, or does not have the tag or manifest.
    Registry,
    /// The manifest is not a model oci-model can verify.
    Manifest,
    /// Signatures and attestations do not satisfy the policy.
    Signature,
    /// The deadline passed before the verification finished.
    Deadline,
}

impl FailedCheck {
    pub fn name(self) -> &'static str {
        match self {
            FailedCheck::Reference => "reference",
            FailedCheck::Policy => "policy",
            FailedCheck::Registry => "registry",
            FailedCheck::Manifest => "manifest",
            FailedCheck::Signature => "signature",
            FailedCheck::Deadline => "deadline",
        }
    }
}

/// Why a model reference was refused.
#[derive(Clone, Debug)]
pub struct Denial {
    pub check: FailedCheck,
    /// Escaped for a terminal (it may quote registry answers).
    pub reason: String,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} check failed: {}", self.check.name(), self.reason)
    }
}

fn deny(check: FailedCheck, reason: impl fmt::Display) -> Denial {
    Denial {
        check,
        reason: Untrusted(reason.to_string()).to_string(),
    }
}

/// A reference that passed the policy.
#[derive(Clone, Debug)]
pub struct Checked {
    pub target: RegistryRef,
    /// The manifest digest that was verified (what the pod must pull).
    pub digest: Digest,
    pub verified: Verified,
    /// Found in the cache (no referrers read this time).
    pub cached: bool,
}

impl Checked {
    /// The reference pinned to the verified digest: `host/repo@sha256:…` (tag dropped).
    pub fn pinned(&self) -> String {
        format!(
            "{}/{}@{}",
            self.target.registry, self.target.repository, self.digest
        )
    }
}

/// The policy in force, numbered: results are cached only under the number they were checked
/// with.
struct Current {
    generation: u64,
    policy: Arc<PolicyFile>,
}

/// The policy file watched for changes, the key files it names, and their stamp when last
/// read.
struct Watched {
    path: PathBuf,
    seen: Mutex<(Vec<PathBuf>, Stamp)>,
}

/// The stamp of a policy file and its key files.
fn policy_stamp(path: &Path, keys: &[PathBuf]) -> Stamp {
    let files: Vec<&Path> = std::iter::once(path)
        .chain(keys.iter().map(PathBuf::as_path))
        .collect();
    stamp(&files)
}

/// One verification of a digest, awaited by every request that asks for that digest while it
/// runs.
type Shared = Arc<tokio::sync::OnceCell<Result<Verified, Denial>>>;

/// Verifies model references against a policy file; shared by every request.
pub struct Verifier {
    policy: RwLock<Current>,
    watched: Option<Watched>,
    trust: TrustedRoot,
    options: StoreOptions,
    cache: VerifiedCache,
    stores: Mutex<HashMap<String, KeptStore>>,
    /// Verifications running now, by policy number, repository and digest: the pods of a
    /// rollout arrive together, and one registry round of verification serves them all.
    running: Mutex<HashMap<String, Shared>>,
    metrics: Arc<Metrics>,
}

impl Verifier {
    pub fn new(
        policy: PolicyFile,
        trust: TrustedRoot,
        options: StoreOptions,
        cache: VerifiedCache,
        metrics: Arc<Metrics>,
    ) -> Self {
        Verifier {
            policy: RwLock::new(Current {
                generation: 0,
                policy: Arc::new(policy),
            }),
            watched: None,
            trust,
            options,
            cache,
            stores: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// A verifier whose policy is the file at `path`, read now and again whenever it changes
    /// ([`Self::reload_policy_if_changed`]).
    pub fn from_policy_file(
        path: &Path,
        trust: TrustedRoot,
        options: StoreOptions,
        cache: VerifiedCache,
        metrics: Arc<Metrics>,
    ) -> Result<Self, PolicyError> {
        let policy = PolicyFile::load(path)?;
        let keys = policy.key_files().to_vec();
        let seen = policy_stamp(path, &keys);
        let mut verifier = Verifier::new(policy, trust, options, cache, metrics);
        verifier.watched = Some(Watched {
            path: path.to_path_buf(),
            seen: Mutex::new((keys, seen)),
        });
        Ok(verifier)
    }

    /// Read the policy file again if it or a key file it names changed (in a ConfigMap volume
    /// every update changes them all). A policy that loads replaces the current one
    /// and empties the cache (a result checked against the old policy proves nothing about the
    /// new one); one that does not load (half written, invalid) leaves the current policy in
    /// force and is logged. True when the policy was replaced.
    pub fn reload_policy_if_changed(&self) -> bool {
        let Some(watched) = &self.watched else {
            return false;
        };
        {
            let mut seen = watched.seen.lock().unwrap_or_else(|p| p.into_inner());
            let now = policy_stamp(&watched.path, &seen.0);
            if seen.1 == now {
                return false;
            }
            seen.1 = now;
        }
        match PolicyFile::load(&watched.path) {
            Ok(policy) => {
                let keys = policy.key_files().to_vec();
                let now = policy_stamp(&watched.path, &keys);
                *watched.seen.lock().unwrap_or_else(|p| p.into_inner()) = (keys, now);
                let mut current = self.policy.write().unwrap_or_else(|p| p.into_inner());
                current.generation += 1;
                current.policy = Arc::new(policy);
                // Under the write lock: no check of the old policy can insert after this.
                self.cache.clear();
                self.metrics.policy_reload(true);
                tracing::info!(policy = %watched.path.display(), "policy reloaded; cache emptied");
                true
            }
            Err(e) => {
                self.metrics.policy_reload(false);
                tracing::warn!("keeping the current policy: {e}");
                false
            }
        }
    }

    /// The policy in force and its number.
    fn current(&self) -> (u64, Arc<PolicyFile>) {
        let current = self.policy.read().unwrap_or_else(|p| p.into_inner());
        (current.generation, current.policy.clone())
    }

    pub fn cache(&self) -> &VerifiedCache {
        &self.cache
    }

    async fn store(&self, target: &RegistryRef) -> Result<Arc<dyn Store>, Denial> {
        let key = format!("{}/{}", target.registry, target.repository);
        {
            let stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((made, s)) = stores.get(&key) {
                if made.elapsed() < STORE_LIFETIME {
                    return Ok(s.clone());
                }
            }
        }
        let store = store::open(&Target::Registry(target.clone()), &self.options)
            .await
            .map_err(|e| deny(FailedCheck::Registry, e))?;
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if stores.len() >= STORES_KEPT {
            stores.retain(|_, (made, _)| made.elapsed() < STORE_LIFETIME);
            if stores.len() >= STORES_KEPT {
                if let Some(oldest) = stores
                    .iter()
                    .min_by_key(|(_, (made, _))| *made)
                    .map(|(k, _)| k.clone())
                {
                    stores.remove(&oldest);
                }
            }
        }
        stores.insert(key, (Instant::now(), store.clone()));
        Ok(store)
    }

    /// Verify one reference (no deadline here: the caller bounds the whole review).
    pub async fn check(&self, reference: &str) -> Result<Checked, Denial> {
        // Only registry references: an `oci:` layout would read this server's own files.
        if reference.starts_with("oci:") {
            return Err(deny(
                FailedCheck::Reference,
                "an OCI layout is a local directory; the webhook verifies registry references (host/repository:tag or @digest) only",
            ));
        }
        let target = RegistryRef::parse(reference).map_err(|e| deny(FailedCheck::Reference, e))?;
        let repository = format!("{}/{}", target.registry, target.repository);
        // The rule first: a repository the policy does not cover is refused without contacting
        // its registry (a pod cannot make the webhook connect to arbitrary hosts).
        let (generation, policy_file) = self.current();
        let policy = policy_file
            .for_repository(&repository)
            .map_err(|e| deny(FailedCheck::Policy, e))?;
        let store = self.store(&target).await?;
        let digest = match &target.digest {
            Some(d) => d.clone(),
            None => {
                let tag = target.tag.as_deref().unwrap_or("latest");
                store
                    .resolve(tag)
                    .await
                    .map_err(|e| deny(registry_or_manifest(e.kind()), e))?
                    .digest
            }
        };
        if let Some(verified) = self.cache.get(&repository, &digest) {
            self.metrics.cache_hit();
            return Ok(Checked {
                target,
                digest,
                verified,
                cached: true,
            });
        }
        // The same digest under the same policy already being verified: wait for that result.
        let key = format!("{generation} {repository}@{digest}");
        let shared: Shared = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.len() >= RUNNING_KEPT {
                // Entries nobody waits for any more (every request for them hit its deadline).
                running.retain(|_, s| Arc::strong_count(s) > 1);
            }
            running.entry(key.clone()).or_default().clone()
        };
        let ran = std::sync::atomic::AtomicBool::new(false);
        let outcome = shared
            .get_or_init(|| async {
                ran.store(true, std::sync::atomic::Ordering::Relaxed);
                self.metrics.cache_miss();
                self.verify_digest(store.as_ref(), &repository, &digest, &policy, generation)
                    .await
            })
            .await
            .clone();
        if !ran.load(std::sync::atomic::Ordering::Relaxed) {
            self.metrics.shared_verification();
        }
        {
            // Done: the next request finds the cache (or, after a failure, verifies anew).
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.get(&key).is_some_and(|s| Arc::ptr_eq(s, &shared)) {
                running.remove(&key);
            }
        }
        let verified = outcome?;
        Ok(Checked {
            target,
            digest,
            verified,
            cached: false,
        })
    }
}

impl Verifier {
    /// Verify `digest` in `repository` against `policy` (the policy numbered `generation`) at
    /// the registry, and cache a success if that policy is still in force.
    async fn verify_digest(
        &self,
        store: &dyn Store,
        repository: &str,
        digest: &Digest,
        policy: &crate::verify::Policy,
        generation: u64,
    ) -> Result<Verified, Denial> {
        let artifact = fetch_target(store, digest.as_str())
            .await
            .map_err(|e| deny(registry_or_manifest(e.kind()), e))?;
        let (report, _) = verify_target(store, &artifact, repository, policy, &self.trust)
            .await
            .map_err(|e| deny(registry_or_manifest(e.kind()), e))?;
        if !report.ok {
            return Err(deny(FailedCheck::Signature, failure_reasons(&report)));
        }
        let verified = Verified {
            signers: report
                .policy
                .iter()
                .flat_map(|p| p.signers_satisfied.iter().map(|s| s.signer.clone()))
                .collect(),
        };
        // Cached only if the policy it was checked against is still the one in force.
        let current = self.policy.read().unwrap_or_else(|p| p.into_inner());
        if current.generation == generation {
            self.cache.insert(repository, digest, verified.clone());
        }
        Ok(verified)
    }
}

fn registry_or_manifest(kind: ErrorKind) -> FailedCheck {
    match kind {
        ErrorKind::Remote | ErrorKind::NotFound => FailedCheck::Registry,
        ErrorKind::Integrity | ErrorKind::Input => FailedCheck::Manifest,
    }
}

/// Why a report failed, on one line: the policy's unmet requirements, then each bundle that
/// did not verify.
fn failure_reasons(report: &Report) -> String {
    let mut reasons: Vec<String> = Vec::new();
    if report.bundles.is_empty() {
        reasons.push("no signatures or attestations are attached".into());
    }
    if let Some(p) = &report.policy {
        reasons.extend(p.failures.iter().cloned());
    }
    for b in report.bundles.iter().filter(|b| !b.ok) {
        if let Some(e) = &b.error {
            reasons.push(format!("{}: {e}", b.source));
        }
    }
    if reasons.is_empty() {
        reasons.push("the policy is not satisfied".into());
    }
    format!("{}: {}", report.target, reasons.join("; "))
}
