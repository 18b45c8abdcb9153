use crate::cli::args::PushArgs;
use crate::cli::Ctx;

pub async fn run(_args: PushArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("push: not implemented yet")
}
