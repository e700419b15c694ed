//! Log lines: the plugin's `log_*` messages and runtime events, as text or JSON lines, on
//! stderr (`call --log-level`, -v, warnings) or stdout (the `log` subcommand).
//!
//! The plugin's own lines have target `extism::pdk` (source `guest`); events of the library and
//! of this tool are source `runtime`. What a guest gets from `get_log_level` follows from the
//! filters installed here, so a plugin does not even build messages that nobody prints.

use std::{
    collections::BTreeMap,
    fmt::Debug,
    io::{self, Write},
    sync::atomic::{AtomicBool, Ordering},
};

use serde::Serialize;
use tracing::{
    field::{Field, Visit},
    level_filters::LevelFilter,
    Event, Subscriber,
};
use tracing_subscriber::{filter::Targets, layer::Context, prelude::*, Layer};

use super::{
    args::{Level, LogFormat},
    ui::{paint, Ui},
};

const GUEST: &str = "extism::pdk";
/// The target of the library's events about each call (started, finished, failed).
const CALLS: &str = "extism::plugin";

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Installs the process's log routes: runtime warnings on stderr (debug events too with -v,
/// nothing with -q), the plugin's lines at `guest_on_stderr` on stderr, and, for the `log`
/// subcommand, everything at a level on stdout in a format (the library's call events
/// included: `call to NAME finished`, `call to NAME encountered an error: ...`).
pub fn install(ui: &Ui, guest_on_stderr: Option<Level>, stdout: Option<(Level, LogFormat)>) {
    let runtime = if ui.verbose {
        LevelFilter::DEBUG
    } else if ui.quiet {
        LevelFilter::OFF
    } else {
        LevelFilter::WARN
    };
    let guest = guest_on_stderr.map_or(LevelFilter::OFF, |l| tracing::Level::from(l).into());
    // A failed call is reported once, by the command (failure.rs); the library's own events
    // about calls show with -v only.
    let calls = if ui.verbose {
        LevelFilter::DEBUG
    } else {
        LevelFilter::OFF
    };
    let stderr = Lines {
        stdout: false,
        format: LogFormat::Text,
        color: ui.color(),
    }
    .with_filter(
        Targets::new()
            .with_target("extism", runtime)
            .with_target(CALLS, calls)
            .with_target("extism_run", runtime)
            .with_target(GUEST, guest),
    );
    let stdout = stdout.map(|(level, format)| {
        let level = LevelFilter::from(tracing::Level::from(level));
        Lines {
            stdout: true,
            format,
            color: false,
        }
        .with_filter(
            Targets::new()
                .with_target("extism", level)
                .with_target("extism_run", level),
        )
    });
    // Only fails if a subscriber is already set, which nothing else here does.
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(stdout)
        .try_init();
}

/// True once writing a log line to stdout met a closed pipe.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::SeqCst)
}

struct Lines {
    stdout: bool,
    format: LogFormat,
    color: bool,
}

impl<S: Subscriber> Layer<S> for Lines {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let source = if meta.target() == GUEST {
            "guest"
        } else {
            "runtime"
        };
        let line = match self.format {
            LogFormat::Text => {
                let level = format!("{:<5}", meta.level());
                let level = match (self.color, *meta.level()) {
                    (false, _) => level,
                    (true, tracing::Level::ERROR) => paint(&level, "31"),
                    (true, tracing::Level::WARN) => paint(&level, "33"),
                    (true, tracing::Level::INFO) => paint(&level, "32"),
                    (true, _) => paint(&level, "2"),
                };
                let mut line = format!("{level} {source}: {}", fields.message);
                for (k, v) in fields.rest.iter().filter(|(k, _)| k != "plugin") {
                    line.push_str(&format!(" {k}={v}"));
                }
                line
            }
            LogFormat::Json => serde_json::to_string(&JsonLine {
                level: meta.level().as_str().to_ascii_lowercase(),
                source,
                target: meta.target(),
                message: &fields.message,
                fields: fields.rest.iter().cloned().collect(),
            })
            .unwrap_or_default(),
        };
        if !self.stdout {
            let _ = writeln!(io::stderr().lock(), "{line}");
        } else if let Err(e) = writeln!(io::stdout().lock(), "{line}") {
            if e.kind() == io::ErrorKind::BrokenPipe {
                STDOUT_CLOSED.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// One line of `--format json`, fields in this order.
#[derive(Serialize)]
struct JsonLine<'a> {
    level: String,
    source: &'a str,
    target: &'a str,
    message: &'a str,
    fields: BTreeMap<String, String>,
}

/// An event's message and other fields, as text.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(String, String)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else {
            self.rest.push((field.name().to_string(), value));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.put(field, format!("{value:?}"));
    }
}
