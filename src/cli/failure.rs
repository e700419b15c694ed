//! How a command ends: the exit status table of `--help` and the error report on stderr.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success (also when stdout is closed early: a broken pipe ends quietly) |
//! | 1 | the plugin call failed, or `exists` found a function missing |
//! | 2 | usage or input error: bad flag, unreadable file, invalid manifest, unloadable plugin |
//! | 130 | interrupted with Ctrl-C |
//!
//! An error is one line: the message and its causes, joined by `: `. With -v each cause gets a
//! line of its own.

use std::{io, process::ExitCode};

use super::ui::Ui;

pub const INTERRUPTED: u8 = 130;

#[derive(Debug)]
pub enum Failure {
    /// A usage or input error (status 2).
    Input(anyhow::Error),
    /// The plugin call failed (status 1); reported as `FUNCTION: error`.
    Call {
        function: String,
        error: anyhow::Error,
    },
    /// `exists` found functions missing and has said which (status 1).
    Missing,
    /// Ctrl-C stopped the call of `function` (status 130).
    Interrupted { function: String },
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Input(e)
    }
}

pub type Result<T = ()> = std::result::Result<T, Failure>;

pub fn report(result: Result, ui: &Ui) -> ExitCode {
    let failure = match result {
        Ok(()) => return ExitCode::SUCCESS,
        Err(f) => f,
    };
    let (status, prefix, error) = match failure {
        Failure::Input(e) if is_broken_pipe(&e) => return ExitCode::SUCCESS,
        Failure::Input(e) => (2, String::new(), e),
        Failure::Call { function, error } => (1, format!("{function}: "), error),
        Failure::Missing => return ExitCode::from(1),
        Failure::Interrupted { function } => {
            ui.say(interrupted_line(ui, Some(&function)));
            return ExitCode::from(INTERRUPTED);
        }
    };
    let label = ui.paint("error:", "1;31");
    let chain: Vec<String> = error.chain().map(|e| one_line(&e.to_string())).collect();
    if ui.verbose {
        ui.say(format_args!("{label} {prefix}{}", chain[0]));
        for cause in &chain[1..] {
            ui.say(format_args!("  caused by: {cause}"));
        }
    } else {
        ui.say(format_args!("{label} {prefix}{}", chain.join(": ")));
    }
    ExitCode::from(status)
}

/// The line printed when Ctrl-C ends the process, naming the call it stopped if any. On a
/// terminal it starts on a fresh line, after the echoed `^C` or a progress bar.
pub fn interrupted_line(ui: &Ui, function: Option<&str>) -> String {
    let fresh = if ui.terminal() { "\n" } else { "" };
    let label = ui.paint("error:", "1;31");
    match function {
        Some(f) => format!("{fresh}{label} {f}: interrupted (Ctrl-C)"),
        None => format!("{fresh}{label} interrupted (Ctrl-C)"),
    }
}

/// Some messages (wasmtime's among them) span lines: join them with single spaces.
fn one_line(message: &str) -> String {
    if !message.contains('\n') {
        return message.to_string();
    }
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
