//! Ctrl-C while a plugin runs.
//!
//! The first Ctrl-C cancels the call in progress through the plugin's cancel handle; the call
//! then fails with `Interrupted::Cancelled`, which `run.rs` turns into status 130. Before a
//! plugin exists (reading input, downloading, compiling) there is nothing to cancel, so the
//! process exits with 130 at once; so does a second Ctrl-C, whatever is running.
//!
//! A cancel only reaches a call that is running (`cancel.rs` forgets one that arrives between
//! calls), so after the first Ctrl-C the handle is cancelled again every few milliseconds until
//! the process ends: a Ctrl-C landing between two calls of --loop, or just before a call
//! starts, still stops it. Wasm is stopped at once, but a host function (an HTTP request, say)
//! runs to its end first; when the process is still there after a second, a note says that a
//! second Ctrl-C exits at once.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    thread,
    time::Duration,
};

use anyhow::Context;
use extism::{CancelHandle, Plugin};

use super::{
    failure::{interrupted_line, INTERRUPTED},
    ui::Ui,
};

static SEEN: AtomicBool = AtomicBool::new(false);
static TARGET: Mutex<Option<CancelHandle>> = Mutex::new(None);

/// Installs the handler. `ui` decides how the exit line looks.
pub fn install(ui: &Ui) -> anyhow::Result<()> {
    let line = interrupted_line(ui, None);
    let quiet = ui.quiet;
    ctrlc::set_handler(move || {
        if SEEN.swap(true, Ordering::SeqCst) {
            exit_now(&line);
        }
        let target = TARGET.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(handle) = target else {
            exit_now(&line);
        };
        thread::spawn(move || {
            for tick in 0.. {
                let _ = handle.cancel();
                thread::sleep(Duration::from_millis(20));
                if tick == 50 && !quiet {
                    let _ = writeln!(
                        std::io::stderr(),
                        "waiting for the plugin to stop; press Ctrl-C again to exit at once"
                    );
                }
            }
        });
    })
    .context("cannot install the Ctrl-C handler")
}

/// Makes Ctrl-C cancel `plugin`'s calls from now on.
pub fn cancel_on_interrupt(plugin: &Plugin) {
    *TARGET.lock().unwrap_or_else(|p| p.into_inner()) = Some(plugin.cancel_handle());
}

/// True once Ctrl-C has been pressed.
pub fn interrupted() -> bool {
    SEEN.load(Ordering::SeqCst)
}

fn exit_now(line: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "{line}");
    std::process::exit(INTERRUPTED.into());
}
