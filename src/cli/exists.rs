//! `extism-run exists PLUGIN FUNCTION...`: exit 0 when every function is exported as a plugin
//! function (`() -> ()` or `() -> i32`), 1 otherwise, listing the missing ones on stdout as
//! `missing: NAME` (nothing with -q).

use anyhow::Context;

use super::{
    args::ExistsArgs,
    cache,
    failure::{Failure, Result},
    source::{self, Options},
    ui::{write_stdout, Ui},
};

pub fn run(args: ExistsArgs, ui: &Ui) -> Result {
    let manifest = source::manifest(&args.source)?;
    let modules = source::resolve(&manifest, ui)?;
    let options = Options {
        wasi: false,
        fuel: None,
        cache_dir: cache::for_compiling(&args.cache),
        profile: None,
    };
    let compiled = source::compile(manifest, modules, options, &args.source.plugin, ui)?;
    let missing: Vec<&String> = args
        .functions
        .iter()
        .filter(|f| !compiled.function_exists(f))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !ui.quiet {
        let lines: String = missing.iter().map(|f| format!("missing: {f}\n")).collect();
        write_stdout(lines.as_bytes()).context("cannot write to stdout")?;
    }
    Err(Failure::Missing)
}
