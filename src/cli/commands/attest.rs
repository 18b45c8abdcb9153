use crate::cli::args::AttestArgs;
use crate::cli::Ctx;

pub async fn run(_args: AttestArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("attest: not implemented yet")
}
