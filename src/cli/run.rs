//! Running a function, for `call` and `log`: the input, loading the plugin, the --loop of
//! calls with --stats, the --state file, Ctrl-C, and how a failed call is reported (a timeout
//! and a Ctrl-C cancel both surface as `extism::Interrupted` and are worded apart here).

use std::{
    fs::File,
    io::{self, IsTerminal, Read, Write},
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context};
use extism::{Interrupted, OutOfMemory, Plugin};

use super::{
    args::{InputArgs, RunArgs},
    cache,
    failure::{Failure, Result},
    interrupt, logs,
    source::{self, Options},
    state,
    ui::{write_stdout, Ui},
};

/// Where the plugin's output goes.
pub enum Output {
    /// Unchanged, with a newline added only on a terminal (or between --loop outputs).
    Stdout,
    File(File),
    Discard,
}

impl Output {
    /// Writes one call's output; `separate` ends it with a newline (--loop N > 1, as upstream).
    fn write(&mut self, out: &[u8], separate: bool) -> io::Result<()> {
        match self {
            Output::Stdout => {
                let tidy = io::stdout().is_terminal() && !out.is_empty() && !out.ends_with(b"\n");
                write_stdout(out)?;
                if separate || tidy {
                    write_stdout(b"\n")?;
                }
                Ok(())
            }
            Output::File(f) => {
                f.write_all(out)?;
                if separate {
                    f.write_all(b"\n")?;
                }
                Ok(())
            }
            Output::Discard => Ok(()),
        }
    }
}

pub fn run(args: &RunArgs, ui: &Ui, mut output: Output) -> Result {
    interrupt::install(ui)?;
    let input = read_input(&args.input)?;
    let vars = args.call.state.as_deref().map(state::load).transpose()?;
    let started = Instant::now();
    let (mut plugin, limits) = load(args, ui)?;
    if args.call.stats {
        ui.say(format_args!("stats: loaded in {}", ms(started.elapsed())));
    }
    if let Some(vars) = vars {
        *plugin.vars_mut() = vars;
    }
    interrupt::cancel_on_interrupt(&plugin);
    let result = call_repeatedly(&mut plugin, args, &input, &limits, ui, &mut output);
    if let Some(path) = &args.call.profile {
        // Also after a failed or interrupted call: the profile shows what ran.
        let profile = plugin.take_profile()?;
        profile.write(path)?;
        ui.note(format_args!(
            "profile: {} samples ({:.1} ms) written to {}",
            profile.sample_count(),
            profile.sampled_time().as_secs_f64() * 1000.0,
            path.display()
        ));
    }
    if interrupt::interrupted() || matches!(result, Err(Failure::Interrupted { .. })) {
        // The interrupted call may have left the vars half-updated: the state file stays.
        return Err(Failure::Interrupted {
            function: args.function.clone(),
        });
    }
    if let Some(path) = &args.call.state {
        state::save(path, plugin.vars())?;
    }
    result
}

/// The plugin ready for its first call, and the limits its failures are explained with.
fn load(args: &RunArgs, ui: &Ui) -> anyhow::Result<(Plugin, Limits)> {
    let mut manifest = source::manifest(&args.source)?;
    source::apply(&mut manifest, &args.manifest);
    if !args.manifest.allow_path.is_empty() && !args.call.wasi {
        ui.warn("--allow-path has no effect without --wasi");
    }
    let modules = source::resolve(&manifest, ui)?;
    source::check_imports(&modules, args.call.wasi)?;
    let options = Options {
        wasi: args.call.wasi,
        fuel: args.call.fuel,
        cache_dir: cache::for_compiling(&args.cache),
        profile: args.call.profile.as_ref().map(|_| {
            let options = extism::ProfileOptions::default();
            match args.call.profile_interval {
                Some(interval) => options.with_interval(interval),
                None => options,
            }
        }),
    };
    let compiled = source::compile(manifest, modules, options, &args.source.plugin, ui)?;
    let mut plugin = Plugin::new_from_compiled(&compiled)
        .with_context(|| format!("cannot load {}", args.source.plugin))?;
    if args.call.enable_http_response_headers {
        plugin.allow_http_response_headers();
    }
    let limits = Limits {
        timeout_ms: compiled.manifest().timeout_ms,
        max_pages: compiled.manifest().memory.max_pages,
    };
    Ok((plugin, limits))
}

/// The --loop of calls: stops at the first failure, at Ctrl-C, or when stdout is closed.
fn call_repeatedly(
    plugin: &mut Plugin,
    args: &RunArgs,
    input: &[u8],
    limits: &Limits,
    ui: &Ui,
    output: &mut Output,
) -> Result {
    let function = args.function.as_str();
    let stats = args.call.stats;
    let mut times = Vec::new();
    for i in 1..=args.call.repeat {
        if interrupt::interrupted() || logs::stdout_closed() {
            break;
        }
        let start = Instant::now();
        let call = plugin.call::<&[u8], &[u8]>(function, input);
        let took = start.elapsed();
        times.push(took);
        let out = match call {
            Ok(out) => out,
            Err(e) => {
                if stats {
                    ui.say(format_args!("stats: call {i} failed after {}", ms(took)));
                }
                return Err(call_failure(function, e, limits));
            }
        };
        if stats {
            ui.say(format_args!(
                "stats: call {i} took {}, output {} bytes",
                ms(took),
                out.len()
            ));
        }
        match output.write(out, args.call.repeat > 1) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(anyhow!(e).context("cannot write the output").into()),
        }
    }
    if stats && times.len() > 1 {
        ui.say(summary(&times));
    }
    Ok(())
}

fn read_input(args: &InputArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(data) = &args.input {
        return Ok(os_bytes(data.clone()));
    }
    if let Some(path) = &args.input_file {
        return std::fs::read(path).with_context(|| format!("cannot read {}", path.display()));
    }
    let mut input = Vec::new();
    if args.stdin {
        tracing::debug!("reading the input from stdin");
        io::stdin()
            .lock()
            .read_to_end(&mut input)
            .context("cannot read stdin")?;
    }
    Ok(input)
}

#[cfg(unix)]
fn os_bytes(s: std::ffi::OsString) -> Vec<u8> {
    std::os::unix::ffi::OsStringExt::into_vec(s)
}

#[cfg(not(unix))]
fn os_bytes(s: std::ffi::OsString) -> Vec<u8> {
    s.to_string_lossy().into_owned().into_bytes()
}

/// The manifest limits a failed call is explained with.
struct Limits {
    timeout_ms: Option<u64>,
    max_pages: Option<u32>,
}

/// A timeout and a Ctrl-C both stop wasm as `Interrupted` (and both read "timeout" through the
/// API, as upstream); only the command line knows which one the user saw. A timeout's message
/// starts with the word `timeout`, which scripts written for upstream's CLI look for.
fn call_failure(function: &str, error: anyhow::Error, limits: &Limits) -> Failure {
    let function = function.to_string();
    let interrupted = error.chain().find_map(|c| c.downcast_ref::<Interrupted>());
    let out_of_memory = error.chain().any(|c| c.is::<OutOfMemory>());
    let error = match (interrupted, limits) {
        (Some(Interrupted::Cancelled), _) => return Failure::Interrupted { function },
        (
            Some(Interrupted::Timeout),
            Limits {
                timeout_ms: Some(ms),
                ..
            },
        ) => {
            anyhow!("timeout: timed out after {ms} ms")
        }
        (Some(Interrupted::Timeout), _) => anyhow!("timeout: timed out"),
        (
            None,
            Limits {
                max_pages: Some(pages),
                ..
            },
        ) if out_of_memory => {
            anyhow!("out of memory: the limit is {pages} pages of 64 KiB")
        }
        (None, _) => error,
    };
    Failure::Call { function, error }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn summary(times: &[Duration]) -> String {
    let total: Duration = times.iter().sum();
    let min = times.iter().min().copied().unwrap_or_default();
    let max = times.iter().max().copied().unwrap_or_default();
    format!(
        "stats: {} calls in {}, mean {}, min {}, max {}",
        times.len(),
        ms(total),
        ms(total / times.len() as u32),
        ms(min),
        ms(max)
    )
}
