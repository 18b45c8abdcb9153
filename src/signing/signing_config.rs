//! Which Sigstore services keyless signing talks to: a Sigstore `signing_config.json` (v0.2,
//! media type `application/vnd.dev.sigstore.signingconfig.v0.2+json`), or a
//! `ClientTrustConfig` (`application/vnd.dev.sigstore.clienttrustconfig.v0.1+json`, the
//! `--trust-config` file of sigstore-python, which also carries the trusted root). By default
//! the public-good instance's config, embedded from `assets/signing_config.json`.

/// The public-good signing config (see `assets/README.md`).
pub const PUBLIC_GOOD_SIGNING_CONFIG: &str = include_str!("../../assets/signing_config.json");

const SIGNING_CONFIG_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.signingconfig.v0.2+json";

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
    /// Rekor base URL (`POST {rekor}/api/v1/log/entries`, or `/api/v2/log/entries` for v2).
    pub rekor: String,
    /// The Rekor log's `majorApiVersion`: 1, or 2 (which needs a timestamp authority: a v2
    /// entry has no signed integration time).
    pub rekor_version: u32,
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

/// The signing config v0.2 fields we read (protobuf-specs `SigningConfig`, JSON form).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    media_type: String,
    #[serde(default)]
    ca_urls: Vec<Endpoint>,
    #[serde(default)]
    oidc_urls: Vec<Endpoint>,
    #[serde(default)]
    rekor_tlog_urls: Vec<Endpoint>,
    #[serde(default)]
    tsa_urls: Vec<Endpoint>,
    #[serde(default)]
    rekor_tlog_config: Option<Selection>,
    #[serde(default)]
    tsa_config: Option<Selection>,
}

/// One `Service`: URL, API version, validity window, operator.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    url: String,
    major_api_version: u32,
    valid_for: Validity,
    #[serde(default)]
    operator: String,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct Validity {
    start: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    end: Option<chrono::DateTime<chrono::Utc>>,
}

/// `ServiceConfiguration`: how many of the eligible logs or TSAs to use.
#[derive(Clone, Debug, serde::Deserialize)]
struct Selection {
    #[serde(default = "any_selector")]
    selector: String,
    #[serde(default)]
    count: Option<u32>,
}

fn any_selector() -> String {
    "ANY".into()
}

/// A kind of service in a signing config: its name for people and its JSON field.
#[derive(Clone, Copy)]
struct Kind {
    name: &'static str,
    field: &'static str,
    /// The `majorApiVersion`s oci-model speaks for this kind.
    supported: &'static [u32],
}

const FULCIO: Kind = Kind {
    name: "Fulcio",
    field: "caUrls",
    supported: &[1],
};
const OIDC: Kind = Kind {
    name: "OIDC issuer",
    field: "oidcUrls",
    supported: &[1],
};
const REKOR: Kind = Kind {
    name: "Rekor",
    field: "rekorTlogUrls",
    supported: &[1, 2],
};
const TSA: Kind = Kind {
    name: "timestamp authority",
    field: "tsaUrls",
    supported: &[1],
};

fn rfc3339(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

impl Endpoint {
    fn valid_at(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.valid_for.start <= now && self.valid_for.end.is_none_or(|end| now <= end)
    }

    /// `URL (API vN, valid START to END)`, for messages.
    fn describe(&self) -> String {
        let end = self
            .valid_for
            .end
            .as_ref()
            .map(rfc3339)
            .unwrap_or_else(|| "no end".into());
        format!(
            "{} (API v{}, valid {} to {end})",
            crate::untrusted::escape(&self.url),
            self.major_api_version,
            rfc3339(&self.valid_for.start)
        )
    }
}

/// The services of one kind to use at `now`, as the Sigstore client spec selects them: those
/// valid now whose API version we speak, only the highest such version, one per operator (the
/// first listed), then the selector (`ANY`: one; `EXACT`: `count`, refused when fewer are
/// eligible; `ALL`: every one). An empty list gives none; a list with no usable service is an
/// error naming the kind, each listed service's version and validity window, and `now`.
fn select<'a>(
    kind: Kind,
    listed: &'a [Endpoint],
    selection: Option<&Selection>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<&'a Endpoint>, String> {
    if listed.is_empty() {
        return Ok(Vec::new());
    }
    let usable: Vec<&Endpoint> = listed
        .iter()
        .filter(|e| e.valid_at(now) && kind.supported.contains(&e.major_api_version))
        .collect();
    let Some(version) = usable.iter().map(|e| e.major_api_version).max() else {
        let valid_now: Vec<&Endpoint> = listed.iter().filter(|e| e.valid_at(now)).collect();
        let detail = if valid_now.is_empty() {
            "none is valid at that time"
        } else {
            "the ones valid at that time use API versions oci-model does not speak for signing"
        };
        return Err(format!(
            "no usable {} service ({}) at {}: {detail}; oci-model signs with {} API v{}; listed: {}",
            kind.name,
            kind.field,
            rfc3339(&now),
            kind.name,
            kind.supported
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" or v"),
            listed
                .iter()
                .map(Endpoint::describe)
                .collect::<Vec<_>>()
                .join("; ")
        ));
    };
    let mut chosen: Vec<&Endpoint> = Vec::new();
    for e in usable
        .into_iter()
        .filter(|e| e.major_api_version == version)
    {
        if !chosen.iter().any(|c| c.operator == e.operator) {
            chosen.push(e);
        }
    }
    let Some(selection) = selection else {
        chosen.truncate(1);
        return Ok(chosen);
    };
    match selection.selector.as_str() {
        "ANY" => chosen.truncate(1),
        "ALL" => {}
        "EXACT" => {
            let count = selection.count.unwrap_or(0) as usize;
            if count == 0 {
                return Err(format!(
                    "the {} selector EXACT needs a count of at least 1",
                    kind.name
                ));
            }
            if chosen.len() < count {
                return Err(format!(
                    "the {} selector asks for exactly {count} services of distinct operators; {} usable (API v{version}) at {}",
                    kind.name,
                    chosen.len(),
                    rfc3339(&now)
                ));
            }
            chosen.truncate(count);
        }
        other => {
            return Err(format!(
                "unknown {} selector {:?} (expected ANY, EXACT or ALL)",
                kind.name,
                crate::untrusted::escape(other)
            ))
        }
    }
    Ok(chosen)
}

impl Services {
    /// The public-good instance (embedded config).
    pub fn public_good() -> Services {
        Self::from_json(PUBLIC_GOOD_SIGNING_CONFIG, "embedded public-good")
            .expect("the embedded signing config is valid")
            .services
    }

    /// Parse a signing config v0.2 or a ClientTrustConfig and select its services for now;
    /// `source_name` names it in errors.
    pub fn from_json(json: &str, source_name: &str) -> Result<LoadedConfig, SigningConfigError> {
        Self::from_json_at(json, source_name, chrono::Utc::now())
    }

    /// [`Services::from_json`] with the services selected for the time `now`.
    pub fn from_json_at(
        json: &str,
        source_name: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<LoadedConfig, SigningConfigError> {
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
        let config: RawConfig =
            serde_json::from_value(config_value).map_err(|e| err(e.to_string()))?;
        if config.media_type != SIGNING_CONFIG_MEDIA_TYPE {
            return Err(err(format!(
                "media type {:?} is not {SIGNING_CONFIG_MEDIA_TYPE:?}",
                crate::untrusted::escape(&config.media_type)
            )));
        }
        let one = |kind: Kind, listed: &[Endpoint], selection: Option<&Selection>| {
            select(kind, listed, selection, now)
                .map(|chosen| chosen.first().map(|e| e.url.clone()))
                .map_err(err)
        };
        let fulcio = one(FULCIO, &config.ca_urls, None)?
            .ok_or_else(|| err("lists no Fulcio service (caUrls)".into()))?;
        let oidc = one(OIDC, &config.oidc_urls, None)?;
        let rekor_selection = config.rekor_tlog_config.as_ref();
        let rekor = match select(REKOR, &config.rekor_tlog_urls, rekor_selection, now) {
            Ok(chosen) if chosen.len() > 1 => {
                return Err(err(format!(
                "the Rekor selector asks for {} logs; oci-model records each signature in one log",
                chosen.len()
            )))
            }
            Ok(chosen) => chosen
                .first()
                .copied()
                .ok_or_else(|| err("lists no Rekor service (rekorTlogUrls)".into()))?,
            Err(reason) => return Err(err(reason)),
        };
        let tsa_selection = config.tsa_config.as_ref();
        let tsa = match select(TSA, &config.tsa_urls, tsa_selection, now).map_err(err)? {
            chosen if chosen.len() > 1 => {
                return Err(err(format!(
                "the timestamp authority selector asks for {} timestamps; oci-model asks one TSA",
                chosen.len()
            )))
            }
            chosen => chosen.first().map(|e| e.url.clone()),
        };
        if rekor.major_api_version == 2 && tsa.is_none() {
            return Err(err(format!(
                "the Rekor v2 log {} records no signing time, and no timestamp authority (tsaUrls) is usable",
                rekor.describe()
            )));
        }
        Ok(LoadedConfig {
            services: Services {
                fulcio,
                rekor: rekor.url.clone(),
                rekor_version: rekor.major_api_version,
                tsa,
                oidc,
            },
            trusted_root_json,
        })
    }

    /// Apply `--fulcio-url`, `--rekor-url` (a Rekor v1 log), `--timestamp-server`.
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
            // A URL given by hand is a Rekor v1 log (the API `--rekor-url` has always meant).
            self.rekor = r;
            self.rekor_version = 1;
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

    const STAGING: &str =
        include_str!("../../testdata/sigstore-extra/staging/signing_config.v0.2.json");

    fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
        text.parse().unwrap()
    }

    /// A config with one service of each kind, edited by `edit`.
    fn config(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v: serde_json::Value = serde_json::from_str(PUBLIC_GOOD_SIGNING_CONFIG).unwrap();
        edit(&mut v);
        v.to_string()
    }

    fn refused(json: &str, now: &str) -> String {
        Services::from_json_at(json, "f.json", at(now))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn staging_config_selects_the_services_valid_now_that_we_speak() {
        // The highest version valid now wins: the current Rekor v2 shard, not the expired
        // ones listed after it, nor the v1 log.
        let s = Services::from_json_at(STAGING, "staging", at("2026-11-29T12:00:00Z"))
            .unwrap()
            .services;
        assert_eq!(s.fulcio, "https://fulcio.sigstage.dev");
        assert_eq!(s.rekor, "https://log2025-alpha3.rekor.sigstage.dev");
        assert_eq!(s.rekor_version, 2);
        // Mid-2025 the second shard was the valid one.
        let mid = Services::from_json_at(STAGING, "staging", at("2025-09-01T00:00:00Z"))
            .unwrap()
            .services;
        assert_eq!(mid.rekor, "https://log2025-alpha2.rekor.sigstage.dev");
        // --rekor-url names a v1 log.
        let o = s
            .clone()
            .with_overrides(None, Some("https://rekor.sigstage.dev".into()), None);
        assert_eq!(
            (o.rekor.as_str(), o.rekor_version),
            ("https://rekor.sigstage.dev", 1)
        );
        assert_eq!(
            s.tsa.as_deref(),
            Some("https://timestamp.sigstage.dev/api/v1/timestamp")
        );
        assert_eq!(s.oidc.as_deref(), Some("https://oauth2.sigstage.dev/auth"));
        // Before the OIDC issuer's window opened, it is refused, with the dates.
        let e = refused(STAGING, "2025-04-10T00:00:00Z");
        assert!(
            e.contains("no usable OIDC issuer service (oidcUrls) at 2025-04-10T00:00:00Z"),
            "{e}"
        );
        assert!(e.contains("valid 2025-04-16T00:00:00Z to no end"), "{e}");
    }

    #[test]
    fn a_kind_with_no_usable_service_is_refused_naming_it_and_the_dates() {
        let expired = config(|v| {
            v["tsaUrls"][0]["validFor"] =
                serde_json::json!({"start": "2020-01-01T00:00:00Z", "end": "2021-06-30T00:00:00Z"});
        });
        let e = refused(&expired, "2026-11-29T12:00:00Z");
        assert!(e.starts_with("signing config f.json: no usable timestamp authority service (tsaUrls) at 2026-11-29T12:00:00Z: none is valid"), "{e}");
        assert!(e.contains("https://timestamp.sigstore.dev/api/v1/timestamp (API v1, valid 2020-01-01T00:00:00Z to 2021-06-30T00:00:00Z)"), "{e}");

        let future =
            config(|v| v["caUrls"][0]["validFor"]["start"] = "2030-01-01T00:00:00Z".into());
        let e = refused(&future, "2026-11-29T12:00:00Z");
        assert!(e.contains("no usable Fulcio service (caUrls)"), "{e}");
        assert!(e.contains("valid 2030-01-01T00:00:00Z to no end"), "{e}");

        let oidc = config(|v| v["oidcUrls"][0]["validFor"]["end"] = "2023-01-01T00:00:00Z".into());
        let e = refused(&oidc, "2026-11-29T12:00:00Z");
        assert!(
            e.contains("no usable OIDC issuer service (oidcUrls)"),
            "{e}"
        );

        let v3_only = config(|v| v["rekorTlogUrls"][0]["majorApiVersion"] = 3.into());
        let e = refused(&v3_only, "2026-11-29T12:00:00Z");
        assert!(e.contains("no usable Rekor service (rekorTlogUrls)"), "{e}");
        assert!(e.contains("API versions oci-model does not speak"), "{e}");
        assert!(
            e.contains("(API v3, valid 2021-01-12T11:53:27Z to no end)"),
            "{e}"
        );

        // Rekor v2 without a usable TSA gives no signed time: refused.
        let v2_no_tsa = config(|v| {
            v["rekorTlogUrls"][0]["majorApiVersion"] = 2.into();
            v["tsaUrls"] = serde_json::json!([]);
        });
        let e = refused(&v2_no_tsa, "2026-11-29T12:00:00Z");
        assert!(
            e.contains("Rekor v2 log https://rekor.sigstore.dev (API v2"),
            "{e}"
        );
        assert!(e.contains("no timestamp authority"), "{e}");

        let no_fulcio = config(|v| v["caUrls"] = serde_json::json!([]));
        let e = refused(&no_fulcio, "2026-11-29T12:00:00Z");
        assert!(e.contains("lists no Fulcio service (caUrls)"), "{e}");
        // An empty TSA list means no timestamps, not an error.
        let no_tsa = config(|v| v["tsaUrls"] = serde_json::json!([]));
        let s = Services::from_json_at(&no_tsa, "f", at("2026-11-29T12:00:00Z")).unwrap();
        assert_eq!(s.services.tsa, None);
    }

    #[test]
    fn selectors_are_applied_as_the_spec_says() {
        let two_tsas = |selector: serde_json::Value| {
            config(|v| {
                let mut second = v["tsaUrls"][0].clone();
                second["url"] = "https://tsa.example.org/api/v1/timestamp".into();
                second["operator"] = "example.org".into();
                v["tsaUrls"].as_array_mut().unwrap().push(second);
                v["tsaConfig"] = selector;
            })
        };
        let now = "2026-11-29T12:00:00Z";
        let any = two_tsas(serde_json::json!({"selector": "ANY"}));
        let s = Services::from_json_at(&any, "f", at(now)).unwrap().services;
        assert_eq!(
            s.tsa.as_deref(),
            Some("https://timestamp.sigstore.dev/api/v1/timestamp")
        );
        let exact1 = two_tsas(serde_json::json!({"selector": "EXACT", "count": 1}));
        assert!(Services::from_json_at(&exact1, "f", at(now)).is_ok());
        let exact3 = two_tsas(serde_json::json!({"selector": "EXACT", "count": 3}));
        let e = refused(&exact3, now);
        assert!(
            e.contains("exactly 3 services of distinct operators; 2 usable"),
            "{e}"
        );
        let all = two_tsas(serde_json::json!({"selector": "ALL"}));
        let e = refused(&all, now);
        assert!(e.contains("asks for 2 timestamps"), "{e}");
        let odd = two_tsas(serde_json::json!({"selector": "SOME"}));
        assert!(refused(&odd, now).contains("unknown timestamp authority selector"));

        // The highest version we speak wins; of one operator only the first listed counts.
        let same_operator = config(|v| {
            let mut second = v["rekorTlogUrls"][0].clone();
            second["url"] = "https://rekor2.sigstore.dev".into();
            v["rekorTlogUrls"].as_array_mut().unwrap().push(second);
            v["rekorTlogConfig"] = serde_json::json!({"selector": "ALL"});
        });
        let s = Services::from_json_at(&same_operator, "f", at(now))
            .unwrap()
            .services;
        assert_eq!(s.rekor, "https://rekor.sigstore.dev");
    }

    #[test]
    fn rejects_wrong_media_type() {
        let e = Services::from_json(r#"{"mediaType":"x"}"#, "f.json").unwrap_err();
        assert!(e.to_string().starts_with("signing config f.json:"), "{e}");
    }
}
