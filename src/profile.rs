//! Sampling profiles of plugin calls: flame graphs (SVG) and Firefox Profiler JSON.
//!
//! A plugin built with `PluginBuilder::with_profiler` carries a recorder in its store.
//! While one of its calls runs, a clock thread advances the engine's epoch every interval, and
//! the store's epoch callback (`epoch.rs`) takes a sample: the wasm stack (every frame, named
//! from the modules' name sections) weighted by the time since the previous sample. Epoch
//! callbacks never run inside host functions, so the host functions of a profiled plugin are
//! wrapped (host_timing.rs): the time inside one is recorded on the calling stack under a
//! `[host] NAME` frame. Kernel functions show as `[kernel] NAME` (kernel_link.rs names them in a
//! linked module; a separate kernel instance is recognised here).
//!
//! Owns the recorder, the clock thread and the [`Profile`] with its output formats. It never
//! decides whether a call is interrupted: the epoch callback's deadline and cancel checks stay
//! as they are, profiling or not. Plugins built without a profiler carry no recorder, and
//! their call path is unchanged.

use std::{
    collections::HashMap,
    fmt::Write as _,
    io::Write,
    path::Path,
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, Context, Result};
use wasmtime::{Engine, Module, WasmBacktrace};

/// Frames captured per sample at most (a profiling engine's `wasm_backtrace_max_frames`);
/// deeper stacks are cut at their root end, under a `[truncated]` frame.
pub(crate) const MAX_FRAMES: usize = 512;

/// How a plugin is profiled ([`crate::PluginBuilder::with_profiler`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileOptions {
    interval: Duration,
}

impl Default for ProfileOptions {
    /// One sample per millisecond.
    fn default() -> Self {
        ProfileOptions {
            interval: Duration::from_millis(1),
        }
    }
}

impl ProfileOptions {
    /// Samples every `interval` (default 1 ms; at least 10 µs).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_micros(10));
        self
    }

    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

/// One recorded stretch of time.
#[derive(Debug, Clone, Copy)]
struct Sample {
    stack: u32,
    /// Since the profile started.
    at: Duration,
    duration: Duration,
}

/// Labels and stacks, interned.
#[derive(Debug, Default, Clone)]
struct Tables {
    labels: Vec<Arc<str>>,
    label_ids: HashMap<Arc<str>, u32>,
    /// Root first.
    stacks: Vec<Vec<u32>>,
    stack_ids: HashMap<Vec<u32>, u32>,
}

impl Tables {
    fn label(&mut self, label: &str) -> u32 {
        if let Some(&id) = self.label_ids.get(label) {
            return id;
        }
        let id = self.labels.len() as u32;
        let label: Arc<str> = label.into();
        self.labels.push(label.clone());
        self.label_ids.insert(label, id);
        id
    }

    fn stack(&mut self, frames: &[u32]) -> u32 {
        if let Some(&id) = self.stack_ids.get(frames) {
            return id;
        }
        let id = self.stacks.len() as u32;
        self.stacks.push(frames.to_vec());
        self.stack_ids.insert(frames.to_vec(), id);
        id
    }
}

/// How frames of one module are labelled.
struct ModuleLabel {
    module: Module,
    /// `name::` for modules other than main.
    prefix: String,
    /// The kernel as an instance of its own: its functions are named as in a linked module.
    kernel: bool,
}

/// A profiled store's recorder (in `PluginState::profile`).
pub(crate) struct Recorder {
    options: ProfileOptions,
    name: String,
    modules: Vec<ModuleLabel>,
    /// Label ids by (module code address, function index): names are built once.
    frame_labels: HashMap<(usize, u32), u32>,
    tables: Tables,
    samples: Vec<Sample>,
    started: Instant,
    started_wall: SystemTime,
    /// The end of the time already recorded; `None` outside calls.
    last: Option<Instant>,
    clock: Clock,
    /// Reused for each sample's frames.
    scratch: Vec<u32>,
}

impl Recorder {
    /// `modules`: the plugin's modules with their manifest names, main last; `kernel`: the
    /// separate kernel module, if the plugin uses one.
    pub fn new(
        options: ProfileOptions,
        engine: &Engine,
        modules: Vec<(String, Module)>,
        kernel: Option<Module>,
    ) -> Recorder {
        let main = modules.len().saturating_sub(1);
        let name = modules.last().map(|(n, _)| n.clone()).unwrap_or_default();
        let mut labels: Vec<ModuleLabel> = modules
            .into_iter()
            .enumerate()
            .map(|(i, (name, module))| ModuleLabel {
                module,
                prefix: if i == main {
                    String::new()
                } else {
                    format!("{name}::")
                },
                kernel: false,
            })
            .collect();
        if let Some(module) = kernel {
            labels.push(ModuleLabel {
                module,
                prefix: String::new(),
                kernel: true,
            });
        }
        Recorder {
            options,
            name,
            modules: labels,
            frame_labels: HashMap::new(),
            tables: Tables::default(),
            samples: Vec::new(),
            started: Instant::now(),
            started_wall: SystemTime::now(),
            last: None,
            clock: Clock::new(engine.clone(), options.interval),
            scratch: Vec::new(),
        }
    }

    /// A call starts: time from now on is recorded and the clock ticks.
    pub fn begin(&mut self) {
        self.last = Some(Instant::now());
        self.clock.run(true);
    }

    /// The call ended: the clock stops until the next call.
    pub fn end(&mut self) {
        self.last = None;
        self.clock.run(false);
    }

    /// Records the time since the previous sample on `backtrace`'s stack (plus `extra` on
    /// top), up to `now`.
    pub(crate) fn record(&mut self, backtrace: &WasmBacktrace, extra: Option<&str>, now: Instant) {
        let Some(last) = self.last else {
            return;
        };
        let duration = now.saturating_duration_since(last);
        self.last = Some(now);
        if duration.is_zero() {
            return;
        }
        let mut frames = std::mem::take(&mut self.scratch);
        frames.clear();
        let captured = backtrace.frames();
        if captured.len() >= MAX_FRAMES {
            frames.push(self.tables.label("[truncated]"));
        }
        // wasmtime lists the innermost frame first; stacks are kept root first.
        for frame in captured.iter().rev() {
            frames.push(self.frame_label(frame));
        }
        if frames.is_empty() {
            frames.push(self.tables.label(&self.name.clone()));
        }
        if let Some(extra) = extra {
            frames.push(self.tables.label(extra));
        }
        let stack = self.tables.stack(&frames);
        self.scratch = frames;
        self.samples.push(Sample {
            stack,
            at: last.saturating_duration_since(self.started),
            duration,
        });
    }

    fn frame_label(&mut self, frame: &wasmtime::FrameInfo) -> u32 {
        let key = (
            frame.module().image_range().start as usize,
            frame.func_index(),
        );
        if let Some(&id) = self.frame_labels.get(&key) {
            return id;
        }
        let module = self
            .modules
            .iter()
            .find(|m| Module::same(&m.module, frame.module()));
        let index = frame.func_index();
        let mut label = String::from(module.map(|m| m.prefix.as_str()).unwrap_or_default());
        match (module.is_some_and(|m| m.kernel), frame.func_name()) {
            (true, _) => match crate::kernel_link::kernel_function_names().get(index as usize) {
                Some(name) => label.push_str(name),
                None => {
                    let _ = write!(label, "[kernel] wasm-function[{index}]");
                }
            },
            (false, Some(name)) => label.push_str(name),
            (false, None) => {
                let _ = write!(label, "wasm-function[{index}]");
            }
        }
        // `;` separates frames in the collapsed format.
        let label = label.replace([';', '\n', '\r'], " ");
        let id = self.tables.label(&label);
        self.frame_labels.insert(key, id);
        id
    }

    /// The samples so far as a [`Profile`]; recording starts over.
    pub fn take(&mut self) -> Profile {
        let now = Instant::now();
        let profile = Profile {
            name: self.name.clone(),
            interval: self.options.interval,
            started: self.started_wall,
            duration: now.saturating_duration_since(self.started),
            tables: std::mem::take(&mut self.tables),
            samples: std::mem::take(&mut self.samples),
        };
        self.frame_labels.clear();
        self.started = now;
        self.started_wall = SystemTime::now();
        if self.last.is_some() {
            self.last = Some(now);
        }
        profile
    }
}

/// `err` without the wasm backtraces a profiling engine attaches to errors leaving wasm (it
/// captures stacks for samples, and with them for errors), so that a profiled plugin's errors
/// read as an unprofiled plugin's. Errors of other plugins carry none and are returned as
/// they are; a rebuilt error keeps every message of the chain, but not the types.
pub(crate) fn without_backtrace(err: anyhow::Error) -> anyhow::Error {
    let Some(backtrace) = err.downcast_ref::<WasmBacktrace>().map(|b| b.to_string()) else {
        return err;
    };
    let messages: Vec<String> = err
        .chain()
        .map(|c| c.to_string())
        .filter(|m| *m != backtrace)
        .collect();
    let mut rebuilt: Option<anyhow::Error> = None;
    for message in messages.into_iter().rev() {
        rebuilt = Some(match rebuilt {
            None => anyhow::Error::msg(message),
            Some(inner) => inner.context(message),
        });
    }
    rebuilt.unwrap_or(err)
}

/// The thread that advances an engine's epoch every interval while a profiled call runs.
struct Clock {
    shared: Arc<ClockShared>,
    started: bool,
    engine: Engine,
    interval: Duration,
}

struct ClockShared {
    /// (running, stopped for good)
    state: Mutex<(bool, bool)>,
    wake: Condvar,
}

impl Clock {
    fn new(engine: Engine, interval: Duration) -> Clock {
        Clock {
            shared: Arc::new(ClockShared {
                state: Mutex::new((false, false)),
                wake: Condvar::new(),
            }),
            started: false,
            engine,
            interval,
        }
    }

    fn run(&mut self, running: bool) {
        if running && !self.started {
            self.started = true;
            let shared = self.shared.clone();
            let engine = self.engine.clone();
            let interval = self.interval;
            let spawned = std::thread::Builder::new()
                .name("extism-profile-clock".into())
                .spawn(move || shared.tick(&engine, interval));
            if let Err(e) = spawned {
                tracing::warn!("cannot start the profiling clock: {e}");
            }
        }
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0 = running;
        drop(state);
        self.shared.wake.notify_one();
    }
}

impl ClockShared {
    fn tick(&self, engine: &Engine, interval: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match *state {
                (_, true) => return,
                (false, false) => {
                    state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                (true, false) => {
                    drop(state);
                    std::thread::sleep(interval);
                    engine.increment_epoch();
                    state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1 = true;
        self.shared.wake.notify_one();
    }
}

/// A recorded profile of a plugin's calls: stacks with the time spent in each, written as a
/// flame graph ([`Profile::write_svg`]), in the Firefox Profiler's format
/// ([`Profile::write_firefox_json`]) or as collapsed stacks ([`Profile::collapsed`]).
///
/// ```
/// use extism::{PluginBuilder, ProfileOptions};
/// let wat = r#"(module
///     (func $spin (param i32) (loop $l (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1))))))
///     (func (export "run") (call $spin (i32.const 1000000))))"#;
/// let mut plugin = PluginBuilder::new(wat.as_bytes())
///     .with_profiler(ProfileOptions::default())
///     .build()?;
/// plugin.call::<&str, &[u8]>("run", "")?;
/// let profile = plugin.take_profile()?;
/// let dir = tempfile::tempdir()?;
/// profile.write(dir.path().join("run.svg"))?; // or run.json for profiler.firefox.com
/// # Ok::<(), extism::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Profile {
    name: String,
    interval: Duration,
    started: SystemTime,
    duration: Duration,
    tables: Tables,
    samples: Vec<Sample>,
}

impl Profile {
    /// Checks that [`Profile::write`] knows the format `path` names (`.svg` or `.json`), so
    /// that a wrong name is refused before anything runs.
    pub fn check_path(path: impl AsRef<Path>) -> Result<()> {
        Format::of(path.as_ref()).map(|_| ())
    }

    /// How many samples were recorded.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// The time the samples account for (time inside calls that was sampled).
    pub fn sampled_time(&self) -> Duration {
        self.samples.iter().map(|s| s.duration).sum()
    }

    /// Writes the profile to `path`, as a flame graph for `.svg` and in the Firefox Profiler's
    /// format for `.json`; other extensions are refused.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let format = Format::of(path)?;
        let write = || -> Result<()> {
            let file = std::fs::File::create(path)?;
            let mut out = std::io::BufWriter::new(file);
            match format {
                Format::Svg => self.write_svg(&mut out)?,
                Format::FirefoxJson => self.write_firefox_json(&mut out)?,
            }
            out.flush()?;
            Ok(())
        };
        write().with_context(|| format!("cannot write the profile to {}", path.display()))
    }

    /// The stacks in the collapsed format flame graph tools read: one line per stack,
    /// `root;caller;callee MICROSECONDS`, sorted.
    pub fn collapsed(&self) -> String {
        let mut totals: HashMap<u32, u128> = HashMap::new();
        for s in &self.samples {
            *totals.entry(s.stack).or_default() += s.duration.as_micros();
        }
        let mut lines: Vec<String> = totals
            .into_iter()
            .filter(|&(_, micros)| micros > 0)
            .map(|(stack, micros)| {
                let names: Vec<&str> = self.tables.stacks[stack as usize]
                    .iter()
                    .map(|&l| &*self.tables.labels[l as usize])
                    .collect();
                format!("{} {micros}", names.join(";"))
            })
            .collect();
        lines.sort();
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        text
    }

    /// Writes an interactive flame graph (self-contained SVG with search and zoom); widths are
    /// time in microseconds.
    pub fn write_svg(&self, out: impl Write) -> Result<()> {
        let collapsed = self.collapsed();
        let mut options = inferno::flamegraph::Options::default();
        options.title = format!("extism-run: {}", self.name);
        options.subtitle = Some(format!(
            "{} samples every {:?}, {:.1} ms sampled",
            self.sample_count(),
            self.interval,
            self.sampled_time().as_secs_f64() * 1000.0
        ));
        options.count_name = "µs".into();
        options.hash = true;
        options.deterministic = true;
        if collapsed.is_empty() {
            // inferno refuses an empty profile; an empty call still gets a readable file.
            let line = format!("{} (no samples) 1", self.name);
            inferno::flamegraph::from_lines(&mut options, [line.as_str()], out)?;
            return Ok(());
        }
        inferno::flamegraph::from_lines(&mut options, collapsed.lines(), out)?;
        Ok(())
    }

    /// Writes the profile in the Firefox Profiler's processed format (open it at
    /// profiler.firefox.com): one thread, one sample per interval (a longer stretch, such as a
    /// host call, counts as several), in time order.
    pub fn write_firefox_json(&self, out: impl Write) -> Result<()> {
        use fxprof_processed_profile as fx;
        let interval = fx::SamplingInterval::from_nanos(self.interval.as_nanos() as u64);
        let mut profile = fx::Profile::new(
            &format!("extism-run: {}", self.name),
            self.started.into(),
            interval,
        );
        let zero = fx::Timestamp::from_nanos_since_reference(0);
        let process = profile.add_process(&self.name, std::process::id(), zero);
        let thread = profile.add_thread(process, 0, zero, true);
        profile.set_thread_name(thread, "plugin calls");
        let handles: Vec<fx::StringHandle> = self
            .tables
            .labels
            .iter()
            .map(|l| profile.intern_string(l))
            .collect();
        let stacks: Vec<Option<fx::StackHandle>> = self
            .tables
            .stacks
            .iter()
            .map(|frames| {
                let frames = frames.iter().map(|&l| fx::FrameInfo {
                    frame: fx::Frame::Label(handles[l as usize]),
                    category_pair: fx::CategoryHandle::OTHER.into(),
                    flags: fx::FrameFlags::empty(),
                });
                profile.intern_stack_frames(thread, frames)
            })
            .collect();
        let step = self.interval.as_nanos().max(1);
        for s in &self.samples {
            let weight = (s.duration.as_nanos() + step / 2) / step;
            let weight = i32::try_from(weight.max(1)).unwrap_or(i32::MAX);
            let at = fx::Timestamp::from_nanos_since_reference(
                u64::try_from((s.at + s.duration).as_nanos()).unwrap_or(u64::MAX),
            );
            profile.add_sample(
                thread,
                at,
                stacks[s.stack as usize],
                s.duration.into(),
                weight,
            );
        }
        let end = fx::Timestamp::from_nanos_since_reference(
            u64::try_from(self.duration.as_nanos()).unwrap_or(u64::MAX),
        );
        profile.set_thread_end_time(thread, end);
        profile.set_process_end_time(process, end);
        serde_json::to_writer(out, &profile)?;
        Ok(())
    }
}

/// The file formats [`Profile::write`] chooses from by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Svg,
    FirefoxJson,
}

impl Format {
    fn of(path: &Path) -> Result<Format> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext.to_ascii_lowercase().as_str() {
            "svg" => Ok(Format::Svg),
            "json" => Ok(Format::FirefoxJson),
            _ => bail!(
                "cannot tell the profile format of {}: name it .svg (flame graph) or .json \
                 (Firefox Profiler)",
                path.display()
            ),
        }
    }
}
