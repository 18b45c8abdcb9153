use crate::cli::args::{InspectArgs, PullArgs};
use crate::cli::Ctx;

pub async fn run(_args: PullArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("pull: not implemented yet")
}

pub async fn inspect(_args: InspectArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("inspect: not implemented yet")
}
