use crate::cli::args::DiscoverArgs;
use crate::cli::Ctx;

pub async fn run(_args: DiscoverArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("discover: not implemented yet")
}
