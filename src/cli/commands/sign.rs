use crate::cli::args::{SignArgs, SignLocalArgs};
use crate::cli::Ctx;

pub async fn run(_args: SignArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("sign: not implemented yet")
}

pub async fn run_local(_args: SignLocalArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("sign-local: not implemented yet")
}
