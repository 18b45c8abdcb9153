use crate::cli::args::{LoginArgs, LogoutArgs};
use crate::cli::Ctx;

pub async fn login(_args: LoginArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("login: not implemented yet")
}

pub async fn logout(_args: LogoutArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("logout: not implemented yet")
}
