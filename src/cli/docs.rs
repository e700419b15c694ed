//! The hidden `generate-docs DIR` subcommand: shell completions (DIR/completions) and man
//! pages (DIR/man, one per subcommand) generated from the clap definition. Both are committed;
//! tests/cli.rs regenerates them into a temporary directory and fails when they differ.
//! Regenerate with `cargo run -- generate-docs .`.
//!
//! The subcommand is added to the parser at run time rather than declared in `args.rs`, so the
//! completions and man pages, made from `args.rs` alone, never mention it.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use anyhow::Context;
use clap::{Arg, ArgMatches, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;

use super::{
    args::{Cli, ENVIRONMENT, EXIT_STATUSES},
    failure::Result,
};

const NAME: &str = "generate-docs";

/// The command line's parser: `args.rs` plus the hidden subcommand.
pub fn parser() -> clap::Command {
    Cli::command().subcommand(
        clap::Command::new(NAME)
            .hide(true)
            .about("Write the shell completions and man pages into DIR/completions and DIR/man")
            .arg(
                Arg::new("dir")
                    .value_name("DIR")
                    .required(true)
                    .value_parser(clap::value_parser!(PathBuf)),
            ),
    )
}

/// The directory to generate into, when the hidden subcommand was given.
pub fn requested(matches: &ArgMatches) -> Option<&PathBuf> {
    match matches.subcommand() {
        Some((NAME, m)) => m.get_one::<PathBuf>("dir"),
        _ => None,
    }
}

pub fn run(dir: &Path) -> Result {
    let completions = dir.join("completions");
    let man = dir.join("man");
    for d in [&completions, &man] {
        fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), "extism-run", &completions)
            .with_context(|| format!("cannot write the {shell} completions"))?;
    }
    man_pages(&man).context("cannot write the man pages")?;
    Ok(())
}

/// One page for the command and one per subcommand, as clap_mangen makes them, with the exit
/// statuses and environment as sections of their own instead of clap's after-help text.
fn man_pages(dir: &Path) -> io::Result<()> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let subcommands: Vec<clap::Command> = root
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    for cmd in std::iter::once(root).chain(subcommands) {
        let man = Man::new(cmd.after_help(None));
        let mut page = Vec::new();
        man.render(&mut page)?;
        page.extend(section("EXIT STATUS", EXIT_STATUSES).as_bytes());
        page.extend(section("ENVIRONMENT", ENVIRONMENT).as_bytes());
        fs::write(dir.join(man.get_filename()), page)?;
    }
    Ok(())
}

/// A roff section of tagged paragraphs.
fn section(title: &str, rows: &[(&str, &str)]) -> String {
    let escape = |s: &str| s.replace('\\', "\\e").replace('-', "\\-");
    let mut roff = format!(".SH \"{title}\"\n");
    for (key, meaning) in rows {
        roff.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            escape(key),
            escape(meaning)
        ));
    }
    roff
}
