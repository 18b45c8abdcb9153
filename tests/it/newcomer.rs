//! What a newcomer runs into: `copy` between registries that need different options, a user
//! name without a password, exit codes a script can tell apart, shell completions, `--help`.

use crate::harness::{self, Registry};
use crate::support::{output, push, run, small_model};
use std::path::Path;

/// The registry's own address under a name oci-model does not treat as loopback (an
/// IPv4-mapped IPv6 address): https by default, like a remote registry.
fn remote_name(reg: &Registry) -> String {
    format!("[::ffff:127.0.0.1]:{}", reg.port)
}

/// A registry serving https with a self-signed certificate (made by openssl).
fn tls_registry(dir: &Path) -> Registry {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {out:?}");
    Registry::start_with_config(|yaml| {
        yaml.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ));
    })
}

#[test]
fn copy_takes_plain_http_and_insecure_per_end() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = Registry::start();
    let tls = tls_registry(tmp.path());
    let model = tmp.path().join("m");
    small_model(&model);
    let repo = harness::repo("ends");
    let src = format!("{}/{repo}:v1", plain.host);
    let digest = push(&model, &src);
    let on_tls = format!("{}/{repo}:v1", remote_name(&tls));

    // The destination's self-signed certificate: --from-insecure is the source's alone.
    for refused in [&[][..], &["--from-insecure"][..]] {
        let (code, _, stderr) =
            run(&[&["copy", &src, &on_tls, "--retries", "1"], refused].concat());
        assert_ne!(code, 0, "{refused:?}: {stderr}");
        assert!(stderr.contains("https://"), "{refused:?}: {stderr}");
    }
    let (code, stdout, stderr) = run(&["copy", &src, &on_tls, "--to-insecure"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&digest), "{stdout}");

    // Back to the plain registry, named so that https is the default: each end gets its flag.
    let back = format!("{}/{repo}-back:v1", remote_name(&plain));
    let (code, _, stderr) = run(&[
        "copy",
        &on_tls,
        &back,
        "--from-insecure",
        "--from-plain-http",
        "--retries",
        "1",
    ]);
    assert_ne!(
        code, 0,
        "--from-plain-http reached the destination: {stderr}"
    );
    let (code, stdout, stderr) =
        run(&["copy", &on_tls, &back, "--from-insecure", "--to-plain-http"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&digest), "{stdout}");
    // The shared forms still apply to both ends.
    let shared = format!("{}/{repo}-shared:v1", remote_name(&plain));
    let (code, _, stderr) = run(&["copy", &back, &shared, "--plain-http"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn copy_takes_a_user_per_end_and_reads_standard_input_once() {
    let tmp = tempfile::tempdir().unwrap();
    let docker = tmp.path().join("docker");
    let (a, b) = (
        Registry::start_with_htpasswd("alice", "alice-pw-1"),
        Registry::start_with_htpasswd("bob", "bob-pw-2"),
    );
    let model = tmp.path().join("m");
    small_model(&model);
    let repo = harness::repo("users");
    let (src, dst) = (
        format!("{}/{repo}:v1", a.host),
        format!("{}/{repo}:v1", b.host),
    );
    let cli = |args: &[&str], stdin: &str| {
        let mut cmd = harness::bin();
        cmd.env("DOCKER_CONFIG", &docker)
            .args(args)
            .write_stdin(stdin);
        output(&mut cmd)
    };
    let (code, _, stderr) = cli(
        &[
            "push",
            model.to_str().unwrap(),
            &src,
            "-u",
            "alice",
            "--password-stdin",
        ],
        "alice-pw-1\n",
    );
    assert_eq!(code, 0, "{stderr}");
    // One standard input: the destination's credentials come from `login`.
    let (code, _, stderr) = cli(
        &["login", &b.host, "-u", "bob", "--password-stdin"],
        "bob-pw-2\n",
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = cli(
        &[
            "copy",
            &src,
            &dst,
            "--from-username",
            "alice",
            "--from-password-stdin",
        ],
        "alice-pw-1\n",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&dst), "{stdout}");

    // Two passwords cannot both come from standard input; a layout has no user.
    let (code, _, stderr) = cli(
        &[
            "copy",
            &src,
            &dst,
            "--from-password-stdin",
            "--to-password-stdin",
        ],
        "x\n",
    );
    assert_eq!(code, 2, "{stderr}");
    let layout = format!("oci:{}", tmp.path().join("layout").display());
    let (code, _, stderr) = cli(&["copy", &src, &layout, "--to-username", "bob"], "");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--to-username") && stderr.contains("OCI layout"),
        "{stderr}"
    );
}

/// Run the binary on a terminal (a pseudo-terminal made by util-linux `script`), answering
/// the first line that contains `prompt` with `answer`: (exit code, everything the terminal
/// showed).
fn on_terminal(args: &[&str], env: &[(&str, &Path)], prompt: &str, answer: &str) -> (i32, String) {
    use std::io::{Read as _, Write as _};
    use std::process::{Command, Stdio};
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let bin = assert_cmd::cargo::cargo_bin("oci-model");
    let line = std::iter::once(bin.to_str().unwrap())
        .chain(args.iter().copied())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run script (util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (prompt, answer) = (prompt.to_string(), answer.to_string());
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let mut answered = false;
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            if !answered && String::from_utf8_lossy(&seen).contains(&prompt) {
                answered = true;
                // Give the prompt a moment to turn echo off before the answer arrives.
                std::thread::sleep(std::time::Duration::from_millis(200));
                let _ = writeln!(stdin, "{answer}");
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), reader.join().unwrap())
}

#[test]
fn a_user_without_password_stdin_is_asked_on_a_terminal_and_refused_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start_with_htpasswd("alice", "alice-pw-3");
    let model = tmp.path().join("m");
    small_model(&model);
    let target = format!("{}/{}:v1", reg.host, harness::repo("prompt"));
    let home = tmp.path().join("home");
    let env = [
        ("HOME", home.as_path()),
        ("DOCKER_CONFIG", &home.join(".docker")),
        ("XDG_CACHE_HOME", &home.join(".cache")),
    ];
    let push = ["push", model.to_str().unwrap(), &target, "-u", "alice"];
    let (code, shown) = on_terminal(&push, &env, "Password for alice", "alice-pw-3");
    assert_eq!(code, 0, "{shown}");
    assert!(
        !shown.contains("alice-pw-3"),
        "the password was echoed: {shown}"
    );
    // The pushed model is there: inspect with the password asked again.
    let (code, shown) = on_terminal(
        &["inspect", &target, "-u", "alice"],
        &env,
        "Password for alice",
        "alice-pw-3",
    );
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("model.safetensors"), "{shown}");

    // No terminal (standard input is not one): refused before any request, naming the fix.
    let mut cmd = harness::bin();
    cmd.args(push).write_stdin("");
    let (code, stdout, stderr) = output(&mut cmd);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("alice") && stderr.contains("--password-stdin"),
        "{stderr}"
    );
}

#[test]
fn not_found_has_its_own_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    let model = tmp.path().join("m");
    small_model(&model);
    let repo = harness::repo("found");
    push(&model, &format!("{}/{repo}:v1", reg.host));
    let layout = format!("oci:{}", tmp.path().join("layout").display());
    push(&model, &format!("{layout}:v1"));

    for (target, named) in [
        // A tag the repository does not have.
        (format!("{}/{repo}:v2", reg.host), "v2"),
        // A repository the registry does not have.
        (format!("{}/{repo}-nothing:v1", reg.host), "nothing"),
        // A tag an OCI layout does not have.
        (format!("{layout}:v2"), "v2"),
    ] {
        let (code, _, stderr) = run(&["inspect", &target]);
        assert_eq!(code, 4, "inspect {target}: {stderr}");
        assert!(
            stderr.contains("not found") && stderr.contains(named),
            "{stderr}"
        );
        let dest = tmp.path().join("pulled");
        let (code, stdout, stderr) = run(&["pull", &target, dest.to_str().unwrap(), "-o", "json"]);
        assert_eq!(code, 4, "pull {target}: {stderr}");
        let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(doc["exitCode"], 4, "{doc}");
        assert!(!dest.exists());
    }
    // Nothing listening: still a network error (3), not "not found".
    let (code, _, stderr) = run(&["inspect", "127.0.0.1:1/x:v1", "--retries", "1"]);
    assert_eq!(code, 3, "{stderr}");
    // Documented where a person looks.
    let (_, help, _) = run(&["--help"]);
    assert!(help.contains("4 not found"), "{help}");
}

/// `generate-key-pair` in `dir`: (private key, public key, key hint).
fn key_with_hint(dir: &Path, prefix: &str) -> (String, String, String) {
    let p = dir.join(prefix);
    let (code, stdout, stderr) = run(&[
        "generate-key-pair",
        "--no-password",
        "-o",
        "json",
        "--output-key-prefix",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    (
        p.with_extension("key").display().to_string(),
        p.with_extension("pub").display().to_string(),
        doc["hint"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_wrong_key_is_told_which_key_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    let model = tmp.path().join("m");
    small_model(&model);
    let target = format!("{}/{}:v1", reg.host, harness::repo("wrongkey"));
    push(&model, &target);
    let (release, _, release_hint) = key_with_hint(tmp.path(), "release");
    let (_, mallory_pub, mallory_hint) = key_with_hint(tmp.path(), "mallory");
    let (code, _, stderr) = run(&["sign", &target, "--key", &release]);
    assert_eq!(code, 0, "{stderr}");

    let (code, stdout, stderr) = run(&["verify", &target, "--key", &mallory_pub]);
    assert_eq!(code, 1, "{stderr}");
    for text in [&stdout, &stderr] {
        assert!(
            text.contains(&format!("signed with a different key, hint {release_hint}"))
                && text.contains(&mallory_hint),
            "{text}"
        );
    }
}

#[test]
fn each_provenance_candidate_is_reported_with_why_it_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    let model = tmp.path().join("m");
    small_model(&model);
    let target = format!("{}/{}:v1", reg.host, harness::repo("twoprov"));
    push(&model, &target);
    let (key, public, _) = key_with_hint(tmp.path(), "ci");
    for builder in ["https://ci.example/one", "https://ci.example/two"] {
        let (code, _, stderr) = run(&[
            "attest",
            &target,
            "--provenance",
            "--builder-id",
            builder,
            "--key",
            &key,
        ]);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, stdout, stderr) = run(&[
        "verify",
        &target,
        "--key",
        &public,
        "--provenance-builder-id",
        "https://ci.example/three",
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    for text in [&stdout, &stderr] {
        for (n, builder) in [(1, "one"), (2, "two")] {
            assert!(
                text.contains(&format!("provenance {n} of 2 (signed by key"))
                    && text.contains(&format!(
                        "builder id is \"https://ci.example/{builder}\", expected \"https://ci.example/three\""
                    )),
                "candidate {n} not reported: {text}"
            );
        }
    }
}

/// A referrer of `subject` in `store` with the given predicate type and creation time.
async fn referrer_created(
    store: &dyn oci_model::store::Store,
    subject: &oci_model::store::Descriptor,
    predicate_type: &str,
    created: &str,
) -> String {
    use oci_model::media_types as mt;
    crate::support::add_referrer_with(
        store,
        subject,
        &format!("bundle {predicate_type} {created}"),
        &[
            (mt::ANNOTATION_BUNDLE_PREDICATE_TYPE, predicate_type),
            (mt::ANNOTATION_CREATED, created),
        ],
    )
    .await
    .digest
    .to_string()
}

#[tokio::test]
async fn discover_groups_referrers_by_kind_oldest_first() {
    use oci_model::media_types as mt;
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let layout = format!("oci:{}", tmp.path().join("layout").display());
    push(&model, &format!("{layout}:v1"));
    let store = oci_model::store::open(
        &oci_model::reference::Target::parse(&layout).unwrap(),
        &oci_model::store::StoreOptions::default(),
    )
    .await
    .unwrap();
    let subject = store.resolve("v1").await.unwrap();
    let model_signing = mt::PREDICATE_MODEL_SIGNING;
    // (predicate type, created), in the order discover must list them.
    let expected = [
        (model_signing, "2026-01-01T00:00:00Z"),
        (model_signing, "2026-01-01T12:00:00+10:00"), // = 02:00Z: after midnight
        (model_signing, "2026-01-02T00:00:00Z"),
        (model_signing, "2026-01-03T00:00:00Z"),
        (mt::PREDICATE_COSIGN_SIGN, "2026-01-05T00:00:00Z"),
        (mt::PREDICATE_SLSA_PROVENANCE_V1, "2025-12-01T00:00:00Z"),
        (mt::PREDICATE_SLSA_PROVENANCE_V1, "2025-12-02T00:00:00Z"),
    ];
    let mut digests = Vec::new();
    // Written newest first, so neither the writing order nor (checked below) the digest order
    // is the listing order.
    for (predicate_type, created) in expected.iter().rev() {
        digests.push(referrer_created(store.as_ref(), &subject, predicate_type, created).await);
    }
    digests.reverse();
    let mut by_digest = digests.clone();
    by_digest.sort();
    assert_ne!(
        by_digest, digests,
        "the test needs a digest order that is not the time order"
    );

    let (code, stdout, stderr) = run(&["discover", &format!("{layout}:v1"), "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let listed: Vec<(&str, &str)> = doc["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["digest"].as_str().unwrap(),
                r["created"].as_str().unwrap(),
            )
        })
        .collect();
    let wanted: Vec<(&str, &str)> = digests
        .iter()
        .zip(expected)
        .map(|(d, (_, c))| (d.as_str(), c))
        .collect();
    assert_eq!(listed, wanted);
    // The text tree lists them the same way.
    let (_, text, _) = run(&["discover", &format!("{layout}:v1")]);
    let positions: Vec<usize> = digests
        .iter()
        .map(|d| text.find(d.as_str()).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish_know_every_command() {
    let commands = [
        "push",
        "pull",
        "copy",
        "inspect",
        "sign",
        "sign-local",
        "attest",
        "verify",
        "verify-local",
        "discover",
        "generate-key-pair",
        "login",
        "logout",
        "completion",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let (code, script, stderr) = run(&["completion", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        for word in commands
            .iter()
            .chain(&["--from-plain-http", "--password-stdin"])
        {
            assert!(
                script.contains(word.trim_start_matches('-')),
                "{shell} completion lacks {word}"
            );
        }
    }
    // The bash script is valid bash.
    let (_, script, _) = run(&["completion", "bash"]);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &script).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(file.path())
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    // Described in the top-level help; an unknown shell is a usage error.
    let (_, help, _) = run(&["--help"]);
    assert!(help.contains("completion"), "{help}");
    let (code, _, stderr) = run(&["completion", "tcsh"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn sign_local_does_not_replace_a_signature_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let (key, public, _) = key_with_hint(tmp.path(), "k");
    let sig = tmp.path().join("model.sig");
    let sign = |extra: &[&str]| {
        run(&[
            &["sign-local", model.to_str().unwrap(), "--key", &key],
            &["--signature", sig.to_str().unwrap()][..],
            extra,
        ]
        .concat())
    };
    let (code, _, stderr) = sign(&[]);
    assert_eq!(code, 0, "{stderr}");
    let first = std::fs::read(&sig).unwrap();

    // The model changes; signing again must not silently replace the first signature.
    std::fs::write(model.join("README.md"), b"# changed\n").unwrap();
    let (code, _, stderr) = sign(&[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("model.sig already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&sig).unwrap(), first);
    // `sign` on a local directory is sign-local: the same refusal.
    let (code, _, stderr) = run(&[
        "sign",
        model.to_str().unwrap(),
        "--key",
        &key,
        "--bundle-out",
        sig.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(std::fs::read(&sig).unwrap(), first);

    let (code, _, stderr) = sign(&["--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert_ne!(std::fs::read(&sig).unwrap(), first);
    let (code, _, stderr) = run(&[
        "verify-local",
        model.to_str().unwrap(),
        "--key",
        &public,
        "--signature",
        sig.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn help_describes_every_argument_a_newcomer_types() {
    for (command, wanted) in [
        (&["inspect", "--help"][..], "Model to show"),
        (&["discover", "--help"][..], "Model whose referrers to list"),
        (
            &["login", "--help"][..],
            "User name; the password comes from",
        ),
        (&["push", "--help"][..], "<SOURCE>... <TARGET>"),
        (&["--help"][..], "OCI_MODEL_LOG"),
    ] {
        let (code, help, _) = run(command);
        assert_eq!(code, 0);
        assert!(help.contains(wanted), "{command:?}: {help}");
    }
    // push's usage line and its argument list use the same names.
    let (_, help, _) = run(&["push", "--help"]);
    assert!(
        help.contains("<SOURCE>...\n") && help.contains("<TARGET>\n"),
        "{help}"
    );
}
