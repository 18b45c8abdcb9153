use crate::cli::args::{TrustedRootCommand, VerifyArgs, VerifyBundleArgs, VerifyLocalArgs};
use crate::cli::Ctx;

pub async fn run(_args: VerifyArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("verify: not implemented yet")
}

pub async fn run_local(_args: VerifyLocalArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("verify-local: not implemented yet")
}

pub async fn run_bundle(_args: VerifyBundleArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("verify-bundle: not implemented yet")
}

pub async fn trusted_root(_cmd: TrustedRootCommand, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("trusted-root: not implemented yet")
}
