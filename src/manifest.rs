//! The plugin manifest: which modules make up a plugin and which limits and permissions apply.
//!
//! The types are upstream's `extism-manifest` crate itself (so `extism::Manifest` is
//! `extism_manifest::Manifest`, and code written for one accepts the other). This module owns
//! what the runtime adds over them ([`ManifestExt`]): the strict JSON/TOML parsing of
//! `spec/manifest.md` (unknown fields are errors that name the field; `{ptr, len}` data is read
//! without trusting the pointer), detection of raw `.wasm`/`.wat` bytes given where a manifest is
//! expected, and resolving module sources (file, inline data, URL) to bytes with the hash check.
//! It never compiles or runs anything, and never uses upstream's `Deserialize` impls (lenient
//! about shapes, and they read `{ptr, len}` without a check).
//!
//! Manifests are built with upstream's builders:
//!
//! ```
//! use std::time::Duration;
//! use extism::{Manifest, Plugin, Wasm};
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rust/wasm/count_vowels.wasm");
//! let manifest = Manifest::new([Wasm::file(path).with_name("main")])
//!     .with_config_key("vowels", "o")
//!     .with_timeout(Duration::from_secs(5))
//!     .with_memory_max(256)
//!     .disallow_all_hosts();
//! assert_eq!(manifest.allowed_hosts, Some(vec![]));
//! let mut plugin = Plugin::new(&manifest, [], false)?;
//! let out: String = plugin.call("count_vowels", "foo boo")?;
//! assert!(out.contains(r#""count":4"#));
//!
//! // Inline bytes, and the same manifest as JSON text (parsed strictly, see `ManifestExt`).
//! let bytes = std::fs::read(path)?;
//! let inline = Manifest::new([Wasm::data(bytes)]);
//! assert!(Plugin::new(&inline, [], false)?.function_exists("count_vowels"));
//! let json = format!(r#"{{"wasm": [{{"path": {path:?}}}], "config": {{"vowels": "o"}}}}"#);
//! let out: String = Plugin::new(json.as_bytes(), [], false)?.call("count_vowels", "foo")?;
//! assert!(out.contains(r#""count":2"#));
//! # Ok::<(), extism::Error>(())
//! ```

use std::{borrow::Cow, collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde::{de::Error as _, Deserialize, Deserializer};
use sha2::{Digest, Sha256};

use crate::{hex::hex, wat_text::is_wat};

pub use extism_manifest::{HttpRequest, Manifest, MemoryOptions, Wasm, WasmMetadata};

pub use crate::progress::DownloadProgress;

/// Default `memory.max_http_response_bytes`: 50 MiB.
pub const DEFAULT_MAX_HTTP_RESPONSE_BYTES: u64 = 50 * 1024 * 1024;
/// Default `memory.max_var_bytes`: 1 MiB.
pub const DEFAULT_MAX_VAR_BYTES: u64 = 1024 * 1024;

/// What this crate adds to upstream's [`Manifest`]: strict parsing of the JSON and TOML forms
/// (`spec/manifest.md`), limits with their defaults applied, and loading the modules.
///
/// Implemented for [`Manifest`] only. Bring it into scope to call these as methods:
///
/// ```
/// use extism::{Manifest, ManifestExt};
/// let manifest = Manifest::from_text("timeout_ms = 250\n[[wasm]]\npath = \"main.wasm\"")?;
/// assert_eq!(manifest.timeout(), Some(std::time::Duration::from_millis(250)));
/// assert_eq!(manifest.max_var_bytes(), extism::manifest::DEFAULT_MAX_VAR_BYTES);
///
/// let err = Manifest::from_text(r#"{"wasm": [], "timeout": 5}"#).unwrap_err();
/// assert!(err.to_string().contains("unknown field `timeout`"));
/// # Ok::<(), extism::Error>(())
/// ```
pub trait ManifestExt: Sized + sealed::Sealed {
    /// Interprets bytes the way the C API does (`spec/manifest.md` §1): a binary module, a
    /// text module, or a TOML/JSON manifest.
    fn from_bytes(bytes: &[u8]) -> Result<Self>;

    /// Parses a TOML or JSON manifest. Unknown fields, `null` where the format has no `null`,
    /// and module entries mixing shapes are errors that name the field.
    fn from_text(text: &str) -> Result<Self>;

    /// The manifest as pretty-printed JSON that [`ManifestExt::from_text`] reads back
    /// (upstream's serialisation: unset fields are `null`, module bytes standard base64). Fails
    /// only for a file path that is not UTF-8.
    fn to_json(&self) -> Result<String>;

    /// `timeout_ms` as a duration.
    fn timeout(&self) -> Option<Duration>;

    /// `memory.max_var_bytes`, or its default.
    fn max_var_bytes(&self) -> u64;

    /// `memory.max_http_response_bytes`, or its default.
    fn max_http_response_bytes(&self) -> u64;

    /// Sets `memory.max_var_bytes`.
    fn with_var_max(self, bytes: u64) -> Self;

    /// Sets `memory.max_http_response_bytes`.
    fn with_http_response_max(self, bytes: u64) -> Self;

    /// Loads every module's bytes, checks hashes and assigns final names (`spec/manifest.md`
    /// §9.1). The module named `main` is always present in the result.
    /// Bytes given inline (`data`) are borrowed, not copied.
    fn resolve(&self, progress: Option<DownloadProgress<'_>>) -> Result<Vec<ResolvedModule<'_>>>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Manifest {}
}

impl ManifestExt for Manifest {
    fn from_bytes(bytes: &[u8]) -> Result<Manifest> {
        match detect(bytes) {
            Input::Module => {
                tracing::trace!("loading {} bytes as a wasm module", bytes.len());
                Ok(Manifest::new([Wasm::data(bytes)]))
            }
            Input::Text(text) => {
                tracing::trace!("loading {} bytes as a manifest", bytes.len());
                Manifest::from_text(text)
            }
        }
    }

    fn from_text(text: &str) -> Result<Manifest> {
        let looks_like_json = text.trim_start().starts_with('{');
        let toml = match toml::from_str::<ManifestRepr>(text) {
            Ok(m) if !looks_like_json => {
                tracing::debug!("manifest format: TOML");
                return Ok(m.into());
            }
            other => other,
        };
        match serde_json::from_str::<ManifestRepr>(text) {
            Ok(m) => {
                tracing::debug!("manifest format: JSON");
                Ok(m.into())
            }
            Err(json) if looks_like_json => bail!("Unknown manifest format: {json}"),
            Err(_) => match toml {
                Ok(m) => {
                    tracing::debug!("manifest format: TOML");
                    Ok(m.into())
                }
                Err(e) => bail!("Unknown manifest format: {}", e.message()),
            },
        }
    }

    fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).context("cannot write the manifest as JSON")
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }

    fn max_var_bytes(&self) -> u64 {
        self.memory.max_var_bytes.unwrap_or(DEFAULT_MAX_VAR_BYTES)
    }

    fn max_http_response_bytes(&self) -> u64 {
        self.memory
            .max_http_response_bytes
            .unwrap_or(DEFAULT_MAX_HTTP_RESPONSE_BYTES)
    }

    fn with_var_max(mut self, bytes: u64) -> Manifest {
        self.memory.max_var_bytes = Some(bytes);
        self
    }

    fn with_http_response_max(mut self, bytes: u64) -> Manifest {
        self.memory.max_http_response_bytes = Some(bytes);
        self
    }

    fn resolve(&self, progress: Option<DownloadProgress<'_>>) -> Result<Vec<ResolvedModule<'_>>> {
        if self.wasm.is_empty() {
            bail!("No wasm files specified in Extism manifest");
        }
        let names = module_names(&self.wasm)?;
        self.wasm
            .iter()
            .zip(names)
            .map(|(wasm, name)| {
                let bytes = load(wasm, progress)?;
                if let Some(expected) = &wasm.meta().hash {
                    let found = sha256_hex(&bytes);
                    if &found != expected {
                        bail!("Hash mismatch, found {found} but expected {expected}");
                    }
                }
                Ok(ResolvedModule { name, bytes })
            })
            .collect()
    }
}

enum Input<'a> {
    Module,
    Text(&'a str),
}

/// True when `bytes` given as a plugin's source are a module rather than a manifest
/// ([`ManifestExt::from_bytes`]).
pub(crate) fn is_module(bytes: &[u8]) -> bool {
    matches!(detect(bytes), Input::Module)
}

/// Binary wasm, or text that is WebAssembly text format, counts as a module; other UTF-8 is a
/// manifest; anything else goes to the compiler as a module (which reports what is wrong).
fn detect(bytes: &[u8]) -> Input<'_> {
    if bytes.starts_with(b"\0asm") {
        return Input::Module;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if is_wat(text) => Input::Module,
        Ok(text) => Input::Text(text),
        Err(_) => Input::Module,
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A module source resolved to bytes, with its final name.
#[derive(Debug, Clone)]
pub struct ResolvedModule<'a> {
    /// The name other modules import it by: `main` for the plugin's main module, else the
    /// manifest's `name`.
    pub name: String,
    /// The module's wasm or WAT bytes: the manifest's own for `data` (plugins made from
    /// bytes copy nothing on the way to the module cache), read or downloaded otherwise.
    pub bytes: Cow<'a, [u8]>,
}

impl ResolvedModule<'_> {
    /// The same module, owning its bytes.
    pub fn into_owned(self) -> ResolvedModule<'static> {
        ResolvedModule {
            name: self.name,
            bytes: Cow::Owned(self.bytes.into_owned()),
        }
    }
}

/// Upstream's naming rules: one entry is always `main`; otherwise unnamed entries are `main`,
/// and the last entry becomes `main` when no earlier one is.
fn module_names(wasm: &[Wasm]) -> Result<Vec<String>> {
    if wasm.len() == 1 {
        return Ok(vec!["main".to_string()]);
    }
    let mut names: Vec<String> = Vec::with_capacity(wasm.len());
    for (i, w) in wasm.iter().enumerate() {
        let last = i + 1 == wasm.len();
        let mut name = w.meta().name.clone().unwrap_or_else(|| "main".to_string());
        if last && !names.iter().any(|n| n == "main") {
            name = "main".to_string();
        }
        if name == crate::kernel::ENV_MODULE || names.contains(&name) {
            bail!("Duplicate module name found in Extism manifest: {name}");
        }
        names.push(name);
    }
    Ok(names)
}

fn load<'a>(wasm: &'a Wasm, progress: Option<DownloadProgress<'_>>) -> Result<Cow<'a, [u8]>> {
    match wasm {
        Wasm::Data { data, .. } => Ok(Cow::Borrowed(data)),
        Wasm::File { path, .. } => read_file(path).map(Cow::Owned),
        Wasm::Url { req, .. } => download(req, progress).map(Cow::Owned),
    }
}

#[cfg(feature = "register-filesystem")]
fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "Unable to load Wasm file {:?}: {}",
            path.display().to_string(),
            e
        )
    })
}

#[cfg(not(feature = "register-filesystem"))]
fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    bail!(
        "File-based registration is disabled: cannot load Wasm file {:?} (extism-run was built \
         without its `register-filesystem` feature)",
        path.display().to_string()
    )
}

#[cfg(feature = "register-http")]
fn download(req: &HttpRequest, progress: Option<DownloadProgress<'_>>) -> Result<Vec<u8>> {
    crate::http::download(req, progress)
        .with_context(|| format!("Unable to download Wasm from {}", req.url))
}

#[cfg(not(feature = "register-http"))]
fn download(req: &HttpRequest, _: Option<DownloadProgress<'_>>) -> Result<Vec<u8>> {
    bail!(
        "HTTP registration is disabled: cannot download Wasm from {} (extism-run was built \
         without its `register-http` feature)",
        req.url
    )
}

// ---- strict serde forms, converted into upstream's types ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestRepr {
    #[serde(default)]
    wasm: Vec<WasmRepr>,
    #[serde(default)]
    memory: MemoryRepr,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    allowed_hosts: Option<Vec<String>>,
    /// Host path (optionally prefixed `ro:`) → guest path.
    #[serde(default)]
    allowed_paths: Option<BTreeMap<String, PathBuf>>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// `None` means the default. (Upstream's own parser stores an absent `max_var_bytes` as
/// 1 MiB; both behave the same.)
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MemoryRepr {
    #[serde(default)]
    max_pages: Option<u32>,
    #[serde(default)]
    max_http_response_bytes: Option<u64>,
    #[serde(default)]
    max_var_bytes: Option<u64>,
}

impl From<ManifestRepr> for Manifest {
    fn from(r: ManifestRepr) -> Manifest {
        Manifest {
            wasm: r.wasm.into_iter().map(|w| w.0).collect(),
            memory: MemoryOptions {
                max_pages: r.memory.max_pages,
                max_http_response_bytes: r.memory.max_http_response_bytes,
                max_var_bytes: r.memory.max_var_bytes,
            },
            config: r.config,
            allowed_hosts: r.allowed_hosts,
            allowed_paths: r.allowed_paths,
            timeout_ms: r.timeout_ms,
        }
    }
}

/// One module entry: one of three shapes, told apart by their keys.
struct WasmRepr(Wasm);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    path: PathBuf,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    hash: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataRepr {
    data: DataField,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    hash: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlRepr {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    hash: Option<String>,
}

/// `data` is standard padded base64, or `{"ptr", "len"}` naming bytes in this process.
#[derive(Deserialize)]
#[serde(untagged)]
enum DataField {
    Base64(String),
    Pointer(DataPointer),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataPointer {
    ptr: u64,
    len: u64,
}

impl DataField {
    fn into_bytes(self) -> Result<Vec<u8>, String> {
        match self {
            DataField::Base64(s) => base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|e| format!("invalid base64 in `data`: {e}")),
            DataField::Pointer(DataPointer { len: 0, .. }) => Ok(Vec::new()),
            DataField::Pointer(DataPointer { ptr: 0, .. }) => {
                Err("`data.ptr` is null but `data.len` is not 0".to_string())
            }
            DataField::Pointer(DataPointer { ptr, len }) => {
                let len =
                    usize::try_from(len).map_err(|_| "`data.len` is too large".to_string())?;
                read_process_memory(ptr as usize, len)
                    .map_err(|e| format!("cannot read `data` at {ptr:#x}+{len}: {e}"))
            }
        }
    }
}

/// Copies `len` bytes at address `addr` of this process without trusting the address: the
/// bytes go through a pipe, and `write(2)` reports an unmapped source as `EFAULT` instead of
/// faulting. The `{ptr, len}` form is meant for in-process C callers, but a manifest is often
/// read from a file, so a wrong pointer must be an error rather than a crash.
fn read_process_memory(addr: usize, len: usize) -> std::io::Result<Vec<u8>> {
    use std::{fs::File, io::Read, os::fd::FromRawFd};
    if addr.checked_add(len).is_none() {
        return Err(std::io::Error::from_raw_os_error(libc::EFAULT));
    }
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by these files alone.
    let (mut reader, writer) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // One page at a time: a pipe always holds at least a page, so a write never blocks.
    const CHUNK: usize = 4096;
    let mut out = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = CHUNK.min(len - done);
        // SAFETY: the kernel validates the source range; an unmapped one fails with EFAULT.
        let written = unsafe {
            libc::write(
                std::os::fd::AsRawFd::as_raw_fd(&writer),
                (addr + done) as *const libc::c_void,
                n,
            )
        };
        if written < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let written = written as usize;
        reader.read_exact(&mut out[done..done + written])?;
        done += written;
    }
    Ok(out)
}

impl<'de> Deserialize<'de> for WasmRepr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let serde_json::Value::Object(map) = &value else {
            return Err(D::Error::custom("a wasm entry must be an object"));
        };
        let shapes: Vec<&str> = ["path", "data", "url"]
            .into_iter()
            .filter(|k| map.contains_key(*k))
            .collect();
        let parse_err = |e: serde_json::Error| D::Error::custom(format!("wasm entry: {e}"));
        match shapes.as_slice() {
            ["path"] => {
                let r: FileRepr = serde_json::from_value(value).map_err(parse_err)?;
                Ok(WasmRepr(Wasm::File {
                    path: r.path,
                    meta: WasmMetadata {
                        name: r.name,
                        hash: r.hash,
                    },
                }))
            }
            ["data"] => {
                let r: DataRepr = serde_json::from_value(value).map_err(parse_err)?;
                let data = r.data.into_bytes().map_err(D::Error::custom)?;
                Ok(WasmRepr(Wasm::Data {
                    data,
                    meta: WasmMetadata {
                        name: r.name,
                        hash: r.hash,
                    },
                }))
            }
            ["url"] => {
                let r: UrlRepr = serde_json::from_value(value).map_err(parse_err)?;
                let req = HttpRequest {
                    url: r.url,
                    headers: r.headers,
                    method: r.method,
                };
                Ok(WasmRepr(Wasm::Url {
                    req,
                    meta: WasmMetadata {
                        name: r.name,
                        hash: r.hash,
                    },
                }))
            }
            [] => Err(D::Error::custom(
                "wasm entry needs one of `path`, `data` or `url`",
            )),
            many => Err(D::Error::custom(format!(
                "wasm entry matches none of the shapes: it mixes {}",
                many.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_upstream_rules() {
        let n = |names: &[Option<&str>]| {
            let wasm: Vec<Wasm> = names
                .iter()
                .map(|n| match n {
                    Some(n) => Wasm::data(vec![]).with_name(*n),
                    None => Wasm::data(vec![]),
                })
                .collect();
            module_names(&wasm).map_err(|e| e.to_string())
        };
        assert_eq!(n(&[Some("lib")]).unwrap(), ["main"]);
        assert_eq!(n(&[Some("lib"), None]).unwrap(), ["lib", "main"]);
        assert_eq!(n(&[None, Some("lib")]).unwrap(), ["main", "lib"]);
        assert_eq!(n(&[Some("x"), Some("y")]).unwrap(), ["x", "main"]);
        assert!(n(&[None, None])
            .unwrap_err()
            .contains("Duplicate module name"));
    }
}
