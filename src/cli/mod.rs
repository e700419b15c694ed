//! The extism-run command line: parse the arguments, run one subcommand, turn its result
//! into the exit status documented in `--help` (see `failure.rs`).
//!
//! One file per subcommand; the rest is what they share: where a plugin comes from and how it
//! is loaded (`source.rs`), running calls (`run.rs`), the terminal (`ui.rs`), logs, Ctrl-C,
//! the --state file and the compiled-module cache location.

mod args;
mod cache;
mod call;
mod config;
mod docs;
mod exists;
mod failure;
mod inspect;
mod interrupt;
mod log;
mod logs;
mod module_info;
mod reset;
mod run;
mod source;
mod state;
mod ui;

use std::process::ExitCode;

use clap::FromArgMatches;

use self::{
    args::{Cli, Command},
    ui::Ui,
};

pub fn main() -> ExitCode {
    let matches = match docs::parser().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => return clap_exit(e),
    };
    if let Some(dir) = docs::requested(&matches) {
        return failure::report(docs::run(dir), &Ui::new(false, false));
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    let ui = Ui::new(cli.verbose, cli.quiet);
    if let Command::Call(args) = &cli.command {
        wasi_output(args);
    }
    match &cli.command {
        Command::Call(args) => {
            // The plugin's error lines show by default, as upstream's CLI (log level error).
            let guest = args.log_level.or((!ui.quiet).then_some(args::Level::Error));
            logs::install(&ui, guest, None)
        }
        Command::Log(args) => logs::install(&ui, None, Some((args.level, args.format))),
        _ => logs::install(&ui, None, None),
    }
    let result = match cli.command {
        Command::Call(args) => call::run(args, &ui),
        Command::Exists(args) => exists::run(args, &ui),
        Command::Config(args) => config::run(args, &ui),
        Command::Reset(args) => reset::run(args, &ui),
        Command::Log(args) => log::run(args, &ui),
        Command::Inspect(args) => inspect::run(args, &ui),
    };
    failure::report(result, &ui)
}

/// --help and --version print to stdout and exit 0; usage errors print to stderr and exit 2.
fn clap_exit(e: clap::Error) -> ExitCode {
    let _ = e.print();
    ExitCode::from(e.exit_code() as u8)
}

/// `call --wasi` lets the plugin's WASI stdout and stderr through, as upstream's CLI does (it
/// sets `EXTISM_ENABLE_WASI_OUTPUT` for itself); `--no-wasi-output` discards them even when the
/// variable is set outside. Done before any thread exists, so nothing reads the environment
/// concurrently.
fn wasi_output(args: &args::CallArgs) {
    const VAR: &str = "EXTISM_ENABLE_WASI_OUTPUT";
    if args.no_wasi_output {
        std::env::remove_var(VAR);
    } else if args.run.call.wasi {
        std::env::set_var(VAR, "1");
    }
}
