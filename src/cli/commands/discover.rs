//! `discover`: the tree of referrers (signatures, attestations) of a model.

use super::{open_store, parse_target};
use crate::cli::args::DiscoverArgs;
use crate::cli::Ctx;
use oci_model::media_types as mt;
use oci_model::store::{Descriptor, Store};
use serde_json::{json, Value};

/// Referrers deeper than this are not listed (a signature of a signature of …).
const MAX_DEPTH: usize = 4;

pub async fn run(args: DiscoverArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let target = parse_target(&args.target)?;
    let store = open_store(&target, &args.registry).await?;
    let subject = store.resolve(&target.reference()).await?;
    let children = tree(store.as_ref(), &subject, args.artifact_type.as_deref(), 0).await?;
    let mut text = format!("{}@{}\n", strip_ref(&target.to_string()), subject.digest);
    render(&children, "", &mut text);
    if children.is_empty() {
        text.push_str("(no referrers)\n");
    }
    let value = json!({
        "reference": target.to_string(),
        "digest": subject.digest,
        "mediaType": subject.media_type,
        "referrers": children,
    });
    ctx.printer.result(&text, &value);
    Ok(())
}

fn strip_ref(s: &str) -> &str {
    s.split('@').next().unwrap_or(s)
}

fn tree<'a>(
    store: &'a dyn Store,
    subject: &'a Descriptor,
    artifact_type: Option<&'a str>,
    depth: usize,
) -> futures::future::BoxFuture<'a, anyhow::Result<Vec<Value>>> {
    Box::pin(async move {
        if depth >= MAX_DEPTH {
            return Ok(Vec::new());
        }
        let mut referrers = store.referrers(subject, artifact_type).await?;
        referrers.sort_by(|a, b| a.digest.cmp(&b.digest));
        let mut out = Vec::new();
        for r in referrers {
            let children = tree(store, &r, None, depth + 1).await?;
            out.push(json!({
                "digest": r.digest,
                "mediaType": r.media_type,
                "artifactType": r.artifact_type,
                "size": r.size,
                "predicateType": r.annotation(mt::ANNOTATION_BUNDLE_PREDICATE_TYPE),
                "created": r.annotation(mt::ANNOTATION_CREATED),
                "kind": kind(&r),
                "referrers": children,
            }));
        }
        Ok(out)
    })
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

fn render(nodes: &[Value], indent: &str, out: &mut String) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let (branch, next) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let created = n["created"]
            .as_str()
            .map(|c| format!("  {c}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{indent}{branch}{}  {}{created}\n",
            n["kind"].as_str().unwrap_or(""),
            n["digest"].as_str().unwrap_or("")
        ));
        if let Some(children) = n["referrers"].as_array() {
            render(children, &format!("{indent}{next}"), out);
        }
    }
}
