//! The command-line interface. Declared only by `main.rs`: the library never reaches in here.
//!
//! Each command (`commands/*`, one file each) gets a [`ctx::Ctx`], prints one typed result
//! (`Serialize` + `Display`) through [`printer`], or returns an error whose kind [`exit`] maps
//! to the exit code. Only this file dispatches, so no command imports a module that imports it.

pub mod args;
pub mod commands;
pub mod ctx;
pub mod exit;
pub mod policy;
pub mod printer;
pub mod settings;

use args::{Cli, Command};
use commands::{
    admission, attest, completion, copy, discover, inspect, keys, local, login, pull, push, sign,
    trusted_root, verify, verify_bundle,
};
use ctx::Ctx;

/// Run the parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let ctx = Ctx {
        settings: settings::Settings::from_process(),
        printer: printer::Printer::new(&cli.global),
    };
    match dispatch(cli.command, &ctx).await {
        Ok(()) => exit::OK,
        Err(err) => {
            let code = exit::code_for(&err);
            ctx.printer.error(&exit::message(&err), code);
            code
        }
    }
}

async fn dispatch(command: Command, ctx: &Ctx) -> anyhow::Result<()> {
    match command {
        Command::Push(a) => push::run(a, ctx).await,
        Command::Pull(a) => pull::run(a, ctx).await,
        Command::Copy(a) => copy::run(a, ctx).await,
        Command::Inspect(a) => inspect::run(a, ctx).await,
        Command::Sign(a) => sign::run(a, ctx).await,
        Command::SignLocal(a) => local::sign_local(a, ctx).await,
        Command::Attest(a) => attest::run(a, ctx).await,
        Command::Verify(a) => verify::run(a, ctx).await,
        Command::VerifyLocal(a) => local::verify_local(a, ctx).await,
        Command::VerifyBundle(a) => verify_bundle::run(a, ctx).await,
        Command::Discover(a) => discover::run(a, ctx).await,
        Command::GenerateKeyPair(a) => keys::generate(a, ctx).await,
        Command::Login(a) => login::login(a, ctx).await,
        Command::Logout(a) => login::logout(a, ctx).await,
        Command::TrustedRoot(a) => trusted_root::run(a, ctx).await,
        Command::Completion(a) => completion::run(a, ctx),
        Command::Admission(a) => admission::run(a, ctx).await,
    }
}
