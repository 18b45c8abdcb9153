// Output to a closed pipe (`oci-model … 2>&1 | head -c1`) must not panic (std's print macros
// panic on EPIPE, exit 101). These shadow them in the whole binary (textual macro scope: they
// are defined before `mod cli`) and drop write errors, so the exit code stays the command's own.
macro_rules! quiet_write {
    ($stream:ident, $write:ident, $($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = $write!(std::io::$stream(), $($arg)*);
    }};
}
#[allow(unused_macros)]
macro_rules! print { ($($arg:tt)*) => { quiet_write!(stdout, write, $($arg)*) } }
macro_rules! println { ($($arg:tt)*) => { quiet_write!(stdout, writeln, $($arg)*) } }
#[allow(unused_macros)]
macro_rules! eprint { ($($arg:tt)*) => { quiet_write!(stderr, write, $($arg)*) } }
macro_rules! eprintln { ($($arg:tt)*) => { quiet_write!(stderr, writeln, $($arg)*) } }

mod cli;

use clap::Parser;
use std::ffi::OsString;

fn main() -> std::process::ExitCode {
    let args = match cli::args::Cli::try_parse_from(std::env::args_os()) {
        Ok(args) => args,
        Err(e) => return argument_error(e),
    };
    let level = match args.global.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OCI_MODEL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, and never with NO_COLOR set.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(cli::exit::code(
                oci_model::error::ErrorKind::Input,
            ));
        }
    };
    // SIGINT/SIGTERM stop the command by dropping it: every temporary file, staging directory
    // and lock it holds is removed or released on the way out (a pull restores what it
    // replaced), and the exit code is the shell's 128 + signal number.
    let code = runtime.block_on(async {
        // Registered before the command first runs: a signal at any point of it is ours.
        let interrupted = interrupted();
        tokio::select! {
            biased;
            signal = interrupted => {
                let message = format!("interrupted by {}; removed this run's temporary files", signal.0);
                if wants_json(std::env::args_os()) {
                    let value = serde_json::json!({ "ok": false, "exitCode": signal.1, "error": message });
                    println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
                }
                eprintln!("error: {message}");
                signal.1
            }
            code = cli::run(args) => code,
        }
    });
    // Threads still writing a dropped download stop at their next chunk.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    std::process::ExitCode::from(code)
}

/// The first SIGINT or SIGTERM: its name and the exit code for it. The handlers are installed
/// when this is called, not when the future is first polled.
fn interrupted() -> impl std::future::Future<Output = (&'static str, u8)> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let streams = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        async move {
            match streams {
                (Ok(mut int), Ok(mut term)) => tokio::select! {
                    _ = int.recv() => ("SIGINT", 130),
                    _ = term.recv() => ("SIGTERM", 143),
                },
                _ => std::future::pending().await,
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            match tokio::signal::ctrl_c().await {
                Ok(()) => ("Ctrl-C", 130),
                Err(_) => std::future::pending().await,
            }
        }
    }
}

/// An argument clap refused (or `--help`/`--version`). With `-o json` a refusal is also one JSON
/// document on stdout, like every other failure, so a script always has a document to read.
fn argument_error(e: clap::Error) -> std::process::ExitCode {
    if e.use_stderr() && wants_json(std::env::args_os()) {
        let text = e.render().to_string();
        let message = text
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        let value = serde_json::json!({
            "ok": false,
            "exitCode": e.exit_code(),
            "error": message,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    }
    let _ = e.print();
    std::process::ExitCode::from(
        u8::try_from(e.exit_code()).unwrap_or(cli::exit::code(oci_model::error::ErrorKind::Input)),
    )
}

/// Does the command line ask for JSON output (`-o json`, `-ojson`, `--output json`,
/// `--output=json`) before any `--`?
fn wants_json(args: impl Iterator<Item = OsString>) -> bool {
    let args: Vec<String> = args
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .collect();
    args.iter().enumerate().any(|(i, a)| {
        a == "-ojson"
            || a == "--output=json"
            || ((a == "-o" || a == "--output") && args.get(i + 1).is_some_and(|v| v == "json"))
    })
}
