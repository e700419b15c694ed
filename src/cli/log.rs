//! `extism-run log PLUGIN FUNCTION`: runs like `call`, but stdout gets the log lines (routed
//! there by `logs::install`), and the plugin's output goes to --output or nowhere.

use std::fs::File;

use anyhow::Context;

use super::{
    args::LogArgs,
    failure::Result,
    run::{self, Output},
    ui::Ui,
};

pub fn run(args: LogArgs, ui: &Ui) -> Result {
    let output = match &args.output {
        Some(path) => Output::File(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Output::Discard,
    };
    run::run(&args.run, ui, output)
}
