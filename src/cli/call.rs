//! `extism-run call PLUGIN FUNCTION`: the plugin's output goes to stdout unchanged.

use super::{
    args::CallArgs,
    failure::Result,
    run::{self, Output},
    ui::Ui,
};

pub fn run(args: CallArgs, ui: &Ui) -> Result {
    run::run(&args.run, ui, Output::Stdout)
}
