//! `extism-run`: run Extism plugins from the command line.
//!
//! A thin binary over the `extism` library; the command line itself lives in `cli/`, which the
//! library never sees (it does not depend on clap).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
