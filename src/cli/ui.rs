//! The terminal: notes, warnings and progress on stderr, data on stdout.
//!
//! Progress is drawn only when stderr is a terminal and -q is not given, never otherwise.
//! Colour is used only on a terminal stderr with NO_COLOR unset (indicatif's styles check
//! NO_COLOR themselves). Every write ignores a closed stderr rather than panicking.

use std::{
    fmt::Display,
    io::{self, IsTerminal, Write},
    time::Duration,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Ui {
    pub verbose: bool,
    pub quiet: bool,
    terminal: bool,
    color: bool,
}

impl Ui {
    pub fn new(verbose: bool, quiet: bool) -> Ui {
        let terminal = io::stderr().is_terminal();
        Ui {
            verbose,
            quiet,
            terminal,
            color: terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    /// Whether stderr lines may carry ANSI colours.
    pub fn color(&self) -> bool {
        self.color
    }

    /// Whether stderr is a terminal.
    pub fn terminal(&self) -> bool {
        self.terminal
    }

    /// Something the user asked for (--stats) or must see: printed even with -q.
    pub fn say(&self, line: impl Display) {
        let _ = writeln!(io::stderr().lock(), "{line}");
    }

    /// A remark about what was done, hidden by -q.
    pub fn note(&self, line: impl Display) {
        if !self.quiet {
            self.say(line);
        }
    }

    /// A warning that does not stop the command, hidden by -q.
    pub fn warn(&self, line: impl Display) {
        if !self.quiet {
            self.say(format_args!("{} {line}", self.paint("warning:", "1;33")));
        }
    }

    /// `text` in the ANSI style `sgr` when colours are on.
    pub fn paint(&self, text: &str, sgr: &str) -> String {
        if self.color {
            paint(text, sgr)
        } else {
            text.to_string()
        }
    }

    /// A spinner showing `message` until it is finished.
    pub fn spinner(&self, message: String) -> ProgressBar {
        let bar = self.bar("{spinner:.cyan} {msg} {elapsed:.dim}");
        bar.set_message(message);
        bar
    }

    /// A download bar: bytes so far, and a bar once the total is known.
    pub fn download_bar(&self) -> ProgressBar {
        self.bar("{spinner:.cyan} downloading {bytes} {elapsed:.dim}")
    }

    /// A ticking bar on stderr, or a hidden one when stderr is not a terminal or with -q.
    fn bar(&self, template: &str) -> ProgressBar {
        if !self.terminal || self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(style(template));
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }
}

/// Feeds a [`Ui::download_bar`] from a download's (bytes so far, total if known).
pub fn show_download(bar: &ProgressBar, done: u64, total: Option<u64>) {
    if let (Some(total), None) = (total, bar.length()) {
        bar.set_length(total);
        bar.set_style(style(
            "{spinner:.cyan} downloading {bytes}/{total_bytes} {wide_bar:.cyan/blue} {eta}",
        ));
    }
    bar.set_position(done);
}

/// `text` in the ANSI style `sgr` (SGR parameters such as `1;31`).
pub fn paint(text: &str, sgr: &str) -> String {
    format!("\x1b[{sgr}m{text}\x1b[0m")
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("the progress templates are valid")
}

/// Writes `bytes` to stdout and flushes (a closed pipe shows as `BrokenPipe`).
pub fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}
