//! The plugin manifest: which modules make up a plugin and which limits and permissions apply.
//!
//! Owns the JSON/TOML format of `spec/manifest.md` (strict: unknown fields are errors that name
//! the field), detection of raw `.wasm`/`.wat` bytes given where a manifest is expected, and
//! resolving module sources (file, inline data, URL) to bytes with the hash check.
//! It never compiles or runs anything.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde::{de::Error as _, Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Default `memory.max_http_response_bytes`: 50 MiB.
pub const DEFAULT_MAX_HTTP_RESPONSE_BYTES: u64 = 50 * 1024 * 1024;
/// Default `memory.max_var_bytes`: 1 MiB.
pub const DEFAULT_MAX_VAR_BYTES: u64 = 1024 * 1024;

/// A plugin description (`spec/manifest.md`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub wasm: Vec<Wasm>,
    #[serde(default)]
    pub memory: MemoryOptions,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub allowed_hosts: Option<Vec<String>>,
    /// Host path (optionally prefixed `ro:`) → guest path.
    #[serde(default)]
    pub allowed_paths: Option<BTreeMap<String, PathBuf>>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Memory limits (`spec/manifest.md` §4). `None` means the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryOptions {
    #[serde(default)]
    pub max_pages: Option<u32>,
    #[serde(default)]
    pub max_http_response_bytes: Option<u64>,
    #[serde(default)]
    pub max_var_bytes: Option<u64>,
}

/// Name and expected hash shared by every module source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WasmMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// An HTTP request that fetches a module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub method: Option<String>,
}

/// One module of a plugin.
#[derive(Debug, Clone, PartialEq)]
pub enum Wasm {
    /// Read from the file system when the plugin is compiled.
    File { path: PathBuf, meta: WasmMetadata },
    /// Module bytes (binary or text) held in the manifest.
    Data { data: Vec<u8>, meta: WasmMetadata },
    /// Downloaded when the plugin is compiled.
    Url {
        req: HttpRequest,
        meta: WasmMetadata,
    },
}

impl Wasm {
    pub fn file(path: impl Into<PathBuf>) -> Wasm {
        Wasm::File {
            path: path.into(),
            meta: WasmMetadata::default(),
        }
    }

    pub fn data(data: impl Into<Vec<u8>>) -> Wasm {
        Wasm::Data {
            data: data.into(),
            meta: WasmMetadata::default(),
        }
    }

    pub fn url(url: impl Into<String>) -> Wasm {
        Wasm::http(HttpRequest::new(url))
    }

    /// A module fetched with `req` (a URL, or an [`HttpRequest`] with method and headers).
    ///
    /// ```
    /// use extism::{manifest::HttpRequest, Wasm};
    /// let req = HttpRequest::new("https://example.com/plugin.wasm")
    ///     .with_method("GET")
    ///     .with_header("Authorization", "Bearer token");
    /// let wasm = Wasm::http(req).with_name("main");
    /// assert_eq!(wasm.meta().name.as_deref(), Some("main"));
    /// ```
    pub fn http(req: impl Into<HttpRequest>) -> Wasm {
        Wasm::Url {
            req: req.into(),
            meta: WasmMetadata::default(),
        }
    }

    pub fn meta(&self) -> &WasmMetadata {
        match self {
            Wasm::File { meta, .. } | Wasm::Data { meta, .. } | Wasm::Url { meta, .. } => meta,
        }
    }

    pub fn meta_mut(&mut self) -> &mut WasmMetadata {
        match self {
            Wasm::File { meta, .. } | Wasm::Data { meta, .. } | Wasm::Url { meta, .. } => meta,
        }
    }

    pub fn with_name(mut self, name: impl Into<String>) -> Wasm {
        self.meta_mut().name = Some(name.into());
        self
    }

    pub fn with_hash(mut self, hash: impl Into<String>) -> Wasm {
        self.meta_mut().hash = Some(hash.into());
        self
    }
}

impl From<HttpRequest> for Wasm {
    fn from(req: HttpRequest) -> Wasm {
        Wasm::http(req)
    }
}

impl From<PathBuf> for Wasm {
    fn from(path: PathBuf) -> Wasm {
        Wasm::file(path)
    }
}

impl From<Vec<u8>> for Wasm {
    fn from(data: Vec<u8>) -> Wasm {
        Wasm::data(data)
    }
}

impl HttpRequest {
    /// A `GET` (the default method) of `url` without headers.
    pub fn new(url: impl Into<String>) -> HttpRequest {
        HttpRequest {
            url: url.into(),
            headers: BTreeMap::new(),
            method: None,
        }
    }

    pub fn with_method(mut self, method: impl Into<String>) -> HttpRequest {
        self.method = Some(method.into());
        self
    }

    /// Adds a header (a second value for the same name replaces the first).
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> HttpRequest {
        self.headers.insert(key.into(), value.into());
        self
    }
}

impl MemoryOptions {
    /// Every limit at its default.
    ///
    /// ```
    /// use extism::{Manifest, MemoryOptions};
    /// let memory = MemoryOptions::new()
    ///     .with_max_pages(4)
    ///     .with_max_var_bytes(1024)
    ///     .with_max_http_response_bytes(4096);
    /// let manifest = Manifest::default().with_memory_options(memory);
    /// assert_eq!(manifest.memory.max_pages, Some(4));
    /// assert_eq!(manifest.max_var_bytes(), 1024);
    /// ```
    pub fn new() -> MemoryOptions {
        MemoryOptions::default()
    }

    /// The most wasm pages (64 KiB each) a module's memory may grow to.
    pub fn with_max_pages(mut self, pages: u32) -> MemoryOptions {
        self.max_pages = Some(pages);
        self
    }

    pub fn with_max_http_response_bytes(mut self, bytes: u64) -> MemoryOptions {
        self.max_http_response_bytes = Some(bytes);
        self
    }

    pub fn with_max_var_bytes(mut self, bytes: u64) -> MemoryOptions {
        self.max_var_bytes = Some(bytes);
        self
    }
}

impl Manifest {
    pub fn new(wasm: impl IntoIterator<Item = impl Into<Wasm>>) -> Manifest {
        Manifest {
            wasm: wasm.into_iter().map(Into::into).collect(),
            ..Manifest::default()
        }
    }

    /// Adds a module after those already there.
    ///
    /// ```
    /// use extism::{Manifest, Wasm};
    /// let manifest = Manifest::default()
    ///     .with_wasm(Wasm::data(b"(module)".to_vec()).with_name("lib"))
    ///     .with_wasm(std::path::PathBuf::from("main.wasm"))
    ///     .disallow_all_hosts()
    ///     .with_allowed_paths([("data".to_string(), "/data".into())].into_iter());
    /// assert_eq!(manifest.wasm.len(), 2);
    /// assert_eq!(manifest.allowed_hosts, Some(vec![]));
    /// ```
    pub fn with_wasm(mut self, wasm: impl Into<Wasm>) -> Self {
        self.wasm.push(wasm.into());
        self
    }

    /// Refuses HTTP requests to every host (an empty `allowed_hosts`).
    pub fn disallow_all_hosts(mut self) -> Self {
        self.allowed_hosts = Some(Vec::new());
        self
    }

    /// Replaces every memory limit.
    pub fn with_memory_options(mut self, memory: MemoryOptions) -> Self {
        self.memory = memory;
        self
    }

    /// Replaces `allowed_hosts`.
    pub fn with_allowed_hosts(mut self, hosts: impl Iterator<Item = String>) -> Self {
        self.allowed_hosts = Some(hosts.collect());
        self
    }

    /// Replaces `allowed_paths` (host path, prefix `ro:` for read-only, to guest path).
    pub fn with_allowed_paths(mut self, paths: impl Iterator<Item = (String, PathBuf)>) -> Self {
        self.allowed_paths = Some(paths.collect());
        self
    }

    pub fn with_config_key(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    pub fn with_config(
        mut self,
        config: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        self.config
            .extend(config.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    pub fn with_allowed_host(mut self, host: impl Into<String>) -> Self {
        self.allowed_hosts
            .get_or_insert_with(Vec::new)
            .push(host.into());
        self
    }

    /// Maps `host` (prefix `ro:` for read-only) to `guest` inside a WASI plugin.
    pub fn with_allowed_path(mut self, host: impl Into<String>, guest: impl Into<PathBuf>) -> Self {
        self.allowed_paths
            .get_or_insert_with(BTreeMap::new)
            .insert(host.into(), guest.into());
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(timeout.as_millis().try_into().unwrap_or(u64::MAX));
        self
    }

    pub fn with_memory_max(mut self, pages: u32) -> Self {
        self.memory.max_pages = Some(pages);
        self
    }

    pub fn with_var_max(mut self, bytes: u64) -> Self {
        self.memory.max_var_bytes = Some(bytes);
        self
    }

    pub fn with_http_response_max(mut self, bytes: u64) -> Self {
        self.memory.max_http_response_bytes = Some(bytes);
        self
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }

    pub fn max_var_bytes(&self) -> u64 {
        self.memory.max_var_bytes.unwrap_or(DEFAULT_MAX_VAR_BYTES)
    }

    pub fn max_http_response_bytes(&self) -> u64 {
        self.memory
            .max_http_response_bytes
            .unwrap_or(DEFAULT_MAX_HTTP_RESPONSE_BYTES)
    }

    /// Interprets bytes the way the C API does (`spec/manifest.md` §1): a binary module, a
    /// text module, or a TOML/JSON manifest.
    pub fn from_bytes(bytes: &[u8]) -> Result<Manifest> {
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

    /// Parses a TOML or JSON manifest. Errors name the offending field.
    pub fn from_text(text: &str) -> Result<Manifest> {
        let looks_like_json = text.trim_start().starts_with('{');
        let toml = toml::from_str::<Manifest>(text);
        if let (false, Ok(m)) = (looks_like_json, &toml) {
            tracing::debug!("manifest format: TOML");
            return Ok(m.clone());
        }
        match serde_json::from_str::<Manifest>(text) {
            Ok(m) => {
                tracing::debug!("manifest format: JSON");
                Ok(m)
            }
            Err(json) if looks_like_json => bail!("Unknown manifest format: {json}"),
            Err(_) => match toml {
                Ok(m) => {
                    tracing::debug!("manifest format: TOML");
                    Ok(m)
                }
                Err(e) => bail!("Unknown manifest format: {}", e.message()),
            },
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serialises")
    }
}

impl From<Wasm> for Manifest {
    fn from(w: Wasm) -> Manifest {
        Manifest::new([w])
    }
}

enum Input<'a> {
    Module,
    Text(&'a str),
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

/// True for WebAssembly text: a leading comment, or `(` followed by the keyword `module`.
/// Unlike upstream, leading whitespace is allowed.
pub(crate) fn is_wat(text: &str) -> bool {
    let t = text.trim_start();
    if t.starts_with(";;") || t.starts_with("(;") {
        return true;
    }
    t.strip_prefix('(')
        .map(|rest| {
            let rest = rest.trim_start();
            rest.starts_with("module")
                && !rest[6..].starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '-')
        })
        .unwrap_or(false)
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A module source resolved to bytes, with its final name.
#[derive(Debug, Clone)]
pub struct ResolvedModule {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Called with (bytes received, total if known) while a URL source downloads.
pub type DownloadProgress<'a> = &'a (dyn Fn(u64, Option<u64>) + Sync);

impl Manifest {
    /// Loads every module's bytes, checks hashes and assigns final names (`spec/manifest.md`
    /// §9.1). The module named `main` is always present in the result.
    pub fn resolve(&self, progress: Option<DownloadProgress<'_>>) -> Result<Vec<ResolvedModule>> {
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

fn load(wasm: &Wasm, progress: Option<DownloadProgress<'_>>) -> Result<Vec<u8>> {
    match wasm {
        Wasm::Data { data, .. } => Ok(data.clone()),
        Wasm::File { path, .. } => std::fs::read(path).map_err(|e| {
            anyhow!(
                "Unable to load Wasm file {:?}: {}",
                path.display().to_string(),
                e
            )
        }),
        Wasm::Url { req, .. } => crate::http::download(req, progress)
            .with_context(|| format!("Unable to download Wasm from {}", req.url)),
    }
}

// ---- serde for module entries: one of three shapes, told apart by their keys ----

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

impl<'de> Deserialize<'de> for Wasm {
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
                Ok(Wasm::File {
                    path: r.path,
                    meta: WasmMetadata {
                        name: r.name,
                        hash: r.hash,
                    },
                })
            }
            ["data"] => {
                let r: DataRepr = serde_json::from_value(value).map_err(parse_err)?;
                let data = r.data.into_bytes().map_err(D::Error::custom)?;
                Ok(Wasm::Data {
                    data,
                    meta: WasmMetadata {
                        name: r.name,
                        hash: r.hash,
                    },
                })
            }
            ["url"] => {
                let r: UrlRepr = serde_json::from_value(value).map_err(parse_err)?;
                let req = HttpRequest {
                    url: r.url,
                    headers: r.headers,
                    method: r.method,
                };
                Ok(Wasm::Url {
                    req,
                    meta: WasmMetadata {
                        name: r.name,
                        hash: r.hash,
                    },
                })
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

impl Serialize for Wasm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            Wasm::File { path, .. } => m.serialize_entry("path", path)?,
            Wasm::Data { data, .. } => m.serialize_entry(
                "data",
                &base64::engine::general_purpose::STANDARD.encode(data),
            )?,
            Wasm::Url { req, .. } => {
                m.serialize_entry("url", &req.url)?;
                if !req.headers.is_empty() {
                    m.serialize_entry("headers", &req.headers)?;
                }
                if let Some(method) = &req.method {
                    m.serialize_entry("method", method)?;
                }
            }
        }
        let meta = self.meta();
        if let Some(name) = &meta.name {
            m.serialize_entry("name", name)?;
        }
        if let Some(hash) = &meta.hash {
            m.serialize_entry("hash", hash)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wat_detection() {
        assert!(is_wat("(module)"));
        assert!(is_wat("  \n( module (func))"));
        assert!(is_wat(";; comment\n(module)"));
        assert!(!is_wat("(modules)"));
        assert!(!is_wat("{\"wasm\": []}"));
    }

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
