//! Keyless signing against the fake Sigstore instance (tests/it/fakes): bundles verify with our
//! verifier and the test trusted root, every fault switch makes signing refuse, token sources
//! resolve in order, the browser flow works up to (and past) the authorization URL, and a
//! bundle re-verifies with sigstore-python.

use crate::fakes::{self, FakeSigstore, Fault};
use crate::harness;
use crate::support::{referrer_count, tiny_model_in_layout};
use oci_model::secret::Secret;
use oci_model::signing::keyless::{KeylessError, KeylessOptions, KeylessSigner};
use oci_model::signing::oidc::{self, IdentityToken, LoginUi, TokenOrigin, TokenSources};
use oci_model::signing::signing_config::Services;
use oci_model::verify::{self, Artifact, Matcher, SignerPolicy, TrustedRoot};
use sha2::{Digest as _, Sha256};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

pub fn options(fake: &FakeSigstore) -> KeylessOptions {
    let text = std::fs::read_to_string(&fake.signing_config_path).unwrap();
    let loaded = Services::from_json(&text, "fake signing_config.json").unwrap();
    KeylessOptions {
        services: loaded.services,
        trusted_root: TrustedRoot::from_file(&fake.trusted_root_path).unwrap(),
        http: None,
    }
}

pub fn token(raw: String) -> IdentityToken {
    IdentityToken::parse(Secret::new(raw), TokenOrigin::Explicit).unwrap()
}

/// An in-toto statement v1 whose subject is `data`; returns (payload, sha256 hex).
pub fn statement(name: &str, data: &[u8]) -> (Vec<u8>, String) {
    let hex = hex::encode(Sha256::digest(data));
    let st = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": hex}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {},
    });
    (serde_json::to_vec(&st).unwrap(), hex)
}

fn verify_with_test_root(
    fake: &FakeSigstore,
    bundle: &serde_json::Value,
    hex: &str,
    identity: &str,
) {
    let trust = TrustedRoot::from_file(&fake.trusted_root_path).unwrap();
    let policy =
        SignerPolicy::new().with_identity(Matcher::exact(identity), Matcher::exact(fake.issuer()));
    let digest = format!("sha256:{hex}").parse().unwrap();
    verify::verify_bundle(
        &serde_json::to_vec(bundle).unwrap(),
        &Artifact::Digest(digest),
        &policy,
        &trust,
    )
    .unwrap_or_else(|e| panic!("bundle does not verify: {e}\n{bundle:#}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_bundles_share_one_certificate_and_verify_with_the_test_root() {
    let fake = FakeSigstore::start();
    let email = "alice@example.com";
    let signer = KeylessSigner::new(&token(fake.token_for_email(email)), options(&fake))
        .await
        .unwrap();
    assert_eq!(signer.identity(), email);
    assert_eq!(signer.issuer(), fake.issuer());

    let (p1, h1) = statement("model", b"model signature subject");
    let (p2, h2) = statement("manifest", b"manifest subject");
    let b1 = signer.sign_dsse(PAYLOAD_TYPE, &p1).await.unwrap();
    let b2 = signer.sign_dsse(PAYLOAD_TYPE, &p2).await.unwrap();
    // One token exchange, one certificate for both bundles.
    assert_eq!(fake.shared.fulcio.issued.load(Ordering::SeqCst), 1);
    let cert = |b: &serde_json::Value| b["verificationMaterial"]["certificate"]["rawBytes"].clone();
    assert!(cert(&b1).is_string());
    assert_eq!(cert(&b1), cert(&b2));

    for (b, h) in [(&b1, &h1), (&b2, &h2)] {
        assert_eq!(
            b["mediaType"],
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
        let entry = &b["verificationMaterial"]["tlogEntries"][0];
        assert_eq!(entry["kindVersion"]["kind"], "dsse");
        assert_eq!(entry["kindVersion"]["version"], "0.0.1");
        assert!(entry["inclusionPromise"]["signedEntryTimestamp"].is_string());
        assert!(entry["inclusionProof"]["checkpoint"]["envelope"]
            .as_str()
            .unwrap()
            .contains(fakes::rekor::ORIGIN_NAME));
        assert!(entry["canonicalizedBody"].is_string());
        assert!(entry["integratedTime"].is_string() || entry["integratedTime"].is_number());
        assert_eq!(
            b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        verify_with_test_root(&fake, b, h, email);
    }
    // The same bundle does not verify for another identity.
    let trust = TrustedRoot::from_file(&fake.trusted_root_path).unwrap();
    let other = SignerPolicy::new().with_identity(
        Matcher::exact("bob@example.com"),
        Matcher::exact(fake.issuer()),
    );
    let digest = format!("sha256:{h1}").parse().unwrap();
    assert!(verify::verify_bundle(
        &serde_json::to_vec(&b1).unwrap(),
        &Artifact::Digest(digest),
        &other,
        &trust
    )
    .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_without_tsa_and_through_the_signer_trait() {
    let fake = FakeSigstore::start();
    let mut opts = options(&fake);
    opts.services.tsa = None;
    let signer = KeylessSigner::new(&token(fake.token_for_email("carol@example.com")), opts)
        .await
        .unwrap();
    let (p, h) = statement("m", b"x");
    let signer: &dyn oci_model::signing::Signer = &signer;
    let signed = signer.sign_dsse(PAYLOAD_TYPE, &p).await.unwrap();
    assert!(
        signed.signer.contains("carol@example.com"),
        "{}",
        signed.signer
    );
    let b: serde_json::Value = serde_json::from_slice(&signed.json).unwrap();
    let tsv = &b["verificationMaterial"]["timestampVerificationData"];
    assert!(
        tsv["rfc3161Timestamps"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{tsv}"
    );
    verify_with_test_root(&fake, &b, &h, "carol@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_token_without_email_uses_the_subject_uri() {
    let fake = FakeSigstore::start();
    let sub = "https://ci.example.com/pipelines/train@refs/heads/main";
    let t = token(fake.token_for_workload(sub));
    assert!(t.claims().email.is_none());
    let signer = KeylessSigner::new(&t, options(&fake)).await.unwrap();
    assert_eq!(signer.identity(), sub);
    let (p, h) = statement("m", b"workload");
    let b = signer.sign_dsse(PAYLOAD_TYPE, &p).await.unwrap();
    verify_with_test_root(&fake, &b, &h, sub);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_github_actions_ambient_token() {
    let fake = FakeSigstore::start();
    let http = oci_model::signing::keyless::http_client().unwrap();
    let sources = TokenSources {
        github_actions: Some((
            fake.github_request_url.clone(),
            Secret::new(fake.github_request_token.clone()),
        )),
        ..Default::default()
    };
    let t = oidc::obtain_token(&http, sources).await.unwrap();
    assert_eq!(t.origin(), &TokenOrigin::GitHubActions);
    assert!(t.claims().email.is_none());
    let signer = KeylessSigner::new(&t, options(&fake)).await.unwrap();
    let expected = format!("https://github.com/{}", fakes::oidc::GITHUB_WORKFLOW_REF);
    assert_eq!(signer.identity(), expected);
    let (p, h) = statement("m", b"gha");
    let b = signer.sign_dsse(PAYLOAD_TYPE, &p).await.unwrap();
    verify_with_test_root(&fake, &b, &h, &expected);

    // A wrong request token is refused with a message naming the endpoint, not the token.
    let bad = TokenSources {
        github_actions: Some((fake.github_request_url.clone(), Secret::new("wrong-token"))),
        ..Default::default()
    };
    let err = oidc::obtain_token(&http, bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("GitHub Actions OIDC token request") && err.contains("401"),
        "{err}"
    );
    assert!(!err.contains("wrong-token"), "{err}");
}

#[tokio::test]
async fn keyless_token_sources_in_order() {
    let fake = FakeSigstore::start();
    let http = oci_model::signing::keyless::http_client().unwrap();
    let explicit = fake.token_for_email("explicit@example.com");
    let env = fake.token_for_email("env@example.com");
    let file = fake.dir().join("token.jwt");
    std::fs::write(
        &file,
        format!("{}\n", fake.token_for_email("file@example.com")),
    )
    .unwrap();
    let gha = || {
        Some((
            fake.github_request_url.clone(),
            Secret::new(fake.github_request_token.clone()),
        ))
    };

    // 1. explicit beats everything.
    let t = oidc::obtain_token(
        &http,
        TokenSources {
            explicit: Some(explicit.clone()),
            sigstore_id_token: Some(Secret::new(env.clone())),
            github_actions: gha(),
            interactive: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (t.identity(), t.origin()),
        ("explicit@example.com", &TokenOrigin::Explicit)
    );
    // @file.
    let t = oidc::obtain_token(
        &http,
        TokenSources {
            explicit: Some(format!("@{}", file.display())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(t.identity(), "file@example.com");
    assert_eq!(t.origin(), &TokenOrigin::File(file.clone()));
    // 2. SIGSTORE_ID_TOKEN (GitLab's id_tokens too) beats GitHub ambient.
    let t = oidc::obtain_token(
        &http,
        TokenSources {
            sigstore_id_token: Some(Secret::new(env)),
            github_actions: gha(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(t.origin(), &TokenOrigin::SigstoreIdTokenEnv);
    assert_eq!(t.identity(), "env@example.com");
    // 3. GitHub ambient.
    let t = oidc::obtain_token(
        &http,
        TokenSources {
            github_actions: gha(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(t.origin(), &TokenOrigin::GitHubActions);
    // Nothing: a clear error listing the sources.
    let err = oidc::obtain_token(&http, TokenSources::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--identity-token") && err.contains("SIGSTORE_ID_TOKEN"),
        "{err}"
    );
    // A missing @file names the file.
    let err = oidc::obtain_token(
        &http,
        TokenSources {
            explicit: Some("@/nonexistent/token".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nonexistent/token"), "{err}");
    // An expired token is refused before Fulcio.
    let expired = fake.token_with(
        serde_json::json!({"email": "e@example.com", "email_verified": true, "exp": 1000}),
    );
    let err = oidc::explicit_token(&expired).unwrap_err().to_string();
    assert!(err.contains("expired"), "{err}");
}

#[test]
fn keyless_authorization_url_has_pkce_state_and_localhost_redirect() {
    let endpoints = oidc::ProviderEndpoints {
        authorization: "https://oauth2.example.com/auth/auth".into(),
        token: "https://oauth2.example.com/auth/token".into(),
    };
    let req = oidc::authorization_request(
        &endpoints,
        "sigstore",
        "http://localhost:43117/auth/callback",
    )
    .unwrap();
    let url = url::Url::parse(&req.url).unwrap();
    assert_eq!(url.host_str(), Some("oauth2.example.com"));
    assert_eq!(url.path(), "/auth/auth");
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "sigstore");
    assert_eq!(q["redirect_uri"], "http://localhost:43117/auth/callback");
    assert_eq!(q["scope"], "openid email");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["code_challenge"],
        oidc::pkce_challenge(req.code_verifier.expose())
    );
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(q["state"], req.state);
    assert!(req.state.len() >= 22);
    assert_eq!(q["nonce"], req.nonce);
    // Fresh randomness every time.
    let again = oidc::authorization_request(&endpoints, "sigstore", "http://localhost:1/").unwrap();
    assert_ne!(again.state, req.state);
    assert_ne!(again.code_verifier.expose(), req.code_verifier.expose());
}

/// A "user" that opens the URL with an HTTP client (following the provider's redirect to the
/// localhost listener), or reads the out-of-band code from the provider's page.
struct ScriptedUser {
    browser: bool,
    urls: Mutex<Vec<(String, bool)>>,
    oob_code: Mutex<Option<String>>,
}

impl LoginUi for ScriptedUser {
    fn show_url(&self, url: &str, redirect: bool) {
        self.urls.lock().unwrap().push((url.to_string(), redirect));
        if !redirect {
            // The provider's out-of-band page shows the code; fetch it now (blocking thread).
            let url = url.to_string();
            let page = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
            })
            .join()
            .unwrap();
            *self.oob_code.lock().unwrap() = page.strip_prefix("Your code: ").map(str::to_string);
        }
    }
    fn prompt_code(&self) -> std::io::Result<Secret> {
        Ok(Secret::new(
            self.oob_code.lock().unwrap().clone().unwrap_or_default(),
        ))
    }
    fn open_browser(&self, url: &str) -> bool {
        if self.browser {
            let url = url.to_string();
            tokio::spawn(async move {
                let resp = reqwest::get(url).await.unwrap();
                assert!(
                    resp.status().is_success(),
                    "callback page: {}",
                    resp.status()
                );
            });
        }
        self.browser
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_browser_login_with_localhost_redirect_and_paste_fallback() {
    let fake = FakeSigstore::start();
    let http = oci_model::signing::keyless::http_client().unwrap();
    for browser in [true, false] {
        let user = Arc::new(ScriptedUser {
            browser,
            urls: Mutex::new(vec![]),
            oob_code: Mutex::new(None),
        });
        let login = oidc::InteractiveLogin {
            issuer: fake.oidc_url.clone(),
            client_id: "sigstore".into(),
            ui: user.clone(),
            force_oob: false,
        };
        let t = oidc::obtain_token(
            &http,
            TokenSources {
                interactive: Some(login),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(t.origin(), &TokenOrigin::Browser);
        assert_eq!(t.identity(), fakes::oidc::BROWSER_USER_EMAIL);
        let urls = user.urls.lock().unwrap().clone();
        assert_eq!(urls.len(), 1);
        assert_eq!(urls[0].1, browser);
        let q: std::collections::HashMap<String, String> = url::Url::parse(&urls[0].0)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        if browser {
            assert!(q["redirect_uri"].starts_with("http://localhost:"), "{q:?}");
            assert!(q["redirect_uri"].ends_with("/auth/callback"), "{q:?}");
        } else {
            assert_eq!(q["redirect_uri"], oidc::OOB_REDIRECT_URI);
        }
        // The token signs.
        let signer = KeylessSigner::new(&t, options(&fake)).await.unwrap();
        assert_eq!(signer.identity(), fakes::oidc::BROWSER_USER_EMAIL);
    }
}

/// One fault of the fake and what the refusal must look like.
struct Refusal {
    name: &'static str,
    fault: Fault,
    /// The error variant the signer must return.
    kind: fn(&KeylessError) -> bool,
    /// What the message must say.
    says: fn(&str) -> bool,
    /// Refused before anything was logged in Rekor.
    before_logging: bool,
}

const REFUSALS: [Refusal; 7] = [
    Refusal {
        name: "bad SCT",
        fault: Fault::BadSct,
        kind: |e| matches!(e, KeylessError::Unverified { .. }),
        says: |m| m.contains("refusing to publish") && m.contains("SCT"),
        before_logging: false,
    },
    Refusal {
        name: "bad log signature",
        fault: Fault::BadLogSignature,
        kind: |e| matches!(e, KeylessError::Unverified { .. }),
        says: |m| m.to_lowercase().contains("checkpoint") || m.contains("SET"),
        before_logging: false,
    },
    Refusal {
        name: "untrusted CA",
        fault: Fault::UntrustedCa,
        kind: |e| matches!(e, KeylessError::Unverified { .. }),
        says: |m| m.contains("chain"),
        before_logging: false,
    },
    Refusal {
        name: "certificate for another identity",
        fault: Fault::OtherIdentity,
        kind: |e| matches!(e, KeylessError::WrongIdentity { .. }),
        says: |m| m.contains("mallory@evil.example") && m.contains("dave@example.com"),
        before_logging: true,
    },
    Refusal {
        name: "broken inclusion proof",
        fault: Fault::BrokenInclusionProof,
        kind: |e| matches!(e, KeylessError::Unverified { .. }),
        says: |m| m.contains("inclusion proof"),
        before_logging: false,
    },
    Refusal {
        name: "log body that does not match",
        fault: Fault::BodyMismatch,
        kind: |e| matches!(e, KeylessError::RekorBodyMismatch { .. }),
        says: |m| m.contains("payloadHash") && m.contains("refusing to publish"),
        before_logging: false,
    },
    Refusal {
        name: "bad timestamp",
        fault: Fault::BadTimestamp,
        kind: |e| {
            matches!(
                e,
                KeylessError::Unverified { .. } | KeylessError::Tsa { .. }
            )
        },
        says: |m| m.to_lowercase().contains("timestamp"),
        before_logging: false,
    },
];

/// Every fault of the fake makes keyless signing refuse, with the right error and reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_refuses_every_faulty_answer() {
    let mut wrong = Vec::new();
    for case in &REFUSALS {
        let fake = FakeSigstore::with_fault(case.fault);
        let before = fake.rekor_size();
        let result = async {
            let signer = KeylessSigner::new(
                &token(fake.token_for_email("dave@example.com")),
                options(&fake),
            )
            .await?;
            let (p, _) = statement("m", b"fault");
            signer.sign_dsse(PAYLOAD_TYPE, &p).await
        }
        .await;
        let Err(err) = result else {
            wrong.push(format!("{}: signing did not refuse", case.name));
            continue;
        };
        let msg = err.to_string();
        if !(case.kind)(&err) {
            wrong.push(format!("{}: wrong error kind: {err:?}", case.name));
        }
        if !(case.says)(&msg) {
            wrong.push(format!("{}: message lacks the reason: {msg}", case.name));
        }
        if case.before_logging && fake.rekor_size() != before {
            wrong.push(format!("{}: refused only after logging", case.name));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_fulcio_rejects_tokens_it_cannot_trust() {
    let fake = FakeSigstore::start();
    // A token signed by another issuer's key (a second fake), claiming this issuer.
    let other = FakeSigstore::start();
    let forged = other.token_with(serde_json::json!({
        "iss": fake.issuer(), "sub": "eve", "email": "eve@example.com", "email_verified": true
    }));
    let err = KeylessSigner::new(&token(forged), options(&fake))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, KeylessError::Fulcio { .. }), "{msg}");
    assert!(
        msg.contains("401") && msg.contains("eve@example.com"),
        "{msg}"
    );
    assert!(msg.contains(&fake.fulcio_url), "{msg}");
}

/// The sigstore-python CLI in the project venv (scripts/venv.sh installs it with model-signing);
/// a missing one fails the test.
/// `sigstore verify identity --offline` (sigstore-python from the venv) of `bundle` over
/// `artifact`, trusting `trust_config` (a ClientTrustConfig of the fake instance).
pub fn sigstore_python_verify(
    trust_config: &std::path::Path,
    bundle: &std::path::Path,
    artifact: &std::path::Path,
    identity: &str,
    issuer: &str,
) -> std::process::Output {
    std::process::Command::new(crate::harness::venv_tool("sigstore"))
        .arg("--trust-config")
        .arg(trust_config)
        .args(["verify", "identity", "--offline", "--bundle"])
        .arg(bundle)
        .args(["--cert-identity", identity, "--cert-oidc-issuer", issuer])
        .arg(artifact)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_bundle_reverifies_with_sigstore_python() {
    let fake = FakeSigstore::start();
    let email = "python@example.com";
    let signer = KeylessSigner::new(&token(fake.token_for_email(email)), options(&fake))
        .await
        .unwrap();
    let artifact = fake.dir().join("model.bin");
    std::fs::write(&artifact, b"weights for sigstore-python").unwrap();
    let (p, _) = statement("model.bin", b"weights for sigstore-python");
    let bundle = signer.sign_dsse(PAYLOAD_TYPE, &p).await.unwrap();
    let bundle_path = fake.dir().join("model.bin.sigstore.json");
    std::fs::write(&bundle_path, serde_json::to_vec(&bundle).unwrap()).unwrap();

    let run = |identity: &str| {
        sigstore_python_verify(
            &fake.trust_config_path,
            &bundle_path,
            &artifact,
            identity,
            fake.issuer(),
        )
    };
    let out = run(email);
    assert!(
        out.status.success(),
        "sigstore-python rejected our bundle:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And it does check the identity.
    assert!(!run("someone-else@example.com").status.success());
}

// ---------------------------------------------------------------------------------------------
// Through the CLI: `oci-model sign --keyless` against the fake, on an OCI image layout.
// ---------------------------------------------------------------------------------------------

/// Push a tiny model into a fresh layout; returns (tempdir, target).
fn pushed_model() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let (_, target) = tiny_model_in_layout(dir.path());
    (dir, target)
}

#[test]
fn keyless_cli_sign_then_verify_with_the_test_root() {
    let fake = FakeSigstore::start();
    let (_dir, target) = pushed_model();
    let email = "cli-user@example.com";
    let bundle_out = fake.dir().join("model.sigstore.json");
    let out = harness::bin()
        .args(["sign", &target, "--keyless", "--identity-token"])
        .arg(fake.token_for_email(email))
        .arg("--signing-config")
        .arg(&fake.trust_config_path)
        .arg("--bundle-out")
        .arg(&bundle_out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sign --keyless failed: {stderr}");
    assert!(stderr.contains(email), "{stderr}");
    // Two referrers (model-signing bundle + cosign-style bundle), one certificate.
    assert_eq!(referrer_count(&target), 2);
    assert_eq!(fake.shared.fulcio.issued.load(Ordering::SeqCst), 1);
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bundle_out).unwrap()).unwrap();
    assert!(bundle["verificationMaterial"]["certificate"]["rawBytes"].is_string());

    let verify = |identity: &str| {
        harness::bin()
            .args(["verify", &target, "--certificate-identity", identity])
            .args(["--certificate-oidc-issuer", fake.issuer()])
            .arg("--trusted-root")
            .arg(&fake.trusted_root_path)
            .output()
            .unwrap()
    };
    let ok = verify(email);
    assert!(
        ok.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(verify("mallory@evil.example").status.code(), Some(1));
}

#[test]
fn keyless_cli_token_from_environment() {
    let fake = FakeSigstore::start();
    let (_dir, target) = pushed_model();
    // SIGSTORE_ID_TOKEN (GitLab's id_tokens set the same variable).
    let out = harness::bin()
        .args([
            "sign",
            &target,
            "--keyless",
            "--no-cosign-bundle",
            "--signing-config",
        ])
        .arg(&fake.trust_config_path)
        .env(
            "SIGSTORE_ID_TOKEN",
            fake.token_for_email("gitlab-job@example.com"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("gitlab-job@example.com"), "{stderr}");
    // GitHub Actions ambient credentials.
    let out = harness::bin()
        .args([
            "sign",
            &target,
            "--keyless",
            "--no-cosign-bundle",
            "--signing-config",
        ])
        .arg(&fake.trust_config_path)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &fake.github_request_url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", &fake.github_request_token)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(fakes::oidc::GITHUB_WORKFLOW_REF),
        "{stderr}"
    );
    // No source at all (stdin is not a terminal): a usage error naming the sources.
    let out = harness::bin()
        .args(["sign", &target, "--keyless", "--signing-config"])
        .arg(&fake.trust_config_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIGSTORE_ID_TOKEN"));
}

#[test]
fn keyless_cli_faults_refuse_and_push_no_referrer() {
    let fake = FakeSigstore::start();
    let (_dir, target) = pushed_model();
    for fault in [
        Fault::BadSct,
        Fault::BadLogSignature,
        Fault::UntrustedCa,
        Fault::OtherIdentity,
        Fault::BrokenInclusionProof,
        Fault::BodyMismatch,
        Fault::BadTimestamp,
    ] {
        fake.set_fault(Some(fault));
        let out = harness::bin()
            .args(["sign", &target, "--keyless", "--identity-token"])
            .arg(fake.token_for_email("erin@example.com"))
            .arg("--signing-config")
            .arg(&fake.trust_config_path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A refusal is a verification failure: exit 1.
        assert_eq!(out.status.code(), Some(1), "{fault:?}: {stderr}");
        assert!(stderr.contains("refusing to"), "{fault:?}: {stderr}");
        assert_eq!(referrer_count(&target), 0, "{fault:?} pushed a referrer");
    }
    // The same fake, healthy again, signs.
    fake.set_fault(None);
    let out = harness::bin()
        .args(["sign", &target, "--keyless", "--identity-token"])
        .arg(fake.token_for_email("erin@example.com"))
        .arg("--signing-config")
        .arg(&fake.trust_config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(referrer_count(&target), 2);
}

#[test]
fn keyless_cli_tlog_upload_false_needs_a_key() {
    let fake = FakeSigstore::start();
    let (_dir, target) = pushed_model();
    let out = harness::bin()
        .args([
            "sign",
            &target,
            "--keyless",
            "--tlog-upload=false",
            "--identity-token",
        ])
        .arg(fake.token_for_email("frank@example.com"))
        .arg("--signing-config")
        .arg(&fake.trust_config_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tlog-upload=false"));
    assert_eq!(fake.shared.fulcio.issued.load(Ordering::SeqCst), 0);
    assert_eq!(referrer_count(&target), 0);
}

#[test]
fn keyless_cli_sign_on_a_registry() {
    let fake = FakeSigstore::start();
    let reg = crate::harness::Registry::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.gguf"), vec![3u8; 2048]).unwrap();
    let target = format!("{}/{}:v1", reg.host, crate::harness::repo("keyless"));
    let out = harness::bin()
        .arg("push")
        .arg(dir.path())
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "push: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A refused signature leaves the registry untouched.
    fake.set_fault(Some(Fault::BrokenInclusionProof));
    let sign = |fake: &FakeSigstore| {
        harness::bin()
            .args(["sign", &target, "--keyless", "--identity-token"])
            .arg(fake.token_for_email("reg@example.com"))
            .arg("--signing-config")
            .arg(&fake.trust_config_path)
            .output()
            .unwrap()
    };
    let out = sign(&fake);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("inclusion proof"));
    assert_eq!(referrer_count(&target), 0);

    fake.set_fault(None);
    let out = sign(&fake);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(referrer_count(&target), 2);
    let out = harness::bin()
        .args([
            "verify",
            &target,
            "--certificate-identity",
            "reg@example.com",
        ])
        .args(["--certificate-oidc-issuer", fake.issuer()])
        .arg("--trusted-root")
        .arg(&fake.trusted_root_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn keyless_cli_attest() {
    let fake = FakeSigstore::start();
    let (dir, target) = pushed_model();
    let predicate = dir.path().join("eval.json");
    std::fs::write(&predicate, br#"{"accuracy": 0.93, "dataset": "tiny-eval"}"#).unwrap();
    let ptype = "https://example.com/eval/v1";
    let out = harness::bin()
        .args([
            "attest",
            &target,
            "--type",
            ptype,
            "--keyless",
            "--predicate",
        ])
        .arg(&predicate)
        .arg("--identity-token")
        .arg(fake.token_for_workload("https://ci.example.com/eval-job"))
        .arg("--signing-config")
        .arg(&fake.trust_config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "attest --keyless: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fake.shared.fulcio.issued.load(Ordering::SeqCst), 1);
    assert_eq!(referrer_count(&target), 1);
    // Sign too (a second run: its own certificate), then verify signature + attestation.
    let out = harness::bin()
        .args(["sign", &target, "--keyless", "--identity-token"])
        .arg(fake.token_for_workload("https://ci.example.com/eval-job"))
        .arg("--signing-config")
        .arg(&fake.trust_config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fake.shared.fulcio.issued.load(Ordering::SeqCst), 2);
    let verify = |ptype: &str| {
        harness::bin()
            .args(["verify", &target, "--certificate-identity"])
            .arg("https://ci.example.com/eval-job")
            .args([
                "--certificate-oidc-issuer",
                fake.issuer(),
                "--attestation-type",
                ptype,
            ])
            .arg("--trusted-root")
            .arg(&fake.trusted_root_path)
            .output()
            .unwrap()
    };
    let out = verify(ptype);
    assert!(
        out.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        verify("https://example.com/missing/v1").status.code(),
        Some(1)
    );
}

#[test]
fn keyless_cli_refuses_a_signing_config_without_a_usable_service() {
    let fake = FakeSigstore::start();
    let (_dir, target) = pushed_model();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fake.signing_config_path).unwrap()).unwrap();
    config["rekorTlogUrls"][0]["validFor"] =
        serde_json::json!({"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"});
    let path = fake.dir().join("expired_signing_config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = harness::bin()
        .args(["sign", &target, "--keyless", "--identity-token"])
        .arg(fake.token_for_email("erin@example.com"))
        .arg("--signing-config")
        .arg(&path)
        .arg("--trusted-root")
        .arg(&fake.trusted_root_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no usable Rekor service (rekorTlogUrls)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("valid 2020-01-01T00:00:00Z to 2021-01-01T00:00:00Z"),
        "{stderr}"
    );
    assert_eq!(fake.shared.fulcio.issued.load(Ordering::SeqCst), 0);
    assert_eq!(referrer_count(&target), 0);
}
