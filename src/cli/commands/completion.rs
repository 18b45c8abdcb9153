//! `completion SHELL`: the shell completion script clap_complete generates from the argument
//! definitions, so it always knows every command and flag.

use crate::cli::args::{Cli, CompletionArgs};
use crate::cli::ctx::Ctx;
use clap::CommandFactory as _;
use serde::Serialize;
use std::fmt;

pub fn run(args: CompletionArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    ctx.printer.result(&Completion {
        ok: true,
        shell: args.shell.to_string(),
        script: String::from_utf8_lossy(&script).into_owned(),
    });
    Ok(())
}

#[derive(Serialize)]
struct Completion {
    ok: bool,
    shell: String,
    /// The script itself (what text mode prints).
    script: String,
}

impl fmt::Display for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.script)
    }
}
