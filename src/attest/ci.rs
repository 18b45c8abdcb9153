//! Who ran the build: builder id, invocation id, times and CI specifics, from the CI variables
//! the CLI collected (never read from the process here).
//!
//! Detection order: GitHub Actions (`GITHUB_ACTIONS=true`), GitLab CI (`GITLAB_CI=true`),
//! Tekton (`TEKTON_TASK_RUN` or `TEKTON_PIPELINE_RUN` set), else local. Empty variables count
//! as unset. What each provider gives:
//!
//! | field | GitHub Actions | GitLab CI | Tekton | local |
//! |---|---|---|---|---|
//! | `builder.id` | `$GITHUB_SERVER_URL/$GITHUB_WORKFLOW_REF` (e.g. `https://github.com/org/repo/.github/workflows/train.yml@refs/heads/main`), else `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID` | `$CI_SERVER_URL/$CI_PROJECT_PATH//$CI_CONFIG_PATH@<ref>` (the form of GitLab's `ci_config_ref_uri` claim, which keyless certificates carry), `<ref>` = `refs/tags/$CI_COMMIT_TAG` or `refs/heads/$CI_COMMIT_BRANCH` (else `$CI_COMMIT_REF_NAME`) | `$TEKTON_BUILDER_ID`, else `https://tekton.dev/pipelines` | [`LOCAL_BUILDER_ID`] |
//! | `metadata.invocationId` | `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID/attempts/$GITHUB_RUN_ATTEMPT` | `$CI_JOB_URL`, else `$CI_SERVER_URL/$CI_PROJECT_PATH/-/jobs/$CI_JOB_ID` | `$TEKTON_NAMESPACE/$TEKTON_PIPELINE_RUN/$TEKTON_TASK_RUN` (the set ones) | absent |
//! | `metadata.startedOn` | absent (GitHub exposes no start time) | `$CI_JOB_STARTED_AT` | absent | absent |
//! | `internalParameters` | `{"github": {event_name, job, ref, repository_id, repository_owner_id, runner_environment, sha, workflow_ref, workflow_sha}}` | `{"gitlab": {job_id, job_name, pipeline_id, pipeline_source, pipeline_url, project_id, runner_id}}` | `{"tekton": {namespace, pipeline, pipeline_run, task, task_run, task_run_uid}}` | absent |
//! | source dependency | `git+$GITHUB_SERVER_URL/$GITHUB_REPOSITORY@$GITHUB_REF`, digest `gitCommit: $GITHUB_SHA` | `git+$CI_PROJECT_URL@<ref>`, digest `gitCommit: $CI_COMMIT_SHA` | none | none |
//!
//! Tekton sets no variables by itself: pass them to the step from the run context, e.g.
//! `env: [{name: TEKTON_TASK_RUN, value: $(context.taskRun.name)}, {name: TEKTON_PIPELINE_RUN,
//! value: $(context.pipelineRun.name)}, {name: TEKTON_NAMESPACE, value:
//! $(context.taskRun.namespace)}, {name: TEKTON_TASK_RUN_UID, value: $(context.taskRun.uid)},
//! {name: TEKTON_PIPELINE, value: $(context.pipeline.name)}, {name: TEKTON_TASK, value:
//! $(context.task.name)}]`, and set `TEKTON_BUILDER_ID` to a URI naming the cluster so a
//! verifier can pin it. Hostnames and user names are never recorded.

use super::{AttestError, Result};
use crate::intoto::ResourceDescriptor;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The builder id of a build run outside CI without `--builder-id`.
pub const LOCAL_BUILDER_ID: &str = "https://oci-model.dev/local-builder@v1";
/// The builder id of a Tekton build without `TEKTON_BUILDER_ID`.
pub const TEKTON_DEFAULT_BUILDER_ID: &str = "https://tekton.dev/pipelines";

/// The Tekton variables read (see the module doc): variable → key in
/// `internalParameters.tekton`.
pub const TEKTON_VARIABLES: &[(&str, &str)] = &[
    ("TEKTON_NAMESPACE", "namespace"),
    ("TEKTON_PIPELINE", "pipeline"),
    ("TEKTON_PIPELINE_RUN", "pipeline_run"),
    ("TEKTON_TASK", "task"),
    ("TEKTON_TASK_RUN", "task_run"),
    ("TEKTON_TASK_RUN_UID", "task_run_uid"),
];

const GITHUB_INTERNAL: &[(&str, &str)] = &[
    ("GITHUB_EVENT_NAME", "event_name"),
    ("GITHUB_JOB", "job"),
    ("GITHUB_REF", "ref"),
    ("GITHUB_REPOSITORY_ID", "repository_id"),
    ("GITHUB_REPOSITORY_OWNER_ID", "repository_owner_id"),
    ("RUNNER_ENVIRONMENT", "runner_environment"),
    ("GITHUB_SHA", "sha"),
    ("GITHUB_WORKFLOW_REF", "workflow_ref"),
    ("GITHUB_WORKFLOW_SHA", "workflow_sha"),
];

const GITLAB_INTERNAL: &[(&str, &str)] = &[
    ("CI_JOB_ID", "job_id"),
    ("CI_JOB_NAME", "job_name"),
    ("CI_PIPELINE_ID", "pipeline_id"),
    ("CI_PIPELINE_SOURCE", "pipeline_source"),
    ("CI_PIPELINE_URL", "pipeline_url"),
    ("CI_PROJECT_ID", "project_id"),
    ("CI_RUNNER_ID", "runner_id"),
];

/// Which CI ran us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CiProvider {
    GitHubActions,
    GitLabCi,
    Tekton,
    Local,
}

impl CiProvider {
    pub fn name(self) -> &'static str {
        match self {
            CiProvider::GitHubActions => "GitHub Actions",
            CiProvider::GitLabCi => "GitLab CI",
            CiProvider::Tekton => "Tekton",
            CiProvider::Local => "local",
        }
    }
}

/// What the environment says about the run, before flags override it.
#[derive(Clone, Debug, PartialEq)]
pub struct CiContext {
    pub provider: CiProvider,
    /// `None` when the provider was detected but the variables forming the id are missing;
    /// [`CiContext::missing`] then says which.
    pub builder_id: Option<String>,
    pub invocation_id: Option<String>,
    /// RFC 3339, normalised to UTC.
    pub started_on: Option<String>,
    pub internal_parameters: Option<Value>,
    /// The source repository checkout, as a resolved dependency.
    pub source: Option<ResourceDescriptor>,
    /// The variable whose absence left `builder_id` empty.
    pub missing: Option<&'static str>,
}

fn get<'a>(env: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    env.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

fn internal(env: &BTreeMap<String, String>, key: &str, vars: &[(&str, &str)]) -> Option<Value> {
    let mut fields: BTreeMap<&str, Value> = BTreeMap::new();
    for (var, field) in vars {
        if let Some(v) = get(env, var) {
            fields.insert(field, Value::String(v.to_string()));
        }
    }
    if fields.is_empty() {
        return None;
    }
    let inner: Map<String, Value> = fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut outer = Map::new();
    outer.insert(key.to_string(), Value::Object(inner));
    Some(Value::Object(outer))
}

fn git_source(
    repo_url: &str,
    git_ref: Option<&str>,
    sha: Option<&str>,
) -> Option<ResourceDescriptor> {
    let sha = sha?;
    let uri = match git_ref {
        Some(r) => format!("git+{repo_url}@{r}"),
        None => format!("git+{repo_url}"),
    };
    Some(ResourceDescriptor {
        name: None,
        uri: Some(uri),
        digest: BTreeMap::from([("gitCommit".to_string(), sha.to_string())]),
        annotations: None,
    })
}

/// Reads the CI variables (see the module doc). Errors only on a malformed
/// `CI_JOB_STARTED_AT`.
pub fn detect(env: &BTreeMap<String, String>) -> Result<CiContext> {
    if get(env, "GITHUB_ACTIONS") == Some("true") {
        Ok(github(env))
    } else if get(env, "GITLAB_CI") == Some("true") {
        gitlab(env)
    } else if get(env, "TEKTON_TASK_RUN").is_some() || get(env, "TEKTON_PIPELINE_RUN").is_some() {
        Ok(tekton(env))
    } else {
        Ok(CiContext {
            provider: CiProvider::Local,
            builder_id: Some(LOCAL_BUILDER_ID.to_string()),
            invocation_id: None,
            started_on: None,
            internal_parameters: None,
            source: None,
            missing: None,
        })
    }
}

fn github(env: &BTreeMap<String, String>) -> CiContext {
    let server = get(env, "GITHUB_SERVER_URL")
        .unwrap_or("https://github.com")
        .trim_end_matches('/');
    let repo = get(env, "GITHUB_REPOSITORY");
    let run_id = get(env, "GITHUB_RUN_ID");
    let run = match (repo, run_id) {
        (Some(repo), Some(run)) => Some(format!("{server}/{repo}/actions/runs/{run}")),
        _ => None,
    };
    let builder_id = match get(env, "GITHUB_WORKFLOW_REF") {
        Some(w) => Some(format!("{server}/{}", w.trim_start_matches('/'))),
        None => run.clone(),
    };
    let missing = match (builder_id.is_some(), repo) {
        (true, _) => None,
        (false, None) => Some("GITHUB_REPOSITORY"),
        (false, Some(_)) => Some("GITHUB_RUN_ID"),
    };
    let attempt = get(env, "GITHUB_RUN_ATTEMPT").unwrap_or("1");
    CiContext {
        provider: CiProvider::GitHubActions,
        builder_id,
        invocation_id: run.map(|r| format!("{r}/attempts/{attempt}")),
        started_on: None,
        internal_parameters: internal(env, "github", GITHUB_INTERNAL),
        source: repo.and_then(|repo| {
            git_source(
                &format!("{server}/{repo}"),
                get(env, "GITHUB_REF"),
                get(env, "GITHUB_SHA"),
            )
        }),
        missing,
    }
}

fn gitlab(env: &BTreeMap<String, String>) -> Result<CiContext> {
    let server = get(env, "CI_SERVER_URL")
        .unwrap_or("https://gitlab.com")
        .trim_end_matches('/');
    let project = get(env, "CI_PROJECT_PATH");
    let git_ref = if let Some(tag) = get(env, "CI_COMMIT_TAG") {
        Some(format!("refs/tags/{tag}"))
    } else {
        get(env, "CI_COMMIT_BRANCH")
            .or_else(|| get(env, "CI_COMMIT_REF_NAME"))
            .map(|b| format!("refs/heads/{b}"))
    };
    let config = get(env, "CI_CONFIG_PATH").unwrap_or(".gitlab-ci.yml");
    let builder_id = project.map(|p| match &git_ref {
        Some(r) => format!("{server}/{p}//{config}@{r}"),
        None => format!("{server}/{p}//{config}"),
    });
    let invocation_id = get(env, "CI_JOB_URL").map(str::to_string).or_else(|| {
        Some(format!(
            "{server}/{}/-/jobs/{}",
            project?,
            get(env, "CI_JOB_ID")?
        ))
    });
    let started_on = get(env, "CI_JOB_STARTED_AT")
        .map(|v| normalize_time("CI_JOB_STARTED_AT", v))
        .transpose()?;
    let project_url = get(env, "CI_PROJECT_URL")
        .map(|u| u.trim_end_matches('/').to_string())
        .or_else(|| project.map(|p| format!("{server}/{p}")));
    Ok(CiContext {
        provider: CiProvider::GitLabCi,
        missing: builder_id.is_none().then_some("CI_PROJECT_PATH"),
        builder_id,
        invocation_id,
        started_on,
        internal_parameters: internal(env, "gitlab", GITLAB_INTERNAL),
        source: project_url
            .and_then(|u| git_source(&u, git_ref.as_deref(), get(env, "CI_COMMIT_SHA"))),
    })
}

fn tekton(env: &BTreeMap<String, String>) -> CiContext {
    let parts: Vec<&str> = ["TEKTON_NAMESPACE", "TEKTON_PIPELINE_RUN", "TEKTON_TASK_RUN"]
        .iter()
        .filter_map(|k| get(env, k))
        .collect();
    CiContext {
        provider: CiProvider::Tekton,
        builder_id: Some(
            get(env, "TEKTON_BUILDER_ID")
                .unwrap_or(TEKTON_DEFAULT_BUILDER_ID)
                .to_string(),
        ),
        invocation_id: Some(parts.join("/")),
        started_on: None,
        internal_parameters: internal(env, "tekton", TEKTON_VARIABLES),
        source: None,
        missing: None,
    }
}

/// Validates an RFC 3339 time and normalises it to UTC (`…Z`), keeping sub-second digits.
/// `source_name` names the flag or variable in the error.
pub fn normalize_time(source_name: &str, value: &str) -> Result<String> {
    chrono::DateTime::parse_from_rfc3339(value.trim())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        })
        .map_err(|e| AttestError::InvalidTime {
            source_name: source_name.to_string(),
            value: value.to_string(),
            reason: e.to_string(),
        })
}

/// A builder id or similar given by the user must be a URI: `scheme:rest`, no whitespace.
pub fn validate_uri(source_name: &str, value: &str) -> Result<()> {
    let invalid = |reason: &str| AttestError::InvalidUri {
        source_name: source_name.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let Some((scheme, rest)) = value.split_once(':') else {
        return Err(invalid(
            "expected scheme:… (e.g. https://ci.example.com/builders/gpu-1)",
        ));
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(invalid(
            "the scheme before ':' must be letters, digits, + - .",
        ));
    }
    if rest.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("empty after the scheme, or contains spaces"));
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// A CI environment from `(name, value)` pairs (the provenance tests use it too).
    pub(in crate::attest) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn github_actions_with_workflow_ref() {
        let ctx = detect(&env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "org/models"),
            ("GITHUB_RUN_ID", "123"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_SHA", "abc123"),
            ("GITHUB_EVENT_NAME", "push"),
            (
                "GITHUB_WORKFLOW_REF",
                "org/models/.github/workflows/train.yml@refs/heads/main",
            ),
            ("RUNNER_NAME", "my-laptop"),
        ]))
        .unwrap();
        assert_eq!(ctx.provider, CiProvider::GitHubActions);
        assert_eq!(
            ctx.builder_id.as_deref(),
            Some("https://github.com/org/models/.github/workflows/train.yml@refs/heads/main")
        );
        assert_eq!(
            ctx.invocation_id.as_deref(),
            Some("https://github.com/org/models/actions/runs/123/attempts/2")
        );
        assert_eq!(ctx.started_on, None);
        let internal = ctx.internal_parameters.unwrap();
        assert_eq!(internal["github"]["event_name"], "push");
        assert_eq!(internal["github"]["sha"], "abc123");
        assert!(
            !internal.to_string().contains("my-laptop"),
            "runner names are not recorded"
        );
        let src = ctx.source.unwrap();
        assert_eq!(
            src.uri.as_deref(),
            Some("git+https://github.com/org/models@refs/heads/main")
        );
        assert_eq!(src.digest["gitCommit"], "abc123");
    }

    #[test]
    fn github_actions_without_workflow_ref_uses_the_run_url() {
        let ctx = detect(&env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://ghe.example.com/"),
            ("GITHUB_REPOSITORY", "org/models"),
            ("GITHUB_RUN_ID", "9"),
        ]))
        .unwrap();
        assert_eq!(
            ctx.builder_id.as_deref(),
            Some("https://ghe.example.com/org/models/actions/runs/9")
        );
        assert_eq!(
            ctx.invocation_id.as_deref(),
            Some("https://ghe.example.com/org/models/actions/runs/9/attempts/1")
        );
        assert!(ctx.source.is_none(), "no GITHUB_SHA, no source dependency");
        let ctx = detect(&env(&[("GITHUB_ACTIONS", "true")])).unwrap();
        assert_eq!(
            (ctx.builder_id, ctx.missing),
            (None, Some("GITHUB_REPOSITORY"))
        );
    }

    #[test]
    fn gitlab_ci() {
        let ctx = detect(&env(&[
            ("GITLAB_CI", "true"),
            ("CI", "true"),
            ("CI_SERVER_URL", "https://gitlab.example.com"),
            ("CI_PROJECT_PATH", "ml/bert"),
            ("CI_PROJECT_URL", "https://gitlab.example.com/ml/bert"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_COMMIT_REF_NAME", "main"),
            ("CI_COMMIT_SHA", "deadbeef"),
            ("CI_PIPELINE_ID", "77"),
            ("CI_JOB_ID", "555"),
            (
                "CI_JOB_URL",
                "https://gitlab.example.com/ml/bert/-/jobs/555",
            ),
            ("CI_JOB_STARTED_AT", "2024-05-01T12:00:00+02:00"),
            ("CI_RUNNER_DESCRIPTION", "gpu-box-17.internal"),
        ]))
        .unwrap();
        assert_eq!(ctx.provider, CiProvider::GitLabCi);
        assert_eq!(
            ctx.builder_id.as_deref(),
            Some("https://gitlab.example.com/ml/bert//.gitlab-ci.yml@refs/heads/main")
        );
        assert_eq!(
            ctx.invocation_id.as_deref(),
            Some("https://gitlab.example.com/ml/bert/-/jobs/555")
        );
        assert_eq!(ctx.started_on.as_deref(), Some("2024-05-01T10:00:00Z"));
        assert_eq!(
            ctx.internal_parameters.unwrap(),
            json!({"gitlab": {"job_id": "555", "pipeline_id": "77"}})
        );
        let src = ctx.source.unwrap();
        assert_eq!(
            src.uri.as_deref(),
            Some("git+https://gitlab.example.com/ml/bert@refs/heads/main")
        );
    }

    #[test]
    fn gitlab_tag_pipeline_and_defaults() {
        let ctx = detect(&env(&[
            ("GITLAB_CI", "true"),
            ("CI_PROJECT_PATH", "ml/bert"),
            ("CI_COMMIT_TAG", "v1.0"),
            ("CI_CONFIG_PATH", "ci/train.yml"),
            ("CI_JOB_ID", "8"),
        ]))
        .unwrap();
        assert_eq!(
            ctx.builder_id.as_deref(),
            Some("https://gitlab.com/ml/bert//ci/train.yml@refs/tags/v1.0")
        );
        assert_eq!(
            ctx.invocation_id.as_deref(),
            Some("https://gitlab.com/ml/bert/-/jobs/8")
        );
        let err = detect(&env(&[
            ("GITLAB_CI", "true"),
            ("CI_JOB_STARTED_AT", "yesterday"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("CI_JOB_STARTED_AT") && err.contains("yesterday"),
            "{err}"
        );
    }

    #[test]
    fn tekton() {
        let ctx = detect(&env(&[
            ("TEKTON_NAMESPACE", "ml"),
            ("TEKTON_PIPELINE_RUN", "train-abc"),
            ("TEKTON_TASK_RUN", "train-abc-fit"),
            ("TEKTON_TASK_RUN_UID", "0f6c"),
        ]))
        .unwrap();
        assert_eq!(ctx.provider, CiProvider::Tekton);
        assert_eq!(ctx.builder_id.as_deref(), Some(TEKTON_DEFAULT_BUILDER_ID));
        assert_eq!(
            ctx.invocation_id.as_deref(),
            Some("ml/train-abc/train-abc-fit")
        );
        assert_eq!(
            ctx.internal_parameters.unwrap(),
            json!({"tekton": {"namespace": "ml", "pipeline_run": "train-abc", "task_run": "train-abc-fit", "task_run_uid": "0f6c"}})
        );
        let ctx = detect(&env(&[
            ("TEKTON_TASK_RUN", "t"),
            (
                "TEKTON_BUILDER_ID",
                "https://tekton.example.com/clusters/gpu",
            ),
        ]))
        .unwrap();
        assert_eq!(
            ctx.builder_id.as_deref(),
            Some("https://tekton.example.com/clusters/gpu")
        );
        assert_eq!(ctx.invocation_id.as_deref(), Some("t"));
    }

    #[test]
    fn local_when_nothing_is_detected() {
        for e in [
            env(&[]),
            env(&[
                ("GITHUB_ACTIONS", "false"),
                ("GITLAB_CI", ""),
                ("TEKTON_TASK_RUN", ""),
            ]),
        ] {
            let ctx = detect(&e).unwrap();
            assert_eq!(ctx.provider, CiProvider::Local);
            assert_eq!(ctx.builder_id.as_deref(), Some(LOCAL_BUILDER_ID));
            assert_eq!((ctx.invocation_id, ctx.started_on), (None, None));
            assert!(ctx.internal_parameters.is_none() && ctx.source.is_none());
        }
    }

    #[test]
    fn times_are_validated_and_normalised() {
        assert_eq!(
            normalize_time("--started-on", "2024-01-02T03:04:05Z").unwrap(),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(
            normalize_time("--started-on", "2024-01-02T03:04:05.250-01:00").unwrap(),
            "2024-01-02T04:04:05.250Z"
        );
        for bad in ["2024-01-02", "2024-01-02 03:04:05", "now", ""] {
            let err = normalize_time("--started-on", bad).unwrap_err().to_string();
            assert!(
                err.contains("--started-on") && err.contains("RFC 3339"),
                "{err}"
            );
        }
    }

    #[test]
    fn uris_are_validated() {
        validate_uri("--builder-id", "https://ci.example.com/b").unwrap();
        validate_uri("--builder-id", "urn:example:builder").unwrap();
        for bad in ["builder", ":x", "1http://x", "https://a b", "https:"] {
            let err = validate_uri("--builder-id", bad).unwrap_err().to_string();
            assert!(
                err.contains("--builder-id") && err.contains("not a URI"),
                "{err}"
            );
        }
    }
}
