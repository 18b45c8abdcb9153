//! Arguments and environment resolved in one place: the only code that reads the environment.

use oci_model::secret::Secret;
use std::collections::BTreeMap;

/// A snapshot of the environment taken once at start.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    env: BTreeMap<String, String>,
}

impl Settings {
    pub fn from_process() -> Self {
        Settings {
            env: std::env::vars().collect(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Password for encrypted private keys (`OCI_MODEL_PASSWORD`).
    pub fn key_password(&self) -> Option<Secret> {
        self.get("OCI_MODEL_PASSWORD").map(Secret::new)
    }

    /// `SIGSTORE_ID_TOKEN` (also what GitLab's `id_tokens` sets).
    pub fn sigstore_id_token(&self) -> Option<Secret> {
        self.get("SIGSTORE_ID_TOKEN").map(Secret::new)
    }

    /// GitHub Actions ambient OIDC credentials: (request URL, request token).
    pub fn github_oidc_request(&self) -> Option<(String, Secret)> {
        Some((
            self.get("ACTIONS_ID_TOKEN_REQUEST_URL")?.to_string(),
            Secret::new(self.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")?),
        ))
    }

    /// The docker config directory: `$DOCKER_CONFIG`, else `$HOME/.docker`.
    pub fn docker_config_dir(&self) -> Option<std::path::PathBuf> {
        self.get("DOCKER_CONFIG")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                self.get("HOME")
                    .map(|h| std::path::Path::new(h).join(".docker"))
            })
    }

    /// Where oci-model keeps its digest cache: `$XDG_CACHE_HOME/oci-model`, else
    /// `$HOME/.cache/oci-model` (None when neither is set: no cache).
    pub fn cache_dir(&self) -> Option<std::path::PathBuf> {
        self.get("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                self.get("HOME")
                    .map(|h| std::path::Path::new(h).join(".cache"))
            })
            .map(|d| d.join("oci-model"))
    }

    /// The CI-related variables (GitHub Actions, GitLab CI, Tekton) for provenance.
    pub fn ci_env(&self) -> BTreeMap<String, String> {
        self.env
            .iter()
            // Never hand credentials to the provenance builder (GITHUB_TOKEN, CI_JOB_TOKEN …).
            .filter(|(k, _)| !is_secret_name(k))
            .filter(|(k, _)| {
                k.starts_with("GITHUB_")
                    || k.starts_with("RUNNER_")
                    || k.starts_with("CI_")
                    || k.starts_with("GITLAB_")
                    || k.starts_with("TEKTON_")
                    || k.as_str() == "GITLAB_CI"
                    || k.as_str() == "CI"
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Variable names that hold credentials.
fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["TOKEN", "PASSWORD", "SECRET", "PRIVATE", "CREDENTIAL"]
        .iter()
        .any(|w| n.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_env_keeps_ci_variables_and_drops_credentials() {
        let s = Settings {
            env: [
                ("GITHUB_REPOSITORY", "o/r"),
                ("GITHUB_TOKEN", "ghs_secret"),
                ("CI_JOB_TOKEN", "glcbt"),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "x"),
                ("CI_PIPELINE_ID", "7"),
                ("HOME", "/root"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        };
        let env = s.ci_env();
        assert_eq!(
            env.get("GITHUB_REPOSITORY").map(String::as_str),
            Some("o/r")
        );
        assert_eq!(env.get("CI_PIPELINE_ID").map(String::as_str), Some("7"));
        for gone in [
            "GITHUB_TOKEN",
            "CI_JOB_TOKEN",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "HOME",
        ] {
            assert!(!env.contains_key(gone), "{gone} leaked into ci_env");
        }
    }
}
