//! Command-line types (clap derive). Option groups are flattened into the commands that use
//! them so every command spells a flag the same way.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "oci-model",
    version,
    about = "Push, pull, sign, attest and verify ML models in OCI registries",
    long_about = "oci-model makes machine-learning models tamper-evident in OCI registries.\n\n\
A model directory becomes an OCI artifact (CNCF ModelPack media types, one layer per file);\n\
signatures and attestations are Sigstore bundles attached as OCI 1.1 referrers; `pull` can\n\
verify them against a public key or a keyless identity before releasing any file.\n\n\
TARGET is a registry reference (host[:port]/repo[:tag|@digest]) or an OCI image layout\n\
directory (oci:<dir>[:tag|@digest]). Loopback registries (localhost, 127.0.0.1, [::1]) use\n\
plain http; any other host needs --plain-http for http.\n\n\
Exit codes: 0 success, 1 verification failed, 2 usage or input error, 3 registry or network\n\
error, 4 not found (tag, manifest, blob or repository).",
    after_help = "Examples:\n  oci-model push ./bert localhost:5000/team/bert:v1\n  oci-model sign localhost:5000/team/bert:v1 --key cosign.key\n  oci-model verify localhost:5000/team/bert:v1 --key cosign.pub\n  oci-model pull localhost:5000/team/bert:v1 ./bert-copy --key cosign.pub",
    after_long_help = "Examples:\n  oci-model push ./bert localhost:5000/team/bert:v1\n  oci-model sign localhost:5000/team/bert:v1 --key cosign.key\n  oci-model verify localhost:5000/team/bert:v1 --key cosign.pub\n  oci-model pull localhost:5000/team/bert:v1 ./bert-copy --key cosign.pub\n\n\
Environment:\n  \
OCI_MODEL_LOG       what to log on stderr, in tracing's filter syntax (e.g. debug,\n                      \
oci_model::store=trace); replaces the level -v sets\n  \
OCI_MODEL_PASSWORD  password of an encrypted private key (else asked on a terminal)\n  \
SIGSTORE_ID_TOKEN   OIDC identity token for keyless signing\n  \
DOCKER_CONFIG       directory of the docker config.json holding registry credentials\n                      \
(default ~/.docker)\n  \
XDG_CACHE_HOME      where the digest cache lives (oci-model/digests.json; default ~/.cache)\n  \
NO_COLOR            no colour in log lines (colour is used only on a terminal anyway)\n\n\
Shell completion: oci-model completion bash|zsh|fish (see oci-model completion --help)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Output format: human-readable text or one JSON document on stdout.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// More detail on stderr (-v info, -vv debug, -vvv trace).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bars.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Push a model directory (or files) to a registry or OCI layout as a ModelPack artifact.
    ///
    /// Each regular file becomes one layer, hashed while it streams. Files pushed or pulled
    /// before are known by a digest cache ($XDG_CACHE_HOME/oci-model, keyed by path, inode, size
    /// and change time): blobs the target already has are not sent again, and blobs known to be
    /// in another repository of the same registry are mounted from there instead of uploaded.
    ///
    /// Interrupted transfers resume: a blob larger than 64 MiB is sent in 64 MiB PATCH
    /// requests, and its upload session is remembered ($XDG_CACHE_HOME/oci-model/uploads); the
    /// next push of the same file asks the registry what it kept and sends only the rest, or
    /// starts that blob again when the registry dropped the session. Blobs the registry has
    /// are skipped.
    Push(PushArgs),
    /// Pull a model, checking every blob's digest, optionally verifying signatures first.
    ///
    /// Interrupted transfers resume: a pull stopped by the network, the registry, Ctrl-C or a
    /// kill keeps what it downloaded in DIR/.oci-model-resume (one sha256-<hex>.part per blob,
    /// never taken for a model file); the next pull into DIR hashes it again and fetches only
    /// the rest (an HTTP Range request), the digest still checked over the whole blob. A pull
    /// that succeeds removes it; `rm -r DIR/.oci-model-resume` clears it by hand.
    Pull(PullArgs),
    /// Copy an artifact and its referrers between targets (registry ⇄ layout), blobs streamed.
    Copy(CopyArgs),
    /// Show a model's manifest, files, sizes and digests.
    Inspect(InspectArgs),
    /// Sign a model, image, index or any OCI artifact in a registry or layout (a cosign-style
    /// bundle over the manifest digest, plus the OpenSSF model-signing bundle for a model), each
    /// an OCI referrer.
    Sign(SignArgs),
    /// Sign a local model directory exactly as `model_signing sign` does (writes model.sig).
    SignLocal(SignLocalArgs),
    /// Attach an in-toto attestation (generated SLSA provenance or any predicate).
    Attest(AttestArgs),
    /// Verify the signatures and attestations of a model, image, index or any OCI artifact
    /// against a policy (a model's signed file list is checked too).
    Verify(VerifyArgs),
    /// Verify a local model directory against a model-signing bundle (model.sig).
    VerifyLocal(VerifyLocalArgs),
    /// Verify one Sigstore bundle over a file or a digest (sigstore-conformance client shape).
    VerifyBundle(VerifyBundleArgs),
    /// Show the tree of referrers (signatures, attestations) of a model or any artifact.
    Discover(DiscoverArgs),
    /// Generate a signing key pair (PKCS#8 private key, PEM public key).
    GenerateKeyPair(GenerateKeyPairArgs),
    /// Store registry credentials in the Docker config (~/.docker/config.json).
    Login(LoginArgs),
    /// Remove stored registry credentials.
    Logout(LogoutArgs),
    /// Serve the Kubernetes admission webhook: verify the models a workload names before it runs.
    ///
    /// HTTPS (the certificate and key files are read again when they change) with
    /// AdmissionReview v1 on POST /validate (allow or deny) and POST /mutate (also pin each
    /// verified tag to its digest with a JSONPatch), GET /healthz, /readyz and /metrics
    /// (Prometheus). Models are found in pod specs' image volumes (Pods and the pod templates
    /// of Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs), KServe
    /// InferenceService storageUri oci://…, and the annotation oci-model.dev/models
    /// (comma-separated references). Each is verified against the --policy file, as
    /// `verify --policy` does; a request naming no model is allowed untouched. Registry
    /// credentials come from the docker config (an image pull secret's config.json).
    Admission(AdmissionArgs),
    /// Show the Sigstore trusted root in use, or update it through TUF.
    #[command(subcommand)]
    TrustedRoot(TrustedRootCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout
    ///
    /// Install it where your shell looks, for example:
    ///   bash: oci-model completion bash > ~/.local/share/bash-completion/completions/oci-model
    ///   zsh:  oci-model completion zsh > ~/.zfunc/_oci-model  (with fpath+=~/.zfunc before compinit)
    ///   fish: oci-model completion fish > ~/.config/fish/completions/oci-model.fish
    #[command(verbatim_doc_comment)]
    Completion(CompletionArgs),
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// How to reach a registry.
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryOpts {
    /// Use http instead of https for a non-loopback registry.
    #[arg(long)]
    pub plain_http: bool,
    /// Accept TLS certificates that do not verify (self-signed registries).
    #[arg(long)]
    pub insecure: bool,
    /// Also trust the CA certificates in this PEM file (a registry with a private CA).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Registry user name; the password comes from --password-stdin, else a prompt on the
    /// terminal (without one the command is refused).
    #[arg(long, short = 'u', value_name = "USER")]
    pub username: Option<String>,
    /// Read the registry password or token from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Attempts for transient failures (connection errors, HTTP 5xx and 429).
    #[arg(long, default_value_t = 4)]
    pub retries: u32,
    /// Seconds a registry may stay silent (no answer to a read, a download or an upload that
    /// stops moving) before the attempt counts as a lost connection and is retried. The
    /// answer to a fully sent upload may take longer.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

/// How much to transfer at once.
#[derive(Args, Debug, Clone)]
pub struct TransferOpts {
    /// Files transferred in parallel.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
}

/// What must have signed (and been attested) for verification to pass.
#[derive(Args, Debug, Clone, Default)]
pub struct PolicyOpts {
    /// Public key (PEM) that must have signed. Repeat for several trusted keys.
    #[arg(long = "key", value_name = "PUBLIC_KEY")]
    pub keys: Vec<PathBuf>,
    /// Keyless: the certificate identity (SAN: email or URI) that must have signed. Repeatable.
    #[arg(long = "certificate-identity", value_name = "ID")]
    pub identities: Vec<String>,
    /// Keyless: an anchored regular expression the certificate identity must match. Repeatable.
    #[arg(long = "certificate-identity-regexp", value_name = "REGEX")]
    pub identity_regexps: Vec<String>,
    /// Keyless: the OIDC issuer of the signing certificate (pairs with each identity).
    #[arg(long = "certificate-oidc-issuer", value_name = "URL")]
    pub issuer: Option<String>,
    /// Keyless: an anchored regular expression the OIDC issuer must match.
    #[arg(long = "certificate-oidc-issuer-regexp", value_name = "REGEX")]
    pub issuer_regexp: Option<String>,
    /// Sigstore trusted_root.json (default: the public-good root: the one `trusted-root update`
    /// cached, when not older than the embedded one, else the embedded one).
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// How many distinct trusted signers must have signed (default 1).
    #[arg(long, value_name = "N")]
    pub require_signers: Option<usize>,
    /// Policy file (YAML) with per-repository signers and required attestations.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Require a valid attestation with this predicate type (URI or shortcut). Repeatable.
    #[arg(long = "attestation-type", value_name = "URI")]
    pub attestation_types: Vec<String>,
    /// Require SLSA provenance whose runDetails.builder.id is ID.
    #[arg(long, value_name = "ID")]
    pub provenance_builder_id: Option<String>,
    /// Require SLSA provenance listing this material (resolvedDependencies). Repeatable.
    #[arg(long = "provenance-material", value_name = "NAME=DIGEST")]
    pub provenance_materials: Vec<String>,
    /// Accept a signature over the model's files only (a model_signing signature, or `sign
    /// --no-cosign-bundle`): the files are verified, the manifest's config, annotations, media
    /// types and sizes are not. Default: a signer counts only when it signed the manifest.
    #[arg(long)]
    pub allow_unsigned_metadata: bool,
}

/// How to sign.
#[derive(Args, Debug, Clone, Default)]
pub struct SignerOpts {
    /// Private key (PKCS#8 PEM). Password from OCI_MODEL_PASSWORD or a prompt.
    #[arg(long, value_name = "PRIVATE_KEY", conflicts_with = "keyless")]
    pub key: Option<PathBuf>,
    /// Sign keyless: OIDC identity → Fulcio certificate → Rekor entry.
    #[arg(long)]
    pub keyless: bool,
    /// OIDC identity token, or @FILE to read it from a file (default: SIGSTORE_ID_TOKEN,
    /// CI ambient credentials, or an interactive browser login).
    #[arg(long, value_name = "TOKEN|@FILE")]
    pub identity_token: Option<String>,
    /// Sigstore signing_config.json (default: the public-good instance).
    #[arg(long, value_name = "FILE")]
    pub signing_config: Option<PathBuf>,
    /// Fulcio URL (overrides the signing config).
    #[arg(long, value_name = "URL")]
    pub fulcio_url: Option<String>,
    /// Rekor URL (overrides the signing config).
    #[arg(long, value_name = "URL")]
    pub rekor_url: Option<String>,
    /// RFC 3161 timestamp authority (full URL, e.g. https://timestamp.sigstore.dev/api/v1/timestamp).
    /// With --key: timestamp each signature there and record the timestamp in the bundle
    /// (default: no timestamp, like model_signing); the bundle must verify against the
    /// trusted root, which must list that TSA. With --keyless: overrides the signing config's TSA.
    #[arg(
        long = "timestamp-server",
        visible_alias = "tsa-url",
        value_name = "URL"
    )]
    pub tsa_url: Option<String>,
    /// Record the signature in the Rekor transparency log. Keyless signing always does
    /// (false is refused). With --key the default is no log entry, like model_signing (offline,
    /// interoperable bundles); --tlog-upload=true with --key also records the DSSE signature in
    /// Rekor (from --signing-config / --rekor-url), so verifiers get a signed time and
    /// transparency.
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub tlog_upload: Option<bool>,
    /// The Sigstore trusted_root.json new bundles must verify against before anything is
    /// published, with --keyless, --key --tlog-upload=true or --key --timestamp-server
    /// (default: from --signing-config, else the public-good root, as `trusted-root update`
    /// cached it or embedded).
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The model: a directory, or one or more files.
    #[arg(required = true, num_args = 1.., value_name = "SOURCE")]
    pub sources: Vec<PathBuf>,
    /// Where to push: host[:port]/repo[:tag] or oci:<dir>[:tag] (tag default: latest).
    #[arg(value_name = "TARGET")]
    pub target: String,
    /// Follow symbolic links inside the model (refused by default).
    #[arg(long)]
    pub allow_symlinks: bool,
    /// Ignore files matching this glob (relative to the model root). Repeatable. `.git*` is
    /// always ignored.
    #[arg(long = "ignore", value_name = "PATTERN")]
    pub ignore: Vec<String>,
    /// Model name recorded in the config (default: the directory name).
    #[arg(long)]
    pub name: Option<String>,
    /// Manifest annotation KEY=VALUE. Repeatable.
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Pack each top-level directory of the model as one `.tar` layer (ModelPack archive
    /// layer; deterministic: the same directory gives the same digest). Files at the top level
    /// stay one raw layer each, as without this flag.
    #[arg(long)]
    pub archive_dirs: bool,
    #[command(flatten)]
    pub registry: RegistryOpts,
    #[command(flatten)]
    pub transfer: TransferOpts,
    /// Last: its help heading applies to what follows it.
    #[command(flatten)]
    pub model_config: ModelConfigOpts,
}

/// What the ModelPack config says about the model (`descriptor` and `config` of the spec).
/// A flag wins over the same field of --config-file.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Model config (ModelPack descriptor and config fields)")]
pub struct ModelConfigOpts {
    /// JSON file with the config's `descriptor` and/or `config` objects, in the spec's field
    /// names, e.g. {"descriptor": {"family": "llama3", "licenses": ["Apache-2.0"]},
    /// "config": {"architecture": "transformer", "paramSize": "8b", "precision": "bf16"}}.
    /// `modelfs` is computed and refused here.
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// config.architecture, e.g. transformer.
    #[arg(long)]
    pub architecture: Option<String>,
    /// config.format, e.g. safetensors, gguf (default: detected from the weight files).
    #[arg(long)]
    pub format: Option<String>,
    /// config.paramSize, e.g. 8b.
    #[arg(long, value_name = "SIZE")]
    pub param_size: Option<String>,
    /// config.precision, e.g. bf16.
    #[arg(long)]
    pub precision: Option<String>,
    /// config.quantization, e.g. awq, q4_k_m.
    #[arg(long)]
    pub quantization: Option<String>,
    /// descriptor.family, e.g. llama3.
    #[arg(long)]
    pub family: Option<String>,
    /// descriptor.version.
    #[arg(long = "model-version", value_name = "VERSION")]
    pub model_version: Option<String>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Model to pull.
    pub target: String,
    /// Directory to write the model into (created if missing).
    pub dir: PathBuf,
    /// Replace files that already exist in DIR (moved aside and put back if the pull fails:
    /// a pull writes all of its files or none).
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub policy: PolicyOpts,
    #[command(flatten)]
    pub registry: RegistryOpts,
    #[command(flatten)]
    pub transfer: TransferOpts,
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Source target.
    pub source: String,
    /// Destination target.
    pub destination: String,
    /// Do not copy signatures and attestations.
    #[arg(long)]
    pub no_referrers: bool,
    #[command(flatten)]
    pub registry: RegistryOpts,
    #[command(flatten)]
    pub ends: CopyEndOpts,
    #[command(flatten)]
    pub transfer: TransferOpts,
}

/// Registry options for one end of a `copy` (ORAS's `--from-…`/`--to-…`): each adds to (or, for
/// a user name, replaces) the shared option of the same name, which applies to both ends.
/// There is one standard input: one `--…password-stdin` per command; the other end's
/// credentials come from `oci-model login` (the docker config).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Source and destination registries")]
pub struct CopyEndOpts {
    /// Use http instead of https for the source registry.
    #[arg(long)]
    pub from_plain_http: bool,
    /// Use http instead of https for the destination registry.
    #[arg(long)]
    pub to_plain_http: bool,
    /// Accept TLS certificates that do not verify from the source registry.
    #[arg(long)]
    pub from_insecure: bool,
    /// Accept TLS certificates that do not verify from the destination registry.
    #[arg(long)]
    pub to_insecure: bool,
    /// User name for the source registry (instead of --username).
    #[arg(long, value_name = "USER")]
    pub from_username: Option<String>,
    /// User name for the destination registry (instead of --username).
    #[arg(long, value_name = "USER")]
    pub to_username: Option<String>,
    /// Read the source registry's password or token from standard input (the destination's
    /// credentials then come from `oci-model login` or a prompt).
    #[arg(long, conflicts_with_all = ["password_stdin", "to_password_stdin"])]
    pub from_password_stdin: bool,
    /// Read the destination registry's password or token from standard input (the source's
    /// credentials then come from `oci-model login` or a prompt).
    #[arg(long, conflicts_with = "password_stdin")]
    pub to_password_stdin: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Model to show: host[:port]/repo[:tag|@digest] or oci:<dir>[:tag|@digest].
    pub target: String,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// What to sign (registry reference or oci:<dir>): a model, or any image, index or OCI
    /// artifact (which gets only the cosign-style bundle). A local directory is signed like
    /// `sign-local`.
    pub target: String,
    #[command(flatten)]
    pub signer: SignerOpts,
    /// Also write the model-signing bundle to this file (for a non-model: the cosign-style one).
    #[arg(long, value_name = "FILE")]
    pub bundle_out: Option<PathBuf>,
    /// Do not push the cosign-style bundle (subject = manifest digest) next to the model bundle
    /// (refused for a non-model, which would then get no signature).
    #[arg(long)]
    pub no_cosign_bundle: bool,
    /// A local model (signed like sign-local): replace an existing signature file.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

#[derive(Args, Debug)]
pub struct SignLocalArgs {
    /// Model directory (or single file).
    pub model: PathBuf,
    #[command(flatten)]
    pub signer: SignerOpts,
    /// Where to write the signature bundle.
    #[arg(long, default_value = "model.sig", value_name = "FILE")]
    pub signature: PathBuf,
    /// Paths (relative to the model) to leave out of the signature. Repeatable.
    #[arg(long = "ignore-paths", value_name = "PATH")]
    pub ignore_paths: Vec<String>,
    /// Keep .git, .gitattributes, .github and .gitignore in the signature.
    #[arg(long)]
    pub no_ignore_git_paths: bool,
    /// Allow symbolic links in the model.
    #[arg(long)]
    pub allow_symlinks: bool,
    /// Replace an existing signature file (refused otherwise).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct AttestArgs {
    /// What to attest: a model, or any image, index or OCI artifact.
    pub target: String,
    /// Generate SLSA provenance v1 for the model.
    #[arg(long, conflicts_with = "predicate")]
    pub provenance: bool,
    /// Predicate file (JSON) to attach.
    #[arg(long, value_name = "FILE", requires = "predicate_type")]
    pub predicate: Option<PathBuf>,
    /// Predicate type URI, or a shortcut: slsaprovenance1, spdx, cyclonedx, link.
    #[arg(long = "type", value_name = "URI")]
    pub predicate_type: Option<String>,
    #[command(flatten)]
    pub provenance_opts: ProvenanceOpts,
    #[command(flatten)]
    pub signer: SignerOpts,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

/// Inputs of generated SLSA provenance (CI environments fill most of these in).
#[derive(Args, Debug, Clone, Default)]
pub struct ProvenanceOpts {
    /// The training command (externalParameters.command).
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,
    /// Hyper-parameters file recorded in externalParameters (content if JSON/YAML, else digest).
    #[arg(long, value_name = "FILE")]
    pub parameters: Option<PathBuf>,
    /// A material: NAME=PATH (hashed) or NAME=REGISTRY-REF (resolved to a digest). Repeatable.
    #[arg(long = "material", value_name = "NAME=PATH|REF")]
    pub materials: Vec<String>,
    /// runDetails.builder.id (default: from CI, else a local builder id).
    #[arg(long, value_name = "URI")]
    pub builder_id: Option<String>,
    /// runDetails.metadata.invocationId.
    #[arg(long, value_name = "ID")]
    pub invocation_id: Option<String>,
    /// runDetails.metadata.startedOn (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub started_on: Option<String>,
    /// runDetails.metadata.finishedOn (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub finished_on: Option<String>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// What to verify: a model, or any image, index or OCI artifact.
    pub target: String,
    #[command(flatten)]
    pub policy: PolicyOpts,
    /// Print the verified attestation predicates.
    #[arg(long)]
    pub show_attestations: bool,
    /// Never use the network beyond the registry holding the model (always true today:
    /// verification uses only the trusted root and the bundles).
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

#[derive(Args, Debug)]
pub struct VerifyLocalArgs {
    /// Model directory (or single file).
    pub model: PathBuf,
    /// The signature bundle.
    #[arg(long, default_value = "model.sig", value_name = "FILE")]
    pub signature: PathBuf,
    #[command(flatten)]
    pub policy: PolicyOpts,
    /// Paths to leave out (in addition to those the signature lists). Repeatable.
    #[arg(long = "ignore-paths", value_name = "PATH")]
    pub ignore_paths: Vec<String>,
    /// Allow symbolic links in the model.
    #[arg(long)]
    pub allow_symlinks: bool,
}

#[derive(Args, Debug)]
pub struct VerifyBundleArgs {
    /// The Sigstore bundle (JSON).
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// The signed artifact (omit with --digest).
    #[arg(required_unless_present = "digest", conflicts_with = "digest")]
    pub artifact: Option<PathBuf>,
    /// The signed artifact's digest, sha256:HEX.
    #[arg(long, value_name = "sha256:HEX")]
    pub digest: Option<String>,
    #[command(flatten)]
    pub policy: PolicyOpts,
}

#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// Model whose referrers to list: host[:port]/repo[:tag|@digest] or oci:<dir>[:tag|@digest].
    pub target: String,
    /// Only referrers of this artifact type.
    #[arg(long, value_name = "TYPE")]
    pub artifact_type: Option<String>,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    P256,
    P384,
    Ed25519,
}

#[derive(Args, Debug)]
pub struct GenerateKeyPairArgs {
    /// Key algorithm (P-256 and P-384 interoperate with model_signing).
    #[arg(long = "type", value_enum, default_value_t = KeyType::P256)]
    pub key_type: KeyType,
    /// Writes PREFIX.key and PREFIX.pub.
    #[arg(long, default_value = "cosign", value_name = "PREFIX")]
    pub output_key_prefix: String,
    /// Write the private key unencrypted.
    #[arg(long)]
    pub no_password: bool,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry host[:port].
    pub registry: String,
    /// User name; the password comes from --password-stdin, else a prompt on the terminal.
    #[arg(long, short = 'u', value_name = "USER")]
    pub username: String,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Use http for a non-loopback registry.
    #[arg(long)]
    pub plain_http: bool,
    /// Accept TLS certificates that do not verify.
    #[arg(long)]
    pub insecure: bool,
    /// Also trust the CA certificates in this PEM file (a registry with a private CA).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry host[:port].
    pub registry: String,
}

#[derive(Args, Debug)]
pub struct AdmissionArgs {
    /// Serving certificate (PEM chain), read again when the file changes.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// Private key of the serving certificate (PEM), read again when the file changes.
    #[arg(long, value_name = "FILE")]
    pub tls_key: PathBuf,
    /// Verification policy (the YAML file `verify --policy` reads); a repository no rule
    /// matches is denied without contacting its registry. Read again when the file changes (a
    /// ConfigMap update): the new policy applies at once and the verified-digest cache is
    /// emptied; a file that does not load keeps the old policy (logged, and counted in
    /// /metrics).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Address and port to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8443")]
    pub listen: std::net::SocketAddr,
    /// Directory of the docker config.json with registry credentials (a mounted image pull
    /// secret); default $DOCKER_CONFIG, else ~/.docker.
    #[arg(long, value_name = "DIR")]
    pub docker_config: Option<PathBuf>,
    /// Sigstore trusted root for keyless signatures (default: the embedded public-good root).
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Seconds one review may take; a model not verified by then is denied (fail closed).
    /// Kubernetes gives a webhook at most 30 s (default 10 s).
    #[arg(long, value_name = "SECS", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=30))]
    pub deadline: u64,
    /// Seconds a verified digest stays in the cache (0: no cache). Tags are resolved on every
    /// request.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub cache_ttl: u64,
    /// Verified digests kept at most.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub cache_size: usize,
    /// Use http instead of https for non-loopback registries.
    #[arg(long)]
    pub plain_http: bool,
    /// Accept TLS certificates of registries that do not verify (self-signed registries).
    #[arg(long)]
    pub insecure: bool,
    /// Also trust the CA certificates in this PEM file for registries (a private CA).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Attempts for transient registry failures, all within the deadline.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub retries: u32,
}

#[derive(Subcommand, Debug)]
pub enum TrustedRootCommand {
    /// Print the CAs, transparency logs, CT logs and timestamp authorities trusted.
    Show {
        /// Trusted root file (default: the root in use, see `trusted-root status`).
        #[arg(long, value_name = "FILE")]
        trusted_root: Option<PathBuf>,
    },
    /// Fetch the newest trusted root through TUF into the cache; every command then uses it.
    ///
    /// The only command that fetches a trusted root: the others stay offline and use the
    /// cached root (re-verified) when it is not older than the embedded one.
    Update(TrustedRootUpdateArgs),
    /// Which trusted root commands use (cached or embedded), where the cache is, and what it
    /// holds. Offline.
    Status,
}

#[derive(Args, Debug)]
pub struct TrustedRootUpdateArgs {
    /// The TUF repository (default: the Sigstore public-good one, https://tuf-repo-cdn.sigstore.dev).
    #[arg(long, value_name = "URL")]
    pub tuf_url: Option<String>,
    /// The TUF root.json to trust for a repository other than the public-good one (needed on
    /// its first update; kept in the cache for the next ones).
    #[arg(long, value_name = "ROOT_JSON")]
    pub root: Option<PathBuf>,
    /// Seconds each request may take to answer or stall.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// Every command below `cmd`, itself included, with its full name.
    fn commands(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, clap::Command)>) {
        let name = format!("{prefix}{}", cmd.get_name());
        for sub in cmd.get_subcommands() {
            commands(sub, &format!("{name} "), out);
        }
        out.push((name, cmd.clone()));
    }

    fn all() -> Vec<(String, clap::Command)> {
        let mut cli = Cli::command();
        cli.build();
        let mut out = Vec::new();
        commands(&cli, "", &mut out);
        out
    }

    #[test]
    fn every_argument_is_described() {
        let mut missing = Vec::new();
        for (name, cmd) in all() {
            if cmd.get_about().is_none() && name != "oci-model help" {
                missing.push(format!("{name} (the command)"));
            }
            for arg in cmd.get_arguments() {
                let builtin = ["help", "version"].contains(&arg.get_id().as_str());
                if arg.get_help().is_none() && !builtin {
                    missing.push(format!("{name} {}", arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn usage_lines_name_the_arguments_the_help_lists() {
        for (name, mut cmd) in all() {
            let usage = cmd.render_usage().to_string();
            for arg in cmd.get_positionals() {
                let value = arg
                    .get_value_names()
                    .and_then(|v| v.first())
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
                assert!(
                    usage.contains(&format!("<{value}>")) || usage.contains(&format!("[{value}]")),
                    "{name}: usage {usage:?} does not name <{value}>"
                );
            }
        }
    }

    #[test]
    fn the_top_level_help_names_the_environment() {
        let help = Cli::command().render_long_help().to_string();
        for var in [
            "OCI_MODEL_LOG",
            "OCI_MODEL_PASSWORD",
            "NO_COLOR",
            "DOCKER_CONFIG",
        ] {
            assert!(help.contains(var), "--help does not mention {var}");
        }
    }
}
