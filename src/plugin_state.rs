//! What a plugin's wasmtime `Store` carries: the per-instance state host functions work on.
//!
//! Owns the data only (config, vars, HTTP results, WASI context, host context, limits, the
//! kernel handles). Behaviour lives with the code that uses it: `host/` for guest-visible
//! functions, `plugin.rs` for the call lifecycle.

use std::{any::Any, collections::BTreeMap, sync::Arc, time::Instant};

use anyhow::{anyhow, Result};
use extism_manifest::Manifest;
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::{cancel::InterruptState, kernel::Kernel, limits::MemoryBudget};

/// Limits and permissions fixed by the manifest, shared by every instance of a compiled plugin.
#[derive(Debug, Clone)]
pub(crate) struct Permissions {
    pub max_var_bytes: u64,
    // Read by `http_request`, which a build without the `http` feature refuses outright.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub max_http_response_bytes: u64,
    /// Empty means every HTTP request is refused.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub allowed_hosts: Vec<String>,
}

/// Results of the guest's latest HTTP request.
#[derive(Debug, Default)]
pub(crate) struct HttpState {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    /// Set by the host (C: `extism_plugin_allow_http_response_headers`); kept across rebuilds.
    pub headers_enabled: bool,
}

pub(crate) struct PluginState {
    pub id: uuid::Uuid,
    /// `id` formatted once, for log events.
    pub id_text: Arc<str>,
    /// Behind an `Arc` of this store's own, so a host call takes it with one uncontended
    /// count instead of cloning the typed handles (whose types are counted engine-wide).
    kernel: Option<Arc<Kernel>>,
    pub config: BTreeMap<String, String>,
    pub vars: BTreeMap<String, Vec<u8>>,
    /// Scratch for the key argument of `config_get`/`var_get`/`var_set` (host/mod.rs),
    /// reused so that a lookup allocates nothing.
    pub key: String,
    pub permissions: Arc<Permissions>,
    /// The manifest the plugin was compiled from (`CurrentPlugin::manifest`).
    pub manifest: Arc<Manifest>,
    pub http: HttpState,
    pub wasi: Option<WasiP1Ctx>,
    /// Private directories behind single-file WASI mounts; removed with the store.
    _file_mounts: Vec<tempfile::TempDir>,
    /// The value passed with the current call, if any; never visible to the guest.
    pub host_context: Option<Box<dyn Any + Send>>,
    pub memory: MemoryBudget,
    pub interrupt: Arc<InterruptState>,
    /// When the running call must stop (`timeout_ms`).
    pub deadline: Option<Instant>,
    /// The sampling profiler's recorder, for plugins built with one (profile.rs).
    pub profile: Option<Box<crate::profile::Recorder>>,
}

impl PluginState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: uuid::Uuid,
        config: BTreeMap<String, String>,
        permissions: Arc<Permissions>,
        manifest: Arc<Manifest>,
        headers_enabled: bool,
        wasi: Option<crate::wasi::Wasi>,
        memory: MemoryBudget,
        interrupt: Arc<InterruptState>,
    ) -> PluginState {
        let (ctx, file_mounts) = match wasi {
            Some(w) => (Some(w.ctx), w.file_mounts),
            None => (None, Vec::new()),
        };
        PluginState {
            id,
            id_text: id.to_string().into(),
            kernel: None,
            config,
            vars: BTreeMap::new(),
            key: String::new(),
            permissions,
            manifest,
            http: HttpState {
                headers_enabled,
                ..HttpState::default()
            },
            wasi: ctx,
            _file_mounts: file_mounts,
            host_context: None,
            memory,
            interrupt,
            deadline: None,
            profile: None,
        }
    }

    /// The kernel of this store. Present from the moment the store is set up.
    pub fn kernel(&self) -> Result<Arc<Kernel>> {
        self.kernel
            .clone()
            .ok_or_else(|| anyhow!("the plugin's kernel is not instantiated"))
    }

    /// The kernel's memory, for host code that reads and writes blocks itself.
    pub fn kernel_memory(&self) -> Result<wasmtime::Memory> {
        self.kernel
            .as_ref()
            .map(|k| k.memory)
            .ok_or_else(|| anyhow!("the plugin's kernel is not instantiated"))
    }

    pub fn set_kernel(&mut self, kernel: Kernel) {
        self.kernel = Some(Arc::new(kernel));
    }

    pub fn wasi(&mut self) -> &mut WasiP1Ctx {
        self.wasi
            .as_mut()
            .expect("WASI functions are only linked when a WASI context exists")
    }
}
