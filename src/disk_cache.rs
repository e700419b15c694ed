//! The compiled-module disk cache: wasmtime code kept in files so that another process
//! compiling the same bytes with the same engine configuration skips compilation.
//!
//! Owns the cache file format, its verification, atomic replacement and clearing, and which
//! directory a builder uses (`CacheSetting`). It is off unless
//! [`crate::PluginBuilder::with_cache_dir`] names a directory, or a wasmtime-style cache
//! configuration file names one ([`crate::PluginBuilder::with_cache_config`] or the
//! `EXTISM_CACHE_CONFIG` variable, as upstream; upstream also caches by default, this runtime
//! does not). The command line uses it by default. It is the tier behind the in-process cache of `engine.rs`: a module
//! already compiled in this process is used as is; otherwise a valid file is deserialised;
//! otherwise the module is compiled and its file written.
//!
//! `Module::deserialize` trusts its input (it maps the machine code it is given), so nothing is
//! deserialised before the whole file checks out: magic, format version, the engine fingerprint
//! (this crate's version and `Engine::precompile_compatibility_hash`, which covers the wasmtime
//! version and every code-generation setting), the cache key of the module bytes the file was
//! compiled from (their SHA-256, domain-separated for the kernel-linked form: [`cache_key`]),
//! and the length and SHA-256 of the serialised code. A file failing any check
//! is recompiled and replaced, never used. Files are written to a temporary file in the same
//! directory and renamed into place, so a reader never sees a partial file and concurrent
//! writers of one entry are harmless.
//!
//! The checks detect corruption and foreign files, not malice: whoever can write the cache
//! directory can run code in the processes that use it, so it is created private to its user.
//!
//! File layout (integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `XRUNCWSM` |
//! | 4 | format version (2) |
//! | 32 | engine fingerprint |
//! | 32 | cache key of the module bytes ([`cache_key`]) |
//! | 8 | length of the serialised code |
//! | 32 | SHA-256 of the serialised code |
//! | n | the serialised code (`Module::serialize`) |

use std::{
    fs,
    hash::{Hash, Hasher},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use crate::{
    engine::{CachedModule, Runtime},
    hex::hex,
};

const MAGIC: &[u8; 8] = b"XRUNCWSM";
const FORMAT_VERSION: u32 = 2;
const HEADER_LEN: usize = 8 + 4 + 32 + 32 + 8 + 32;
/// Extension of cache entries; temporary files end in `.cwasm.part`.
const EXTENSION: &str = ".cwasm";
const PARTIAL: &str = ".cwasm.part";

/// `extism-run` in the user's cache directory, or `None` when the platform has none: where a
/// cache configuration without `directory` keeps files, and the command line's default.
pub fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("extism-run"))
}

/// Where a builder keeps compiled modules.
#[derive(Clone, Debug)]
pub(crate) enum CacheSetting {
    Off,
    Dir(PathBuf),
    /// A wasmtime cache configuration file, read when compiling.
    Config(PathBuf),
}

impl CacheSetting {
    /// Upstream's default: `EXTISM_CACHE_CONFIG` names a configuration file; empty (or unset,
    /// where upstream would use wasmtime's default cache) means no cache.
    pub fn from_env() -> CacheSetting {
        match std::env::var_os("EXTISM_CACHE_CONFIG") {
            Some(path) if !path.is_empty() => CacheSetting::Config(path.into()),
            _ => CacheSetting::Off,
        }
    }

    /// The cache directory, reading the configuration file if there is one.
    pub fn dir(&self) -> Result<Option<PathBuf>> {
        match self {
            CacheSetting::Off => Ok(None),
            CacheSetting::Dir(dir) => Ok(Some(dir.clone())),
            CacheSetting::Config(path) => {
                let text = fs::read_to_string(path)
                    .with_context(|| format!("cannot read cache config {}", path.display()))?;
                config_dir(&text)
                    .with_context(|| format!("invalid cache config {}", path.display()))
            }
        }
    }
}

/// wasmtime's cache configuration format: one `[cache]` table. Only `enabled` (older
/// wasmtime versions) and `directory` matter here; the other keys tune wasmtime's own cache.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheConfigFile {
    cache: CacheConfig,
}

/// Unknown keys land in `wasmtime_only` and are refused unless wasmtime knows them.
#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct CacheConfig {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    directory: Option<PathBuf>,
    #[serde(flatten)]
    wasmtime_only: std::collections::BTreeMap<String, toml::Value>,
}

/// wasmtime's settings that have no meaning for this cache.
const WASMTIME_ONLY: &[&str] = &[
    "worker-event-queue-size",
    "baseline-compression-level",
    "optimized-compression-level",
    "optimized-compression-usage-counter-threshold",
    "cleanup-interval",
    "optimizing-compression-task-timeout",
    "allowed-clock-drift-for-files-from-future",
    "file-count-soft-limit",
    "files-total-size-soft-limit",
    "file-count-limit-percent-if-deleting",
    "files-total-size-limit-percent-if-deleting",
];

fn config_dir(text: &str) -> Result<Option<PathBuf>> {
    let file: CacheConfigFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = file.cache;
    if let Some(key) = config
        .wasmtime_only
        .keys()
        .find(|k| !WASMTIME_ONLY.contains(&k.as_str()))
    {
        bail!("unknown key `{key}` in [cache]");
    }
    if config.enabled == Some(false) {
        return Ok(None);
    }
    match config.directory {
        Some(dir) if dir.is_absolute() => Ok(Some(dir)),
        Some(dir) => bail!("`directory` must be an absolute path: {}", dir.display()),
        None => default_dir()
            .map(Some)
            .context("no `directory` given and this platform has no cache directory"),
    }
}

/// Compiles `bytes` with `runtime`, going through the in-process cache, then the files in `dir`.
/// Failing to read or write the cache is never an error: the module is compiled instead.
pub(crate) fn compile(
    runtime: &Runtime,
    dir: &Path,
    bytes: &[u8],
    link_kernel: bool,
) -> Result<Arc<CachedModule>> {
    if let Some(found) = runtime.lookup(bytes, link_kernel) {
        return Ok(found);
    }
    let key = cache_key(bytes, link_kernel.then(|| runtime.link_options()));
    let fingerprint = fingerprint(&runtime.engine);
    let path = dir.join(file_name(&key, &fingerprint));
    match read(&path, &fingerprint, &key) {
        Ok(Some(code)) => {
            // SAFETY: `read` verified the header and the SHA-256 of `code`, so these are the
            // exact bytes `Module::serialize` produced for an engine with this fingerprint.
            match unsafe { Module::deserialize(&runtime.engine, &code) } {
                Ok(module) => {
                    tracing::debug!("using cached module {}", path.display());
                    return Ok(runtime.insert(CachedModule::new(module, bytes, link_kernel)));
                }
                Err(e) => tracing::debug!(
                    "cannot load cached module {}: {e}; recompiling",
                    path.display()
                ),
            }
        }
        Ok(None) => tracing::debug!("no cached module {}; compiling", path.display()),
        Err(why) => tracing::debug!("invalid cache file {} ({why}); recompiling", path.display()),
    }
    let compiled = runtime.compile(bytes, link_kernel)?;
    match write(dir, &path, &fingerprint, &key, &compiled.module) {
        Ok(()) => tracing::debug!("saved compiled module to {}", path.display()),
        Err(e) => tracing::warn!("cannot save compiled module to {}: {e:#}", path.display()),
    }
    Ok(compiled)
}

/// The on-disk key of the module compiled from `bytes`: their SHA-256, or for the
/// kernel-linked form the SHA-256 of the bytes behind a domain prefix and what linking added
/// (the sampling profiler's engine compiles the same code as another's, so only this tells
/// their modules apart), so the forms never share a file and distinct bytes never share code.
/// Only computed when the disk cache is on.
fn cache_key(bytes: &[u8], linked: Option<crate::kernel_link::Options>) -> [u8; 32] {
    let mut hash = Sha256::new();
    if let Some(options) = linked {
        hash.update(b"extism-run kernel-linked module\0");
        hash.update([options.fast_copies as u8, options.call_entries as u8]);
    }
    hash.update(bytes);
    hash.finalize().into()
}

/// What [`clear`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleared {
    /// Files removed.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
}

/// Removes every cache entry (and leftover temporary file) from `dir`, leaving other files
/// alone. A missing directory is an empty cache.
pub fn clear(dir: &Path) -> io::Result<Cleared> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Cleared::default()),
        Err(e) => return Err(e),
    };
    let mut cleared = Cleared::default();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.ends_with(EXTENSION) || name.ends_with(PARTIAL)) || !entry.file_type()?.is_file()
        {
            continue;
        }
        let len = entry.metadata()?.len();
        fs::remove_file(entry.path())?;
        cleared.files += 1;
        cleared.bytes += len;
    }
    Ok(cleared)
}

/// Identifies the code an engine produces: this crate's version (engine settings), the kernel
/// and the revision of the pass that links it into guests (a linked module holds both), and
/// wasmtime's own compatibility hash, reduced to SHA-256.
fn fingerprint(engine: &Engine) -> [u8; 32] {
    struct Sha256Hasher(Sha256);
    impl Hasher for Sha256Hasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            unreachable!("only the digest is used")
        }
    }
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.write(crate::VERSION.as_bytes());
    hasher.write(crate::kernel::KERNEL_WASM);
    hasher.write(&crate::kernel_link::REVISION.to_le_bytes());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

fn file_name(key: &[u8; 32], fingerprint: &[u8; 32]) -> String {
    format!("{}-{}{EXTENSION}", hex(key), &hex(fingerprint)[..16])
}

/// The verified serialised code in `path`, `None` when there is no such file, or why the file
/// cannot be used.
fn read(path: &Path, fingerprint: &[u8; 32], key: &[u8; 32]) -> Result<Option<Vec<u8>>, String> {
    let mut data = match fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if data.len() < HEADER_LEN {
        return Err("shorter than its header".into());
    }
    let (header, code) = data.split_at(HEADER_LEN);
    let (magic, rest) = header.split_at(8);
    let (version, rest) = rest.split_at(4);
    let (engine, rest) = rest.split_at(32);
    let (source, rest) = rest.split_at(32);
    let (len, code_sha256) = rest.split_at(8);
    if magic != MAGIC {
        return Err("not a cache file".into());
    }
    if version != FORMAT_VERSION.to_le_bytes() {
        return Err("another format version".into());
    }
    if engine != fingerprint {
        return Err("compiled by another engine".into());
    }
    if source != key {
        return Err("compiled from other module bytes".into());
    }
    if len != (code.len() as u64).to_le_bytes() {
        return Err("truncated or extended".into());
    }
    if code_sha256 != Sha256::digest(code).as_slice() {
        return Err("checksum mismatch".into());
    }
    data.drain(..HEADER_LEN);
    Ok(Some(data))
}

fn write(
    dir: &Path,
    path: &Path,
    fingerprint: &[u8; 32],
    key: &[u8; 32],
    module: &Module,
) -> Result<()> {
    let code = module.serialize().map_err(anyhow::Error::from)?;
    create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut file = tempfile::Builder::new()
        .prefix(".")
        .suffix(PARTIAL)
        .tempfile_in(dir)?;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(fingerprint);
    header.extend_from_slice(key);
    header.extend_from_slice(&(code.len() as u64).to_le_bytes());
    header.extend_from_slice(&Sha256::digest(&code));
    file.write_all(&header)?;
    file.write_all(&code)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_removes_only_cache_entries() {
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("notes.txt");
        fs::write(&keep, "mine").unwrap();
        fs::write(dir.path().join(format!("a{EXTENSION}")), [0u8; 10]).unwrap();
        fs::write(dir.path().join(format!(".b{PARTIAL}")), [0u8; 5]).unwrap();
        fs::create_dir(dir.path().join(format!("sub{EXTENSION}"))).unwrap();
        let cleared = clear(dir.path()).unwrap();
        assert_eq!(
            cleared,
            Cleared {
                files: 2,
                bytes: 15
            }
        );
        assert!(keep.exists());
        assert!(dir.path().join(format!("sub{EXTENSION}")).is_dir());
        assert_eq!(
            clear(&dir.path().join("missing")).unwrap(),
            Cleared::default()
        );
    }

    /// The sampling profiler's engine compiles the same code as the plain one (same
    /// fingerprint) but links modules without call entries: its files are apart.
    #[test]
    fn modules_linked_for_the_profiler_have_files_of_their_own() {
        let plain = Runtime::get(&Default::default()).unwrap();
        let profiled = Runtime::get(&crate::engine::EngineKey {
            sampling: true,
            ..Default::default()
        })
        .unwrap();
        let bytes = b"(module (func (export \"f\")))";
        let key = |r: &Runtime| cache_key(bytes, Some(r.link_options()));
        assert_ne!(key(&plain), key(&profiled));
        assert_ne!(key(&plain), cache_key(bytes, None));
    }

    #[test]
    fn files_are_verified_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::get(&Default::default()).unwrap();
        let bytes = b"(module (func (export \"f\")))";
        let key = cache_key(bytes, Some(runtime.link_options()));
        let fingerprint = fingerprint(&runtime.engine);
        let path = dir.path().join(file_name(&key, &fingerprint));
        assert_eq!(read(&path, &fingerprint, &key), Ok(None));

        compile(&runtime, dir.path(), bytes, true).unwrap();
        let code = read(&path, &fingerprint, &key).unwrap().unwrap();
        assert!(!code.is_empty());
        assert_eq!(
            read(&path, &fingerprint, &[0; 32]),
            Err("compiled from other module bytes".to_string())
        );
        assert_eq!(
            read(&path, &[0; 32], &key),
            Err("compiled by another engine".to_string())
        );
        let mut data = fs::read(&path).unwrap();
        data.push(0);
        fs::write(&path, &data).unwrap();
        assert_eq!(
            read(&path, &fingerprint, &key),
            Err("truncated or extended".to_string())
        );
        data[8] = 99;
        fs::write(&path, &data).unwrap();
        assert_eq!(
            read(&path, &fingerprint, &key),
            Err("another format version".to_string())
        );
    }
}
