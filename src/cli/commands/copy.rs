use crate::cli::args::CopyArgs;
use crate::cli::Ctx;

pub async fn run(_args: CopyArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("copy: not implemented yet")
}
