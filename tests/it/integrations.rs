//! The CI integrations under `integrations/` run here, their exact commands read from the YAML
//! (so a change to the files changes what runs), with the environment each system sets
//! simulated: GitHub Actions (composite action: inputs, `${{ }}` expressions, `GITHUB_OUTPUT`,
//! `GITHUB_PATH`, the ambient OIDC token endpoint), GitLab CI (job variables, `id_tokens` →
//! `SIGSTORE_ID_TOKEN`, the dotenv report) and Tekton (params, workspaces, results, a projected
//! token file). Each pushes to the real registry (with a password, through `login` or a
//! mounted docker config), signs and attests keyless against the fake Sigstore, and what it
//! signed is then verified: the identity, the SLSA provenance's builder and materials.
//!
//! Only what the files use is modelled; anything else in them (a step key, an expression, a
//! substitution) fails the test instead of being skipped.

use crate::fakes::{self, FakeSigstore};
use crate::harness;
use crate::support::{output, write_model};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const USER: &str = "ci-bot";
const PASSWORD: &str = "s3cret-ci-password";

fn integration(rel: &str) -> Value {
    let path = harness::project_root().join("integrations").join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
}

/// A CI machine's working area: the oci-model binary on PATH, a home, a docker config.
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_oci-model"), bin.join("oci-model")).unwrap();
        for d in ["home", "docker", "workspace", "tmp"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Machine { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    /// What every CI system gives a job: PATH with oci-model, a HOME, no ambient credentials.
    fn base_env(&self) -> BTreeMap<String, String> {
        let p = |rel: &str| self.path(rel).display().to_string();
        BTreeMap::from([
            (
                "PATH".into(),
                format!("{}:/usr/local/bin:/usr/bin:/bin", p("bin")),
            ),
            ("HOME".into(), p("home")),
            ("DOCKER_CONFIG".into(), p("docker")),
            ("XDG_CACHE_HOME".into(), p("home/.cache")),
            ("CI".into(), "true".into()),
        ])
    }
    /// A model a training step wrote, and a dataset it read.
    fn trained_model(&self, rel: &str) -> (PathBuf, String) {
        let model = self.path("workspace").join(rel);
        write_model(
            &model,
            &[
                (
                    "config.json",
                    br#"{"architectures":["Bert"],"hidden_size":8}"#,
                ),
                ("model.safetensors", &harness::pseudo_random(40_000, 11)),
                ("tokenizer.json", br#"{"version":"1.0"}"#),
            ],
        );
        let data = b"text,label\nhello,1\n";
        std::fs::create_dir_all(self.path("workspace/data")).unwrap();
        std::fs::write(self.path("workspace/data/train.csv"), data).unwrap();
        (
            model,
            fakes::sha256(data)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }
}

/// Run `program args` with exactly `env` (the environment cleared first) in `cwd`.
fn run_clean(
    program: &str,
    args: &[&str],
    env: &BTreeMap<String, String>,
    cwd: &Path,
) -> std::process::Output {
    Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// `oci-model verify` of what a CI run signed: keyless identity, provenance builder, material.
fn verify_signed(
    fake: &FakeSigstore,
    docker_config: &Path,
    reference: &str,
    identity: &str,
    builder_id: &str,
    material: &str,
) -> (i32, String, String) {
    let mut cmd = harness::bin();
    cmd.env("DOCKER_CONFIG", docker_config)
        .args(["verify", reference, "--certificate-identity", identity])
        .args(["--certificate-oidc-issuer", fake.issuer()])
        .arg("--trusted-root")
        .arg(&fake.trusted_root_path)
        .args(["--attestation-type", "slsaprovenance1"])
        .args(["--provenance-builder-id", builder_id])
        .args(["--provenance-material", material]);
    output(&mut cmd)
}

/// The manifest digest a tag names now.
fn digest_of(docker_config: &Path, reference: &str) -> String {
    let mut cmd = harness::bin();
    cmd.env("DOCKER_CONFIG", docker_config)
        .args(["inspect", reference, "--output", "json"]);
    let (code, stdout, stderr) = output(&mut cmd);
    assert_eq!(code, 0, "inspect {reference}: {stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    v["digest"].as_str().unwrap().to_string()
}

fn is_digest(s: &str) -> bool {
    s.len() == 71
        && s.starts_with("sha256:")
        && s[7..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

// ---------------------------------------------------------------------------------------------
// GitHub Actions: a composite action
// ---------------------------------------------------------------------------------------------

struct GitHubRun {
    /// The action's outputs, evaluated like GitHub does after the last step.
    outputs: BTreeMap<String, String>,
    /// (step name, its process output) for every step run, in order.
    steps: Vec<(String, std::process::Output)>,
    /// The name of the step that failed (GitHub stops there).
    failed: Option<String>,
    summary: String,
}

/// `${{ … }}` in `text`, with the expressions the action may use.
fn github_expr(
    text: &str,
    inputs: &BTreeMap<String, String>,
    steps: &BTreeMap<String, BTreeMap<String, String>>,
    action_path: &Path,
) -> String {
    let re = regex::Regex::new(r"\$\{\{\s*(.*?)\s*\}\}").unwrap();
    re.replace_all(text, |c: &regex::Captures| {
        let expr = &c[1];
        if let Some(name) = expr.strip_prefix("inputs.") {
            inputs
                .get(name)
                .unwrap_or_else(|| panic!("expression {expr}: no such input"))
                .clone()
        } else if let Some(rest) = expr.strip_prefix("steps.") {
            let (id, out) = rest.split_once(".outputs.").expect("steps.ID.outputs.NAME");
            steps
                .get(id)
                .and_then(|o| o.get(out))
                .cloned()
                .unwrap_or_default() // GitHub gives an empty string for a missing output
        } else if expr == "github.action_path" {
            action_path.display().to_string()
        } else {
            panic!("expression ${{{{ {expr} }}}} is not modelled by this test")
        }
    })
    .into_owned()
}

/// `name=value` lines and `name<<DELIMITER` blocks, as GitHub reads `GITHUB_OUTPUT`/`GITHUB_ENV`.
fn github_file(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((k, delim)) = line.split_once("<<") {
            let mut v = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                v.push(l);
            }
            out.insert(k.to_string(), v.join("\n"));
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

/// Run the composite action as the runner does: each step's `run` through
/// `bash --noprofile --norc -eo pipefail FILE` with its `env:` evaluated.
fn run_github_action(
    m: &Machine,
    given: &[(&str, &str)],
    job_env: &BTreeMap<String, String>,
) -> GitHubRun {
    let action = integration("github/action.yml");
    let action_path = harness::project_root().join("integrations/github");
    assert_eq!(action["runs"]["using"], "composite");

    // Inputs: given, else the default; a required one without either is an error.
    let declared = action["inputs"].as_object().expect("inputs");
    for (k, _) in given {
        assert!(declared.contains_key(*k), "the action has no input {k}");
    }
    let mut inputs = BTreeMap::new();
    for (name, spec) in declared {
        let value = given
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
            .or_else(|| spec["default"].as_str().map(String::from));
        match value {
            Some(v) => {
                inputs.insert(name.clone(), v);
            }
            None => assert_ne!(spec["required"], true, "required input {name} not given"),
        }
    }

    let temp = m.path("tmp");
    let summary = temp.join("step_summary.md");
    let path_file = temp.join("github_path");
    let env_file = temp.join("github_env");
    let mut env = job_env.clone();
    env.extend([
        ("GITHUB_ACTIONS".into(), "true".into()),
        (
            "GITHUB_ACTION_PATH".into(),
            action_path.display().to_string(),
        ),
        (
            "GITHUB_WORKSPACE".into(),
            m.path("workspace").display().to_string(),
        ),
        ("RUNNER_TEMP".into(), temp.display().to_string()),
        ("GITHUB_STEP_SUMMARY".into(), summary.display().to_string()),
        ("GITHUB_PATH".into(), path_file.display().to_string()),
        ("GITHUB_ENV".into(), env_file.display().to_string()),
    ]);
    let mut step_outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut run = GitHubRun {
        outputs: BTreeMap::new(),
        steps: Vec::new(),
        failed: None,
        summary: String::new(),
    };
    for (n, step) in action["runs"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for key in step.as_object().unwrap().keys() {
            assert!(
                ["name", "id", "shell", "env", "run"].contains(&key.as_str()),
                "step {n}: key {key:?} is not modelled by this test"
            );
        }
        assert_eq!(step["shell"], "bash", "step {n}");
        let script = step["run"].as_str().expect("run");
        assert!(
            !script.contains("${{"),
            "step {n}: an expression inside `run` is pasted into the script (use env:)"
        );
        let name = step["name"].as_str().unwrap_or("").to_string();
        let mut step_env = env.clone();
        for (k, v) in step["env"].as_object().into_iter().flatten() {
            let v = github_expr(v.as_str().unwrap(), &inputs, &step_outputs, &action_path);
            step_env.insert(k.clone(), v);
        }
        let output_file = temp.join(format!("output-{n}"));
        step_env.insert("GITHUB_OUTPUT".into(), output_file.display().to_string());
        let file = temp.join(format!("step-{n}.sh"));
        std::fs::write(&file, script).unwrap();
        let out = run_clean(
            "bash",
            &[
                "--noprofile",
                "--norc",
                "-eo",
                "pipefail",
                file.to_str().unwrap(),
            ],
            &step_env,
            &m.path("workspace"),
        );
        let ok = out.status.success();
        run.steps.push((name.clone(), out));
        if !ok {
            run.failed = Some(name);
            return run;
        }
        if let Some(id) = step["id"].as_str() {
            step_outputs.insert(id.to_string(), github_file(&output_file));
        }
        // GITHUB_PATH and GITHUB_ENV apply to the steps after.
        for dir in std::fs::read_to_string(&path_file)
            .unwrap_or_default()
            .lines()
        {
            let old = env["PATH"].clone();
            env.insert("PATH".into(), format!("{dir}:{old}"));
        }
        let _ = std::fs::remove_file(&path_file);
        env.extend(github_file(&env_file));
    }
    for (name, spec) in action["outputs"].as_object().unwrap() {
        let v = github_expr(
            spec["value"].as_str().unwrap(),
            &inputs,
            &step_outputs,
            &action_path,
        );
        run.outputs.insert(name.clone(), v);
    }
    run.summary = std::fs::read_to_string(summary).unwrap_or_default();
    run
}

fn github_job_env(
    m: &Machine,
    fake: &FakeSigstore,
    request_token: &str,
) -> BTreeMap<String, String> {
    let mut env = m.base_env();
    env.extend([
        ("GITHUB_SERVER_URL".into(), "https://github.com".into()),
        ("GITHUB_REPOSITORY".into(), "octo-org/models".into()),
        (
            "GITHUB_WORKFLOW_REF".into(),
            fakes::oidc::GITHUB_WORKFLOW_REF.into(),
        ),
        (
            "GITHUB_SHA".into(),
            "0123456789abcdef0123456789abcdef01234567".into(),
        ),
        ("GITHUB_REF".into(), "refs/heads/main".into()),
        ("GITHUB_RUN_ID".into(), "4242".into()),
        ("GITHUB_RUN_ATTEMPT".into(), "1".into()),
        ("RUNNER_OS".into(), "Linux".into()),
        // `permissions: id-token: write` makes the runner set these two.
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL".into(),
            fake.github_request_url.clone(),
        ),
        (
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN".into(),
            request_token.into(),
        ),
    ]);
    env
}

fn stderr_of(run: &GitHubRun) -> String {
    run.steps
        .iter()
        .map(|(n, o)| format!("[{n}] {}", String::from_utf8_lossy(&o.stderr)))
        .collect()
}

#[test]
fn integrations_github_action_pushes_signs_attests_and_outputs_the_digest() {
    let fake = FakeSigstore::start();
    let reg = harness::Registry::start_with_htpasswd(USER, PASSWORD);
    let m = Machine::new();
    let (_model, dataset_hex) = m.trained_model("model");
    let reference = format!("{}/octo-org/models/bert:v1", reg.host);
    let trust_config = fake.trust_config_path.display().to_string();
    let inputs = [
        ("model", "model"),
        ("reference", reference.as_str()),
        ("registry-username", USER),
        ("registry-password", PASSWORD),
        ("training-command", "python train.py --epochs 3"),
        ("materials", "dataset=data/train.csv\n"),
        ("signing-config", trust_config.as_str()),
    ];
    let run = run_github_action(
        &m,
        &inputs,
        &github_job_env(&m, &fake, &fake.github_request_token),
    );
    assert!(
        run.failed.is_none(),
        "step {:?} failed:\n{}",
        run.failed,
        stderr_of(&run)
    );
    assert_eq!(run.steps.len(), 6);

    // The outputs: the digest the tag names, and the repository by that digest.
    let digest = run.outputs["digest"].clone();
    assert!(is_digest(&digest), "digest output {digest:?}");
    let docker = m.path("docker");
    assert_eq!(digest_of(&docker, &reference), digest);
    let by_digest = format!("{}/octo-org/models/bert@{digest}", reg.host);
    assert_eq!(run.outputs["reference"], by_digest);
    assert!(run.summary.contains(&by_digest), "{}", run.summary);
    // The ambient token was used: the certificate names the workflow.
    assert!(
        stderr_of(&run).contains(fakes::oidc::GITHUB_WORKFLOW_REF),
        "{}",
        stderr_of(&run)
    );

    let workflow = format!("https://github.com/{}", fakes::oidc::GITHUB_WORKFLOW_REF);
    let material = format!("dataset=sha256:{dataset_hex}");
    let (code, stdout, stderr) =
        verify_signed(&fake, &docker, &by_digest, &workflow, &workflow, &material);
    assert_eq!(code, 0, "verify: {stdout}{stderr}");
    // Another identity does not pass.
    let other = "https://github.com/octo-org/models/.github/workflows/other.yml@refs/heads/main";
    let (code, _, _) = verify_signed(&fake, &docker, &by_digest, other, &workflow, &material);
    assert_eq!(code, 1);
}

#[test]
fn integrations_github_action_without_the_oidc_permission_fails_at_signing() {
    let fake = FakeSigstore::start();
    let reg = harness::Registry::start();
    let m = Machine::new();
    m.trained_model("model");
    let reference = format!("{}/octo-org/models/bert:v2", reg.host);
    let trust_config = fake.trust_config_path.display().to_string();
    // A request token the endpoint refuses (what a job without `id-token: write` meets).
    let run = run_github_action(
        &m,
        &[
            ("model", "model"),
            ("reference", &reference),
            ("signing-config", &trust_config),
        ],
        &github_job_env(&m, &fake, "not-the-request-token"),
    );
    let failed = run.failed.clone().expect("the action failed");
    assert!(failed.starts_with("Sign"), "failed at {failed}");
    let (_, out) = run.steps.last().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("id-token: write"),
        "{stderr}"
    );
    assert_eq!(
        fake.shared
            .fulcio
            .issued
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// GitLab CI: a job template
// ---------------------------------------------------------------------------------------------

/// `$NAME` and `${NAME}` expanded from `vars`, as GitLab expands variables in variables.
fn gitlab_expand(value: &str, vars: &BTreeMap<String, String>) -> String {
    let re = regex::Regex::new(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?").unwrap();
    re.replace_all(value, |c: &regex::Captures| {
        vars.get(&c[1])
            .unwrap_or_else(|| panic!("variable {} is not set in the simulated job", &c[1]))
            .clone()
    })
    .into_owned()
}

#[test]
fn integrations_gitlab_template_pushes_signs_attests_and_reports_the_digest() {
    let fake = FakeSigstore::start();
    let reg = harness::Registry::start_with_htpasswd(USER, PASSWORD);
    let m = Machine::new();
    m.trained_model("model");
    let doc = integration("gitlab/oci-model.gitlab-ci.yml");
    let job = doc[".oci-model-release"]
        .as_object()
        .expect("the .oci-model-release template");
    for key in job.keys() {
        assert!(
            ["image", "variables", "id_tokens", "script", "artifacts"].contains(&key.as_str()),
            "template key {key:?} is not modelled by this test"
        );
    }
    // The token oci-model reads, with Sigstore's audience.
    assert_eq!(job["id_tokens"]["SIGSTORE_ID_TOKEN"]["aud"], "sigstore");
    assert_eq!(job["image"]["name"], "$OCI_MODEL_IMAGE");
    assert_eq!(job["image"]["entrypoint"], serde_json::json!([""]));

    let identity = "https://gitlab.com/ml-group/bert//.gitlab-ci.yml@refs/heads/main";
    let project = m.path("workspace");
    // Predefined variables (GitLab sets these), the id token, and the project's own job.
    let mut vars = m.base_env();
    vars.extend([
        ("GITLAB_CI".into(), "true".into()),
        ("CI_SERVER_URL".into(), "https://gitlab.com".into()),
        ("CI_PROJECT_PATH".into(), "ml-group/bert".into()),
        ("CI_PROJECT_DIR".into(), project.display().to_string()),
        ("CI_CONFIG_PATH".into(), ".gitlab-ci.yml".into()),
        (
            "CI_COMMIT_SHA".into(),
            "89abcdef0123456789abcdef0123456789abcdef".into(),
        ),
        ("CI_COMMIT_BRANCH".into(), "main".into()),
        ("CI_COMMIT_REF_NAME".into(), "main".into()),
        ("CI_PIPELINE_ID".into(), "77".into()),
        ("CI_JOB_ID".into(), "778".into()),
        (
            "CI_JOB_URL".into(),
            "https://gitlab.com/ml-group/bert/-/jobs/778".into(),
        ),
        ("CI_JOB_STARTED_AT".into(), "2026-01-01T00:00:00Z".into()),
        ("CI_REGISTRY".into(), reg.host.clone()),
        (
            "CI_REGISTRY_IMAGE".into(),
            format!("{}/ml-group/bert", reg.host),
        ),
        ("CI_REGISTRY_USER".into(), USER.into()),
        ("CI_REGISTRY_PASSWORD".into(), PASSWORD.into()),
        (
            "SIGSTORE_ID_TOKEN".into(),
            fake.token_for_workload(identity),
        ),
    ]);
    let project_job = BTreeMap::from([
        ("OCI_MODEL_DIR", "model".to_string()),
        ("OCI_MODEL_TRAINING_COMMAND", "python train.py".to_string()),
        (
            "OCI_MODEL_SIGNING_CONFIG",
            fake.trust_config_path.display().to_string(),
        ),
    ]);
    for (k, v) in job["variables"].as_object().unwrap() {
        let v = project_job
            .get(k.as_str())
            .cloned()
            .unwrap_or_else(|| v.as_str().unwrap().to_string());
        let expanded = gitlab_expand(&v, &vars);
        vars.insert(k.clone(), expanded);
    }
    for k in project_job.keys() {
        assert!(
            job["variables"].get(k).is_some(),
            "the template has no variable {k}"
        );
    }
    // The runner runs the script items in one shell, stopping at the first failure.
    let script: Vec<&str> = job["script"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let out = run_clean(
        "bash",
        &["-eo", "pipefail", "-c", &script.join("\n")],
        &vars,
        &project,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the job failed: {stderr}");
    assert!(stderr.contains(identity), "{stderr}");

    // The dotenv report hands the digest to later jobs.
    let dotenv = job["artifacts"]["reports"]["dotenv"].as_str().unwrap();
    let report: BTreeMap<String, String> = std::fs::read_to_string(project.join(dotenv))
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let digest = &report["OCI_MODEL_DIGEST"];
    assert!(is_digest(digest), "{report:?}");
    let docker = m.path("docker");
    let tag_ref = format!(
        "{}/ml-group/bert/model:89abcdef0123456789abcdef0123456789abcdef",
        reg.host
    );
    assert_eq!(&digest_of(&docker, &tag_ref), digest);
    let by_digest = format!("{}/ml-group/bert/model@{digest}", reg.host);
    assert_eq!(report["OCI_MODEL_REFERENCE"], by_digest);

    // Signed by the job's identity, provenance from GitLab (builder = the CI config at the ref).
    let mut cmd = harness::bin();
    cmd.env("DOCKER_CONFIG", &docker)
        .args(["verify", &by_digest, "--certificate-identity", identity])
        .args(["--certificate-oidc-issuer", fake.issuer()])
        .arg("--trusted-root")
        .arg(&fake.trusted_root_path)
        .args(["--attestation-type", "slsaprovenance1"])
        .args(["--provenance-builder-id", identity]);
    let (code, stdout, stderr) = output(&mut cmd);
    assert_eq!(code, 0, "verify: {stdout}{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Tekton: a Task
// ---------------------------------------------------------------------------------------------

/// Tekton's variables (`$(params.…)`, `$(workspaces.…)`, …) in `text`, from `subst`; an
/// unknown one fails. Other `$(…)` (shell command substitution) is left alone, as Tekton does.
fn tekton_subst(text: &str, subst: &BTreeMap<String, String>) -> String {
    let re = regex::Regex::new(
        r"\$\(((?:params|workspaces|results|context|steps|tasks|inputs|outputs|resources)\.[^)]*)\)",
    )
    .unwrap();
    re.replace_all(text, |c: &regex::Captures| {
        subst
            .get(&c[1])
            .unwrap_or_else(|| panic!("substitution $({}) is not modelled by this test", &c[1]))
            .clone()
    })
    .into_owned()
}

#[test]
fn integrations_tekton_task_pushes_signs_attests_a_trained_model_and_writes_the_digest_result() {
    let fake = FakeSigstore::start();
    let reg = harness::Registry::start_with_htpasswd(USER, PASSWORD);
    let m = Machine::new();
    m.trained_model("out/model");
    let task = integration("tekton/oci-model-task.yaml");
    assert_eq!(task["apiVersion"], "tekton.dev/v1");
    assert_eq!(task["kind"], "Task");
    let spec = &task["spec"];

    // The projected token: audience sigstore, mounted where identity-token-file points.
    let volume = &spec["volumes"][0];
    let source = &volume["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(source["audience"], "sigstore");
    let steps = spec["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    let step = &steps[0];
    for key in step.as_object().unwrap().keys() {
        assert!(
            [
                "name",
                "image",
                "workingDir",
                "volumeMounts",
                "env",
                "securityContext",
                "script"
            ]
            .contains(&key.as_str()),
            "step key {key:?} is not modelled by this test"
        );
    }
    let mount = step["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == volume["name"])
        .expect("the token volume is mounted");
    let token_path = format!(
        "{}/{}",
        mount["mountPath"].as_str().unwrap(),
        source["path"].as_str().unwrap()
    );
    let params = spec["params"].as_array().unwrap();
    let default_of = |name: &str| {
        params.iter().find(|p| p["name"] == name).unwrap()["default"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(default_of("identity-token-file"), token_path);

    // The TaskRun: params, workspaces (the training output; a docker config), results.
    let token_file = m.path("tmp/oidc-token");
    let identity = "https://kubernetes.io/namespaces/ml-ci/serviceaccounts/pipeline";
    std::fs::write(&token_file, fake.token_for_workload(identity)).unwrap();
    let dockerconfig = m.path("tekton-docker");
    let login = harness::bin()
        .env("DOCKER_CONFIG", &dockerconfig)
        .args(["login", &reg.host, "--username", USER, "--password-stdin"])
        .write_stdin(PASSWORD)
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let results = m.path("tekton-results");
    std::fs::create_dir_all(&results).unwrap();
    let reference = format!("{}/ml-ci/bert:run-1", reg.host);
    let given = BTreeMap::from([
        ("reference", reference.clone()),
        ("model-path", "out/model".to_string()),
        ("training-command", "python train.py".to_string()),
        ("pipeline-run", "train-and-release-x7k2p".to_string()),
        (
            "signing-config",
            fake.trust_config_path.display().to_string(),
        ),
        // The projected token, here at a path of this machine.
        ("identity-token-file", token_file.display().to_string()),
    ]);
    let mut subst = BTreeMap::new();
    for p in params {
        let name = p["name"].as_str().unwrap();
        let value = given
            .get(name)
            .cloned()
            .or_else(|| p["default"].as_str().map(String::from))
            .unwrap_or_else(|| panic!("param {name} has no value"));
        subst.insert(format!("params.{name}"), value);
    }
    for k in given.keys() {
        assert!(
            subst.contains_key(&format!("params.{k}")),
            "the Task has no param {k}"
        );
    }
    subst.insert(
        "workspaces.model.path".into(),
        m.path("workspace").display().to_string(),
    );
    subst.insert("workspaces.dockerconfig.bound".into(), "true".into());
    subst.insert(
        "workspaces.dockerconfig.path".into(),
        dockerconfig.display().to_string(),
    );
    for r in spec["results"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        subst.insert(
            format!("results.{name}.path"),
            results.join(name).display().to_string(),
        );
    }
    subst.insert("context.taskRun.name".into(), "release-model-run-1".into());
    subst.insert("context.taskRun.namespace".into(), "ml-ci".into());

    assert_eq!(
        tekton_subst(step["image"].as_str().unwrap(), &subst),
        default_of("oci-model-image")
    );
    let mut env = BTreeMap::from([
        ("PATH".to_string(), m.base_env()["PATH"].clone()),
        ("HOME".to_string(), m.path("home").display().to_string()),
    ]);
    for e in step["env"].as_array().unwrap() {
        env.insert(
            e["name"].as_str().unwrap().to_string(),
            tekton_subst(e["value"].as_str().unwrap(), &subst),
        );
    }
    let script = step["script"].as_str().unwrap();
    assert!(
        script.starts_with("#!"),
        "a Tekton script runs by its shebang"
    );
    let file = m.path("tmp/tekton-step");
    std::fs::write(&file, tekton_subst(script, &subst)).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cwd = PathBuf::from(tekton_subst(step["workingDir"].as_str().unwrap(), &subst));
    let out = run_clean(file.to_str().unwrap(), &[], &env, &cwd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the step failed: {stderr}");

    let digest = std::fs::read_to_string(results.join("digest")).unwrap();
    assert!(is_digest(&digest), "{digest:?}");
    assert_eq!(digest_of(&dockerconfig, &reference), digest);
    let by_digest = std::fs::read_to_string(results.join("reference")).unwrap();
    assert_eq!(by_digest, format!("{}/ml-ci/bert@{digest}", reg.host));
    let mut cmd = harness::bin();
    cmd.env("DOCKER_CONFIG", &dockerconfig)
        .args(["verify", &by_digest, "--certificate-identity", identity])
        .args(["--certificate-oidc-issuer", fake.issuer()])
        .arg("--trusted-root")
        .arg(&fake.trusted_root_path)
        .args(["--attestation-type", "slsaprovenance1"])
        .args(["--provenance-builder-id", "https://tekton.dev/pipelines"])
        .arg("--show-attestations")
        .args(["--output", "json"]);
    let (code, stdout, stderr) = output(&mut cmd);
    assert_eq!(code, 0, "verify: {stdout}{stderr}");
    // The provenance names the TaskRun and the PipelineRun.
    assert!(stdout.contains("release-model-run-1"), "{stdout}");
    assert!(stdout.contains("train-and-release-x7k2p"), "{stdout}");
}

#[test]
fn integrations_tekton_example_pipeline_wires_training_output_into_the_task() {
    let task = integration("tekton/oci-model-task.yaml");
    let pipeline = integration("tekton/example-pipeline.yaml");
    assert_eq!(pipeline["apiVersion"], "tekton.dev/v1");
    assert_eq!(pipeline["kind"], "Pipeline");
    let tasks = pipeline["spec"]["tasks"].as_array().unwrap();
    let train = tasks
        .iter()
        .find(|t| t["name"] == "train")
        .expect("a train task");
    let release = tasks
        .iter()
        .find(|t| t["taskRef"]["name"] == task["metadata"]["name"])
        .expect("a task running oci-model-release");
    assert!(release["runAfter"]
        .as_array()
        .unwrap()
        .contains(&train["name"]));

    // Every param it passes exists; every param without a default is passed.
    let task_params = task["spec"]["params"].as_array().unwrap();
    let passed: BTreeMap<&str, &str> = release["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["value"].as_str().unwrap()))
        .collect();
    for name in passed.keys() {
        assert!(
            task_params.iter().any(|p| p["name"] == *name),
            "the Task has no param {name}"
        );
    }
    for p in task_params.iter().filter(|p| p.get("default").is_none()) {
        assert!(
            passed.contains_key(p["name"].as_str().unwrap()),
            "{} not passed",
            p["name"]
        );
    }
    // The model workspace is the workspace the training step wrote, at the path it wrote.
    let binding = |t: &Value, name: &str| {
        t["workspaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .map(|w| w["workspace"].clone())
    };
    for w in task["spec"]["workspaces"].as_array().unwrap() {
        let name = w["name"].as_str().unwrap();
        if w["optional"] != true {
            assert!(
                binding(release, name).is_some(),
                "workspace {name} not bound"
            );
        }
    }
    let train_out = train["taskSpec"]["workspaces"][0]["name"].as_str().unwrap();
    assert_eq!(binding(release, "model"), binding(train, train_out));
    let script = train["taskSpec"]["steps"][0]["script"].as_str().unwrap();
    assert!(
        script.contains(&format!("--out {}", passed["model-path"])),
        "the training step does not write model-path: {script}"
    );
    // The pipeline's result is the Task's digest.
    let result = pipeline["spec"]["results"][0]["value"].as_str().unwrap();
    let name = release["name"].as_str().unwrap();
    assert_eq!(result, format!("$(tasks.{name}.results.digest)"));
    assert!(task["spec"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "digest"));
}
