use crate::cli::args::GenerateKeyPairArgs;
use crate::cli::Ctx;

pub async fn generate(_args: GenerateKeyPairArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("generate-key-pair: not implemented yet")
}
