//! `discover`: the tree of referrers (signatures, attestations) of a model, as the registry
//! lists them (nothing is verified here; every registry string is shown escaped).

use super::{open_store, parse_target};
use crate::cli::args::DiscoverArgs;
use crate::cli::ctx::Ctx;
use chrono::{DateTime, Utc};
use oci_model::digest::Digest;
use oci_model::media_types as mt;
use oci_model::store::referrers::list_typed;
use oci_model::store::{Descriptor, Store};
use oci_model::untrusted::Untrusted;
use serde::Serialize;
use std::fmt;

/// Referrers deeper than this are not listed (a signature of a signature of …).
const MAX_DEPTH: usize = 4;
/// At most this many referrers in one tree: a registry that lists more is refused.
const MAX_NODES: usize = 10_000;

/// What one walk of the tree has seen: each referrer digest is listed and expanded once,
/// however often (or at whatever depth) a registry lists it again.
#[derive(Default)]
struct Walk {
    seen: std::collections::HashSet<Digest>,
}

pub async fn run(args: DiscoverArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let target = parse_target(&args.target)?;
    let store = open_store(&target, &args.registry).await?;
    let subject = store.resolve(&target.reference()).await?;
    let mut walk = Walk::default();
    walk.seen.insert(subject.digest.clone());
    let referrers = tree(
        store.as_ref(),
        &subject,
        args.artifact_type.as_deref(),
        0,
        &mut walk,
    )
    .await?;
    ctx.printer.result(&Discovered {
        reference: target.to_string(),
        digest: subject.digest,
        media_type: subject.media_type,
        referrers,
    });
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Discovered {
    reference: String,
    digest: Digest,
    media_type: String,
    referrers: Vec<Node>,
}

/// A referrer and its own referrers.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    digest: Digest,
    media_type: String,
    artifact_type: Option<String>,
    size: u64,
    predicate_type: Option<String>,
    created: Option<String>,
    kind: String,
    referrers: Vec<Node>,
}

impl fmt::Display for Discovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.reference.split('@').next().unwrap_or(&self.reference);
        writeln!(f, "{}@{}", Untrusted(name), self.digest)?;
        render(&self.referrers, "", f)?;
        if self.referrers.is_empty() {
            writeln!(f, "(no referrers)")?;
        } else {
            writeln!(
                f,
                "(listed as the registry sent them, not verified: `oci-model verify` checks them)"
            )?;
        }
        Ok(())
    }
}

fn tree<'a>(
    store: &'a dyn Store,
    subject: &'a Descriptor,
    artifact_type: Option<&'a str>,
    depth: usize,
    walk: &'a mut Walk,
) -> futures::future::BoxFuture<'a, anyhow::Result<Vec<Node>>> {
    Box::pin(async move {
        if depth >= MAX_DEPTH {
            return Ok(Vec::new());
        }
        // Typed by each referrer's own manifest where the list does not say (as verify does).
        let mut referrers: Vec<Descriptor> = list_typed(store, subject, artifact_type)
            .await?
            .into_iter()
            .map(|l| l.descriptor)
            .collect();
        referrers.retain(|r| walk.seen.insert(r.digest.clone()));
        if walk.seen.len() > MAX_NODES {
            anyhow::bail!(
                "the referrers of {} go past {MAX_NODES} manifests; refusing to list more",
                subject.digest
            );
        }
        referrers.sort_by_cached_key(order);
        let mut out = Vec::new();
        for r in referrers {
            let children = tree(store, &r, None, depth + 1, &mut *walk).await?;
            let annotation = |key| r.annotation(key).map(str::to_string);
            out.push(Node {
                predicate_type: annotation(mt::ANNOTATION_BUNDLE_PREDICATE_TYPE),
                created: annotation(mt::ANNOTATION_CREATED),
                kind: kind(&r),
                referrers: children,
                digest: r.digest,
                media_type: r.media_type,
                artifact_type: r.artifact_type,
                size: r.size,
            });
        }
        Ok(out)
    })
}

/// The listing order: grouped by kind (model-signing signatures, cosign signatures,
/// attestations by predicate type, anything else by artifact type), oldest first within a
/// group (`org.opencontainers.image.created`; a referrer without a readable time comes after
/// those with one), then by digest, so the same referrers always list the same way.
fn order(r: &Descriptor) -> (u8, String, bool, Option<DateTime<Utc>>, Digest) {
    let group = match r.annotation(mt::ANNOTATION_BUNDLE_PREDICATE_TYPE) {
        Some(mt::PREDICATE_MODEL_SIGNING) => 0,
        Some(mt::PREDICATE_COSIGN_SIGN) => 1,
        Some(_) => 2,
        None => 3,
    };
    let created = r
        .annotation(mt::ANNOTATION_CREATED)
        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        .map(|c| c.with_timezone(&Utc));
    (group, kind(r), created.is_none(), created, r.digest.clone())
}

/// What a referrer is, for people: signature, attestation (with its predicate), or other.
fn kind(r: &Descriptor) -> String {
    match r.annotation(mt::ANNOTATION_BUNDLE_PREDICATE_TYPE) {
        Some(mt::PREDICATE_MODEL_SIGNING) => "signature (model-signing)".into(),
        Some(mt::PREDICATE_COSIGN_SIGN) => "signature (cosign)".into(),
        Some(pt) => format!("attestation {pt}"),
        None => r
            .artifact_type
            .clone()
            .unwrap_or_else(|| r.media_type.clone()),
    }
}

fn render(nodes: &[Node], indent: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for (i, n) in nodes.iter().enumerate() {
        let (branch, next) = if i + 1 == nodes.len() {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let created = n
            .created
            .as_deref()
            .map(|c| format!("  {}", Untrusted(c)))
            .unwrap_or_default();
        writeln!(
            f,
            "{indent}{branch}{}  {}{created}",
            Untrusted(&n.kind),
            n.digest
        )?;
        render(&n.referrers, &format!("{indent}{next}"), f)?;
    }
    Ok(())
}
