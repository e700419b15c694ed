//! From the PLUGIN argument and flags to a manifest, module bytes and a compiled plugin.
//!
//! PLUGIN is an `http://` or `https://` URL, or a file: a manifest (JSON or TOML) with -m or
//! when the file starts with `{`, a .wasm/.wat module referenced by its path when it starts
//! like one, and otherwise an error. Relative
//! paths inside a manifest are relative to the working directory, as upstream. --link modules
//! are put before PLUGIN's own, so PLUGIN's module stays `main` under the manifest naming
//! rules. Modules are resolved here, with a download bar, and given to the library as bytes:
//! nothing is fetched twice, and imports are checked before loading, so a plugin needing WASI
//! without --wasi, or host functions the command line cannot provide, gets an error naming them.

use std::{fs, path::PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use extism::{
    manifest::ResolvedModule, CompiledPlugin, Manifest, ManifestExt, PluginBuilder, Wasm,
};

use super::{
    args::{ManifestArgs, SourceArgs},
    module_info::{self, ModuleInfo, Needs},
    ui::{show_download, Ui},
};

/// The manifest PLUGIN and --link describe.
pub fn manifest(source: &SourceArgs) -> Result<Manifest> {
    let mut manifest = if is_url(&source.plugin) {
        if source.manifest {
            bail!("--manifest needs a file, not a URL: {}", source.plugin);
        }
        Manifest::new([Wasm::url(&source.plugin)])
    } else {
        let bytes =
            fs::read(&source.plugin).with_context(|| format!("cannot read {}", source.plugin))?;
        if source.manifest || looks_like_json(&bytes) {
            let text = std::str::from_utf8(&bytes)
                .map_err(|e| anyhow!("invalid manifest {}: not UTF-8 ({e})", source.plugin))?;
            Manifest::from_text(text)
                .with_context(|| format!("invalid manifest {}", source.plugin))?
        } else if bytes.starts_with(b"\0asm") || looks_like_wat(&bytes) {
            Manifest::new([Wasm::file(&source.plugin)])
        } else {
            bail!(
                "{} is neither a WebAssembly module (binary or text) nor a JSON manifest \
                 (use -m for a TOML manifest)",
                source.plugin
            );
        }
    };
    let links = source.link.iter().map(|(name, path)| {
        let wasm = if is_url(path) {
            Wasm::url(path)
        } else {
            Wasm::file(path)
        };
        wasm.with_name(name)
    });
    manifest.wasm.splice(0..0, links);
    Ok(manifest)
}

/// Applies the manifest flags. Precedence for config: the manifest, then --set-config, then
/// --config. A zero --timeout or --memory-max keeps the manifest's value, as upstream.
pub fn apply(manifest: &mut Manifest, flags: &ManifestArgs) {
    if !flags.allow_host.is_empty() {
        manifest
            .allowed_hosts
            .get_or_insert_with(Vec::new)
            .extend(flags.allow_host.iter().cloned());
    }
    if !flags.allow_path.is_empty() {
        manifest
            .allowed_paths
            .get_or_insert_with(Default::default)
            .extend(flags.allow_path.iter().cloned());
    }
    if let Some(ms) = flags.timeout.filter(|&ms| ms > 0) {
        manifest.timeout_ms = Some(ms);
    }
    if let Some(pages) = flags.memory_max.filter(|&p| p > 0) {
        manifest.memory.max_pages = Some(pages);
    }
    if let Some(bytes) = flags.http_response_max {
        manifest.memory.max_http_response_bytes = Some(bytes);
    }
    if let Some(bytes) = flags.var_max {
        manifest.memory.max_var_bytes = Some(bytes);
    }
    manifest.config.extend(
        flags
            .set_config
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    manifest.config.extend(flags.config.iter().cloned());
}

/// Loads every module's bytes (checking hashes), with a download bar for URLs.
pub fn resolve(manifest: &Manifest, ui: &Ui) -> Result<Vec<ResolvedModule<'static>>> {
    let bar = ui.download_bar();
    let progress = |done, total| show_download(&bar, done, total);
    let modules = manifest.resolve(Some(&progress));
    bar.finish_and_clear();
    Ok(modules?
        .into_iter()
        .map(ResolvedModule::into_owned)
        .collect())
}

/// How to compile: `compile`'s options beyond the manifest.
pub struct Options {
    pub wasi: bool,
    pub fuel: Option<u64>,
    pub cache_dir: Option<PathBuf>,
    pub profile: Option<extism::ProfileOptions>,
}

/// Compiles resolved modules under a spinner naming `label`. The manifest's sources are
/// replaced by the resolved bytes, keeping each module's final name.
pub fn compile(
    manifest: Manifest,
    modules: Vec<ResolvedModule<'static>>,
    options: Options,
    label: &str,
    ui: &Ui,
) -> Result<CompiledPlugin> {
    let wasm = modules
        .into_iter()
        .map(|m| Wasm::data(m.bytes.into_owned()).with_name(m.name))
        .collect();
    let manifest = Manifest { wasm, ..manifest };
    let mut builder = PluginBuilder::new(manifest)
        .with_wasi(options.wasi)
        .with_cache_dir(options.cache_dir);
    if let Some(fuel) = options.fuel {
        builder = builder.with_fuel_limit(fuel);
    }
    if let Some(profile) = options.profile {
        builder = builder.with_profiler(profile);
    }
    let spinner = ui.spinner(format!("compiling {label}"));
    let compiled = builder.compile();
    spinner.finish_and_clear();
    compiled.with_context(|| format!("cannot load {label}"))
}

/// Refuses a plugin whose imports extism-run cannot satisfy: host functions (it has none to
/// offer) or WASI without --wasi. Modules that do not parse are left to the compiler, whose
/// message is the reference.
pub fn check_imports(modules: &[ResolvedModule], wasi: bool) -> Result<()> {
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    let infos: Vec<ModuleInfo> = modules
        .iter()
        .filter_map(|m| module_info::parse(&m.bytes, &names).ok())
        .collect();
    let needs = Needs::of(&infos);
    if !needs.host_functions.is_empty() {
        bail!(
            "the plugin needs host functions that extism-run cannot provide: {} (only an \
             application embedding the plugin can supply them)",
            needs.host_functions.join(", ")
        );
    }
    if !needs.wasi.is_empty() && !wasi {
        bail!(
            "the plugin imports WASI ({}); run it with --wasi",
            abbreviate(&needs.wasi)
        );
    }
    Ok(())
}

fn abbreviate(items: &[String]) -> String {
    match items {
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
        [] => String::new(),
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn looks_like_json(bytes: &[u8]) -> bool {
    first_non_space(bytes).starts_with(b"{")
}

/// Starts like WebAssembly text: `(` (as in `(module`) or a comment. The compiler judges the
/// rest.
fn looks_like_wat(bytes: &[u8]) -> bool {
    let start = first_non_space(bytes);
    start.starts_with(b"(") || start.starts_with(b";;")
}

fn first_non_space(bytes: &[u8]) -> &[u8] {
    let skip = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &bytes[skip..]
}
