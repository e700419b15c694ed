//! `extism-run reset`: clears what the tool keeps between runs, the compiled-module cache and,
//! with --state FILE, that state file, and says on stdout what it removed (nothing with -q).

use anyhow::Context;
use indicatif::HumanBytes;

use super::{
    args::ResetArgs,
    cache,
    failure::Result,
    state,
    ui::{write_stdout, Ui},
};

pub fn run(args: ResetArgs, ui: &Ui) -> Result {
    let report = |line: String| -> Result {
        if !ui.quiet {
            write_stdout(format!("{line}\n").as_bytes()).context("cannot write to stdout")?;
        }
        Ok(())
    };
    match cache::dir() {
        Some(dir) => {
            let cleared = extism::disk_cache::clear(&dir)
                .with_context(|| format!("cannot clear the cache {}", dir.display()))?;
            report(match cleared.files {
                0 => format!("the compiled-module cache {} is empty", dir.display()),
                n => format!(
                    "removed {n} compiled module file{} ({}) from {}",
                    if n == 1 { "" } else { "s" },
                    HumanBytes(cleared.bytes),
                    dir.display()
                ),
            })?;
        }
        None => report("there is no compiled-module cache on this platform".to_string())?,
    }
    if let Some(path) = &args.state {
        report(if state::remove(path)? {
            format!("removed the state file {}", path.display())
        } else {
            format!("there is no state file {}", path.display())
        })?;
    }
    Ok(())
}
