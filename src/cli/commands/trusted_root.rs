//! `trusted-root show | update | status`, and the default trusted root every command uses
//! (the root `update` cached, when not older than the embedded one).

use crate::cli::args::{TrustedRootCommand, TrustedRootUpdateArgs};
use crate::cli::ctx::Ctx;
use crate::cli::exit::{Failure, InputError as _};
use crate::cli::printer::Rendered;
use crate::cli::settings::Settings;
use oci_model::trust_update::{self, CachedInfo, Current, TrustCache, UpdateOptions};
use oci_model::verify::TrustedRoot;
use serde::Serialize;
use std::path::Path;

/// This user's trusted-root cache (None when there is no cache directory: no HOME, no
/// XDG_CACHE_HOME).
fn cache(settings: &Settings) -> Option<TrustCache> {
    settings.cache_dir().map(|d| TrustCache::new(&d))
}

/// Which root commands use by default, with what the cache holds. Offline.
fn current(settings: &Settings) -> anyhow::Result<Current> {
    trust_update::current(cache(settings).as_ref()).map_err(|e| Failure::classify(e.kind(), e))
}

/// The trusted root of a command: `--trusted-root FILE`, else the cached root when present and
/// not older than the embedded one, else the embedded public-good root.
pub fn trusted_root(file: Option<&Path>, settings: &Settings) -> anyhow::Result<TrustedRoot> {
    match file {
        Some(path) => TrustedRoot::from_file(path).input(),
        None => Ok(current(settings)?.root),
    }
}

pub async fn run(cmd: TrustedRootCommand, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        TrustedRootCommand::Show { trusted_root } => {
            let root = self::trusted_root(trusted_root.as_deref(), &ctx.settings)?;
            let summary = root.summary();
            ctx.printer
                .result(&Rendered::new(&summary, summary.to_text()));
            Ok(())
        }
        TrustedRootCommand::Update(args) => update(args, ctx).await,
        TrustedRootCommand::Status => {
            let status = Status::new(current(&ctx.settings)?, &ctx.settings);
            let text = status.to_text();
            ctx.printer.result(&Rendered::new(&status, text));
            Ok(())
        }
    }
}

async fn update(args: TrustedRootUpdateArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let Some(cache) = cache(&ctx.settings) else {
        return Err(Failure::input(
            "no cache directory to keep the trusted root in: set XDG_CACHE_HOME or HOME",
        ));
    };
    let options = UpdateOptions {
        tuf_url: args.tuf_url,
        root: args.root,
        timeout: std::time::Duration::from_secs(args.timeout.max(1)),
    };
    let cached = cache
        .update(&options)
        .await
        .map_err(|e| Failure::classify(e.kind(), e))?;
    // What commands will use now (the embedded root wins when it is newer).
    let status = Status::new(current(&ctx.settings)?, &ctx.settings);
    let text = format!(
        "Fetched trusted_root.json from {} (TUF root version {}, targets version {}).\n{}",
        cached.info.tuf_url,
        cached.info.tuf_root_version,
        cached.info.targets_version,
        status.to_text()
    );
    ctx.printer.result(&Rendered::new(&status, text));
    Ok(())
}

/// `trusted-root status` and `trusted-root update`: the root in use and what the cache holds.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    /// `cache` or `embedded`.
    in_use: &'static str,
    /// The source of the root in use.
    source: String,
    /// Where `trusted-root update` keeps the root (null: no cache directory).
    cache_dir: Option<String>,
    /// What the cache holds (null: no update ran).
    cached: Option<CachedInfo>,
    /// Newest validity start of a key or CA in the embedded root.
    embedded_newest_key_start: Option<String>,
}

impl Status {
    fn new(current: Current, settings: &Settings) -> Self {
        let embedded = TrustedRoot::production()
            .ok()
            .and_then(|r| r.newest_key_start())
            .map(|t| t.to_string());
        Status {
            in_use: if current.from_cache {
                "cache"
            } else {
                "embedded"
            },
            source: current.root.source().to_string(),
            cache_dir: cache(settings).map(|c| c.dir().display().to_string()),
            cached: current.cached,
            embedded_newest_key_start: embedded,
        }
    }

    fn to_text(&self) -> String {
        let mut out = format!("In use: {}\n", self.source);
        match (&self.cached, &self.cache_dir) {
            (Some(c), Some(dir)) => {
                out.push_str(&format!(
                    "Cache: {dir}\n  from {}, fetched {}\n  TUF root version {}, targets version {}, metadata expires {}\n  trusted_root.json sha256 {}, newest key from {}\n",
                    c.tuf_url,
                    c.fetched_at,
                    c.tuf_root_version,
                    c.targets_version,
                    c.metadata_expires,
                    c.sha256,
                    c.newest_key_start.as_deref().unwrap_or("(none)")
                ));
                if self.in_use == "embedded" {
                    out.push_str(&format!(
                        "  not used: older than the embedded root (newest key from {})\n",
                        self.embedded_newest_key_start.as_deref().unwrap_or("(none)")
                    ));
                }
            }
            (None, Some(dir)) => out.push_str(&format!(
                "Cache: {dir} (empty: run `oci-model trusted-root update` to fetch the current root)\n"
            )),
            (_, None) => out.push_str("Cache: none (no XDG_CACHE_HOME or HOME)\n"),
        }
        out
    }
}
