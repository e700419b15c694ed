//! The command-line definition: every subcommand, flag, value syntax and help text.
//!
//! Flag names and meanings of `call` follow the upstream Extism CLI so existing scripts work.
//! Nothing here runs anything; values are parsed and checked, so a malformed flag is a usage
//! error (status 2) before any work starts.

use std::{collections::BTreeMap, ffi::OsString, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The exit statuses: after every command's help, and a section of the man pages.
pub const EXIT_STATUSES: &[(&str, &str)] = &[
    ("0", "success"),
    (
        "1",
        "the call failed (see stderr: FUNCTION: error), or `exists` found a function missing",
    ),
    (
        "2",
        "usage or input error: bad flag, unreadable file or manifest, unloadable plugin",
    ),
    (
        "130",
        "interrupted by Ctrl-C: the running call is cancelled (a second Ctrl-C exits at once)",
    ),
];

/// The environment variables read: after the main help, and a section of the man pages.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "EXTISM_RUN_CACHE",
        "compiled-module cache directory (default: ~/.cache/extism-run)",
    ),
    (
        "EXTISM_ENABLE_WASI_OUTPUT",
        "let WASI plugins write to stdout and stderr (call --wasi sets it itself unless \
         --no-wasi-output)",
    ),
    ("NO_COLOR", "no colours on stderr"),
];

/// `--version`: this tool's version and the upstream release it is compatible with.
static VERSION_TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (extism {} compatible)",
        extism::VERSION,
        extism::UPSTREAM_VERSION
    )
});

fn table(title: &str, rows: &[(&str, &str)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut text = format!("{title}:");
    for (key, meaning) in rows {
        text.push_str(&format!("\n  {key:<width$}  {meaning}"));
    }
    text
}

fn exit_status_help() -> String {
    table("Exit status", EXIT_STATUSES)
}

fn main_after_help() -> String {
    format!(
        "{}\n\n{}",
        exit_status_help(),
        table("Environment", ENVIRONMENT)
    )
}

/// Run Extism WebAssembly plugins from the command line.
///
/// Plugin output goes to stdout unchanged; progress, logs and errors go to stderr. Compiled
/// modules are cached on disk, so the second run of a plugin starts fast.
#[derive(Debug, Parser)]
#[command(name = "extism-run", version = VERSION_TEXT.as_str(), after_help = main_after_help(), max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print what the tool does on stderr (cache use, each call), and errors one cause per line
    #[arg(short, long, global = true, display_order = 100)]
    pub verbose: bool,

    /// Print nothing on stderr except errors and what was asked for (--stats, --log-level)
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        display_order = 100
    )]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Call a plugin function and write its output to stdout
    #[command(after_help = exit_status_help())]
    Call(CallArgs),
    /// Exit 0 if the plugin exports every FUNCTION as a plugin function, 1 if not
    #[command(after_help = exit_status_help())]
    Exists(ExistsArgs),
    /// Print the manifest that PLUGIN and the flags resolve to, as JSON
    #[command(after_help = exit_status_help())]
    Config(ConfigArgs),
    /// Clear what is kept between runs: the compiled-module cache and a --state file
    #[command(after_help = exit_status_help())]
    Reset(ResetArgs),
    /// Call a plugin function and print its log lines on stdout
    #[command(after_help = exit_status_help())]
    Log(LogArgs),
    /// Describe a plugin: size, hash, imports, exports and memory of each module
    #[command(after_help = exit_status_help())]
    Inspect(InspectArgs),
}

/// Where the plugin comes from.
#[derive(Debug, Args)]
#[command(next_help_heading = "Plugin")]
pub struct SourceArgs {
    /// A .wasm or .wat file, an http(s):// URL, or a JSON manifest (detected by its leading `{`)
    #[arg(value_name = "PLUGIN", help_heading = None)]
    pub plugin: String,

    /// Read PLUGIN as a manifest (JSON or TOML) whatever it looks like
    #[arg(short, long)]
    pub manifest: bool,

    /// Add the module at PATH (a file or URL) under NAME, for imports from module NAME; PATH
    /// alone uses its file name without extension as NAME (repeatable)
    #[arg(long, value_name = "[NAME=]PATH", value_parser = parse_link)]
    pub link: Vec<(String, String)>,
}

/// Flags that change the manifest.
#[derive(Debug, Args)]
#[command(next_help_heading = "Limits, permissions and config")]
pub struct ManifestArgs {
    /// Let a WASI plugin use a host directory: HOST:GUEST, HOST::GUEST or PATH (same path in
    /// both); prefix ro: for read-only access (repeatable)
    #[arg(long, value_name = "PATH", value_parser = parse_allow_path)]
    pub allow_path: Vec<(String, PathBuf)>,

    /// Let the plugin make HTTP requests to HOST; globs such as *.example.com work
    /// (repeatable; without it every request fails)
    #[arg(long, value_name = "HOST")]
    pub allow_host: Vec<String>,

    /// Stop a call after MS milliseconds (0: the manifest's limit, if any)
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,

    /// Limit the plugin's memory to PAGES pages of 64 KiB (0: the manifest's limit, if any)
    #[arg(long, value_name = "PAGES")]
    pub memory_max: Option<u32>,

    /// Limit HTTP response bodies to BYTES (-1: no limit)
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, value_parser = parse_byte_limit)]
    pub http_response_max: Option<u64>,

    /// Limit the plugin's vars to BYTES in total (0 disables vars; -1: no limit)
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, value_parser = parse_byte_limit)]
    pub var_max: Option<u64>,

    /// Set a config value the plugin reads; KEY alone sets it to "" (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_config)]
    pub config: Vec<(String, String)>,

    /// Set config values from a JSON object of strings; --config wins over it
    #[arg(long, value_name = "JSON", value_parser = parse_set_config)]
    pub set_config: Option<BTreeMap<String, String>>,
}

/// Where the call's input comes from (at most one; default: empty input).
#[derive(Debug, Args)]
#[group(multiple = false)]
#[command(next_help_heading = "Input")]
pub struct InputArgs {
    /// Input bytes for the call
    #[arg(short, long, value_name = "DATA")]
    pub input: Option<OsString>,

    /// Read the input from stdin
    #[arg(long)]
    pub stdin: bool,

    /// Read the input from a file
    #[arg(long, value_name = "PATH")]
    pub input_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Cache")]
pub struct CacheArgs {
    /// Neither read nor write the compiled-module cache
    #[arg(long)]
    pub no_cache: bool,
}

/// What `call` and `log` share: everything about running the function.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// The exported function to call
    #[arg(value_name = "FUNCTION", help_heading = None)]
    pub function: String,

    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub manifest: ManifestArgs,

    #[command(flatten)]
    pub call: CallOptions,

    #[command(flatten)]
    pub cache: CacheArgs,
}

/// How the calls run.
#[derive(Debug, Args)]
#[command(next_help_heading = "Calling")]
pub struct CallOptions {
    /// Enable WASI preview 1 (with `call`, the plugin's WASI stdout and stderr reach this
    /// process's stdout and stderr; see --no-wasi-output)
    #[arg(long)]
    pub wasi: bool,

    /// Stop a call after N units of fuel (about N wasm instructions)
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,

    /// Let the plugin read HTTP response headers
    #[arg(long)]
    pub enable_http_response_headers: bool,

    /// Call the function N times on one plugin instance; each output is then followed by a
    /// newline
    #[arg(long = "loop", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,

    /// Print the load time, and each call's time and output size, on stderr
    #[arg(long)]
    pub stats: bool,

    /// Restore the plugin's vars from FILE before the first call and save them after the last
    /// (a missing FILE starts empty; an interrupted run leaves FILE as it was)
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// Write a sampling profile of the calls to FILE: a flame graph for FILE.svg (opens in a
    /// browser), a Firefox Profiler profile for FILE.json. Every --loop call goes into one
    /// profile, also when a call times out or Ctrl-C stops it
    #[arg(long, value_name = "FILE", value_parser = parse_profile_path)]
    pub profile: Option<PathBuf>,

    /// How often --profile samples the stack: 1ms, 250us, 0.5ms, 1s [default: 1ms]
    #[arg(long, value_name = "DURATION", requires = "profile", value_parser = parse_interval)]
    pub profile_interval: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub run: RunArgs,

    /// Print the plugin's log messages at LEVEL and above on stderr [default: error, none
    /// with -q]
    #[arg(long, value_name = "LEVEL", help_heading = "Calling")]
    pub log_level: Option<Level>,

    /// Discard the plugin's WASI stdout and stderr. Without it, --wasi lets them through: the
    /// guest's stdout goes to stdout as the plugin writes it, before that call's output
    /// (output_set), and its stderr to stderr
    #[arg(long, help_heading = "Calling")]
    pub no_wasi_output: bool,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    pub run: RunArgs,

    /// Print log lines at LEVEL and above
    #[arg(
        long,
        value_name = "LEVEL",
        default_value = "info",
        help_heading = "Logging"
    )]
    pub level: Level,

    /// text: `LEVEL SOURCE: MESSAGE`; json: one object per line with level, source, target,
    /// message and fields (SOURCE is `guest` for the plugin's own lines, else `runtime`)
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "text",
        help_heading = "Logging"
    )]
    pub format: LogFormat,

    /// Write the plugin's output to FILE instead of discarding it
    #[arg(long, value_name = "FILE", help_heading = "Logging")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExistsArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Functions that must be exported as () -> () or () -> i32
    #[arg(value_name = "FUNCTION", required = true, help_heading = None)]
    pub functions: Vec<String>,

    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub manifest: ManifestArgs,

    /// Save the manifest to FILE (usable with `call -m FILE`) instead of printing it
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub write: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Also remove this state file (written by `call --state FILE`)
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Print JSON instead of text
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl From<Level> for tracing::Level {
    fn from(level: Level) -> tracing::Level {
        match level {
            Level::Trace => tracing::Level::TRACE,
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error => tracing::Level::ERROR,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `NAME=PATH`, or `PATH` named after its file stem (as upstream).
fn parse_link(s: &str) -> Result<(String, String), String> {
    let (name, path) = match s.split_once('=') {
        Some((name, path)) => (name.to_string(), path),
        None => {
            let stem = std::path::Path::new(s).file_stem();
            (
                stem.map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                s,
            )
        }
    };
    if name.is_empty() || path.is_empty() {
        return Err("expected NAME=PATH, or a PATH with a file name".to_string());
    }
    Ok((name, path.to_string()))
}

/// A profile's file name, whose extension chooses the format.
fn parse_profile_path(s: &str) -> Result<PathBuf, String> {
    extism::Profile::check_path(s).map_err(|e| e.to_string())?;
    Ok(PathBuf::from(s))
}

/// A duration with its unit: `250us`, `1ms`, `0.5ms`, `1s`; between 10 µs and 10 s.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let scale = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "" => return Err("give a unit: us, ms or s (for example 1ms)".into()),
        other => return Err(format!("unknown unit `{other}`: use us, ms or s")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("expected a number with a unit, such as 1ms, not `{s}`"))?;
    let secs = value * scale;
    if !(1e-5..=10.0).contains(&secs) {
        return Err("the interval must be between 10us and 10s".into());
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// A byte count, or -1 for no limit (upstream's default value, which scripts pass).
fn parse_byte_limit(s: &str) -> Result<u64, String> {
    if s.trim() == "-1" {
        return Ok(u64::MAX);
    }
    s.parse()
        .map_err(|e| format!("expected a number of bytes or -1 (no limit): {e}"))
}

/// `[ro:]HOST::GUEST`, `[ro:]HOST:GUEST` (split at the first `::`, else the first `:`), or
/// `[ro:]PATH`, as (manifest key with its `ro:` prefix, guest path).
fn parse_allow_path(s: &str) -> Result<(String, PathBuf), String> {
    let (prefix, rest) = match s.strip_prefix("ro:") {
        Some(rest) => ("ro:", rest),
        None => ("", s),
    };
    let (host, guest) = rest
        .split_once("::")
        .or_else(|| rest.split_once(':'))
        .unwrap_or((rest, rest));
    if host.is_empty() || guest.is_empty() {
        return Err("expected HOST:GUEST, HOST::GUEST or PATH, optionally prefixed ro:".into());
    }
    Ok((format!("{prefix}{host}"), PathBuf::from(guest)))
}

fn parse_config(s: &str) -> Result<(String, String), String> {
    let (key, value) = s.split_once('=').unwrap_or((s, ""));
    if key.is_empty() {
        return Err("expected KEY=VALUE or KEY, with a non-empty KEY".into());
    }
    Ok((key.to_string(), value.to_string()))
}

fn parse_set_config(s: &str) -> Result<BTreeMap<String, String>, String> {
    serde_json::from_str(s).map_err(|e| format!("expected a JSON object of strings: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn allow_path_forms() {
        let p = |s| parse_allow_path(s).map(|(h, g)| (h, g.display().to_string()));
        assert_eq!(p("/a:/b"), Ok(("/a".into(), "/b".into())));
        assert_eq!(p("/a::/b"), Ok(("/a".into(), "/b".into())));
        assert_eq!(p("/a::/b:c"), Ok(("/a".into(), "/b:c".into())));
        assert_eq!(p("/a"), Ok(("/a".into(), "/a".into())));
        assert_eq!(p("ro:/a:/b"), Ok(("ro:/a".into(), "/b".into())));
        assert_eq!(p("ro:/a"), Ok(("ro:/a".into(), "/a".into())));
        assert!(p(":/b").is_err());
        assert!(p("ro:").is_err());
    }

    #[test]
    fn link_forms() {
        let l = |s| parse_link(s);
        assert_eq!(l("lib=a/b.wasm"), Ok(("lib".into(), "a/b.wasm".into())));
        assert_eq!(
            l("a/libfoo.wasm"),
            Ok(("libfoo".into(), "a/libfoo.wasm".into()))
        );
        assert_eq!(
            l("https://x.test/m/dep.wasm"),
            Ok(("dep".into(), "https://x.test/m/dep.wasm".into()))
        );
        assert!(l("=a.wasm").is_err());
        assert!(l("lib=").is_err());
    }

    #[test]
    fn byte_limits() {
        assert_eq!(parse_byte_limit("-1"), Ok(u64::MAX));
        assert_eq!(parse_byte_limit("0"), Ok(0));
        assert_eq!(parse_byte_limit("4096"), Ok(4096));
        assert!(parse_byte_limit("-2").is_err());
    }

    #[test]
    fn config_forms() {
        assert_eq!(parse_config("k=v=w"), Ok(("k".into(), "v=w".into())));
        assert_eq!(parse_config("k"), Ok(("k".into(), "".into())));
        assert!(parse_config("=v").is_err());
    }
}
