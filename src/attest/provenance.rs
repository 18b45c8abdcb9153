//! SLSA provenance v1 (<https://slsa.dev/spec/v1.0/provenance>) for a trained model, and the
//! provenance checks verify runs.
//!
//! The generated predicate (build type [`BUILD_TYPE`]):
//! ```json
//! {
//!   "buildDefinition": {
//!     "buildType": "https://oci-model.dev/ModelTraining/v1",
//!     "externalParameters": {
//!       "command": "python train.py --epochs 3",
//!       "parameters": {"lr": 0.0001, "epochs": 3},
//!       "model": "registry.example.com/team/bert"
//!     },
//!     "internalParameters": {"github": {"event_name": "push", "…": "…"}},
//!     "resolvedDependencies": [
//!       {"uri": "git+https://github.com/org/repo@refs/heads/main", "digest": {"gitCommit": "…"}},
//!       {"uri": "file:data/train", "digest": {"sha256": "…"}, "name": "dataset",
//!        "annotations": {"oci-model.dev/directory-hash": "sha256sum-v1"}},
//!       {"uri": "oci://ghcr.io/org/base@sha256:…", "digest": {"sha256": "…"}, "name": "base"}
//!     ]
//!   },
//!   "runDetails": {
//!     "builder": {"id": "https://github.com/org/repo/.github/workflows/train.yml@refs/heads/main",
//!                 "version": {"oci-model": "0.1.0"}},
//!     "metadata": {"invocationId": "…", "startedOn": "…Z", "finishedOn": "…Z"}
//!   }
//! }
//! ```

use super::ci::{self, CiProvider};
use super::materials::{self, file_uri, ReferenceResolver};
use super::{AttestError, Result};
use crate::digest::Digest;
use crate::intoto::{statement_for_manifest, ResourceDescriptor, Statement};
use crate::media_types::PREDICATE_SLSA_PROVENANCE_V1;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// `buildDefinition.buildType` of the provenance oci-model generates. A stable URI: its
/// meaning changes only with a new version (`…/v2`). It means "a model was produced by a
/// training (or fine-tuning, conversion, quantisation) run and pushed as the OCI artifact in
/// the subject". Fields:
///
/// - `externalParameters` (inputs the person starting the run controlled; verifiers should
///   check them):
///   - `model` (string, always): the repository the model was pushed to (the subject's name).
///   - `command` (string, optional, `--command`): the training command line, as given.
///   - `parameters` (optional, `--parameters FILE`): the hyper-parameters. The file's content
///     as a JSON value when the file is JSON, or YAML holding a mapping or a list (converted to
///     JSON), and at most [`MAX_INLINE_PARAMETERS`] bytes; otherwise a reference
///     `{"uri": "file:<FILE>", "digest": {"sha256": "<hex>"}}`.
/// - `internalParameters` (optional; set by the CI platform, informative): `{"github": …}`,
///   `{"gitlab": …}` or `{"tekton": …}` with the run's identifiers (see [`super::ci`]).
/// - `resolvedDependencies` (optional, absent when empty): the CI source checkout
///   (`git+<repo>@<ref>`, digest `gitCommit`) when known, then each `--material NAME=…` in
///   the order given: `name` = NAME, `uri` = `file:<PATH>` (digest `sha256` of the file, or of
///   the directory as defined in [`super::materials::hash_directory`], marked by the annotation
///   `oci-model.dev/directory-hash: sha256sum-v1`) or `oci://host/repo@sha256:…` /
///   `oci:<dir>@sha256:…` (digest `sha256` = the manifest digest).
/// - `runDetails.builder.id`: who ran the build (see [`super::ci`]; `--builder-id` overrides;
///   [`super::ci::LOCAL_BUILDER_ID`] outside CI). `builder.version` = `{"oci-model": <version>}`.
/// - `runDetails.metadata` (absent when empty): `invocationId` (CI run URL / id, or
///   `--invocation-id`), `startedOn` / `finishedOn` (RFC 3339 UTC; from CI where it tells, or
///   `--started-on` / `--finished-on`; absent otherwise — no clock is read).
pub const BUILD_TYPE: &str = "https://oci-model.dev/ModelTraining/v1";

/// Largest parameters file embedded in the provenance; larger ones are recorded by digest.
pub const MAX_INLINE_PARAMETERS: u64 = 1024 * 1024;

/// SLSA provenance v1 predicate. Deserialization is lenient (unknown fields ignored, optional
/// ones defaulted) so provenance from other builders can be checked too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    #[serde(default)]
    pub external_parameters: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetails {
    pub builder: Builder,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BuildMetadata>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Builder {
    pub id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_on: Option<String>,
}

/// `externalParameters` of [`BUILD_TYPE`] (field order = serialization order).
#[derive(Clone, Debug, PartialEq, Serialize)]
struct ExternalParameters<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    model: &'a str,
}

/// What the CLI gathers for `attest --provenance`: the `ProvenanceOpts` flags as given, plus
/// `Settings::ci_env()`. Flags override what the CI environment says.
#[derive(Clone, Debug, Default)]
pub struct ProvenanceInput {
    /// `--command`: the training command.
    pub command: Option<String>,
    /// `--parameters FILE`: hyper-parameters file.
    pub parameters: Option<PathBuf>,
    /// `--material NAME=PATH|REF`, each as given.
    pub materials: Vec<String>,
    /// `--builder-id URI`.
    pub builder_id: Option<String>,
    /// `--invocation-id ID`.
    pub invocation_id: Option<String>,
    /// `--started-on TIME` (RFC 3339).
    pub started_on: Option<String>,
    /// `--finished-on TIME` (RFC 3339).
    pub finished_on: Option<String>,
    /// The CI variables (`Settings::ci_env()`).
    pub ci_env: BTreeMap<String, String>,
}

/// Builds the SLSA provenance v1 predicate for the model pushed to `repository`.
///
/// Order of work: CI detection and flag validation (times, builder id) first, so a bad flag
/// fails before any hashing; then the parameters file; then the materials (files hashed on
/// blocking threads, references resolved through `resolver`).
///
/// CLI (`attest --provenance`):
/// ```ignore
/// let input = ProvenanceInput {
///     command: o.command, parameters: o.parameters, materials: o.materials,
///     builder_id: o.builder_id, invocation_id: o.invocation_id,
///     started_on: o.started_on, finished_on: o.finished_on,
///     ci_env: settings.ci_env(),
/// };
/// let statement = provenance_statement(&input, &target.repository_name(), &digest, &resolver).await?;
/// ```
/// Every error is an input error (exit 2) except `MaterialUnresolved`, which may be a registry
/// error (exit 3) — its reason carries the resolver's message.
pub async fn generate_provenance(
    input: &ProvenanceInput,
    repository: &str,
    resolver: &dyn ReferenceResolver,
) -> Result<Provenance> {
    let ctx = ci::detect(&input.ci_env)?;

    let builder_id = match (&input.builder_id, &ctx.builder_id) {
        (Some(flag), _) => {
            ci::validate_uri("--builder-id", flag)?;
            flag.clone()
        }
        (None, Some(id)) => id.clone(),
        (None, None) => {
            return Err(AttestError::MissingCiVariable {
                ci: ctx.provider.name(),
                variable: ctx.missing.unwrap_or("the CI variables"),
                reason: "it forms runDetails.builder.id; pass --builder-id to set it",
            })
        }
    };
    let started_on = match &input.started_on {
        Some(v) => Some(ci::normalize_time("--started-on", v)?),
        None => ctx.started_on.clone(),
    };
    let finished_on = input
        .finished_on
        .as_deref()
        .map(|v| ci::normalize_time("--finished-on", v))
        .transpose()?;
    if let (Some(s), Some(f)) = (&started_on, &finished_on) {
        let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).expect("normalised above");
        if parse(s) > parse(f) {
            return Err(AttestError::TimeOrder {
                started: s.clone(),
                finished: f.clone(),
            });
        }
    }
    let invocation_id = input
        .invocation_id
        .clone()
        .filter(|v| !v.is_empty())
        .or(ctx.invocation_id.clone().filter(|v| !v.is_empty()));
    // Syntax and duplicate names are checked before the parameters file is read.
    materials::parse_materials(&input.materials)?;

    let parameters = match &input.parameters {
        Some(path) => {
            let path = path.clone();
            Some(
                match tokio::task::spawn_blocking(move || read_parameters(&path)).await {
                    Ok(r) => r?,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                },
            )
        }
        None => None,
    };

    let mut dependencies = Vec::new();
    if let Some(src) = ctx.source.clone() {
        dependencies.push(src);
    }
    dependencies.extend(materials::resolve_materials(&input.materials, resolver).await?);

    let external = ExternalParameters {
        command: input.command.as_deref().filter(|c| !c.is_empty()),
        parameters,
        model: repository,
    };
    let metadata = BuildMetadata {
        invocation_id,
        started_on,
        finished_on,
    };
    Ok(Provenance {
        build_definition: BuildDefinition {
            build_type: BUILD_TYPE.to_string(),
            external_parameters: serde_json::to_value(external)
                .expect("string keys only: serializes"),
            internal_parameters: match ctx.provider {
                CiProvider::Local => None,
                _ => ctx.internal_parameters.clone(),
            },
            resolved_dependencies: dependencies,
        },
        run_details: RunDetails {
            builder: Builder {
                id: builder_id,
                version: BTreeMap::from([(
                    "oci-model".to_string(),
                    env!("CARGO_PKG_VERSION").to_string(),
                )]),
            },
            metadata: (metadata != BuildMetadata::default()).then_some(metadata),
        },
    })
}

/// [`generate_provenance`] wrapped in the Statement for the model manifest (predicate type
/// `https://slsa.dev/provenance/v1`). The CLI signs `statement.to_json_bytes()`.
pub async fn provenance_statement(
    input: &ProvenanceInput,
    repository: &str,
    manifest_digest: &Digest,
    resolver: &dyn ReferenceResolver,
) -> Result<Statement> {
    let provenance = generate_provenance(input, repository, resolver).await?;
    Ok(statement_for_manifest(
        repository,
        manifest_digest,
        PREDICATE_SLSA_PROVENANCE_V1,
        provenance.to_value(),
    ))
}

impl Provenance {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("string keys only: serializes")
    }

    /// Reads a SLSA provenance v1 predicate (the `predicate` of a verified statement whose
    /// `predicateType` is `https://slsa.dev/provenance/v1`). Lenient as described on
    /// [`Provenance`]; an error when the predicate does not have the v1 shape (e.g. no
    /// `buildDefinition.buildType` or `runDetails.builder.id`).
    pub fn from_predicate(predicate: &Value) -> Result<Provenance, ProvenanceCheckError> {
        Provenance::deserialize(predicate).map_err(ProvenanceCheckError::NotProvenance)
    }
}

/// Why a verified provenance predicate does not meet a requirement ([`check_builder_id`],
/// [`check_material`]); the message says what was found and expected.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceCheckError {
    #[error("predicate is not SLSA provenance v1: {0}")]
    NotProvenance(#[source] serde_json::Error),
    #[error("builder id is {found:?}, expected {expected:?}")]
    BuilderId { found: String, expected: String },
    #[error("expected material digest {expected:?} is not sha256:<64 hex> or <64 hex>")]
    BadExpectedDigest { expected: String },
    /// No resolved dependency has this name or uri; `present` lists each material by its
    /// name, or its uri when it has none.
    #[error("lists no material named {name:?} ({})", materials_present(.present))]
    NoMaterial { name: String, present: Vec<String> },
    /// The named materials' digests (`sha256:HEX`, or what they have instead).
    #[error("material {name:?} has {}, expected sha256:{expected}", .found.join(" and "))]
    MaterialDigest {
        name: String,
        found: Vec<String>,
        expected: String,
    },
}

fn materials_present(present: &[String]) -> String {
    if present.is_empty() {
        "it lists no materials".to_string()
    } else {
        format!("materials: {}", present.join(", "))
    }
}

/// The parameters file as recorded in `externalParameters.parameters` (see [`BUILD_TYPE`]).
/// Blocking I/O.
pub fn read_parameters(path: &Path) -> Result<Value> {
    let read_err = |source| AttestError::Read {
        what: "parameters file",
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_file() {
        return Err(AttestError::Read {
            what: "parameters file",
            path: path.to_path_buf(),
            source: std::io::Error::other("not a regular file"),
        });
    }
    if meta.len() <= MAX_INLINE_PARAMETERS {
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_INLINE_PARAMETERS + 1).read_to_end(&mut bytes))
            .map_err(read_err)?;
        if bytes.len() as u64 <= MAX_INLINE_PARAMETERS {
            if let Some(v) = structured(&bytes) {
                return Ok(v);
            }
        }
    }
    let digest = crate::model::hash_file(path).map_err(|e| read_err(e.source))?;
    Ok(serde_json::json!({
        "uri": file_uri(&path.to_string_lossy()),
        "digest": {"sha256": digest.hex()},
    }))
}

/// JSON (any value), or YAML holding a mapping or a sequence (plain text is valid YAML too: a
/// string scalar, which is not taken as parameters).
fn structured(bytes: &[u8]) -> Option<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return Some(v);
    }
    let yaml: serde_yaml::Value = serde_yaml::from_slice(bytes).ok()?;
    match yaml {
        serde_yaml::Value::Mapping(_) | serde_yaml::Value::Sequence(_) => {
            serde_json::to_value(yaml).ok()
        }
        _ => None,
    }
}

/// `--provenance-builder-id ID` (and a policy file's `builderId`): the SLSA provenance v1
/// `predicate` of a VERIFIED statement (signature, subject and signer policy already checked)
/// must have `runDetails.builder.id` exactly `expected`.
///
/// Verify ([`crate::verify::evaluate`]) runs this and [`check_material`] on every verified
/// provenance; the requirements hold when one provenance passes every check. The `Err` message
/// says what was found and expected (`builder id is "A", expected "B"`).
pub fn check_builder_id(predicate: &Value, expected: &str) -> Result<(), ProvenanceCheckError> {
    let provenance = Provenance::from_predicate(predicate)?;
    let found = provenance.run_details.builder.id;
    if found == expected {
        Ok(())
    } else {
        Err(ProvenanceCheckError::BuilderId {
            found,
            expected: expected.to_string(),
        })
    }
}

fn normalize_expected_digest(expected: &str) -> Result<String, ProvenanceCheckError> {
    let hex = expected.strip_prefix("sha256:").unwrap_or(expected);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(ProvenanceCheckError::BadExpectedDigest {
            expected: expected.to_string(),
        })
    }
}

/// `--provenance-material NAME=DIGEST` (and a policy file's `materials`): the SLSA provenance
/// v1 `predicate` of a VERIFIED statement must list a resolved dependency whose `name` or `uri`
/// is `name` and whose `digest.sha256` equals `expected_digest` (`sha256:HEX` or `HEX`, any
/// case). The `Err` message names the material, the expected digest and what was found
/// (another digest, no sha256 digest, or the materials present).
pub fn check_material(
    predicate: &Value,
    name: &str,
    expected_digest: &str,
) -> Result<(), ProvenanceCheckError> {
    let expected = normalize_expected_digest(expected_digest)?;
    let provenance = Provenance::from_predicate(predicate)?;
    let deps = &provenance.build_definition.resolved_dependencies;
    let named: Vec<&ResourceDescriptor> = deps
        .iter()
        .filter(|d| d.name.as_deref() == Some(name) || d.uri.as_deref() == Some(name))
        .collect();
    if named.is_empty() {
        // Each material by its name, or its uri when it has none.
        let present = deps
            .iter()
            .filter_map(|d| d.name.clone().or_else(|| d.uri.clone()))
            .collect();
        return Err(ProvenanceCheckError::NoMaterial {
            name: name.to_string(),
            present,
        });
    }
    if named
        .iter()
        .any(|d| d.digest.get("sha256").map(|h| h.to_ascii_lowercase()) == Some(expected.clone()))
    {
        return Ok(());
    }
    let found: Vec<String> = named
        .iter()
        .map(|d| match d.digest.get("sha256") {
            Some(h) => format!("sha256:{h}"),
            None => format!(
                "no sha256 digest (has {})",
                d.digest.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
        .collect();
    Err(ProvenanceCheckError::MaterialDigest {
        name: name.to_string(),
        found,
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::ci::tests::env;
    use crate::attest::materials::NoReferences;
    use crate::reference::Target;
    use serde_json::json;

    fn github_env() -> BTreeMap<String, String> {
        env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "org/models"),
            ("GITHUB_RUN_ID", "42"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            (
                "GITHUB_WORKFLOW_REF",
                "org/models/.github/workflows/train.yml@refs/heads/main",
            ),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_SHA", "0123abcd"),
        ])
    }

    #[tokio::test]
    async fn local_provenance_has_the_documented_shape() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("train.csv");
        std::fs::write(&data, b"x,y\n").unwrap();
        let input = ProvenanceInput {
            command: Some("python train.py".into()),
            materials: vec![format!("dataset={}", data.display())],
            ..Default::default()
        };
        let p = generate_provenance(&input, "localhost:5000/team/bert", &NoReferences)
            .await
            .unwrap();
        let v = p.to_value();
        assert_eq!(v["buildDefinition"]["buildType"], BUILD_TYPE);
        assert_eq!(
            v["buildDefinition"]["externalParameters"],
            json!({"command": "python train.py", "model": "localhost:5000/team/bert"})
        );
        assert!(v["buildDefinition"].get("internalParameters").is_none());
        let deps = v["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap();
        assert_eq!(deps.len(), 1);
        assert_eq!(deps[0]["name"], "dataset");
        assert_eq!(deps[0]["digest"]["sha256"], Digest::of(b"x,y\n").hex());
        assert_eq!(v["runDetails"]["builder"]["id"], ci::LOCAL_BUILDER_ID);
        assert_eq!(
            v["runDetails"]["builder"]["version"]["oci-model"],
            env!("CARGO_PKG_VERSION")
        );
        assert!(
            v["runDetails"].get("metadata").is_none(),
            "no times unless given: {v}"
        );
        // Field order is fixed: buildDefinition first, buildType first within it.
        let text = v.to_string();
        assert!(
            text.starts_with(r#"{"buildDefinition":{"buildType":"#),
            "{text}"
        );
        // Round trip through the lenient reader.
        assert_eq!(serde_json::from_value::<Provenance>(v).unwrap(), p);
    }

    #[tokio::test]
    async fn local_flags_fill_builder_invocation_and_times() {
        let input = ProvenanceInput {
            builder_id: Some("https://ci.example.com/builders/gpu-1".into()),
            invocation_id: Some("run-7".into()),
            started_on: Some("2024-05-01T10:00:00+02:00".into()),
            finished_on: Some("2024-05-01T09:30:00Z".into()),
            ..Default::default()
        };
        let p = generate_provenance(&input, "r", &NoReferences)
            .await
            .unwrap();
        assert_eq!(
            p.run_details.builder.id,
            "https://ci.example.com/builders/gpu-1"
        );
        assert_eq!(
            p.run_details.metadata.unwrap(),
            BuildMetadata {
                invocation_id: Some("run-7".into()),
                started_on: Some("2024-05-01T08:00:00Z".into()),
                finished_on: Some("2024-05-01T09:30:00Z".into()),
            }
        );
    }

    #[tokio::test]
    async fn bad_flags_are_rejected_before_any_work() {
        let cases = [
            (
                ProvenanceInput {
                    started_on: Some("May 1st".into()),
                    ..Default::default()
                },
                "--started-on",
            ),
            (
                ProvenanceInput {
                    finished_on: Some("2024-13-01T00:00:00Z".into()),
                    ..Default::default()
                },
                "--finished-on",
            ),
            (
                ProvenanceInput {
                    builder_id: Some("my laptop".into()),
                    ..Default::default()
                },
                "--builder-id",
            ),
            (
                ProvenanceInput {
                    started_on: Some("2024-05-02T00:00:00Z".into()),
                    finished_on: Some("2024-05-01T00:00:00Z".into()),
                    ..Default::default()
                },
                "is after finishedOn",
            ),
            (
                ProvenanceInput {
                    materials: vec!["oops".into()],
                    ..Default::default()
                },
                "\"oops\"",
            ),
        ];
        for (input, needle) in cases {
            let err = generate_provenance(&input, "r", &NoReferences)
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[tokio::test]
    async fn github_env_fills_run_details_and_source() {
        let input = ProvenanceInput {
            ci_env: github_env(),
            ..Default::default()
        };
        let p = generate_provenance(&input, "ghcr.io/org/bert", &NoReferences)
            .await
            .unwrap();
        assert_eq!(
            p.run_details.builder.id,
            "https://github.com/org/models/.github/workflows/train.yml@refs/heads/main"
        );
        let m = p.run_details.metadata.unwrap();
        assert_eq!(
            m.invocation_id.as_deref(),
            Some("https://github.com/org/models/actions/runs/42/attempts/1")
        );
        assert_eq!((m.started_on, m.finished_on), (None, None));
        assert_eq!(
            p.build_definition.internal_parameters.unwrap()["github"]["sha"],
            "0123abcd"
        );
        let src = &p.build_definition.resolved_dependencies[0];
        assert_eq!(
            src.uri.as_deref(),
            Some("git+https://github.com/org/models@refs/heads/main")
        );
    }

    #[tokio::test]
    async fn gitlab_and_tekton_env_fill_run_details() {
        let gitlab = env(&[
            ("GITLAB_CI", "true"),
            ("CI_SERVER_URL", "https://gitlab.com"),
            ("CI_PROJECT_PATH", "ml/bert"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_PIPELINE_ID", "1"),
            ("CI_JOB_ID", "2"),
            ("CI_JOB_URL", "https://gitlab.com/ml/bert/-/jobs/2"),
            ("CI_JOB_STARTED_AT", "2024-05-01T10:00:00Z"),
        ]);
        let p = generate_provenance(
            &ProvenanceInput {
                ci_env: gitlab,
                ..Default::default()
            },
            "r",
            &NoReferences,
        )
        .await
        .unwrap();
        assert_eq!(
            p.run_details.builder.id,
            "https://gitlab.com/ml/bert//.gitlab-ci.yml@refs/heads/main"
        );
        let m = p.run_details.metadata.unwrap();
        assert_eq!(
            m.invocation_id.as_deref(),
            Some("https://gitlab.com/ml/bert/-/jobs/2")
        );
        assert_eq!(m.started_on.as_deref(), Some("2024-05-01T10:00:00Z"));
        assert_eq!(
            p.build_definition.internal_parameters.unwrap()["gitlab"]["pipeline_id"],
            "1"
        );

        let tekton = env(&[("TEKTON_NAMESPACE", "ml"), ("TEKTON_TASK_RUN", "fit-1")]);
        let p = generate_provenance(
            &ProvenanceInput {
                ci_env: tekton,
                ..Default::default()
            },
            "r",
            &NoReferences,
        )
        .await
        .unwrap();
        assert_eq!(p.run_details.builder.id, ci::TEKTON_DEFAULT_BUILDER_ID);
        assert_eq!(
            p.run_details.metadata.unwrap().invocation_id.as_deref(),
            Some("ml/fit-1")
        );
        assert_eq!(
            p.build_definition.internal_parameters.unwrap()["tekton"]["task_run"],
            "fit-1"
        );
    }

    #[tokio::test]
    async fn flags_override_the_ci_environment() {
        let mut ci_env = github_env();
        ci_env.insert("GITLAB_CI".into(), "true".into());
        let input = ProvenanceInput {
            builder_id: Some("https://builder.example.com/x".into()),
            invocation_id: Some("mine".into()),
            started_on: Some("2024-01-01T00:00:00Z".into()),
            ci_env,
            ..Default::default()
        };
        let p = generate_provenance(&input, "r", &NoReferences)
            .await
            .unwrap();
        assert_eq!(p.run_details.builder.id, "https://builder.example.com/x");
        let m = p.run_details.metadata.unwrap();
        assert_eq!(m.invocation_id.as_deref(), Some("mine"));
        assert_eq!(m.started_on.as_deref(), Some("2024-01-01T00:00:00Z"));
        // GitHub wins detection over GitLab; its CI details stay recorded.
        assert!(p
            .build_definition
            .internal_parameters
            .unwrap()
            .get("github")
            .is_some());
    }

    #[tokio::test]
    async fn detected_ci_without_its_variables_needs_builder_id() {
        let input = ProvenanceInput {
            ci_env: env(&[("GITHUB_ACTIONS", "true")]),
            ..Default::default()
        };
        let err = generate_provenance(&input, "r", &NoReferences)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("GITHUB_REPOSITORY") && err.contains("--builder-id"),
            "{err}"
        );
        let input = ProvenanceInput {
            builder_id: Some("https://b/x".into()),
            ..input
        };
        generate_provenance(&input, "r", &NoReferences)
            .await
            .unwrap();
    }

    #[test]
    fn parameters_json_yaml_and_binary() {
        let dir = tempfile::tempdir().unwrap();
        let json_file = dir.path().join("params.json");
        std::fs::write(&json_file, br#"{"lr": 0.0001, "epochs": 3}"#).unwrap();
        assert_eq!(
            read_parameters(&json_file).unwrap(),
            json!({"lr": 0.0001, "epochs": 3})
        );

        let yaml_file = dir.path().join("params.yaml");
        std::fs::write(&yaml_file, b"lr: 0.0001\nepochs: 3\nlayers: [a, b]\n").unwrap();
        assert_eq!(
            read_parameters(&yaml_file).unwrap(),
            json!({"lr": 0.0001, "epochs": 3, "layers": ["a", "b"]})
        );

        let bin = dir.path().join("params.bin");
        let bytes = [0u8, 159, 146, 150, 255];
        std::fs::write(&bin, bytes).unwrap();
        assert_eq!(
            read_parameters(&bin).unwrap(),
            json!({"uri": file_uri(&bin.to_string_lossy()), "digest": {"sha256": Digest::of(&bytes).hex()}})
        );

        // Plain text parses as a YAML string: recorded by digest, not inlined.
        let txt = dir.path().join("notes.txt");
        std::fs::write(&txt, b"train for a while").unwrap();
        assert!(read_parameters(&txt).unwrap().get("digest").is_some());

        // Too large to inline: recorded by digest even though it is JSON.
        let big = dir.path().join("big.json");
        let content = format!("[{}0]", "0,".repeat(MAX_INLINE_PARAMETERS as usize / 2 + 1));
        std::fs::write(&big, &content).unwrap();
        assert_eq!(
            read_parameters(&big).unwrap()["digest"]["sha256"],
            Digest::of(content.as_bytes()).hex()
        );

        let err = read_parameters(&dir.path().join("nope.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("parameters file") && err.contains("nope.yaml"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn parameters_and_materials_land_in_the_predicate() {
        let dir = tempfile::tempdir().unwrap();
        let params = dir.path().join("p.yaml");
        std::fs::write(&params, b"seed: 1\n").unwrap();
        let base = Digest::from_raw(&[3; 32]);
        let resolver = |_t: Target| {
            let base = base.clone();
            async move { Ok::<_, String>(base) }
        };
        let input = ProvenanceInput {
            parameters: Some(params),
            materials: vec!["base=localhost:5000/org/base:v1".into()],
            ..Default::default()
        };
        let p = generate_provenance(&input, "r", &resolver).await.unwrap();
        assert_eq!(
            p.build_definition.external_parameters["parameters"],
            json!({"seed": 1})
        );
        let dep = &p.build_definition.resolved_dependencies[0];
        assert_eq!(
            dep.uri.as_deref().unwrap(),
            format!("oci://localhost:5000/org/base@{base}")
        );

        let missing = ProvenanceInput {
            materials: vec![format!("data={}", dir.path().join("gone.csv").display())],
            ..Default::default()
        };
        let err = generate_provenance(&missing, "r", &resolver)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"data\"") && err.contains("gone.csv"),
            "{err}"
        );
    }

    async fn sample_statement() -> (Statement, Digest) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        std::fs::write(&data, b"1").unwrap();
        let input = ProvenanceInput {
            builder_id: Some("https://ci.example.com/b".into()),
            materials: vec![format!("dataset={}", data.display())],
            ..Default::default()
        };
        let manifest = Digest::from_raw(&[9; 32]);
        let s = provenance_statement(&input, "localhost:5000/m", &manifest, &NoReferences)
            .await
            .unwrap();
        (s, Digest::of(b"1"))
    }

    #[tokio::test]
    async fn provenance_statement_wraps_the_predicate() {
        let (s, _) = sample_statement().await;
        assert_eq!(s.predicate_type, PREDICATE_SLSA_PROVENANCE_V1);
        assert_eq!(s.subject[0].name, "localhost:5000/m");
        assert_eq!(
            s.subject[0].digest["sha256"],
            Digest::from_raw(&[9; 32]).hex()
        );
        // The signed bytes read back to the same provenance.
        let back: Statement = serde_json::from_slice(&s.to_json_bytes()).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            Provenance::from_predicate(&back.predicate)
                .unwrap()
                .run_details
                .builder
                .id,
            "https://ci.example.com/b"
        );
    }

    #[tokio::test]
    async fn builder_id_check_passes_and_fails() {
        let (s, _) = sample_statement().await;
        check_builder_id(&s.predicate, "https://ci.example.com/b").unwrap();
        let err = check_builder_id(
            &s.predicate,
            "https://github.com/org/r/.github/workflows/t.yml@refs/heads/main",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "builder id is \"https://ci.example.com/b\", expected \"https://github.com/"
            ),
            "{err}"
        );
        let err = check_builder_id(&json!({"runDetails": 1}), "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not SLSA provenance v1"), "{err}");
        // An SPDX document is not provenance either.
        let err = check_builder_id(&json!({"spdxVersion": "SPDX-2.3"}), "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not SLSA provenance v1"), "{err}");
    }

    #[test]
    fn check_errors_are_typed_and_keep_their_source() {
        let err = check_builder_id(&json!({"runDetails": 1}), "x").unwrap_err();
        assert!(
            matches!(err, ProvenanceCheckError::NotProvenance(_)),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some(), "{err}");
        let p = json!({
            "buildDefinition": {"buildType": "https://b/t"},
            "runDetails": {"builder": {"id": "https://b"}}
        });
        let err = check_builder_id(&p, "https://c").unwrap_err();
        assert!(
            matches!(&err, ProvenanceCheckError::BuilderId { found, .. } if found == "https://b"),
            "{err}"
        );
        let err = check_material(&p, "x", "sha256:1234").unwrap_err();
        assert!(
            matches!(err, ProvenanceCheckError::BadExpectedDigest { .. }),
            "{err}"
        );
        let err = check_material(&p, "x", &"ab".repeat(32)).unwrap_err();
        assert!(
            matches!(&err, ProvenanceCheckError::NoMaterial { present, .. } if present.is_empty()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn material_check_passes_and_fails() {
        let (s, d) = sample_statement().await;
        let p = &s.predicate;
        check_material(p, "dataset", d.as_str()).unwrap();
        check_material(p, "dataset", &d.hex().to_ascii_uppercase()).unwrap();
        let other = Digest::of(b"2");
        let err = check_material(p, "dataset", other.as_str())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("material \"dataset\" has {d}, expected {other}")
        );
        let err = check_material(p, "base", d.as_str())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no material named \"base\" (materials: dataset)"),
            "{err}"
        );
        let err = check_material(p, "dataset", "sha256:1234")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"sha256:1234\""), "{err}");
    }

    #[test]
    fn material_is_matched_by_name_or_uri() {
        let hex = "ab".repeat(32);
        let p = json!({
            "buildDefinition": {
                "buildType": "https://example.com/build/v1",
                "resolvedDependencies": [
                    {"uri": "oci://r.example/base@sha256:00", "digest": {"sha256": hex}},
                    {"name": "data", "uri": "file:data", "digest": {"sha256": hex}}
                ]
            },
            "runDetails": {"builder": {"id": "https://b"}}
        });
        check_material(&p, "oci://r.example/base@sha256:00", &hex).unwrap();
        check_material(&p, "data", &hex).unwrap();
        check_material(&p, "file:data", &format!("sha256:{hex}")).unwrap();
        let err = check_material(&p, "base", &hex).unwrap_err().to_string();
        assert!(
            err.contains("(materials: oci://r.example/base@sha256:00, data)"),
            "{err}"
        );
    }

    #[test]
    fn foreign_provenance_is_read_leniently() {
        let p = json!({
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": "refs/heads/main"}},
                "resolvedDependencies": [{"uri": "git+https://github.com/o/r@refs/heads/main", "digest": {"gitCommit": "abc"}}]
            },
            "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}, "byproducts": []}
        });
        check_builder_id(&p, "https://github.com/actions/runner/github-hosted").unwrap();
        let d = Digest::of(b"g");
        let err = check_material(&p, "src", d.as_str())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("(materials: git+https://github.com/o/r@refs/heads/main)"),
            "{err}"
        );
        let err = check_material(&p, "git+https://github.com/o/r@refs/heads/main", d.as_str())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no sha256 digest (has gitCommit)"), "{err}");
        let empty = json!({
            "buildDefinition": {"buildType": "https://b/t"},
            "runDetails": {"builder": {"id": "https://b"}}
        });
        let err = check_material(&empty, "src", d.as_str())
            .unwrap_err()
            .to_string();
        assert!(err.contains("it lists no materials"), "{err}");
    }
}
