//! Which Sigstore services keyless signing talks to: a Sigstore `signing_config.json` (v0.2,
//! media type `application/vnd.dev.sigstore.signingconfig.v0.2+json`), or a
//! `ClientTrustConfig` (`application/vnd.dev.sigstore.clienttrustconfig.v0.1+json`, the
//! `--trust-config` file of sigstore-python, which also carries the trusted root). By default
//! the public-good instance's config, embedded from `assets/signing_config.json`.

/// The public-good signing config (see `assets/README.md`).
pub const PUBLIC_GOOD_SIGNING_CONFIG: &str = include_str!("../../assets/signing_config.json");

const CLIENT_TRUST_CONFIG_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json";

#[derive(Debug, thiserror::Error)]
#[error("signing config {source_name}: {reason}")]
pub struct SigningConfigError {
    pub source_name: String,
    pub reason: String,
}

/// The selected service URLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Services {
    /// Fulcio base URL (`POST {fulcio}/api/v2/signingCert`).
    pub fulcio: String,
    /// Rekor v1 base URL (`POST {rekor}/api/v1/log/entries`).
    pub rekor: String,
    /// RFC 3161 timestamp endpoint (full URL), if timestamps are wanted.
    pub tsa: Option<String>,
    /// OIDC issuer for the interactive login.
    pub oidc: Option<String>,
}

/// What a config file gave: the services and, for a ClientTrustConfig, the trusted root JSON.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    pub services: Services,
    pub trusted_root_json: Option<String>,
}

impl Services {
    /// The public-good instance (embedded config).
    pub fn public_good() -> Services {
        Self::from_json(PUBLIC_GOOD_SIGNING_CONFIG, "embedded public-good")
            .expect("the embedded signing config is valid")
            .services
    }

    /// Parse a signing config v0.2 or a ClientTrustConfig; `source_name` names it in errors.
    pub fn from_json(json: &str, source_name: &str) -> Result<LoadedConfig, SigningConfigError> {
        let err = |reason: String| SigningConfigError {
            source_name: source_name.to_string(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| err(format!("not JSON: {e}")))?;
        let media_type = value
            .get("mediaType")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let (config_value, trusted_root_json) = if media_type == CLIENT_TRUST_CONFIG_MEDIA_TYPE {
            let config = value
                .get("signingConfig")
                .cloned()
                .ok_or_else(|| err("ClientTrustConfig has no signingConfig".into()))?;
            let root = value
                .get("trustedRoot")
                .ok_or_else(|| err("ClientTrustConfig has no trustedRoot".into()))?;
            (config, Some(root.to_string()))
        } else {
            (value, None)
        };
        let config = sigstore_trust_root::SigningConfig::from_json(&config_value.to_string())
            .map_err(|e| err(e.to_string()))?;
        let fulcio = config
            .fulcio_url()
            .map(|e| e.url.clone())
            .ok_or_else(|| err("no valid Fulcio (caUrls) endpoint with API v1".into()))?;
        let rekor = match config.rekor_url(Some(1)) {
            Some(e) => e.url.clone(),
            None if config.rekor_url(None).is_some() => return Err(err(
                "only Rekor v2 logs are listed; oci-model signs with Rekor v1 (give --rekor-url)"
                    .into(),
            )),
            None => return Err(err("no valid Rekor (rekorTlogUrls) endpoint".into())),
        };
        Ok(LoadedConfig {
            services: Services {
                fulcio,
                rekor,
                tsa: config.tsa_url().map(|e| e.url.clone()),
                oidc: config.oidc_url().map(|e| e.url.clone()),
            },
            trusted_root_json,
        })
    }

    /// Apply `--fulcio-url`, `--rekor-url`, `--tsa-url`.
    pub fn with_overrides(
        mut self,
        fulcio: Option<String>,
        rekor: Option<String>,
        tsa: Option<String>,
    ) -> Services {
        if let Some(f) = fulcio {
            self.fulcio = f;
        }
        if let Some(r) = rekor {
            self.rekor = r;
        }
        if let Some(t) = tsa {
            self.tsa = Some(t);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_good_services() {
        let s = Services::public_good();
        assert_eq!(s.fulcio, "https://fulcio.sigstore.dev");
        assert_eq!(s.rekor, "https://rekor.sigstore.dev");
        assert_eq!(
            s.tsa.as_deref(),
            Some("https://timestamp.sigstore.dev/api/v1/timestamp")
        );
        assert_eq!(s.oidc.as_deref(), Some("https://oauth2.sigstore.dev/auth"));
        let o = s.with_overrides(Some("http://127.0.0.1:1".into()), None, None);
        assert_eq!(o.fulcio, "http://127.0.0.1:1");
        assert_eq!(o.rekor, "https://rekor.sigstore.dev");
    }

    #[test]
    fn client_trust_config_carries_the_root() {
        let ctc = serde_json::json!({
            "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
            "trustedRoot": {"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"},
            "signingConfig": serde_json::from_str::<serde_json::Value>(PUBLIC_GOOD_SIGNING_CONFIG).unwrap(),
        });
        let loaded = Services::from_json(&ctc.to_string(), "t").unwrap();
        assert!(loaded.trusted_root_json.unwrap().contains("trustedroot"));
        assert_eq!(loaded.services, Services::public_good());
    }

    #[test]
    fn rejects_wrong_media_type() {
        let e = Services::from_json(r#"{"mediaType":"x"}"#, "f.json").unwrap_err();
        assert!(e.to_string().starts_with("signing config f.json:"), "{e}");
    }
}
