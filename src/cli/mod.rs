//! The command-line interface. Declared only by `main.rs`: the library never reaches in here.

pub mod args;
pub mod commands;
pub mod exit;
pub mod policy;
pub mod printer;
pub mod settings;

use args::Cli;

/// Everything a command needs besides its own arguments.
pub struct Ctx {
    pub settings: settings::Settings,
    pub printer: printer::Printer,
}

/// Run the parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let ctx = Ctx {
        settings: settings::Settings::from_process(),
        printer: printer::Printer::new(&cli.global),
    };
    match commands::dispatch(cli.command, &ctx).await {
        Ok(()) => exit::OK,
        Err(err) => {
            let code = exit::code_for(&err);
            ctx.printer.error(&exit::message(&err), code);
            code
        }
    }
}
