//! `admission`: serve the Kubernetes admission webhook (library: `oci_model::admission`).

use crate::cli::args::AdmissionArgs;
use crate::cli::ctx::Ctx;
use crate::cli::exit::{Failure, InputError as _};
use oci_model::admission::cache::VerifiedCache;
use oci_model::admission::metrics::Metrics;
use oci_model::admission::server::Server;
use oci_model::admission::verifier::Verifier;
use oci_model::admission::Admission;
use oci_model::store::StoreOptions;
use oci_model::verify::TrustedRoot;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(args: AdmissionArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let trust = TrustedRoot::load(args.trusted_root.as_deref()).input()?;
    if let Some(dir) = &args.docker_config {
        if !dir.is_dir() {
            return Err(Failure::input(format!(
                "--docker-config {}: not a directory",
                dir.display()
            )));
        }
        // The credential lookup (docker_credential) reads DOCKER_CONFIG; set once, before any
        // registry is contacted.
        std::env::set_var("DOCKER_CONFIG", dir);
    }
    let deadline = Duration::from_secs(args.deadline);
    let options = StoreOptions {
        plain_http: args.plain_http,
        insecure: args.insecure,
        ca_file: args.ca_file.clone(),
        credentials: None,
        max_attempts: args.retries,
        idle_timeout: Some(deadline),
        ..Default::default()
    };
    let metrics = Arc::new(Metrics::default());
    let cache = VerifiedCache::new(Duration::from_secs(args.cache_ttl), args.cache_size);
    let verifier =
        Verifier::from_policy_file(&args.policy, trust, options, cache, metrics.clone()).input()?;
    let admission = Admission::new(verifier, metrics, deadline);
    let server = Server::bind(args.listen, &args.tls_cert, &args.tls_key, admission)
        .await
        .input()?;
    let addr = server.local_addr()?;
    ctx.printer.note(&format!(
        "oci-model admission: listening on https://{addr} (policy {}, deadline {} s)",
        args.policy.display(),
        args.deadline
    ));
    server.run().await?;
    Ok(())
}
